package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// Sources for [OutputField].Source.
const (
	// SourcePassthrough copies an input field (From is its dotted path).
	SourcePassthrough = "passthrough"
	// SourceTensor writes a model output tensor (From is its name).
	SourceTensor = "tensor"
	// SourceModelName writes the name of the model that made the row.
	SourceModelName = "model_name"
	// SourceModelVersion writes the version of the model that made the row.
	SourceModelVersion = "model_version"
	// SourceNative writes a value computed by the caller (post-processing:
	// labels, top-k lists), of the Avro type in AvroType, taken from the
	// natives passed to BuildRow under From.
	SourceNative = "native"
)

// OutputField is one field of the prediction record.
type OutputField struct {
	// Name is the Avro field name in the output record.
	Name string
	// Source is one of the Source constants.
	Source string
	// From is the input field path (passthrough) or the output tensor name
	// (tensor); empty means the same as Name.
	From string
	// DType is the tensor's element type (tensor fields only).
	DType tensor.DType
	// Shape is the tensor's per-row shape, without the batch dim; -1 marks a
	// dynamic dim (tensor fields only).
	Shape []int64
	// AvroType is the field's Avro type in JSON form, as encoding/json
	// decodes it ("string", map[string]any{"type": "array", ...}; native
	// fields only).
	AvroType any
}

func (f *OutputField) from() string {
	if f.From != "" {
		return f.From
	}
	return f.Name
}

// avroTypeForDType maps a tensor dtype to the Avro primitive its elements
// are written as.
func avroTypeForDType(dt tensor.DType) (string, bool) {
	switch dt {
	case tensor.Float32:
		return "float", true
	case tensor.Float64:
		return "double", true
	case tensor.Int32, tensor.Uint8, tensor.Int8:
		return "int", true
	case tensor.Int64:
		return "long", true
	case tensor.Bool:
		return "boolean", true
	}
	return "", false
}

