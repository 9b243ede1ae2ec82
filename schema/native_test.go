package schema

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// nativeSchema is txnSchema without its timestamp (so decodeNative, not
// goavro, decodes it) plus arrays of records, maps of arrays, nested long
// arrays and a wide union.
var nativeSchema = strings.Replace(txnSchema,
	`{"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},`,
	`{"name": "lmat", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
    {"name": "dvec", "type": {"type": "array", "items": "double"}},
    {"name": "pays", "type": {"type": "array", "items": "Payment"}},
    {"name": "series", "type": {"type": "map", "values": {"type": "array", "items": "float"}}},
    {"name": "wide", "type": ["null", "double", {"type": "enum", "name": "Shade", "symbols": ["A", "B", "C"]}, {"type": "array", "items": "int"}, "Hash", "bytes"]},
    {"name": "uuid", "type": {"type": "string", "logicalType": "uuid"}},`, 1)

func TestNativeSafe(t *testing.T) {
	for _, tc := range []struct {
		schema string
		want   bool
	}{
		{nativeSchema, true},
		{txnSchema, false}, // timestamp-millis: goavro returns time.Time
		{listSchema, true}, // recursive
		{`{"type":"record","name":"D","fields":[{"name":"d","type":["null",{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}]}]}`, false},
	} {
		c, err := compileRecordSchema(tc.schema)
		if err != nil {
			t.Fatal(err)
		}
		if c.native != tc.want {
			t.Errorf("schema %.60s…: native %v, want %v", tc.schema, c.native, tc.want)
		}
	}
}

// normalize turns typed slices into []any, giving goavro's native form.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []float32, []float64, []int32, []int64:
		rv := reflect.ValueOf(x)
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out
	}
	return v
}

// randomNative makes a random native value of type t, as goavro encodes it.
func randomValue(rng *rand.Rand, t *avroType, depth int) any {
	n := rng.IntN(5)
	switch t.kind {
	case kindNull:
		return nil
	case kindBoolean:
		return rng.IntN(2) == 1
	case kindInt:
		return int32(rng.Uint32())
	case kindLong:
		return int64(rng.Uint64())
	case kindFloat:
		if rng.IntN(20) == 0 {
			return float32(math.NaN())
		}
		return float32(rng.NormFloat64())
	case kindDouble:
		return rng.NormFloat64() * 1e6
	case kindString:
		return fmt.Sprintf("s%d", rng.IntN(1000))
	case kindBytes:
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case kindFixed:
		b := make([]byte, t.size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case kindEnum:
		return t.symbolNames[rng.IntN(len(t.symbolNames))]
	case kindRecord:
		m := map[string]any{}
		for _, f := range t.fields {
			m[f.name] = randomValue(rng, f.typ, depth+1)
		}
		return m
	case kindArray:
		if depth > 4 {
			n = 0
		}
		items := make([]any, n)
		for i := range items {
			items[i] = randomValue(rng, t.items, depth+1)
		}
		return items
	case kindMap:
		m := map[string]any{}
		for i := 0; i < n && depth <= 4; i++ {
			m[fmt.Sprintf("k%d", i)] = randomValue(rng, t.items, depth+1)
		}
		return m
	case kindUnion:
		b := t.branches[rng.IntN(len(t.branches))]
		if b.kind == kindNull || depth > 4 && t.hasNull() {
			return nil
		}
		return map[string]any{b.unionKey(): randomValue(rng, b, depth+1)}
	}
	panic("unhandled kind " + t.kind.String())
}

// sameNative compares two native values; NaNs are equal to each other.
func sameNative(a, b any) bool {
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) || reflect.DeepEqual(a, b)
}

// TestNativeDecodeMatchesGoavro decodes random records of every type both
// ways: decodeNative must give goavro's native form, with typed slices
// where goavro has []any of numbers.
func TestNativeDecodeMatchesGoavro(t *testing.T) {
	for _, schemaJSON := range []string{nativeSchema, listSchema} {
		c, err := compileRecordSchema(schemaJSON)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 2000 {
			rec := randomValue(rng, c.root, 0)
			bin, err := c.codec.BinaryFromNative(nil, rec)
			if err != nil {
				t.Fatalf("record %d: encoding: %v", i, err)
			}
			want, _, err := c.codec.NativeFromBinary(bin)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.decode(bin)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if !sameNative(normalize(got), want) {
				t.Fatalf("record %d:\n got %#v\nwant %#v", i, normalize(got), want)
			}
			// Typed slices must be where goavro has arrays of numbers.
			if schemaJSON == nativeSchema {
				if _, ok := got["vec"].([]float32); !ok {
					t.Fatalf("vec is %T, want []float32", got["vec"])
				}
				if _, ok := got["lmat"].([]any)[0:0], true; !ok {
					t.Fatal("lmat is not []any")
				}
			}
			// goavro's encoder takes the typed form back unchanged.
			again, err := c.codec.BinaryFromNative(nil, got)
			if err != nil {
				t.Fatalf("record %d: re-encoding the typed form: %v", i, err)
			}
			back, _, err := c.codec.NativeFromBinary(again)
			if err != nil || !sameNative(back, want) {
				t.Fatalf("record %d: re-encoded typed form decodes to %#v (%v)", i, back, err)
			}
		}
	}
}

