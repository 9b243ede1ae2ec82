package schema

import (
	"encoding/binary"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

func TestMap(t *testing.T) {
	nan32 := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		m      InputMapping
		edit   func(r map[string]any)
		shape  []int64
		data   any
		reason string
	}{
		// Scalars.
		{name: "double to float32 scalar", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float32},
			shape: []int64{}, data: []float32{99.5}},
		{name: "scalar with shape [1]", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float64, Shape: []int64{1}},
			shape: []int64{1}, data: []float64{99.5}},
		{name: "int to float64", m: InputMapping{Fields: []string{"count"}, DType: tensor.Float64},
			shape: []int64{}, data: []float64{3}},
		{name: "int to int32", m: InputMapping{Fields: []string{"count"}, DType: tensor.Int32},
			shape: []int64{}, data: []int32{3}},
		{name: "long to int64", m: InputMapping{Fields: []string{"big"}, DType: tensor.Int64},
			shape: []int64{}, data: []int64{1 << 40}},
		{name: "long out of int32 range", m: InputMapping{Fields: []string{"big"}, DType: tensor.Int32},
			reason: ReasonWrongType},
		{name: "negative into uint8", m: InputMapping{Fields: []string{"count"}, DType: tensor.Uint8},
			edit: func(r map[string]any) { r["count"] = int32(-1) }, reason: ReasonWrongType},
		{name: "int into int8", m: InputMapping{Fields: []string{"count"}, DType: tensor.Int8},
			edit: func(r map[string]any) { r["count"] = int32(-128) }, shape: []int64{}, data: []int8{-128}},
		{name: "float at run time into int", m: InputMapping{Fields: []string{"count"}, DType: tensor.Int32},
			edit: func(r map[string]any) { r["count"] = float32(1.5) }, reason: ReasonWrongType},
		{name: "string at run time", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float32},
			edit: func(r map[string]any) { r["amount"] = "x" }, reason: ReasonWrongType},
		{name: "boolean to bool", m: InputMapping{Fields: []string{"flag"}, DType: tensor.Bool},
			shape: []int64{}, data: []bool{true}},
		{name: "boolean to float32", m: InputMapping{Fields: []string{"flag"}, DType: tensor.Float32},
			shape: []int64{}, data: []float32{1}},
		{name: "int into bool at run time", m: InputMapping{Fields: []string{"flag"}, DType: tensor.Bool},
			edit: func(r map[string]any) { r["flag"] = int32(1) }, reason: ReasonWrongType},
		{name: "NaN scalar", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float64},
			edit: func(r map[string]any) { r["amount"] = math.NaN() }, reason: ReasonNaN},
		{name: "single-field record at run time", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float64},
			edit: func(r map[string]any) { r["amount"] = map[string]any{"x": 1.0} }, reason: ReasonWrongType},
		{name: "union at run time", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float64},
			edit: func(r map[string]any) { r["amount"] = map[string]any{"double": 1.0} }, shape: []int64{}, data: []float64{1}},
		{name: "missing field", m: InputMapping{Fields: []string{"amount"}, DType: tensor.Float64},
			edit: func(r map[string]any) { delete(r, "amount") }, reason: ReasonMissingField},

		// Several scalar fields make a vector, in the order listed.
		{name: "vector", m: InputMapping{Fields: []string{"ratio", "count", "amount", "flag"}, DType: tensor.Float32},
			shape: []int64{4}, data: []float32{0.25, 3, 99.5, 1}},
		{name: "vector with explicit shape", m: InputMapping{Fields: []string{"count", "big"}, DType: tensor.Int64, Shape: []int64{2}},
			shape: []int64{2}, data: []int64{3, 1 << 40}},
		{name: "vector with a null member", m: InputMapping{Fields: []string{"amount", "opt"}, DType: tensor.Float32},
			reason: ReasonMissingField},

		// Arrays.
		{name: "1D dynamic", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
			shape: []int64{4}, data: []float32{1, 2, 3, 4}},
		{name: "1D fixed", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float64, Shape: []int64{4}},
			shape: []int64{4}, data: []float64{1, 2, 3, 4}},
		{name: "1D fixed, wrong length", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{5}},
			reason: ReasonShape},
		{name: "1D empty dynamic", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
			edit: func(r map[string]any) { r["vec"] = []any{} }, shape: []int64{0}, data: []float32{}},
		{name: "long array to int64", m: InputMapping{Fields: []string{"ivec"}, DType: tensor.Int64, Shape: []int64{-1}},
			shape: []int64{2}, data: []int64{7, 8}},
		{name: "long array to uint8 out of range", m: InputMapping{Fields: []string{"ivec"}, DType: tensor.Uint8, Shape: []int64{-1}},
			edit: func(r map[string]any) { r["ivec"] = []any{int64(1), int64(300)} }, reason: ReasonWrongType},
		{name: "NaN in array", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
			edit: func(r map[string]any) { r["vec"] = []any{float32(1), nan32} }, reason: ReasonNaN},
		{name: "NaN allowed", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}, AllowNaN: true},
			edit: func(r map[string]any) { r["vec"] = []any{nan32} }, shape: []int64{1}, data: []float32{nan32}},
		{name: "string in array", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
			edit: func(r map[string]any) { r["vec"] = []any{float32(1), "x"} }, reason: ReasonWrongType},
		{name: "2D", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, 3}},
			shape: []int64{2, 3}, data: []float32{1, 2, 3, 4, 5, 6}},
		{name: "2D all dynamic", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float64, Shape: []int64{-1, -1}},
			shape: []int64{2, 3}, data: []float64{1, 2, 3, 4, 5, 6}},
		{name: "2D fixed inner mismatch", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, 4}},
			reason: ReasonShape},
		{name: "2D ragged", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, -1}},
			edit: func(r map[string]any) { r["mat"] = []any{[]any{1.0, 2.0}, []any{3.0}} }, reason: ReasonShape},
		{name: "2D empty rows keep fixed inner dim", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, 3}},
			edit: func(r map[string]any) { r["mat"] = []any{} }, shape: []int64{0, 3}, data: []float32{}},
		{name: "2D not nested at run time", m: InputMapping{Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, -1}},
			edit: func(r map[string]any) { r["mat"] = []any{1.0} }, reason: ReasonShape},
		{name: "3D", m: InputMapping{Fields: []string{"cube"}, DType: tensor.Int32, Shape: []int64{2, 2, 2}},
			shape: []int64{2, 2, 2}, data: []int32{1, 2, 3, 4, 5, 6, 7, 8}},
		{name: "3D to float32 dynamic", m: InputMapping{Fields: []string{"cube"}, DType: tensor.Float32, Shape: []int64{-1, 2, -1}},
			shape: []int64{2, 2, 2}, data: []float32{1, 2, 3, 4, 5, 6, 7, 8}},
		{name: "3D ragged deep", m: InputMapping{Fields: []string{"cube"}, DType: tensor.Int32, Shape: []int64{-1, -1, -1}},
			edit: func(r map[string]any) {
				r["cube"] = []any{[]any{[]any{int32(1), int32(2)}}, []any{[]any{int32(3)}}}
			}, reason: ReasonShape},
		{name: "bool array", m: InputMapping{Fields: []string{"bvec"}, DType: tensor.Bool, Shape: []int64{3}},
			shape: []int64{3}, data: []bool{true, false, true}},
		{name: "array not an array at run time", m: InputMapping{Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-1}},
			edit: func(r map[string]any) { r["vec"] = float32(1) }, reason: ReasonWrongType},

		// Nullable unions.
		{name: "nullable null", m: InputMapping{Fields: []string{"opt"}, DType: tensor.Float32},
			reason: ReasonMissingField},
		{name: "nullable set", m: InputMapping{Fields: []string{"opt"}, DType: tensor.Float32},
			edit: func(r map[string]any) { r["opt"] = map[string]any{"float": float32(2.5)} }, shape: []int64{}, data: []float32{2.5}},
		{name: "nullable array", m: InputMapping{Fields: []string{"optArr"}, DType: tensor.Float32, Shape: []int64{-1}},
			edit:  func(r map[string]any) { r["optArr"] = map[string]any{"array": []any{float32(1), float32(2)}} },
			shape: []int64{2}, data: []float32{1, 2}},
		{name: "nullable array null", m: InputMapping{Fields: []string{"optArr"}, DType: tensor.Float32, Shape: []int64{-1}},
			reason: ReasonMissingField},

		// Dotted paths.
		{name: "nested", m: InputMapping{Fields: []string{"payment.amount"}, DType: tensor.Float32},
			shape: []int64{}, data: []float32{12.5}},
		{name: "nested twice", m: InputMapping{Fields: []string{"payment.geo.lat", "payment.geo.lon"}, DType: tensor.Float64},
			shape: []int64{2}, data: []float64{52.5, 13.4}},
		{name: "through null record", m: InputMapping{Fields: []string{"maybePay.amount"}, DType: tensor.Float32},
			reason: ReasonMissingField},
		{name: "through set nullable record", m: InputMapping{Fields: []string{"maybePay.geo.lat"}, DType: tensor.Float32},
			edit:  func(r map[string]any) { r["maybePay"] = map[string]any{"com.acme.Payment": r["payment"]} },
			shape: []int64{}, data: []float32{52.5}},
		{name: "parent not a record at run time", m: InputMapping{Fields: []string{"payment.amount"}, DType: tensor.Float32},
			edit: func(r map[string]any) { r["payment"] = "x" }, reason: ReasonWrongType},
		{name: "nested missing", m: InputMapping{Fields: []string{"payment.amount"}, DType: tensor.Float32},
			edit: func(r map[string]any) { delete(r["payment"].(map[string]any), "amount") }, reason: ReasonMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Tensor = "in"
			m, err := NewMapper(txnSchema, []InputMapping{tc.m})
			if err != nil {
				t.Fatal(err)
			}
			rec := txnRecord()
			if tc.edit != nil {
				tc.edit(rec)
			}
			ts, err := m.Map(rec)
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				if !strings.Contains(err.Error(), `input "in": field "`) {
					t.Errorf("error %q does not name the input and field", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, ts["in"], tc.m.DType, tc.shape, tc.data)
		})
	}
}