// BuildOutputSchema builds the Avro record schema of the prediction
// records. Pass-through fields copy their Avro type from inputSchemaJSON
// (named types are written once, under their full names, so union values
// keep their keys); a pass-through field below a nullable record becomes
// nullable. Tensor fields get one array level per dim of Shape around the
// Avro type of DType (float32→float, float64→double, int32, uint8 and
// int8→int, int64→long, bool→boolean). Model name and version fields are
// strings. inputSchemaJSON may be empty when no field is a pass-through.
func BuildOutputSchema(name, namespace, inputSchemaJSON string, fields []OutputField) (string, error) {
	if err := checkAvroName(name); err != nil {
		return "", fmt.Errorf("output schema name: %w", err)
	}
	if namespace != "" {
		for _, part := range strings.Split(namespace, ".") {
			if err := checkAvroName(part); err != nil {
				return "", fmt.Errorf("output schema namespace %q: %w", namespace, err)
			}
		}
	}
	if len(fields) == 0 {
		return "", errors.New("output schema: no fields")
	}
	var input *avroType
	em := &emitter{defined: map[string]bool{}}
	out := make([]any, 0, len(fields))
	seen := make(map[string]bool, len(fields))
	for i := range fields {
		f := &fields[i]
		if err := checkAvroName(f.Name); err != nil {
			return "", fmt.Errorf("output field %d: %w", i+1, err)
		}
		if seen[f.Name] {
			return "", fmt.Errorf("output field %q: defined more than once", f.Name)
		}
		seen[f.Name] = true
		field := map[string]any{"name": f.Name}
		switch f.Source {
		case SourcePassthrough:
			if input == nil {
				if inputSchemaJSON == "" {
					return "", fmt.Errorf("output field %q: a pass-through field needs the input schema", f.Name)
				}
				root, err := parseSchema(inputSchemaJSON)
				if err != nil {
					return "", fmt.Errorf("output field %q: input schema: %w", f.Name, err)
				}
				if root.kind != kindRecord {
					return "", fmt.Errorf("output field %q: input schema is %s, want a record", f.Name, root.describe())
				}
				input = root
			}
			src, viaNull, err := resolvePath(input, strings.Split(f.from(), "."))
			if err != nil {
				return "", fmt.Errorf("output field %q: input field %q: %w", f.Name, f.from(), err)
			}
			typ := em.emit(src.typ)
			if viaNull && !src.typ.hasNull() {
				if src.typ.kind == kindUnion {
					typ = append([]any{"null"}, typ.([]any)...)
				} else {
					typ = []any{"null", typ}
				}
				field["default"] = nil
			} else if def, ok := src.raw["default"]; ok {
				field["default"] = def
			}
			field["type"] = typ
			if doc, ok := src.raw["doc"]; ok {
				field["doc"] = doc
			}
		case SourceTensor:
			prim, ok := avroTypeForDType(f.DType)
			if !ok {
				return "", fmt.Errorf("output field %q: invalid dtype %v", f.Name, f.DType)
			}
			var typ any = prim
			for j := len(f.Shape) - 1; j >= 0; j-- {
				if f.Shape[j] < -1 {
					return "", fmt.Errorf("output field %q: shape %s: dim %d is %d, want -1 or a length", f.Name, tensor.ShapeString(f.Shape), j, f.Shape[j])
				}
				typ = map[string]any{"type": "array", "items": typ}
			}
			field["type"] = typ
		case SourceModelName, SourceModelVersion:
			field["type"] = "string"
		case SourceNative:
			if f.AvroType == nil {
				return "", fmt.Errorf("output field %q: a native field needs AvroType", f.Name)
			}
			field["type"] = f.AvroType
		default:
			return "", fmt.Errorf("output field %q: unknown source %q, want one of %s, %s, %s, %s",
				f.Name, f.Source, SourcePassthrough, SourceTensor, SourceModelName, SourceModelVersion)
		}
		out = append(out, field)
	}
	rec := map[string]any{"type": "record", "name": name, "fields": out}
	if namespace != "" {
		rec["namespace"] = namespace
	}
	s, err := marshalSchema(rec)
	if err != nil {
		return "", fmt.Errorf("output schema: %w", err)
	}
	// goavro silently lets a later definition replace an earlier one with
	// the same name (say, the output record and a copied type), which real
	// registries reject; parseSchema catches that.
	if _, err := parseSchema(s); err != nil {
		return "", fmt.Errorf("output schema: %w", err)
	}
	if _, err := compileCodec(s); err != nil {
		return "", fmt.Errorf("output schema: %w", err)
	}
	return s, nil
}

// checkAvroName applies the Avro name rule [A-Za-z_][A-Za-z0-9_]*.
func checkAvroName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%q is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]*)", s)
		}
	}
	return nil
}

// OutputBuilder assembles the native form of prediction records for one
// output schema. It is safe for concurrent use.
type OutputBuilder struct {
	fields     []outputField
	schemaJSON string
}

type outputField struct {
	OutputField
	from string
	typ  *avroType // the field's type in the output schema
}

// NewOutputBuilder checks fields against the output schema (as built by
// [BuildOutputSchema], or any schema with matching field names).
func NewOutputBuilder(outputSchemaJSON string, fields []OutputField) (*OutputBuilder, error) {
	root, err := parseSchema(outputSchemaJSON)
	if err != nil {
		return nil, fmt.Errorf("creating output builder: %w", err)
	}
	if root.kind != kindRecord {
		return nil, fmt.Errorf("creating output builder: output schema is %s, want a record", root.describe())
	}
	b := &OutputBuilder{fields: make([]outputField, 0, len(fields)), schemaJSON: outputSchemaJSON}
	for _, f := range fields {
		af, ok := root.byName[f.Name]
		if !ok {
			return nil, fmt.Errorf("creating output builder: output field %q is not in %s", f.Name, root.describe())
		}
		switch f.Source {
		case SourcePassthrough, SourceModelName, SourceModelVersion, SourceNative:
		case SourceTensor:
			if _, ok := avroTypeForDType(f.DType); !ok {
				return nil, fmt.Errorf("creating output builder: output field %q: invalid dtype %v", f.Name, f.DType)
			}
			depth := 0
			for t := af.typ; t.kind == kindArray; t = t.items {
				depth++
			}
			if depth != len(f.Shape) {
				return nil, fmt.Errorf("creating output builder: output field %q: shape %s has %d dims but Avro type %q nests %d arrays",
					f.Name, tensor.ShapeString(f.Shape), len(f.Shape), af.typ.describe(), depth)
			}
		default:
			return nil, fmt.Errorf("creating output builder: output field %q: unknown source %q", f.Name, f.Source)
		}
		b.fields = append(b.fields, outputField{OutputField: f, from: f.from(), typ: af.typ})
	}
	return b, nil
}

