package schema

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/kinfer/kinfer/schema/memregistry"
	"github.com/kinfer/kinfer/tensor"
)

const listSchema = `{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}`

// fuzzMappings cover every mapping kind; each gets its own Mapper so that
// a failure of one does not hide the others.
var fuzzMappings = []InputMapping{
	{Tensor: "scalar", Fields: []string{"amount"}, DType: tensor.Float32},
	{Tensor: "vector", Fields: []string{"ratio", "count", "flag", "big"}, DType: tensor.Float64},
	{Tensor: "int8", Fields: []string{"count"}, DType: tensor.Int8, Shape: []int64{1}},
	{Tensor: "uint8s", Fields: []string{"ivec"}, DType: tensor.Uint8, Shape: []int64{-1}},
	{Tensor: "floats", Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
	{Tensor: "matrix", Fields: []string{"mat"}, DType: tensor.Float64, Shape: []int64{-1, 3}},
	{Tensor: "cube", Fields: []string{"cube"}, DType: tensor.Int32, Shape: []int64{-1, -1, 2}},
	{Tensor: "bools", Fields: []string{"bvec"}, DType: tensor.Bool, Shape: []int64{-1}},
	{Tensor: "nullable", Fields: []string{"opt"}, DType: tensor.Float32},
	{Tensor: "nullableArray", Fields: []string{"optArr"}, DType: tensor.Float32, Shape: []int64{-1}, AllowNaN: true},
	{Tensor: "nested", Fields: []string{"payment.geo.lat", "maybePay.amount"}, DType: tensor.Float32},
	{Tensor: "rawU8", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Uint8, Shape: []int64{2, -1}},
	{Tensor: "rawF32", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Float32, Shape: []int64{-1}},
	{Tensor: "rawBool", Fields: []string{"hash"}, Encoding: EncodingRaw, DType: tensor.Bool, Shape: []int64{-1}},
}

func fuzzMappers(tb testing.TB) []*Mapper {
	ms := make([]*Mapper, len(fuzzMappings))
	for i := range fuzzMappings {
		m, err := NewMapper(txnSchema, fuzzMappings[i:i+1])
		if err != nil {
			tb.Fatal(err)
		}
		ms[i] = m
	}
	return ms
}

// checkMapped fails unless Map either errs with a mapping reason or returns
// valid tensors of the configured shapes.
func checkMapped(t *testing.T, ms []*Mapper, native map[string]any) {
	for i, m := range ms {
		ts, err := m.Map(native)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("mapping %q: error %v (%T) is not a *schema.Error", fuzzMappings[i].Tensor, err, err)
			}
			switch e.Reason {
			case ReasonMissingField, ReasonWrongType, ReasonShape, ReasonNaN:
			default:
				t.Fatalf("mapping %q: unexpected reason %q: %v", fuzzMappings[i].Tensor, e.Reason, err)
			}
			continue
		}
		in := fuzzMappings[i]
		tt := ts[in.Tensor]
		if err := tt.Validate(); err != nil {
			t.Fatalf("mapping %q: invalid tensor: %v", in.Tensor, err)
		}
		if len(in.Shape) > 0 && len(tt.Shape) != len(in.Shape) {
			t.Fatalf("mapping %q: shape %v, want rank of %v", in.Tensor, tt.Shape, in.Shape)
		}
		for j, d := range in.Shape {
			if d >= 0 && tt.Shape[j] != d {
				t.Fatalf("mapping %q: shape %v, want %v", in.Tensor, tt.Shape, in.Shape)
			}
		}
	}
}

