package schema

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

var predictionFields = []OutputField{
	{Name: "id", Source: SourcePassthrough},
	{Name: "payment", Source: SourcePassthrough},
	{Name: "payer", Source: SourcePassthrough, From: "maybePay"},
	{Name: "lat", Source: SourcePassthrough, From: "payment.geo.lat"},
	{Name: "maybeAmount", Source: SourcePassthrough, From: "maybePay.amount"},
	{Name: "opt", Source: SourcePassthrough},
	{Name: "color", Source: SourcePassthrough},
	{Name: "hash", Source: SourcePassthrough},
	{Name: "ts", Source: SourcePassthrough},
	{Name: "probs", Source: SourceTensor, DType: tensor.Float32, Shape: []int64{-1}},
	{Name: "label", Source: SourceTensor, DType: tensor.Int64},
	{Name: "emb", Source: SourceTensor, From: "embedding", DType: tensor.Float64, Shape: []int64{2, 3}},
	{Name: "mask", Source: SourceTensor, DType: tensor.Bool, Shape: []int64{3}},
	{Name: "pixels", Source: SourceTensor, DType: tensor.Uint8, Shape: []int64{2}},
	{Name: "delta", Source: SourceTensor, DType: tensor.Int8, Shape: []int64{-1}},
	{Name: "count", Source: SourceTensor, DType: tensor.Int32},
	{Name: "model", Source: SourceModelName},
	{Name: "version", Source: SourceModelVersion},
}

func predictionOutputs() map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{
		"probs":     {DType: tensor.Float32, Shape: []int64{3}, Data: []float32{0.1, 0.2, 0.7}},
		"label":     {DType: tensor.Int64, Shape: []int64{}, Data: []int64{2}},
		"embedding": {DType: tensor.Float64, Shape: []int64{2, 3}, Data: []float64{1, 2, 3, 4, 5, 6}},
		"mask":      {DType: tensor.Bool, Shape: []int64{3}, Data: []bool{true, false, true}},
		"pixels":    {DType: tensor.Uint8, Shape: []int64{2}, Data: []uint8{0, 255}},
		"delta":     {DType: tensor.Int8, Shape: []int64{2}, Data: []int8{-128, 127}},
		"count":     {DType: tensor.Int32, Shape: []int64{}, Data: []int32{-5}},
	}
}

func TestBuildOutputSchema(t *testing.T) {
	s, err := BuildOutputSchema("Prediction", "com.acme.out", txnSchema, predictionFields)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Fields []map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal([]byte(s), &parsed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, `{"type":"record","name":"Prediction","namespace":"com.acme.out","fields":[{"name":"id","type":"string","doc":"transaction id"},`) {
		t.Errorf("schema does not start with the record header and the id field:\n%s", s)
	}
	types := map[string]string{}
	defaults := map[string]string{}
	for _, f := range parsed.Fields {
		var name string
		_ = json.Unmarshal(f["name"], &name)
		types[name] = string(f["type"])
		if d, ok := f["default"]; ok {
			defaults[name] = string(d)
		}
	}
	// Defaults are copied with the type, or null for a field made nullable.
	for name, want := range map[string]string{"opt": "null", "payer": "null", "maybeAmount": "null"} {
		if defaults[name] != want {
			t.Errorf("field %q has default %q, want %s", name, defaults[name], want)
		}
	}
	for name, want := range map[string]string{
		"id":          `"string"`,
		"lat":         `"double"`,
		"maybeAmount": `["null","float"]`, // below a nullable record
		"opt":         `["null","float"]`,
		"payer":       `["null","com.acme.Payment"]`, // defined once, under "payment"
		"color":       `{"type":"enum","name":"com.acme.Color","symbols":["RED","GREEN"]}`,
		"ts":          `{"type":"long","logicalType":"timestamp-millis"}`,
		"probs":       `{"type":"array","items":"float"}`,
		"label":       `"long"`,
		"emb":         `{"type":"array","items":{"type":"array","items":"double"}}`,
		"mask":        `{"type":"array","items":"boolean"}`,
		"pixels":      `{"type":"array","items":"int"}`,
		"count":       `"int"`,
		"model":       `"string"`,
		"version":     `"string"`,
	} {
		if types[name] != want {
			t.Errorf("field %q has type %s, want %s", name, types[name], want)
		}
	}
	if !strings.Contains(types["payment"], `"name":"com.acme.Payment"`) || !strings.Contains(types["payment"], `"name":"com.acme.Geo"`) {
		t.Errorf("payment type %s does not define Payment and Geo under their full names", types["payment"])
	}
}