// Build returns the native prediction record for one row: pass-through
// values from input, per-row tensors from outputs (keyed by output tensor
// name, without the batch dim), and the model name and version. Failures
// are [*Error]s: a missing input field ([ReasonMissingField]), a missing
// output tensor ([ReasonEncode]), a dtype ([ReasonWrongType]) or shape
// ([ReasonShape]) other than configured.
func (b *OutputBuilder) Build(input map[string]any, outputs map[string]*tensor.Tensor, modelName, modelVersion string) (map[string]any, error) {
	return b.BuildRow(input, outputs, nil, modelName, modelVersion)
}

// BuildRow is Build with values for SourceNative fields, keyed by their
// From (or Name). A missing native value is a [ReasonEncode] error.
func (b *OutputBuilder) BuildRow(input map[string]any, outputs map[string]*tensor.Tensor, natives map[string]any, modelName, modelVersion string) (map[string]any, error) {
	src := RowSources{Input: input, Tensor: func(from string) *tensor.Tensor { return outputs[from] }, Natives: natives, ModelName: modelName, ModelVersion: modelVersion}
	out := make(map[string]any, len(b.fields))
	for i := range b.fields {
		v, err := b.fields[i].value(&src)
		if err != nil {
			return nil, err
		}
		out[b.fields[i].Name] = v
	}
	return out, nil
}

// RowSources are where a prediction's field values come from: the decoded
// input (pass-through fields), the model outputs by From (per-row
// tensors without the batch dim), values computed for SourceNative fields,
// and the model's name and version.
type RowSources struct {
	Input        map[string]any
	Tensor       func(from string) *tensor.Tensor
	Natives      map[string]any
	ModelName    string
	ModelVersion string
}

// value is the field's native value for one row, with BuildRow's errors.
func (f *outputField) value(src *RowSources) (any, error) {
	switch f.Source {
	case SourcePassthrough:
		v, ok := PassThrough(src.Input, f.from)
		if !ok || v == nil {
			if f.typ.hasNull() {
				return nil, nil
			}
			return nil, errorf(ReasonMissingField, "output %q: input field %q is missing or null", f.Name, f.from)
		}
		return adaptUnion(f.typ, v), nil
	case SourceTensor:
		t := src.Tensor(f.from)
		if t == nil {
			return nil, errorf(ReasonEncode, "output %q: model output %q is missing", f.Name, f.from)
		}
		if t.DType != f.DType {
			return nil, errorf(ReasonWrongType, "output %q: model output %q has dtype %s, want %s", f.Name, f.from, t.DType, f.DType)
		}
		if !shapeFits(t.Shape, f.Shape) {
			return nil, errorf(ReasonShape, "output %q: model output %q has shape %s, want %s", f.Name, f.from, tensor.ShapeString(t.Shape), tensor.ShapeString(f.Shape))
		}
		v := TensorToNative(t)
		if v == nil {
			return nil, errorf(ReasonEncode, "output %q: model output %q is not a valid tensor", f.Name, f.from)
		}
		return v, nil
	case SourceModelName:
		return src.ModelName, nil
	case SourceModelVersion:
		return src.ModelVersion, nil
	case SourceNative:
		v, ok := src.Natives[f.from]
		if !ok {
			return nil, errorf(ReasonEncode, "output %q: no value computed for it", f.Name)
		}
		return v, nil
	}
	return nil, errorf(ReasonEncode, "output %q: unknown source %q", f.Name, f.Source)
}

// TensorSources are the From keys of the builder's tensor fields, the
// names RowSources.Tensor is asked for.
func (b *OutputBuilder) TensorSources() []string {
	var out []string
	for _, f := range b.fields {
		if f.Source == SourceTensor {
			out = append(out, f.from)
		}
	}
	return out
}

