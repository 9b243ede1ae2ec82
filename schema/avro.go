package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// goavro compiles schemas into closures and exposes no schema tree, yet
// mapping validation, the pre-decode bounds check and output schema building
// all need one. avroType is that tree, built with goavro's naming rules so
// that the full names here equal the union keys goavro puts in native maps.

type kind uint8

const (
	kindNull kind = iota
	kindBoolean
	kindInt
	kindLong
	kindFloat
	kindDouble
	kindBytes
	kindString
	kindRecord
	kindEnum
	kindFixed
	kindArray
	kindMap
	kindUnion
)

var kindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "fixed", "array", "map", "union"}

func (k kind) String() string { return kindNames[k] }

var primitiveKinds = map[string]kind{
	"null": kindNull, "boolean": kindBoolean, "int": kindInt, "long": kindLong,
	"float": kindFloat, "double": kindDouble, "bytes": kindBytes, "string": kindString,
}

// nativeLogicalTypes are the logical types for which goavro's native form is
// not the underlying primitive (time.Time, time.Duration, *big.Rat). Other
// logical types decode as their underlying type.
var nativeLogicalTypes = map[string]bool{
	"int.date": true, "int.time-millis": true, "long.time-micros": true,
	"long.timestamp-millis": true, "long.timestamp-micros": true,
	"bytes.decimal": true, "fixed.decimal": true,
}

// avroType is one node of a parsed Avro schema. Named types (record, enum,
// fixed) are shared by pointer wherever they are referenced, so the tree
// may contain cycles for recursive schemas.
type avroType struct {
	kind        kind
	name        string // full name, for record, enum and fixed
	namespace   string // namespace part of name
	logical     string // logicalType attribute, if any
	fields      []*avroField
	byName      map[string]*avroField
	items       *avroType   // array items or map values
	branches    []*avroType // union members
	size        int         // fixed size in bytes
	symbolNames []string    // enum symbols, in order
	raw         map[string]any
	// minSize is the fewest bytes one value of this type takes in Avro
	// binary; -1 until computed. It bounds array and map block counts
	// before goavro preallocates for them.
	minSize int
}

type avroField struct {
	name string
	typ  *avroType
	raw  map[string]any
}

// nativeLogical reports whether goavro decodes this type to something other
// than its underlying primitive's native type.
func (t *avroType) nativeLogical() bool {
	return t.logical != "" && nativeLogicalTypes[t.kind.String()+"."+t.logical]
}

// nullable splits a ["null", T] (or [T, "null"], or [T]) union into T.
// ok is false for any other union; for a non-union it returns t itself.
func (t *avroType) nullable() (inner *avroType, isUnion, ok bool) {
	if t.kind != kindUnion {
		return t, false, true
	}
	var nonNull []*avroType
	for _, b := range t.branches {
		if b.kind != kindNull {
			nonNull = append(nonNull, b)
		}
	}
	if len(nonNull) != 1 {
		return nil, true, false
	}
	return nonNull[0], true, true
}

// hasNull reports whether t is null or a union with a null member.
func (t *avroType) hasNull() bool {
	if t.kind == kindNull {
		return true
	}
	if t.kind == kindUnion {
		for _, b := range t.branches {
			if b.kind == kindNull {
				return true
			}
		}
	}
	return false
}

// unionKey is the key goavro uses for this type when it is a union member.
func (t *avroType) unionKey() string {
	switch t.kind {
	case kindRecord, kindEnum, kindFixed:
		return t.name
	}
	if t.logical != "" && nativeLogicalTypes[t.kind.String()+"."+t.logical] {
		return t.kind.String() + "." + t.logical
	}
	return t.kind.String()
}