func FuzzWireDecode(f *testing.F) {
	reg := memregistry.New()
	txnID, err := reg.Register("txn", txnSchema)
	if err != nil {
		f.Fatal(err)
	}
	listID, err := reg.Register("list", listSchema)
	if err != nil {
		f.Fatal(err)
	}
	d := NewRegistryDecoder(inProcessClient(f, reg))
	ms := fuzzMappers(f)

	full := txnRecord()
	full["opt"] = map[string]any{"float": float32(1)}
	full["optArr"] = map[string]any{"array": []any{float32(1)}}
	full["multi"] = map[string]any{"string": "s"}
	full["maybePay"] = map[string]any{"com.acme.Payment": full["payment"]}
	f.Add(wire(txnID, mustBinary(f, txnSchema, txnRecord())))
	f.Add(wire(txnID, mustBinary(f, txnSchema, full)))
	f.Add(wire(listID, []byte{2, 2, 4, 2, 6, 0}))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Add([]byte{0, 0x7f, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, value []byte) {
		rec, err := d.Decode(bg, value)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *schema.Error", err, err)
			}
			switch e.Reason {
			case ReasonBadMagic, ReasonUnknownSchema, ReasonDecode:
			default:
				t.Fatalf("unexpected reason %q: %v", e.Reason, err)
			}
			return
		}
		if rec.Native == nil {
			t.Fatal("nil native record without an error")
		}
		if rec.SchemaID != txnID && rec.SchemaID != listID {
			t.Fatalf("decoded with schema id %d, which is not registered", rec.SchemaID)
		}
		if rec.SchemaID == txnID {
			checkMapped(t, ms, rec.Native)
		}
	})
}

func FuzzMap(f *testing.F) {
	dec, err := NewFileDecoder(txnSchema)
	if err != nil {
		f.Fatal(err)
	}
	ms := fuzzMappers(f)
	f.Add(mustBinary(f, txnSchema, txnRecord()))
	rec := txnRecord()
	rec["vec"] = []any{float32(math.NaN())}
	rec["raw"] = []byte{1, 2, 3}
	rec["mat"] = []any{[]any{1.0}, []any{}}
	f.Add(mustBinary(f, txnSchema, rec))
	f.Add([]byte{})
	f.Add([]byte("\x05\x0a\x11\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if rec, err := dec.Decode(bg, data); err == nil {
			checkMapped(t, ms, rec.Native)
		}
		checkMapped(t, ms, randomNative(data))
	})
}

// randomNative builds a native-looking record from fuzz bytes: the mapped
// field names hold values of arbitrary Go types, nesting, NaNs and union
// wrappers, or are absent.
func randomNative(data []byte) map[string]any {
	g := &nativeGen{data: data}
	rec := map[string]any{}
	for _, name := range []string{"amount", "ratio", "count", "flag", "big", "ivec", "vec", "mat", "cube", "bvec", "opt", "optArr", "raw", "hash", "payment", "maybePay"} {
		if g.byte()%8 == 0 {
			continue // absent
		}
		rec[name] = g.value(0)
	}
	return rec
}

type nativeGen struct {
	data []byte
	pos  int
}

func (g *nativeGen) byte() byte {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return b
}

func (g *nativeGen) bytes(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = g.byte()
	}
	return out
}

func (g *nativeGen) value(depth int) any {
	k := g.byte() % 14
	if depth >= 4 && k >= 9 {
		k %= 9
	}
	switch k {
	case 0:
		return nil
	case 1:
		return g.byte()%2 == 0
	case 2:
		return int32(binary.LittleEndian.Uint32(g.bytes(4)))
	case 3:
		return int64(binary.LittleEndian.Uint64(g.bytes(8)))
	case 4:
		return math.Float32frombits(binary.LittleEndian.Uint32(g.bytes(4)))
	case 5:
		return math.Float64frombits(binary.LittleEndian.Uint64(g.bytes(8)))
	case 6:
		return string(g.bytes(int(g.byte() % 4)))
	case 7:
		return g.bytes(int(g.byte() % 17))
	case 8:
		return int(int8(g.byte()))
	case 9, 10:
		items := make([]any, g.byte()%5)
		for i := range items {
			items[i] = g.value(depth + 1)
		}
		return items
	case 11:
		return map[string]any{"float": g.value(depth + 1)}
	case 12:
		return map[string]any{"amount": g.value(depth + 1), "geo": g.value(depth + 1), "lat": g.value(depth + 1)}
	default:
		return map[string]any{"com.acme.Payment": g.value(depth + 1)}
	}
}