// outputOf builds the output schema of fields over the input schema in,
// with its builder and its encoder.
func outputOf(t *testing.T, name, namespace, in string, fields []OutputField) (string, *OutputBuilder, *Encoder) {
	t.Helper()
	s, err := BuildOutputSchema(name, namespace, in, fields)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewOutputBuilder(s, fields)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, b, enc
}

func TestOutputRoundTrip(t *testing.T) {
	s, b, enc := outputOf(t, "Prediction", "com.acme.out", txnSchema, predictionFields)
	dec, err := NewFileDecoder(s)
	if err != nil {
		t.Fatal(err)
	}

	// The input record comes through a decoder, as in production.
	in := txnRecord()
	in["opt"] = map[string]any{"float": float32(0.5)}
	in["maybePay"] = map[string]any{"com.acme.Payment": in["payment"]}
	inDec, _ := NewFileDecoder(txnSchema)
	inRec, err := inDec.Decode(bg, mustBinary(t, txnSchema, in))
	if err != nil {
		t.Fatal(err)
	}

	native, err := b.Build(inRec.Native, predictionOutputs(), "fraud", "7")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := enc.Encode(native)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dec.Decode(bg, plain)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id":          "t-1",
		"payment":     inRec.Native["payment"],
		"payer":       inRec.Native["maybePay"],
		"lat":         52.5,
		"maybeAmount": map[string]any{"float": float32(12.5)},
		"opt":         map[string]any{"float": float32(0.5)},
		"color":       "GREEN",
		"hash":        inRec.Native["hash"],
		"ts":          inRec.Native["ts"],
		"probs":       []any{float32(0.1), float32(0.2), float32(0.7)},
		"label":       int64(2),
		"emb":         []any{[]any{1.0, 2.0, 3.0}, []any{4.0, 5.0, 6.0}},
		"mask":        []any{true, false, true},
		"pixels":      []any{int32(0), int32(255)},
		"delta":       []any{int32(-128), int32(127)},
		"count":       int32(-5),
		"model":       "fraud",
		"version":     "7",
	}
	for k, w := range want {
		if !reflect.DeepEqual(got.Native[k], w) {
			t.Errorf("field %q = %#v, want %#v", k, got.Native[k], w)
		}
	}

	// The wire format carries the same body behind the header.
	wired, err := enc.EncodeWire(42, native)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(wired[:5], []byte{0, 0, 0, 0, 42}) || string(wired[5:]) != string(plain) {
		t.Fatalf("wire encoding % x does not frame the plain encoding", wired[:5])
	}

	// A null nullable record on the path writes null.
	in["maybePay"] = nil
	native, err = b.Build(in, predictionOutputs(), "fraud", "7")
	if err != nil {
		t.Fatal(err)
	}
	if native["maybeAmount"] != nil || native["payer"] != nil {
		t.Fatalf("maybeAmount %v payer %v, want nil", native["maybeAmount"], native["payer"])
	}
	if _, err := enc.Encode(native); err != nil {
		t.Fatal(err)
	}
}