// describe renders t for error messages: "float", "array<float>",
// "union<null,string>", "record com.acme.Payment".
func (t *avroType) describe() string {
	switch t.kind {
	case kindRecord, kindEnum:
		return t.kind.String() + " " + t.name
	case kindFixed:
		return fmt.Sprintf("fixed(%d) %s", t.size, t.name)
	case kindArray:
		return "array<" + t.items.describe() + ">"
	case kindMap:
		return "map<" + t.items.describe() + ">"
	case kindUnion:
		parts := make([]string, len(t.branches))
		for i, b := range t.branches {
			parts[i] = b.describe()
		}
		return "union<" + strings.Join(parts, ",") + ">"
	}
	if t.logical != "" {
		return t.kind.String() + " (" + t.logical + ")"
	}
	return t.kind.String()
}

// parseSchema parses an Avro schema into a tree. It is deliberately lenient
// about attributes it does not need; compile with goavro as well to reject
// everything goavro rejects.
func parseSchema(schemaJSON string) (*avroType, error) {
	dec := json.NewDecoder(strings.NewReader(schemaJSON))
	dec.UseNumber() // keep defaults such as large longs exact when re-emitted
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parsing Avro schema JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("parsing Avro schema JSON: trailing data after schema")
	}
	p := &schemaParser{named: map[string]*avroType{}}
	t, err := p.parse(v, "")
	if err != nil {
		return nil, fmt.Errorf("parsing Avro schema: %w", err)
	}
	computeMinSize(t)
	return t, nil
}

type schemaParser struct {
	named map[string]*avroType
	depth int
}

// maxSchemaDepth bounds recursion over schema JSON from a registry.
const maxSchemaDepth = 256

func (p *schemaParser) parse(v any, ns string) (*avroType, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxSchemaDepth {
		return nil, fmt.Errorf("schema nested deeper than %d levels", maxSchemaDepth)
	}
	switch x := v.(type) {
	case string:
		return p.reference(x, ns)
	case []any:
		u := &avroType{kind: kindUnion, minSize: -1}
		for i, b := range x {
			bt, err := p.parse(b, ns)
			if err != nil {
				return nil, fmt.Errorf("union member %d: %w", i+1, err)
			}
			if bt.kind == kindUnion {
				return nil, fmt.Errorf("union member %d is itself a union", i+1)
			}
			u.branches = append(u.branches, bt)
		}
		return u, nil
	case map[string]any:
		return p.parseObject(x, ns)
	}
	return nil, fmt.Errorf("type must be a string, object or array, got %T", v)
}