// RowEncoder writes predictions as Avro straight from their sources, in
// the output schema's field order, without building the record as a map
// first. It covers what Encoder's own encoding covers; Append reports
// false for anything else (and for a row whose fields fail), and the
// caller then goes the long way (BuildRow, then Encoder), which encodes
// the same bytes or reports the canonical error.
type RowEncoder struct {
	enc    *Encoder
	fields []*outputField // in the schema's field order
	types  []*avroType    // the encoder's type of each
}

// NewRowEncoder pairs an encoder and a builder of the same output schema.
// It returns nil when the fast path cannot apply: goavro-only schemas, or
// schema fields without a builder field (goavro fills in their defaults).
func NewRowEncoder(enc *Encoder, b *OutputBuilder) *RowEncoder {
	if !enc.native || enc.schemaJSON != b.schemaJSON || enc.root.kind != kindRecord || len(enc.root.fields) != len(b.fields) {
		return nil
	}
	re := &RowEncoder{enc: enc}
	for _, sf := range enc.root.fields {
		var match *outputField
		for i := range b.fields {
			if b.fields[i].Name == sf.name {
				match = &b.fields[i]
			}
		}
		if match == nil {
			return nil
		}
		re.fields = append(re.fields, match)
		re.types = append(re.types, sf.typ)
	}
	return re
}

// Append appends the prediction for src to buf (after a wire header, if
// any) and reports whether it could; on false buf's contents past its
// length are undefined and the caller encodes the long way.
func (re *RowEncoder) Append(buf []byte, src *RowSources) ([]byte, bool) {
	start := len(buf)
	for i, f := range re.fields {
		v, err := f.value(src)
		if err != nil {
			return nil, false
		}
		var ok bool
		if buf, ok = encodeNative(re.types[i], buf, v, 1); !ok {
			return nil, false
		}
	}
	re.enc.sizeHint.Store(int64(len(buf) - start))
	return buf, true
}

// NewBuffer is a buffer for one prediction, sized from recent ones, with
// room for a wire header.
func (re *RowEncoder) NewBuffer() []byte {
	return make([]byte, 0, WireHeaderSize+re.enc.sizeHint.Load())
}

// Encode is Append to a new buffer, behind the Confluent wire header of
// schemaID when schemaID > 0 (as Encoder.EncodeWire).
func (re *RowEncoder) Encode(src *RowSources, schemaID int) ([]byte, bool) {
	buf := re.NewBuffer()
	if schemaID > 0 {
		var err error
		if buf, err = appendWireHeader(buf, schemaID); err != nil {
			return nil, false
		}
	}
	return re.Append(buf, src)
}

func shapeFits(got, want []int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i, w := range want {
		if w >= 0 && got[i] != w {
			return false
		}
	}
	return true
}

// adaptUnion reconciles a pass-through value with the output field's type
// when the record's writer schema differs from the configured one: a bare
// value bound for a union is wrapped, a union value bound for a non-union
// is unwrapped, and a union key whose namespace changed is re-keyed.
func adaptUnion(t *avroType, v any) any {
	w, wrapped := v.(map[string]any)
	wrapped = wrapped && len(w) == 1
	if t.kind != kindUnion {
		if !wrapped || t.kind == kindMap {
			return v
		}
		for k, inner := range w {
			if t.kind == kindRecord {
				if _, isField := t.byName[k]; isField {
					return v
				}
				if _, ok := inner.(map[string]any); !ok {
					return v
				}
			}
			return inner
		}
	}
	if wrapped {
		for k, inner := range w {
			short := k[strings.LastIndexByte(k, '.')+1:]
			var byShort *avroType
			for _, b := range t.branches {
				key := b.unionKey()
				if key == k {
					return v
				}
				if key[strings.LastIndexByte(key, '.')+1:] == short {
					byShort = b
				}
			}
			if byShort != nil {
				return map[string]any{byShort.unionKey(): inner}
			}
			// The writer's member type has no counterpart: try the
			// bare value below.
			if b := branchForNative(t, inner); b != nil {
				return map[string]any{b.unionKey(): inner}
			}
		}
	}
	if b := branchForNative(t, v); b != nil {
		return map[string]any{b.unionKey(): v}
	}
	return v
}