func TestOutputViaRegistry(t *testing.T) {
	reg, cl := newTestRegistry(t)
	fields := []OutputField{
		{Name: "id", Source: SourcePassthrough},
		{Name: "score", Source: SourceTensor, DType: tensor.Float32},
	}
	s, err := BuildOutputSchema("Score", "", txnSchema, fields)
	if err != nil {
		t.Fatal(err)
	}
	id, err := RegisterOutputSchema(bg, cl, "scores-value", s)
	if err != nil {
		t.Fatal(err)
	}
	before := reg.Requests()
	again, err := RegisterOutputSchema(bg, cl, "scores-value", s)
	if err != nil || again != id {
		t.Fatalf("second registration: id %d err %v, want %d", again, err, id)
	}
	if n := reg.Requests() - before; n != 1 {
		t.Errorf("re-registering an existing schema made %d requests, want 1 lookup", n)
	}
	if _, err := RegisterOutputSchema(bg, cl, "scores-value", `{"type":"nope"}`); err == nil {
		t.Error("registering an invalid schema succeeded")
	}

	enc, _ := NewEncoder(s)
	b, _ := NewOutputBuilder(s, fields)
	native, err := b.Build(txnRecord(), map[string]*tensor.Tensor{"score": {DType: tensor.Float32, Shape: []int64{}, Data: []float32{0.9}}}, "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	value, err := enc.EncodeWire(id, native)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRegistryDecoder(cl).Decode(bg, value)
	if err != nil {
		t.Fatal(err)
	}
	if rec.SchemaID != id || rec.Native["score"] != float32(0.9) || rec.Native["id"] != "t-1" {
		t.Fatalf("decoded %v (id %d)", rec.Native, rec.SchemaID)
	}
}

func TestBuildOutputSchemaErrors(t *testing.T) {
	for _, tc := range []struct {
		name, recName, ns, input string
		fields                   []OutputField
		want                     string
	}{
		{"bad record name", "my-pred", "", txnSchema, []OutputField{{Name: "m", Source: SourceModelName}}, `"my-pred" is not a valid Avro name`},
		{"no fields", "P", "", txnSchema, nil, "no fields"},
		{"bad field name", "P", "", txnSchema, []OutputField{{Name: "1x", Source: SourceModelName}}, `"1x" is not a valid Avro name`},
		{"duplicate", "P", "", txnSchema, []OutputField{{Name: "m", Source: SourceModelName}, {Name: "m", Source: SourceModelVersion}}, `output field "m": defined more than once`},
		{"unknown source", "P", "", txnSchema, []OutputField{{Name: "m", Source: "constant"}}, `unknown source "constant"`},
		{"unknown input field", "P", "", txnSchema, []OutputField{{Name: "m", Source: SourcePassthrough, From: "payment.nope"}}, `output field "m": input field "payment.nope": not found in record com.acme.Payment`},
		{"no input schema", "P", "", "", []OutputField{{Name: "id", Source: SourcePassthrough}}, "needs the input schema"},
		{"bad dtype", "P", "", txnSchema, []OutputField{{Name: "t", Source: SourceTensor}}, `output field "t": invalid dtype`},
		{"bad dim", "P", "", txnSchema, []OutputField{{Name: "t", Source: SourceTensor, DType: tensor.Float32, Shape: []int64{-3}}}, "dim 0 is -3"},
		{"name clash with a copied type", "Payment", "com.acme", txnSchema, []OutputField{{Name: "p", Source: SourcePassthrough, From: "payment"}}, `type "com.acme.Payment" defined twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildOutputSchema(tc.recName, tc.ns, tc.input, tc.fields)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOutputBuilderErrors(t *testing.T) {
	s, err := BuildOutputSchema("Prediction", "com.acme.out", txnSchema, predictionFields)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewOutputBuilder(s, predictionFields)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(in map[string]any, out map[string]*tensor.Tensor)
		reason string
	}{
		{"missing tensor", func(_ map[string]any, out map[string]*tensor.Tensor) { delete(out, "probs") }, ReasonEncode},
		{"wrong dtype", func(_ map[string]any, out map[string]*tensor.Tensor) {
			out["label"] = &tensor.Tensor{DType: tensor.Int32, Shape: []int64{}, Data: []int32{1}}
		}, ReasonWrongType},
		{"wrong rank", func(_ map[string]any, out map[string]*tensor.Tensor) {
			out["label"] = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: []int64{1}}
		}, ReasonShape},
		{"wrong fixed dim", func(_ map[string]any, out map[string]*tensor.Tensor) {
			out["mask"] = &tensor.Tensor{DType: tensor.Bool, Shape: []int64{2}, Data: []bool{true, true}}
		}, ReasonShape},
		{"data does not match shape", func(_ map[string]any, out map[string]*tensor.Tensor) {
			out["probs"] = &tensor.Tensor{DType: tensor.Float32, Shape: []int64{4}, Data: []float32{1}}
		}, ReasonEncode},
		{"missing pass-through", func(in map[string]any, _ map[string]*tensor.Tensor) { delete(in, "id") }, ReasonMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, out := txnRecord(), predictionOutputs()
			tc.edit(in, out)
			_, err := b.Build(in, out, "m", "1")
			wantReason(t, err, tc.reason)
		})
	}

	if _, err := NewOutputBuilder(s, []OutputField{{Name: "nope", Source: SourceModelName}}); err == nil {
		t.Error("builder accepted a field missing from the schema")
	}
	if _, err := NewOutputBuilder(s, []OutputField{{Name: "probs", Source: SourceTensor, DType: tensor.Float32, Shape: []int64{2, 2}}}); err == nil ||
		!strings.Contains(err.Error(), "nests 1 arrays") {
		t.Errorf("builder accepted a tensor rank that does not match the schema: %v", err)
	}
}

func TestEncoderErrors(t *testing.T) {
	s, _ := BuildOutputSchema("P", "", "", []OutputField{{Name: "score", Source: SourceTensor, DType: tensor.Float32}})
	enc, err := NewEncoder(s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = enc.Encode(map[string]any{})
	wantReason(t, err, ReasonEncode)
	_, err = enc.Encode(map[string]any{"score": "high"})
	wantReason(t, err, ReasonEncode)
	_, err = enc.EncodeWire(-1, map[string]any{"score": float32(1)})
	wantReason(t, err, ReasonEncode)
	_, err = enc.EncodeWire(math.MaxInt32+1, map[string]any{"score": float32(1)})
	wantReason(t, err, ReasonEncode)
	if _, err := NewEncoder(`"int"`); err == nil {
		t.Error("NewEncoder accepted a non-record schema")
	}
}

// adaptUnion keeps pass-through working when the writer schema of a record
// differs from the schema the output was built from.
func TestPassThroughAcrossSchemaVersions(t *testing.T) {
	const configured = `{"type":"record","name":"In","fields":[
	  {"name":"a","type":["null","double"]},
	  {"name":"b","type":"double"},
	  {"name":"r","type":["null",{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}]}]}`
	fields := []OutputField{
		{Name: "a", Source: SourcePassthrough},
		{Name: "b", Source: SourcePassthrough},
		{Name: "r", Source: SourcePassthrough},
	}
	s, err := BuildOutputSchema("Out", "kinfer.out", configured, fields)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewOutputBuilder(s, fields)
	enc, _ := NewEncoder(s)
	for _, tc := range []struct {
		name string
		in   map[string]any
	}{
		{"as configured", map[string]any{"a": map[string]any{"double": 1.0}, "b": 2.0, "r": map[string]any{"R": map[string]any{"x": int32(1)}}}},
		// A newer writer made a non-null, b nullable and moved R to a namespace.
		{"evolved", map[string]any{"a": 1.0, "b": map[string]any{"double": 2.0}, "r": map[string]any{"com.x.R": map[string]any{"x": int32(1)}}}},
		{"bare record", map[string]any{"a": nil, "b": 2.0, "r": map[string]any{"x": int32(1)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			native, err := b.Build(tc.in, nil, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := enc.Encode(native); err != nil {
				t.Fatalf("encoding %v: %v", native, err)
			}
		})
	}
}

func TestTensorToNative(t *testing.T) {
	row, err := tensor.Unstack(&tensor.Tensor{DType: tensor.Float32, Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    *tensor.Tensor
		want any
	}{
		{"scalar", &tensor.Tensor{DType: tensor.Float64, Shape: []int64{}, Data: []float64{2.5}}, 2.5},
		{"1D", &tensor.Tensor{DType: tensor.Int32, Shape: []int64{2}, Data: []int32{1, 2}}, []int32{1, 2}},
		{"2D", &tensor.Tensor{DType: tensor.Int64, Shape: []int64{2, 1}, Data: []int64{1, 2}}, []any{[]int64{1}, []int64{2}}},
		{"3D", &tensor.Tensor{DType: tensor.Bool, Shape: []int64{1, 2, 2}, Data: []bool{true, false, false, true}},
			[]any{[]any{[]any{true, false}, []any{false, true}}}},
		{"uint8 widens", &tensor.Tensor{DType: tensor.Uint8, Shape: []int64{1}, Data: []uint8{200}}, []any{int32(200)}},
		{"int8 widens", &tensor.Tensor{DType: tensor.Int8, Shape: []int64{}, Data: []int8{-3}}, int32(-3)},
		{"empty", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{0}, Data: []float32{}}, []float32{}},
		{"empty inner", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{2, 0}, Data: []float32{}}, []any{[]float32{}, []float32{}}},
		{"per-row view", row[1], []float32{3, 4}},
		{"nil", nil, nil},
		{"short data", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3}, Data: []float32{1}}, nil},
		{"negative dim", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{-1}, Data: []float32{1}}, nil},
		{"unknown data", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1}, Data: []string{"x"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TensorToNative(tc.t); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestReasonOf(t *testing.T) {
	if got := ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q", got)
	}
	if got := ReasonOf(errorsNew("plain")); got != "error" {
		t.Errorf("ReasonOf(plain) = %q, want error", got)
	}
	wrapped := fmtErrorf("decoding record at t/0@5: %w", errorf(ReasonNaN, "x"))
	if got := ReasonOf(wrapped); got != ReasonNaN {
		t.Errorf("ReasonOf(wrapped) = %q, want %q", got, ReasonNaN)
	}
}