func checkTensor(t *testing.T, got *tensor.Tensor, dt tensor.DType, shape []int64, data any) {
	t.Helper()
	if got == nil {
		t.Fatal("no tensor")
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("invalid tensor: %v", err)
	}
	if got.DType != dt || !reflect.DeepEqual(got.Shape, shape) {
		t.Fatalf("got %v%s, want %v%s", got.DType, tensor.ShapeString(got.Shape), dt, tensor.ShapeString(shape))
	}
	if f, ok := data.([]float32); ok && len(f) == 1 && f[0] != f[0] {
		if g := got.Data.([]float32); g[0] == g[0] {
			t.Fatalf("data %v, want NaN", g)
		}
		return
	}
	if !reflect.DeepEqual(got.Data, data) {
		t.Fatalf("data %#v, want %#v", got.Data, data)
	}
}

func le(t *testing.T, v any) []byte {
	t.Helper()
	b, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMapRaw(t *testing.T) {
	for _, tc := range []struct {
		name   string
		field  string
		dt     tensor.DType
		shape  []int64
		raw    []byte
		want   []int64
		data   any
		reason string
	}{
		{"float32", "raw", tensor.Float32, []int64{2, 2}, le(t, []float32{1, -2, 3.5, 4}), []int64{2, 2}, []float32{1, -2, 3.5, 4}, ""},
		{"float64", "raw", tensor.Float64, []int64{-1}, le(t, []float64{1.25, -1e300}), []int64{2}, []float64{1.25, -1e300}, ""},
		{"int32", "raw", tensor.Int32, []int64{3}, le(t, []int32{-1, 0, math.MaxInt32}), []int64{3}, []int32{-1, 0, math.MaxInt32}, ""},
		{"int64", "raw", tensor.Int64, []int64{-1, 1}, le(t, []int64{math.MinInt64, 5}), []int64{2, 1}, []int64{math.MinInt64, 5}, ""},
		{"uint8", "raw", tensor.Uint8, []int64{2, -1}, []byte{0, 255, 7, 8}, []int64{2, 2}, []uint8{0, 255, 7, 8}, ""},
		{"int8", "raw", tensor.Int8, []int64{4}, []byte{0, 255, 128, 127}, []int64{4}, []int8{0, -1, -128, 127}, ""},
		{"bool", "raw", tensor.Bool, []int64{3}, []byte{1, 0, 1}, []int64{3}, []bool{true, false, true}, ""},
		{"scalar", "raw", tensor.Float32, []int64{}, le(t, []float32{7}), []int64{}, []float32{7}, ""},
		{"fixed field", "hash", tensor.Float32, []int64{2}, nil, []int64{2}, []float32{1, 2}, ""},
		{"empty dynamic", "raw", tensor.Float32, []int64{-1, 3}, []byte{}, []int64{0, 3}, []float32{}, ""},
		{"length not a multiple of the dtype", "raw", tensor.Float32, []int64{-1}, []byte{1, 2, 3}, nil, nil, ReasonShape},
		{"length does not fit fixed shape", "raw", tensor.Float32, []int64{3}, le(t, []float32{1, 2}), nil, nil, ReasonShape},
		{"length does not fit dynamic shape", "raw", tensor.Float32, []int64{-1, 3}, le(t, []float32{1, 2, 3, 4}), nil, nil, ReasonShape},
		{"NaN", "raw", tensor.Float32, []int64{-1}, le(t, []float32{1, float32(math.NaN())}), nil, nil, ReasonNaN},
		{"NaN float64", "raw", tensor.Float64, []int64{-1}, le(t, []float64{math.NaN()}), nil, nil, ReasonNaN},
		{"bad bool byte", "raw", tensor.Bool, []int64{-1}, []byte{1, 2}, nil, nil, ReasonWrongType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMapper(txnSchema, []InputMapping{{Tensor: "in", Fields: []string{tc.field}, Encoding: EncodingRaw, DType: tc.dt, Shape: tc.shape}})
			if err != nil {
				t.Fatal(err)
			}
			rec := txnRecord()
			if tc.raw != nil {
				rec[tc.field] = tc.raw
			}
			ts, err := m.Map(rec)
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, ts["in"], tc.dt, tc.want, tc.data)
		})
	}

	t.Run("copies the bytes", func(t *testing.T) {
		m, err := NewMapper(txnSchema, []InputMapping{{Tensor: "in", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Uint8, Shape: []int64{-1}}})
		if err != nil {
			t.Fatal(err)
		}
		rec := txnRecord()
		ts, err := m.Map(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec["raw"].([]byte)[0] = 99
		if ts["in"].Data.([]uint8)[0] == 99 {
			t.Fatal("raw uint8 tensor aliases the record's bytes")
		}
	})

	t.Run("allow NaN", func(t *testing.T) {
		m, err := NewMapper(txnSchema, []InputMapping{{Tensor: "in", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Float32, Shape: []int64{-1}, AllowNaN: true}})
		if err != nil {
			t.Fatal(err)
		}
		rec := txnRecord()
		rec["raw"] = le(t, []float32{float32(math.NaN())})
		if _, err := m.Map(rec); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMapSeveralInputs(t *testing.T) {
	m, err := NewMapper(txnSchema, []InputMapping{
		{Tensor: "dense", Fields: []string{"amount", "ratio"}, DType: tensor.Float32},
		{Tensor: "seq", Fields: []string{"ivec"}, DType: tensor.Int64, Shape: []int64{-1}},
		{Tensor: "img", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Uint8, Shape: []int64{2, 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := m.Map(txnRecord())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("got %d tensors, want 3", len(ts))
	}
	checkTensor(t, ts["dense"], tensor.Float32, []int64{2}, []float32{99.5, 0.25})
	checkTensor(t, ts["seq"], tensor.Int64, []int64{2}, []int64{7, 8})
	checkTensor(t, ts["img"], tensor.Uint8, []int64{2, 2}, []uint8{1, 2, 3, 4})

	in := m.Inputs()
	if len(in) != 3 || !reflect.DeepEqual(in[0].Shape, []int64{2}) || in[0].Encoding != EncodingValue || in[2].Encoding != EncodingRaw {
		t.Errorf("Inputs() = %+v", in)
	}

	// Tensors of different records do not share shape storage.
	ts2, _ := m.Map(txnRecord())
	ts2["seq"].Shape[0] = 99
	if ts["seq"].Shape[0] != 2 {
		t.Fatal("tensors of two records share a shape slice")
	}
}

func TestNewMapperValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   []InputMapping
		want []string
	}{
		{"string into float", []InputMapping{{Tensor: "features", Fields: []string{"amount", "id"}, DType: tensor.Float32}},
			[]string{`input "features": field "id": Avro type "string" cannot feed float32`}},
		{"double into int", []InputMapping{{Tensor: "x", Fields: []string{"amount"}, DType: tensor.Int32}},
			[]string{`input "x": field "amount": Avro type "double" cannot feed int32`}},
		{"int into bool", []InputMapping{{Tensor: "x", Fields: []string{"count"}, DType: tensor.Bool}},
			[]string{`input "x": field "count": Avro type "int" cannot feed bool`}},
		{"not found", []InputMapping{{Tensor: "x", Fields: []string{"nope"}, DType: tensor.Float32}},
			[]string{`input "x": field "nope": not found in record com.acme.Txn`}},
		{"nested not found", []InputMapping{{Tensor: "x", Fields: []string{"payment.geo.alt"}, DType: tensor.Float32}},
			[]string{`input "x": field "payment.geo.alt": not found in record com.acme.Geo`}},
		{"path through a scalar", []InputMapping{{Tensor: "x", Fields: []string{"amount.x"}, DType: tensor.Float32}},
			[]string{`input "x": field "amount.x": "amount" is double, not a record`}},
		{"empty path segment", []InputMapping{{Tensor: "x", Fields: []string{"payment..amount"}, DType: tensor.Float32}},
			[]string{`field "payment..amount": empty name`}},
		{"array rank", []InputMapping{{Tensor: "x", Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1}}},
			[]string{`input "x": field "mat": shape [?] has 1 dims but Avro type "array<array<double>>" nests 2 arrays`}},
		{"array items", []InputMapping{{Tensor: "x", Fields: []string{"vec"}, DType: tensor.Int64, Shape: []int64{-1}}},
			[]string{`input "x": field "vec": Avro type "array<float>" cannot feed int64`}},
		{"vector shape", []InputMapping{{Tensor: "x", Fields: []string{"amount", "ratio"}, DType: tensor.Float32, Shape: []int64{3}}},
			[]string{`input "x": shape [3] does not fit 2 fields, want [2]`}},
		{"array in a vector", []InputMapping{{Tensor: "x", Fields: []string{"amount", "vec"}, DType: tensor.Float32}},
			[]string{`field "vec": Avro type "array<float>" cannot feed float32 (several fields make a vector of scalars)`}},
		{"scalar shape", []InputMapping{{Tensor: "x", Fields: []string{"amount"}, DType: tensor.Float32, Shape: []int64{2}}},
			[]string{`input "x": field "amount": shape [2] does not fit a scalar, want [] or [1]`}},
		{"bytes without raw", []InputMapping{{Tensor: "x", Fields: []string{"raw"}, DType: tensor.Float32, Shape: []int64{-1}}},
			[]string{`Avro type "bytes" cannot feed float32 (use encoding "raw"`}},
		{"raw on a float", []InputMapping{{Tensor: "x", Fields: []string{"amount"}, Encoding: EncodingRaw, DType: tensor.Float32}},
			[]string{`field "amount": Avro type "double" cannot hold raw float32 tensor bytes, want bytes or fixed`}},
		{"raw two dynamic dims", []InputMapping{{Tensor: "x", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Float32, Shape: []int64{-1, -1}}},
			[]string{`at most one -1 dim`}},
		{"raw zero dim", []InputMapping{{Tensor: "x", Fields: []string{"raw"}, Encoding: EncodingRaw, DType: tensor.Float32, Shape: []int64{0, -1}}},
			[]string{`cannot be inferred next to a 0 dim`}},
		{"raw fixed size", []InputMapping{{Tensor: "x", Fields: []string{"hash"}, Encoding: EncodingRaw, DType: tensor.Float64, Shape: []int64{2}}},
			[]string{`field "hash": Avro type "fixed(8) com.acme.Hash" holds 8 bytes, shape [2] of float64 needs 16`}},
		{"raw several fields", []InputMapping{{Tensor: "x", Fields: []string{"raw", "raw"}, Encoding: EncodingRaw, DType: tensor.Uint8}},
			[]string{`encoding "raw" reads exactly one field, got 2`}},
		{"wide union", []InputMapping{{Tensor: "x", Fields: []string{"multi"}, DType: tensor.Int32}},
			[]string{`field "multi": Avro type "union<null,int,string>" cannot feed int32: only ["null", T] unions are supported`}},
		{"logical type", []InputMapping{{Tensor: "x", Fields: []string{"ts"}, DType: tensor.Int64}},
			[]string{`field "ts": Avro type "long (timestamp-millis)" cannot feed int64`}},
		{"record", []InputMapping{{Tensor: "x", Fields: []string{"payment"}, DType: tensor.Float32}},
			[]string{`field "payment": Avro type "record com.acme.Payment" cannot feed float32`}},
		{"unknown encoding", []InputMapping{{Tensor: "x", Fields: []string{"amount"}, Encoding: "base64", DType: tensor.Float32}},
			[]string{`input "x": unknown encoding "base64"`}},
		{"no dtype", []InputMapping{{Tensor: "x", Fields: []string{"amount"}}},
			[]string{`input "x": invalid dtype invalid`}},
		{"no fields", []InputMapping{{Tensor: "x", DType: tensor.Float32}},
			[]string{`input "x": no fields`}},
		{"no tensor name", []InputMapping{{Fields: []string{"amount"}, DType: tensor.Float32}},
			[]string{`input mapping 1: no tensor name`}},
		{"bad dim", []InputMapping{{Tensor: "x", Fields: []string{"vec"}, DType: tensor.Float32, Shape: []int64{-2}}},
			[]string{`dim 0 is -2`}},
		{"duplicate", []InputMapping{
			{Tensor: "x", Fields: []string{"amount"}, DType: tensor.Float32},
			{Tensor: "x", Fields: []string{"ratio"}, DType: tensor.Float32},
		}, []string{`input "x": mapped more than once`}},
		{"every problem reported", []InputMapping{
			{Tensor: "a", Fields: []string{"id"}, DType: tensor.Float32},
			{Tensor: "b", Fields: []string{"nope"}, DType: tensor.Float32},
		}, []string{`input "a": field "id"`, `input "b": field "nope"`}},
		{"no mappings", nil, []string{"no input mappings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMapper(txnSchema, tc.ms)
			if err == nil {
				t.Fatal("NewMapper succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestPassThrough(t *testing.T) {
	rec := txnRecord()
	rec["opt"] = map[string]any{"float": float32(2)}
	rec["maybePay"] = map[string]any{"com.acme.Payment": rec["payment"]}
	for _, tc := range []struct {
		path string
		want any
		ok   bool
	}{
		{"id", "t-1", true},
		{"opt", map[string]any{"float": float32(2)}, true}, // union form kept
		{"multi", nil, true},
		{"payment.geo.lat", 52.5, true},
		{"maybePay.currency", "EUR", true},
		{"nope", nil, false},
		{"id.x", nil, false},
		{"payment.nope", nil, false},
	} {
		got, ok := PassThrough(rec, tc.path)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PassThrough(%q) = %#v, %v; want %#v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

// A ragged record whose first row is long must fail before its dims size
// an allocation: 1000 rows x 10000 floats would be 40 MB.
func TestMapRaggedDoesNotOverallocate(t *testing.T) {
	m, err := NewMapper(txnSchema, []InputMapping{{Tensor: "in", Fields: []string{"mat"}, DType: tensor.Float32, Shape: []int64{-1, -1}}})
	if err != nil {
		t.Fatal(err)
	}
	first := make([]any, 10000)
	for i := range first {
		first[i] = 1.0
	}
	rows := make([]any, 1000)
	rows[0] = first
	for i := 1; i < len(rows); i++ {
		rows[i] = []any{}
	}
	rec := txnRecord()
	rec["mat"] = rows
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = m.Map(rec)
	runtime.ReadMemStats(&after)
	wantReason(t, err, ReasonShape)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("rejecting a ragged record allocated %d bytes", n)
	}
}
