package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// Encodings for [InputMapping].Encoding.
const (
	// EncodingValue reads Avro values: scalars, several scalar fields as
	// a vector, or (nested) arrays. It is the default.
	EncodingValue = "value"
	// EncodingRaw reads a bytes or fixed field holding the tensor's
	// elements in little-endian order, row-major, with no header.
	EncodingRaw = "raw"
)

// InputMapping describes how one model input tensor is built from the
// fields of a record.
//
// With [EncodingValue]:
//   - one scalar field (int, long, float, double, boolean) gives a tensor
//     of shape [] or, when Shape is [1], of shape [1];
//   - several scalar fields give a vector of len(Fields) elements in the
//     order listed; Shape must be empty or [len(Fields)];
//   - one array field (arrays of arrays for more dims) gives a tensor whose
//     rank is the nesting depth; Shape must have that rank, fixed dims must
//     match each record exactly and -1 dims take the record's length.
//
// With [EncodingRaw] the single bytes (or fixed) field must hold
// NumElements(Shape)*DType.Size() bytes; one -1 dim may be inferred from
// the length.
//
// A field may be a nullable union ["null", T]; a null value fails the
// record with [ReasonMissingField]. int and long feed every numeric dtype
// (a value out of the dtype's range fails with [ReasonWrongType]); float
// and double feed only float32 and float64; boolean feeds bool and, as 0
// or 1, every numeric dtype. Logical types whose goavro native form is not
// a number (date, time-*, timestamp-*, decimal) feed nothing.
type InputMapping struct {
	// Tensor is the name of the model input the tensor feeds.
	Tensor string
	// Fields are Avro field names; a dotted name ("payment.amount") is a
	// path into nested records.
	Fields []string
	// Encoding is EncodingValue (the default when empty) or EncodingRaw.
	Encoding string
	// DType is the tensor's element type.
	DType tensor.DType
	// Shape is the per-row shape, without the batch dim; -1 marks a dim
	// whose length comes from each record.
	Shape []int64
	// AllowNaN lets NaN float values through; by default they fail the
	// record with [ReasonNaN].
	AllowNaN bool
}

// Mapper builds a record's named input tensors from its native form. It is
// validated against one Avro schema at start-up, but at run time it only
// looks fields up by name and checks each value's type, so it also serves
// records written with other (compatible) schema versions. It is safe for
// concurrent use.
type Mapper struct {
	maps []mapping
}

type mapKind uint8

const (
	mapScalars mapKind = iota // one scalar field or several as a vector
	mapArray
	mapRaw
)

type mapping struct {
	tensor   string
	kind     mapKind
	dtype    tensor.DType
	isFloat  bool
	allowNaN bool
	fields   []fieldPath
	shape    []int64 // per-row shape as configured (resolved for mapScalars)
	// rawStatic is the product of the fixed dims of a raw tensor and
	// rawDyn the axis of its -1 dim, or -1.
	rawStatic int
	rawDyn    int
}

type fieldPath struct {
	name string
	segs []string
}