// branchForNative picks the union member a bare native value belongs to,
// or nil when there is no single obvious one.
func branchForNative(u *avroType, v any) *avroType {
	var want []kind
	switch v.(type) {
	case bool:
		want = []kind{kindBoolean}
	case int32:
		want = []kind{kindInt}
	case int64:
		want = []kind{kindLong}
	case float32:
		want = []kind{kindFloat}
	case float64:
		want = []kind{kindDouble}
	case string:
		want = []kind{kindString, kindEnum}
	case []byte:
		want = []kind{kindBytes, kindFixed}
	case []any:
		want = []kind{kindArray}
	case map[string]any:
		want = []kind{kindRecord, kindMap}
	default:
		return nil
	}
	for _, k := range want {
		var found *avroType
		for _, b := range u.branches {
			if b.kind == k && !b.nativeLogical() {
				if found != nil {
					return nil // ambiguous
				}
				found = b
			}
		}
		if found != nil {
			return found
		}
	}
	return nil
}

// TensorToNative converts a tensor to the native form the encoder takes:
// a scalar for shape [], otherwise nested []any with one level per dim,
// whose innermost level is a typed slice for float32, float64, int32 and
// int64 data (sharing the tensor's data, which must not change while the
// value is in use) and []any of int32 (for uint8 and int8) or bool
// otherwise, matching the Avro types [BuildOutputSchema] uses. goavro
// encodes both forms. Shape is taken as is, so a per-row view from
// tensor.Unstack converts to that row alone. It returns nil for a nil
// tensor or one whose data does not match its shape.
func TensorToNative(t *tensor.Tensor) any {
	if t == nil {
		return nil
	}
	for _, d := range t.Shape {
		if d < 0 {
			return nil
		}
	}
	n := tensor.NumElements(t.Shape)
	switch d := t.Data.(type) {
	case []float32:
		return nestTyped(t.Shape, d, n)
	case []float64:
		return nestTyped(t.Shape, d, n)
	case []int32:
		return nestTyped(t.Shape, d, n)
	case []int64:
		return nestTyped(t.Shape, d, n)
	case []uint8:
		return nestNative(t.Shape, d, n, func(x uint8) any { return int32(x) })
	case []int8:
		return nestNative(t.Shape, d, n, func(x int8) any { return int32(x) })
	case []bool:
		return nestNative(t.Shape, d, n, func(x bool) any { return x })
	}
	return nil
}

func nestTyped[E float32 | float64 | int32 | int64](shape []int64, data []E, n int) any {
	if len(data) != n {
		return nil
	}
	if len(shape) == 0 {
		return data[0]
	}
	return groupTyped(data[:n:n], shape)
}

// groupTyped splits data into nested []any of the given shape whose
// innermost level are subslices of data.
func groupTyped[E float32 | float64 | int32 | int64](data []E, shape []int64) any {
	if len(shape) == 1 {
		return data
	}
	per := tensor.NumElements(shape[1:])
	out := make([]any, shape[0])
	for i := range out {
		out[i] = groupTyped(data[i*per:(i+1)*per:(i+1)*per], shape[1:])
	}
	return out
}

func nestNative[E any](shape []int64, data []E, n int, box func(E) any) any {
	if len(data) != n {
		return nil
	}
	if len(shape) == 0 {
		return box(data[0])
	}
	leaves := make([]any, n)
	for i, x := range data {
		leaves[i] = box(x)
	}
	return group(leaves, shape)
}

// group splits a flat row-major slice into nested []any of the given shape;
// the innermost slices share leaves' backing array.
func group(leaves []any, shape []int64) []any {
	if len(shape) == 1 {
		return leaves
	}
	per := tensor.NumElements(shape[1:])
	out := make([]any, shape[0])
	for i := range out {
		out[i] = group(leaves[i*per:(i+1)*per:(i+1)*per], shape[1:])
	}
	return out
}