func (p *schemaParser) reference(name, ns string) (*avroType, error) {
	if k, ok := primitiveKinds[name]; ok {
		return &avroType{kind: k, minSize: -1}, nil
	}
	if !strings.Contains(name, ".") && ns != "" {
		if t, ok := p.named[ns+"."+name]; ok {
			return t, nil
		}
	}
	if t, ok := p.named[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown type name %q", name)
}

func (p *schemaParser) parseObject(obj map[string]any, ns string) (*avroType, error) {
	typ, ok := obj["type"]
	if !ok {
		return nil, fmt.Errorf("object has no \"type\" attribute")
	}
	s, ok := typ.(string)
	if !ok {
		// {"type": {...}} or {"type": [...]}: the attribute is the type.
		return p.parse(typ, ns)
	}
	logical, _ := obj["logicalType"].(string)
	if k, ok := primitiveKinds[s]; ok {
		return &avroType{kind: k, logical: logical, raw: obj, minSize: -1}, nil
	}
	switch s {
	case "record", "error":
		t, err := p.define(obj, kindRecord, ns)
		if err != nil {
			return nil, err
		}
		fs, ok := obj["fields"].([]any)
		if !ok {
			return nil, fmt.Errorf("record %s: \"fields\" must be an array", t.name)
		}
		t.byName = make(map[string]*avroField, len(fs))
		for i, f := range fs {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %s: field %d is not an object", t.name, i+1)
			}
			fname, _ := fm["name"].(string)
			if fname == "" {
				return nil, fmt.Errorf("record %s: field %d has no name", t.name, i+1)
			}
			if _, dup := t.byName[fname]; dup {
				return nil, fmt.Errorf("record %s: duplicate field %q", t.name, fname)
			}
			ft, err := p.parse(fm["type"], t.namespace)
			if err != nil {
				return nil, fmt.Errorf("record %s: field %q: %w", t.name, fname, err)
			}
			af := &avroField{name: fname, typ: ft, raw: fm}
			t.fields = append(t.fields, af)
			t.byName[fname] = af
		}
		return t, nil
	case "enum":
		t, err := p.define(obj, kindEnum, ns)
		if err != nil {
			return nil, err
		}
		syms, _ := obj["symbols"].([]any)
		if len(syms) == 0 {
			return nil, fmt.Errorf("enum %s: \"symbols\" must be a non-empty array", t.name)
		}
		t.symbolNames = make([]string, len(syms))
		for i, sym := range syms {
			name, ok := sym.(string)
			if !ok {
				return nil, fmt.Errorf("enum %s: symbol %d is %T, want a string", t.name, i+1, sym)
			}
			t.symbolNames[i] = name
		}
		return t, nil
	case "fixed":
		t, err := p.define(obj, kindFixed, ns)
		if err != nil {
			return nil, err
		}
		n, ok := obj["size"].(json.Number)
		size, err := n.Int64()
		if !ok || err != nil || size < 0 || size > 1<<30 {
			return nil, fmt.Errorf("fixed %s: \"size\" must be a non-negative integer", t.name)
		}
		t.size = int(size)
		t.logical = logical
		return t, nil
	case "array", "map":
		key, k := "items", kindArray
		if s == "map" {
			key, k = "values", kindMap
		}
		sub, ok := obj[key]
		if !ok {
			return nil, fmt.Errorf("%s has no %q attribute", s, key)
		}
		it, err := p.parse(sub, ns)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", s, key, err)
		}
		return &avroType{kind: k, items: it, raw: obj, minSize: -1}, nil
	}
	// {"type": "com.acme.Payment"}: a reference written as an object.
	return p.reference(s, ns)
}

// define registers a named type before its body is parsed, so that a
// record may refer to itself.
func (p *schemaParser) define(obj map[string]any, k kind, ns string) (*avroType, error) {
	n, _ := obj["name"].(string)
	if n == "" {
		return nil, fmt.Errorf("%s has no name", k)
	}
	declared, _ := obj["namespace"].(string)
	full, space := fullName(n, declared, ns)
	if _, dup := p.named[full]; dup {
		return nil, fmt.Errorf("type %q defined twice", full)
	}
	t := &avroType{kind: k, name: full, namespace: space, raw: obj, minSize: -1}
	p.named[full] = t
	return t, nil
}

// fullName follows goavro's rules: a dotted name is already full; otherwise
// the declared namespace wins over the enclosing one, and "" means unset.
func fullName(name, declared, enclosing string) (full, namespace string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name, name[:i]
	}
	if declared != "" {
		return declared + "." + name, declared
	}
	if enclosing != "" {
		return enclosing + "." + name, enclosing
	}
	return name, ""
}

// computeMinSize fills minSize for every node reachable from t. A named
// type met again while its own size is being computed counts as 0, which
// only makes the bound looser, never wrong.
func computeMinSize(t *avroType) int {
	if t.minSize >= 0 {
		return t.minSize
	}
	if t.minSize == -2 { // in progress: recursive reference
		return 0
	}
	t.minSize = -2
	n := 0
	switch t.kind {
	case kindNull:
		n = 0
	case kindFloat:
		n = 4
	case kindDouble:
		n = 8
	case kindFixed:
		n = t.size
	case kindBoolean, kindInt, kindLong, kindEnum, kindBytes, kindString:
		n = 1
	case kindArray, kindMap:
		computeMinSize(t.items)
		n = 1 // an empty array or map is one zero block count
	case kindRecord:
		for _, f := range t.fields {
			n += computeMinSize(f.typ)
		}
	case kindUnion:
		least := -1
		for _, b := range t.branches {
			if m := computeMinSize(b); least < 0 || m < least {
				least = m
			}
		}
		n = 1 + max(least, 0)
	}
	t.minSize = n
	return n
}