// NewMapper validates the mappings against schemaJSON, the Avro record
// schema the records are expected to have, and reports every problem
// found, naming the input, the field and what was expected.
func NewMapper(schemaJSON string, ms []InputMapping) (*Mapper, error) {
	root, err := parseSchema(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("creating mapper: %w", err)
	}
	if root.kind != kindRecord {
		return nil, fmt.Errorf("creating mapper: top-level Avro type is %s, want a record", root.describe())
	}
	if len(ms) == 0 {
		return nil, errors.New("creating mapper: no input mappings")
	}
	m := &Mapper{maps: make([]mapping, 0, len(ms))}
	var errs []error
	seen := make(map[string]bool, len(ms))
	for i := range ms {
		mp, err := compileMapping(root, &ms[i], i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[mp.tensor] {
			errs = append(errs, fmt.Errorf("input %q: mapped more than once", mp.tensor))
			continue
		}
		seen[mp.tensor] = true
		m.maps = append(m.maps, mp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func compileMapping(root *avroType, in *InputMapping, index int) (mapping, error) {
	if in.Tensor == "" {
		return mapping{}, fmt.Errorf("input mapping %d: no tensor name", index+1)
	}
	fail := func(format string, args ...any) (mapping, error) {
		return mapping{}, fmt.Errorf("input %q: "+format, append([]any{in.Tensor}, args...)...)
	}
	if len(in.Fields) == 0 {
		return fail("no fields")
	}
	if in.DType.Size() == 0 {
		return fail("invalid dtype %v", in.DType)
	}
	for i, d := range in.Shape {
		if d < -1 {
			return fail("shape %s: dim %d is %d, want -1 or a length", tensor.ShapeString(in.Shape), i, d)
		}
	}
	mp := mapping{
		tensor:   in.Tensor,
		dtype:    in.DType,
		isFloat:  in.DType == tensor.Float32 || in.DType == tensor.Float64,
		allowNaN: in.AllowNaN,
		shape:    append([]int64{}, in.Shape...),
		rawDyn:   -1,
	}
	leaves := make([]*avroType, len(in.Fields))
	for i, f := range in.Fields {
		segs := strings.Split(f, ".")
		field, _, err := resolvePath(root, segs)
		if err != nil {
			return fail("field %q: %w", f, err)
		}
		leaf := field.typ
		inner, _, ok := leaf.nullable()
		if !ok {
			return fail("field %q: Avro type %q cannot feed %s: only [\"null\", T] unions are supported", f, leaf.describe(), in.DType)
		}
		leaves[i] = inner
		mp.fields = append(mp.fields, fieldPath{name: f, segs: segs})
	}

	switch in.Encoding {
	case "", EncodingValue:
		if len(in.Fields) > 1 {
			for i, leaf := range leaves {
				if !scalarFeeds(leaf, in.DType) {
					return fail("field %q: Avro type %q cannot feed %s (several fields make a vector of scalars)", in.Fields[i], leaf.describe(), in.DType)
				}
			}
			n := int64(len(in.Fields))
			if len(in.Shape) == 0 {
				mp.shape = []int64{n}
			} else if len(in.Shape) != 1 || in.Shape[0] != n {
				return fail("shape %s does not fit %d fields, want [%d]", tensor.ShapeString(in.Shape), n, n)
			}
			mp.kind = mapScalars
			return mp, nil
		}
		leaf, f := leaves[0], in.Fields[0]
		switch {
		case leaf.kind == kindArray:
			depth, item := 0, leaf
			for item.kind == kindArray {
				depth++
				item = item.items
			}
			if !scalarFeeds(item, in.DType) {
				return fail("field %q: Avro type %q cannot feed %s", f, leaf.describe(), in.DType)
			}
			if len(in.Shape) != depth {
				return fail("field %q: shape %s has %d dims but Avro type %q nests %d arrays", f, tensor.ShapeString(in.Shape), len(in.Shape), leaf.describe(), depth)
			}
			mp.kind = mapArray
		case scalarFeeds(leaf, in.DType):
			if len(in.Shape) > 1 || (len(in.Shape) == 1 && in.Shape[0] != 1) {
				return fail("field %q: shape %s does not fit a scalar, want [] or [1]", f, tensor.ShapeString(in.Shape))
			}
			mp.kind = mapScalars
		case leaf.kind == kindBytes || leaf.kind == kindFixed:
			return fail("field %q: Avro type %q cannot feed %s (use encoding %q for raw tensor bytes)", f, leaf.describe(), in.DType, EncodingRaw)
		default:
			return fail("field %q: Avro type %q cannot feed %s", f, leaf.describe(), in.DType)
		}
		return mp, nil

	case EncodingRaw:
		if len(in.Fields) != 1 {
			return fail("encoding %q reads exactly one field, got %d", EncodingRaw, len(in.Fields))
		}
		leaf, f := leaves[0], in.Fields[0]
		if (leaf.kind != kindBytes && leaf.kind != kindFixed) || leaf.nativeLogical() {
			return fail("field %q: Avro type %q cannot hold raw %s tensor bytes, want bytes or fixed", f, leaf.describe(), in.DType)
		}
		mp.kind = mapRaw
		mp.rawStatic = 1
		for i, d := range in.Shape {
			if d >= 0 {
				if d > 0 && mp.rawStatic > maxRawElements/int(d) {
					return fail("shape %s: more than %d elements", tensor.ShapeString(in.Shape), maxRawElements)
				}
				mp.rawStatic *= int(d)
				continue
			}
			if mp.rawDyn >= 0 {
				return fail("shape %s: encoding %q allows at most one -1 dim", tensor.ShapeString(in.Shape), EncodingRaw)
			}
			mp.rawDyn = i
		}
		if mp.rawDyn >= 0 && mp.rawStatic == 0 {
			return fail("shape %s: a -1 dim cannot be inferred next to a 0 dim", tensor.ShapeString(in.Shape))
		}
		if leaf.kind == kindFixed {
			unit := mp.rawStatic * in.DType.Size()
			if (mp.rawDyn < 0 && leaf.size != unit) || (mp.rawDyn >= 0 && leaf.size%unit != 0) {
				return fail("field %q: Avro type %q holds %d bytes, shape %s of %s needs %d", f, leaf.describe(), leaf.size, tensor.ShapeString(in.Shape), in.DType, unit)
			}
		}
		return mp, nil
	}
	return fail("unknown encoding %q, want %q or %q", in.Encoding, EncodingValue, EncodingRaw)
}

// maxRawElements bounds the fixed part of a raw tensor's shape, so that
// the product of its dims cannot overflow.
const maxRawElements = 1 << 40

// scalarFeeds reports whether a value of Avro type t may feed dtype dt.
func scalarFeeds(t *avroType, dt tensor.DType) bool {
	if t.nativeLogical() {
		return false
	}
	switch t.kind {
	case kindBoolean:
		return true
	case kindInt, kindLong:
		return dt != tensor.Bool
	case kindFloat, kindDouble:
		return dt == tensor.Float32 || dt == tensor.Float64
	}
	return false
}

// resolvePath walks a dotted field path through nested (possibly nullable)
// records and returns the last field. viaNull reports whether a record on
// the way may be null.
func resolvePath(root *avroType, segs []string) (f *avroField, viaNull bool, err error) {
	cur := root
	for i, s := range segs {
		if s == "" {
			return nil, false, errors.New("empty name in field path")
		}
		rec, isUnion, ok := cur.nullable()
		if !ok || rec.kind != kindRecord {
			return nil, false, fmt.Errorf("%q is %s, not a record", strings.Join(segs[:i], "."), cur.describe())
		}
		viaNull = viaNull || (isUnion && cur.hasNull())
		if f, ok = rec.byName[s]; !ok {
			return nil, false, fmt.Errorf("not found in %s", rec.describe())
		}
		cur = f.typ
	}
	return f, viaNull, nil
}

// Inputs returns the validated mappings with their per-row shapes as Map
// produces them (a vector of n fields has shape [n] even when configured
// without one), for checking against a model's declared inputs.
func (m *Mapper) Inputs() []InputMapping {
	out := make([]InputMapping, len(m.maps))
	for i, mp := range m.maps {
		enc := EncodingValue
		if mp.kind == mapRaw {
			enc = EncodingRaw
		}
		fields := make([]string, len(mp.fields))
		for j, f := range mp.fields {
			fields[j] = f.name
		}
		out[i] = InputMapping{
			Tensor:   mp.tensor,
			Fields:   fields,
			Encoding: enc,
			DType:    mp.dtype,
			Shape:    append([]int64{}, mp.shape...),
			AllowNaN: mp.allowNaN,
		}
	}
	return out
}

// Map builds the tensors for one record. Tensors have the per-row shape
// (no batch dim). A failure is an [*Error] naming the input and field.
func (m *Mapper) Map(native map[string]any) (map[string]*tensor.Tensor, error) {
	out := make(map[string]*tensor.Tensor, len(m.maps))
	for i := range m.maps {
		mp := &m.maps[i]
		t, err := mp.apply(native)
		if err != nil {
			return nil, err
		}
		out[mp.tensor] = t
	}
	return out, nil
}

func (mp *mapping) apply(native map[string]any) (*tensor.Tensor, error) {
	switch mp.kind {
	case mapScalars:
		return mp.applyScalars(native)
	case mapArray:
		return mp.applyArray(native)
	}
	return mp.applyRaw(native)
}

// tensorBox lets a tensor and a small shape share one allocation.
type tensorBox struct {
	t    tensor.Tensor
	dims [4]int64
}

func newTensor(dt tensor.DType, rank int) *tensor.Tensor {
	b := &tensorBox{}
	b.t.DType = dt
	if rank <= len(b.dims) {
		b.t.Shape = b.dims[:rank:rank]
	} else {
		b.t.Shape = make([]int64, rank)
	}
	return &b.t
}

func (mp *mapping) applyScalars(native map[string]any) (*tensor.Tensor, error) {
	t := newTensor(mp.dtype, len(mp.shape))
	copy(t.Shape, mp.shape)
	var err error
	switch mp.dtype {
	case tensor.Float32:
		t.Data, err = scalars(mp, native, numRow[float32])
	case tensor.Float64:
		t.Data, err = scalars(mp, native, numRow[float64])
	case tensor.Int32:
		t.Data, err = scalars(mp, native, numRow[int32])
	case tensor.Int64:
		t.Data, err = scalars(mp, native, numRow[int64])
	case tensor.Uint8:
		t.Data, err = scalars(mp, native, numRow[uint8])
	case tensor.Int8:
		t.Data, err = scalars(mp, native, numRow[int8])
	case tensor.Bool:
		t.Data, err = scalars(mp, native, boolRow)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func scalars[T any](mp *mapping, native map[string]any, conv rowConv[T]) (any, error) {
	d := make([]T, len(mp.fields))
	var one [1]any
	for i := range mp.fields {
		f := &mp.fields[i]
		v, err := mp.value(native, f)
		if err != nil {
			return nil, err
		}
		one[0] = v
		if _, r := conv(mp, d[i:i+1], one[:]); r != convOK {
			return nil, mp.convError(f.name, -1, v, r)
		}
	}
	return d, nil
}

func (mp *mapping) applyArray(native map[string]any) (*tensor.Tensor, error) {
	f := &mp.fields[0]
	v, err := mp.value(native, f)
	if err != nil {
		return nil, err
	}
	t := newTensor(mp.dtype, len(mp.shape))
	if err := mp.inferDims(f.name, v, t.Shape); err != nil {
		return nil, err
	}
	// Check every nested length before allocating: dims come from the
	// first elements, so a record with one long first row and many empty
	// rows would otherwise size a huge allocation.
	if len(t.Shape) > 1 {
		if _, err := mp.checkRagged(f.name, v, t.Shape, 0); err != nil {
			return nil, err
		}
	}
	if len(t.Shape) == 1 {
		// A decoded array of the tensor's own element type becomes the
		// tensor's data as is: the decoder made it for this record alone.
		if d, bad, ok := sameType(mp, v); ok {
			if bad >= 0 {
				return nil, mp.convError(f.name, bad, arrayItem(v, bad), convNaN)
			}
			t.Data = d
			return t, nil
		}
	}
	switch mp.dtype {
	case tensor.Float32:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[float32])
	case tensor.Float64:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[float64])
	case tensor.Int32:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[int32])
	case tensor.Int64:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[int64])
	case tensor.Uint8:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[uint8])
	case tensor.Int8:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, numRow[int8])
	case tensor.Bool:
		t.Data, err = fillArray(mp, f.name, v, t.Shape, boolRow)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// inferDims reads each dim's length along the first elements and checks
// the fixed dims; raggedness is found while filling.
func (mp *mapping) inferDims(field string, v any, dims []int64) error {
	cur := v
	for i := range dims {
		n, ok := arrayLen(cur)
		if !ok {
			if i == 0 {
				return errorf(ReasonWrongType, "input %q: field %q: %s value is not an array", mp.tensor, field, nativeTypeName(cur))
			}
			return errorf(ReasonShape, "input %q: field %q: arrays are nested %d deep, want %d", mp.tensor, field, i, len(dims))
		}
		dims[i] = int64(n)
		if n == 0 {
			for j := i + 1; j < len(dims); j++ {
				dims[j] = max(mp.shape[j], 0)
			}
			break
		}
		cur = arrayItem(cur, 0)
	}
	for i, want := range mp.shape {
		if want >= 0 && dims[i] != want {
			return errorf(ReasonShape, "input %q: field %q: dim %d has length %d, want %d (shape %s)", mp.tensor, field, i, dims[i], want, tensor.ShapeString(mp.shape))
		}
	}
	return nil
}

// checkRagged verifies that the nested arrays v have exactly the lengths
// dims, looking at arrays only, not at their elements. off counts the
// elements before v, for error messages; it returns the count after v.
func (mp *mapping) checkRagged(field string, v any, dims []int64, off int) (int, error) {
	if len(dims) == 1 {
		if n, ok := arrayLen(v); ok && int64(n) == dims[0] {
			return off + n, nil
		}
		return 0, mp.raggedError(field, off, v, dims)
	}
	items, ok := v.([]any)
	if !ok || int64(len(items)) != dims[0] {
		return 0, mp.raggedError(field, off, v, dims)
	}
	var err error
	for _, it := range items {
		if off, err = mp.checkRagged(field, it, dims[1:], off); err != nil {
			return 0, err
		}
	}
	return off, nil
}

func fillArray[T any](mp *mapping, field string, v any, dims []int64, conv rowConv[T]) (any, error) {
	d := make([]T, tensor.NumElements(dims))
	if _, err := fillNested(mp, field, d, 0, v, dims, conv); err != nil {
		return nil, err
	}
	return d, nil
}

// fillNested copies the nested arrays v of the given dims into dst from
// offset off and returns the offset after them.
func fillNested[T any](mp *mapping, field string, dst []T, off int, v any, dims []int64, conv rowConv[T]) (int, error) {
	if len(dims) == 1 {
		if n, ok := typedLen(v); ok && int64(n) == dims[0] {
			if bad, r := typedRow(mp, dst[off:off+n], v); r != convOK {
				return 0, mp.convError(field, off+bad, arrayItem(v, bad), r)
			}
			return off + n, nil
		}
	}
	items, ok := v.([]any)
	if !ok || int64(len(items)) != dims[0] {
		return 0, mp.raggedError(field, off, v, dims)
	}
	if len(dims) == 1 {
		if bad, r := conv(mp, dst[off:off+len(items)], items); r != convOK {
			return 0, mp.convError(field, off+bad, items[bad], r)
		}
		return off + len(items), nil
	}
	var err error
	for _, it := range items {
		if off, err = fillNested(mp, field, dst, off, it, dims[1:], conv); err != nil {
			return 0, err
		}
	}
	return off, nil
}

func (mp *mapping) raggedError(field string, off int, v any, dims []int64) error {
	if n, ok := arrayLen(v); ok {
		return errorf(ReasonShape, "input %q: field %q: ragged nested arrays: the array starting at element %d has length %d, want %d", mp.tensor, field, off, n, dims[0])
	}
	return errorf(ReasonShape, "input %q: field %q: ragged nested arrays: a %s value at element %d, want an array of length %d", mp.tensor, field, nativeTypeName(v), off, dims[0])
}

func (mp *mapping) applyRaw(native map[string]any) (*tensor.Tensor, error) {
	f := &mp.fields[0]
	v, err := mp.value(native, f)
	if err != nil {
		return nil, err
	}
	b, ok := v.([]byte)
	if !ok {
		return nil, errorf(ReasonWrongType, "input %q: field %q: %s value cannot hold raw tensor bytes", mp.tensor, f.name, nativeTypeName(v))
	}
	size := mp.dtype.Size()
	t := newTensor(mp.dtype, len(mp.shape))
	copy(t.Shape, mp.shape)
	n := len(b) / size
	switch {
	case len(b)%size != 0:
		return nil, errorf(ReasonShape, "input %q: field %q: %d raw bytes are not a whole number of %s elements", mp.tensor, f.name, len(b), mp.dtype)
	case mp.rawDyn >= 0 && n%mp.rawStatic == 0:
		t.Shape[mp.rawDyn] = int64(n / mp.rawStatic)
	case mp.rawDyn < 0 && n == mp.rawStatic:
	default:
		return nil, errorf(ReasonShape, "input %q: field %q: %d raw bytes (%d %s elements) do not fit shape %s", mp.tensor, f.name, len(b), n, mp.dtype, tensor.ShapeString(mp.shape))
	}
	bad := -1
	switch mp.dtype {
	case tensor.Float32:
		t.Data, bad = rawFloats[float32](b, n, mp.allowNaN)
	case tensor.Float64:
		t.Data, bad = rawFloats[float64](b, n, mp.allowNaN)
	case tensor.Int32:
		t.Data = rawInt32(b, n)
	case tensor.Int64:
		t.Data = rawInt64(b, n)
	case tensor.Uint8:
		t.Data = append(make([]uint8, 0, n), b...)
	case tensor.Int8:
		d := make([]int8, n)
		for i, c := range b {
			d[i] = int8(c)
		}
		t.Data = d
	case tensor.Bool:
		t.Data, bad = rawBool(b, n)
	}
	if bad >= 0 {
		if mp.dtype == tensor.Bool {
			return nil, errorf(ReasonWrongType, "input %q: field %q: element %d: raw bool byte is %d, want 0 or 1", mp.tensor, f.name, bad, b[bad])
		}
		return nil, errorf(ReasonNaN, "input %q: field %q: element %d is NaN", mp.tensor, f.name, bad)
	}
	return t, nil
}

// value looks a field up and turns an absent or null value into a
// missing_field error.
func (mp *mapping) value(native map[string]any, f *fieldPath) (any, error) {
	v, st := lookup(native, f.segs)
	switch st {
	case lookupOK:
		return v, nil
	case lookupNull:
		return nil, errorf(ReasonMissingField, "input %q: field %q is null", mp.tensor, f.name)
	case lookupNotRecord:
		return nil, errorf(ReasonWrongType, "input %q: field %q: a parent of the field is not a record", mp.tensor, f.name)
	}
	return nil, errorf(ReasonMissingField, "input %q: field %q is missing", mp.tensor, f.name)
}

type lookupStatus uint8

const (
	lookupOK lookupStatus = iota
	lookupMissing
	lookupNull
	lookupNotRecord
)

// lookup follows a field path through a native record. Nullable records on
// the way and the leaf itself may be union-wrapped ({"typeName": value});
// the leaf is returned unwrapped.
func lookup(native map[string]any, segs []string) (any, lookupStatus) {
	cur := native
	last := len(segs) - 1
	for i, s := range segs {
		v, ok := cur[s]
		if !ok {
			return nil, lookupMissing
		}
		if i == last {
			v = unwrapLeaf(v)
			if v == nil {
				return nil, lookupNull
			}
			return v, lookupOK
		}
		if v == nil {
			return nil, lookupNull
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, lookupNotRecord
		}
		cur = unwrapRecord(m, segs[i+1])
	}
	return nil, lookupMissing // unreachable: paths have at least one segment
}

// unwrapLeaf returns the value inside a union wrapper {"typeName": value}
// for the member types a mapping can read: numbers, booleans, arrays,
// bytes and fixed (whose key is its full name, hence the []byte check).
func unwrapLeaf(v any) any {
	w, ok := v.(map[string]any)
	if !ok || len(w) != 1 {
		return v
	}
	for k, inner := range w {
		switch k {
		case "int", "long", "float", "double", "boolean", "bytes", "array":
			return inner
		}
		if _, ok := inner.([]byte); ok {
			return inner
		}
	}
	return v
}

// unwrapRecord returns the record inside a union wrapper {"ns.Rec": {...}}
// when m lacks the next field but wraps exactly one record.
func unwrapRecord(m map[string]any, next string) map[string]any {
	if _, ok := m[next]; ok || len(m) != 1 {
		return m
	}
	for _, inner := range m {
		if r, ok := inner.(map[string]any); ok {
			return r
		}
	}
	return m
}

// PassThrough returns the value at a dotted field path in a native record,
// as is: a union value keeps its {"typeName": value} form so that it can
// be written to a field of the same union type. Nullable records on the
// path are unwrapped. ok is false when the path is absent or runs through
// a null record.
func PassThrough(native map[string]any, path string) (any, bool) {
	cur := native
	for {
		s, rest, more := strings.Cut(path, ".")
		v, ok := cur[s]
		if !ok {
			return nil, false
		}
		if !more {
			return v, true
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		next, _, _ := strings.Cut(rest, ".")
		cur, path = unwrapRecord(m, next), rest
	}
}