// maxMapLen is the most entries of any map in v.
func maxMapLen(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		n = len(x)
		for _, e := range x {
			n = max(n, maxMapLen(e))
		}
	case []any:
		for _, e := range x {
			n = max(n, maxMapLen(e))
		}
	}
	return n
}

// TestNativeEncodeMatchesGoavro encodes random records (goavro's form and
// the typed form decodeNative gives) with encodeNative: the bytes decode
// to the same values as goavro's, and equal goavro's bytes wherever map
// iteration order cannot differ.
func TestNativeEncodeMatchesGoavro(t *testing.T) {
	for _, schemaJSON := range []string{nativeSchema, listSchema} {
		c, err := compileRecordSchema(schemaJSON)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range 2000 {
			rec := randomValue(rng, c.root, 0)
			want, err := c.codec.BinaryFromNative(nil, rec)
			if err != nil {
				t.Fatal(err)
			}
			typed, err := c.decode(want)
			if err != nil {
				t.Fatal(err)
			}
			for form, v := range map[string]any{"goavro": rec, "typed": typed} {
				got, ok := encodeNative(c.root, nil, v, 0)
				if !ok {
					t.Fatalf("record %d (%s form): encodeNative refused %#v", i, form, v)
				}
				if maxMapLen(v) <= 1 && string(got) != string(want) {
					t.Fatalf("record %d (%s form): bytes differ from goavro's\n got %x\nwant %x", i, form, got, want)
				}
				back, _, err := c.codec.NativeFromBinary(got)
				if err != nil {
					t.Fatalf("record %d (%s form): goavro cannot decode encodeNative's bytes: %v", i, form, err)
				}
				if !sameNative(back, normalize(rec)) {
					t.Fatalf("record %d (%s form): decodes to %#v, want %#v", i, form, back, rec)
				}
			}
		}
	}
	// Values goavro might convert are left to goavro.
	c, _ := compileRecordSchema(`{"type":"record","name":"R","fields":[{"name":"f","type":"float"},{"name":"d","type":"double","default":1}]}`)
	for _, v := range []map[string]any{{"f": 1, "d": 2.0}, {"f": float32(1)}, {"f": "x", "d": 2.0}} {
		if _, ok := encodeNative(c.root, nil, v, 0); ok {
			t.Errorf("encodeNative took %#v; want it left to goavro", v)
		}
	}
}

// decodeBoth decodes value with decodeNative and with goavro.
func decodeBoth(c *compiled, value []byte) (fast, slow map[string]any, fastErr, slowErr error) {
	fast, fastErr = c.decode(value)
	c.native = false
	defer func() { c.native = true }()
	slow, slowErr = c.decode(value)
	return
}

// FuzzNativeDecode holds decodeNative to goavro on arbitrary bytes: the
// same values or both errors, and the same tensors (or the same mapping
// errors) from every mapping kind.
func FuzzNativeDecode(f *testing.F) {
	c, err := compileRecordSchema(nativeSchema)
	if err != nil {
		f.Fatal(err)
	}
	ms := make([]*Mapper, len(fuzzMappings))
	for i := range fuzzMappings {
		if ms[i], err = NewMapper(nativeSchema, fuzzMappings[i:i+1]); err != nil {
			f.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		bin, err := c.codec.BinaryFromNative(nil, randomValue(rng, c.root, 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bin)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, value []byte) {
		fast, slow, fastErr, slowErr := decodeBoth(c, value)
		if (fastErr == nil) != (slowErr == nil) {
			t.Fatalf("decodeNative error %v, goavro error %v", fastErr, slowErr)
		}
		if fastErr != nil {
			if ReasonOf(fastErr) != ReasonDecode {
				t.Fatalf("reason %q: %v", ReasonOf(fastErr), fastErr)
			}
			return
		}
		if !sameNative(normalize(fast), slow) {
			t.Fatalf("decodeNative %#v\ngoavro %#v", normalize(fast), slow)
		}
		enc, ok := encodeNative(c.root, nil, fast, 0)
		if !ok {
			t.Fatalf("encodeNative refused a decoded record: %#v", fast)
		}
		if maxMapLen(slow) <= 1 && string(enc) != string(value) {
			t.Fatalf("re-encoded %x, decoded from %x", enc, value)
		}
		for i, m := range ms {
			a, aErr := m.Map(fast)
			b, bErr := m.Map(slow)
			if fmt.Sprint(aErr) != fmt.Sprint(bErr) {
				t.Fatalf("mapping %q: typed error %v, goavro-form error %v", fuzzMappings[i].Tensor, aErr, bErr)
			}
			for k := range b {
				if fmt.Sprintf("%v", *a[k]) != fmt.Sprintf("%v", *b[k]) {
					t.Fatalf("mapping %q: typed %v, goavro-form %v", k, *a[k], *b[k])
				}
			}
		}
	})
}