// compileCodec builds a goavro codec, turning any panic inside goavro on a
// malformed schema (schemas may come from a registry) into an error.
func compileCodec(schemaJSON string) (c *goavro.Codec, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("compiling Avro schema: goavro panicked: %v", r)
		}
	}()
	c, err = goavro.NewCodec(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("compiling Avro schema: %w", err)
	}
	return c, nil
}

// emitter re-serialises parts of a parsed schema into another schema,
// writing each named type's definition once and referring to it by name
// afterwards. Names are written in full so that they, and therefore the
// union keys of goavro's native form, survive the move into a record with
// a different namespace.
type emitter struct {
	defined map[string]bool
}

func (e *emitter) emit(t *avroType) any {
	switch t.kind {
	case kindRecord, kindEnum, kindFixed:
		if e.defined[t.name] {
			return t.name
		}
		e.defined[t.name] = true
		out := copyAttrs(t.raw, "aliases", "namespace")
		out["name"] = t.name
		if t.kind == kindRecord {
			fs := make([]any, len(t.fields))
			for i, f := range t.fields {
				fo := copyAttrs(f.raw, "aliases")
				fo["type"] = e.emit(f.typ)
				fs[i] = fo
			}
			out["fields"] = fs
		}
		return out
	case kindArray:
		out := copyAttrs(t.raw)
		out["items"] = e.emit(t.items)
		return out
	case kindMap:
		out := copyAttrs(t.raw)
		out["values"] = e.emit(t.items)
		return out
	case kindUnion:
		out := make([]any, len(t.branches))
		for i, b := range t.branches {
			out[i] = e.emit(b)
		}
		return out
	}
	if t.raw != nil {
		return copyAttrs(t.raw)
	}
	return t.kind.String()
}

func copyAttrs(m map[string]any, drop ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

// marshalSchema renders a schema value as compact JSON, writing the keys
// of each object in the order people expect to read them ("type", "name",
// "namespace", "doc", "fields", ...) instead of alphabetically, and without
// HTML escaping (doc strings may contain '<' or '&').
func marshalSchema(v any) (string, error) {
	var buf bytes.Buffer
	if err := writeSchemaJSON(&buf, v, typeKeyOrder); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Key orders for schema objects: types read "type, name, ...", fields
// read "name, type, ...". Other keys follow alphabetically.
var (
	typeKeyOrder = map[string]int{
		"type": 1, "name": 2, "namespace": 3, "doc": 4, "logicalType": 5,
		"precision": 6, "scale": 7, "size": 8, "symbols": 9, "items": 10,
		"values": 11, "fields": 12, "default": 13,
	}
	fieldKeyOrder = map[string]int{"name": 1, "type": 2, "doc": 3, "default": 4, "order": 5}
)

func writeSchemaJSON(buf *bytes.Buffer, v any, order map[string]int) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		rank := func(k string) int {
			if r, ok := order[k]; ok {
				return r
			}
			return len(order) + 1
		}
		slices.SortFunc(keys, func(a, b string) int {
			if ra, rb := rank(a), rank(b); ra != rb {
				return ra - rb
			}
			return strings.Compare(a, b)
		})
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeSchemaJSON(buf, k, nil); err != nil {
				return err
			}
			buf.WriteByte(':')
			sub := typeKeyOrder
			if k == "fields" {
				sub = fieldKeyOrder // the elements of "fields" are fields
			} else if k == "default" {
				sub = nil // a default value is data, not schema
			}
			if err := writeSchemaJSON(buf, x[k], sub); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeSchemaJSON(buf, e, order); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
	return nil
}
