package schema

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

// TestRowEncoderMatchesBuildRow: the map-free path writes exactly the
// bytes of BuildRow + Encoder for random predictions, refuses what the
// long way must handle (a failing field, goavro-only schemas, a builder of
// another schema), and the long way still reports the canonical error.
func TestRowEncoderMatchesBuildRow(t *testing.T) {
	const inSchema = `{"type":"record","name":"In","fields":[
		{"name":"id","type":"string"},
		{"name":"user","type":["null","long"]},
		{"name":"tags","type":{"type":"array","items":"string"}},
		{"name":"pixels","type":{"type":"array","items":"float"}}]}`
	fields := []OutputField{
		{Name: "id", Source: SourcePassthrough},
		{Name: "user", Source: SourcePassthrough},
		{Name: "tags", Source: SourcePassthrough},
		{Name: "probs", Source: SourceTensor, From: "cls/probabilities", DType: tensor.Float32, Shape: []int64{-1}},
		{Name: "label", Source: SourceTensor, From: "cls/label", DType: tensor.Int64},
		{Name: "emb", Source: SourceTensor, From: "enc/embedding", DType: tensor.Float64, Shape: []int64{2, 3}},
		{Name: "mask", Source: SourceTensor, From: "enc/mask", DType: tensor.Bool, Shape: []int64{3}},
		{Name: "digit", Source: SourceNative, AvroType: "long"},
		{Name: "model_name", Source: SourceModelName},
		{Name: "model_version", Source: SourceModelVersion},
	}
	_, b, enc := outputOf(t, "Prediction", "t", inSchema, fields)
	re := NewRowEncoder(enc, b)
	if re == nil {
		t.Fatal("no row encoder for a schema of native-safe types")
	}
	if got, want := b.TensorSources(), []string{"cls/probabilities", "cls/label", "enc/embedding", "enc/mask"}; len(got) != len(want) {
		t.Fatalf("TensorSources %v, want %v", got, want)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 500 {
		n := rng.IntN(5)
		probs := make([]float32, n)
		for j := range probs {
			probs[j] = rng.Float32()
		}
		emb := make([]float64, 6)
		for j := range emb {
			emb[j] = rng.NormFloat64()
		}
		outs := map[string]*tensor.Tensor{
			"cls/probabilities": {DType: tensor.Float32, Shape: []int64{int64(n)}, Data: probs},
			"cls/label":         {DType: tensor.Int64, Shape: []int64{}, Data: []int64{rng.Int64N(1000) - 500}},
			"enc/embedding":     {DType: tensor.Float64, Shape: []int64{2, 3}, Data: emb},
			"enc/mask":          {DType: tensor.Bool, Shape: []int64{3}, Data: []bool{rng.IntN(2) == 0, true, false}},
		}
		var user any
		if rng.IntN(2) == 0 {
			user = rng.Int64()
		}
		input := map[string]any{"id": string(rune('a' + i%26)), "user": user, "tags": []any{"x", "yz"}, "pixels": []float32{1, 2}}
		natives := map[string]any{"digit": int64(i)}
		src := RowSources{Input: input, Tensor: func(from string) *tensor.Tensor { return outs[from] }, Natives: natives, ModelName: "m", ModelVersion: "v3"}
		got, ok := re.Append(re.NewBuffer(), &src)
		if !ok {
			t.Fatalf("row %d: the row encoder refused it", i)
		}
		row, err := b.BuildRow(input, outs, natives, "m", "v3")
		if err != nil {
			t.Fatal(err)
		}
		want, err := enc.Encode(row)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("row %d: bytes differ\n got %x\nwant %x", i, got, want)
		}
		// Behind a wire header too.
		wire, _ := appendWireHeader(nil, 7)
		if got, ok := re.Append(wire, &src); !ok || !bytes.Equal(got[WireHeaderSize:], want) {
			t.Fatalf("row %d: after a wire header: %x", i, got)
		}
	}

	// A missing tensor: refused here, and BuildRow names the problem.
	src := RowSources{Input: map[string]any{"id": "a", "user": nil, "tags": []any{}}, Tensor: func(string) *tensor.Tensor { return nil },
		Natives: map[string]any{"digit": int64(1)}}
	if _, ok := re.Append(nil, &src); ok {
		t.Error("a row without its tensors was encoded")
	}
	if _, err := b.BuildRow(src.Input, nil, src.Natives, "", ""); err == nil || ReasonOf(err) != ReasonEncode {
		t.Errorf("BuildRow without tensors: %v", err)
	}
	// A value the encoder does not take itself (an int for a long is
	// fine, a string is not): refused, left to goavro.
	src = RowSources{Input: map[string]any{"id": "a", "user": nil, "tags": []any{}},
		Tensor: func(from string) *tensor.Tensor {
			return map[string]*tensor.Tensor{
				"cls/probabilities": {DType: tensor.Float32, Shape: []int64{0}, Data: []float32{}},
				"cls/label":         {DType: tensor.Int64, Shape: []int64{}, Data: []int64{1}},
				"enc/embedding":     {DType: tensor.Float64, Shape: []int64{2, 3}, Data: make([]float64, 6)},
				"enc/mask":          {DType: tensor.Bool, Shape: []int64{3}, Data: make([]bool, 3)},
			}[from]
		},
		Natives: map[string]any{"digit": "seven"}}
	if _, ok := re.Append(nil, &src); ok {
		t.Error("a string for a long was encoded")
	}

	// No row encoder for another schema's builder, or a goavro-only schema.
	other, err := NewEncoder(`{"type":"record","name":"Other","fields":[{"name":"id","type":"string"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if NewRowEncoder(other, b) != nil {
		t.Error("a row encoder for a builder of another schema")
	}
	_, pb, penc := outputOf(t, "Prediction", "com.acme.out", txnSchema, predictionFields)
	if penc.native && NewRowEncoder(penc, pb) == nil {
		t.Error("no row encoder for a native-safe schema with every field built")
	}
	if !penc.native && NewRowEncoder(penc, pb) != nil {
		t.Error("a row encoder for a schema that goavro must encode")
	}
}
