package onnx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/tensor"
)

// gruFixture is testdata/models/seqgru/expected.json: unpadded rows of
// lengths 1..300 and numpy's float64 GRU outputs for each row alone.
type gruFixture struct {
	Inputs struct {
		InputIDs [][]int64 `json:"input_ids"`
	} `json:"inputs"`
	Outputs struct {
		Logits      [][]float64 `json:"logits"`
		TokenScores [][]float64 `json:"token_scores"`
	} `json:"outputs"`
}

// gruTol is the largest |got - want| allowed, against numpy and between a
// row batched and the same row run alone.
const gruTol = 1e-5

func loadGRUFixture(t *testing.T) *gruFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modelDir(t, "seqgru"), "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f gruFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Inputs.InputIDs) == 0 || len(f.Outputs.Logits) != len(f.Inputs.InputIDs) || len(f.Outputs.TokenScores) != len(f.Inputs.InputIDs) {
		t.Fatalf("seqgru/expected.json: %d rows, %d logits, %d token_scores", len(f.Inputs.InputIDs), len(f.Outputs.Logits), len(f.Outputs.TokenScores))
	}
	return &f
}

// The GRU fixture passes the conformance suite with ragged rows: padded
// batches (pad id 0, mask 0) give every row its unbatched result.
func TestSeqGRUConformance(t *testing.T) {
	orttest.Require(t)
	dir := modelDir(t, "seqgru")
	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
		return load(t, onnx.Options{Path: filepath.Join(dir, "model.onnx")})
	}, handlertest.Features{
		Fixture:      filepath.Join(dir, "expected.json"),
		DynamicBatch: true,
		Tolerance:    gruTol,
		Ragged:       true,
	})
}

// gruRow is one test row and what it must predict.
type gruRow struct {
	ids     []int64
	fixture int // index in expected.json, or -1 for a generated row
	logits  []float64
	scores  []float64 // one per token
}

// gruRows makes n rows: every fixture row twice, the rest uniformly random
// lengths 1..300, shuffled, so fixture rows land in batches with others.
func gruRows(fix *gruFixture, n int) []gruRow {
	rng := rand.New(rand.NewPCG(31, 300))
	var rows []gruRow
	for rep := 0; rep < 2; rep++ {
		for i, ids := range fix.Inputs.InputIDs {
			rows = append(rows, gruRow{ids: ids, fixture: i})
		}
	}
	for len(rows) < n {
		ids := make([]int64, 1+rng.IntN(300))
		for j := range ids {
			ids[j] = rng.Int64N(1000)
		}
		rows = append(rows, gruRow{ids: ids, fixture: -1})
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	return rows
}

// Rows of random lengths 1..300 through the GRU classifier: shape-bucketed
// (or pad-to-longest) batches with a generated attention mask predict every
// row as numpy does for the fixture rows and as running the row alone does
// for all of them, within 1e-5, with token_scores trimmed to the row's
// length. The GRU reads its sequence_lens from the mask, so padding cannot
// reach a row's state. Stacking the same rows naively fails.
func TestSeqGRUBatchedRowsMatchRowsAlone(t *testing.T) {
	orttest.Require(t)
	fix := loadGRUFixture(t)
	h := load(t, onnx.Options{Path: modelPath(t, "seqgru"), IntraOpThreads: 1})
	rows := gruRows(fix, 2100)
	ctx := context.Background()

	ids := make([]*tensor.Tensor, len(rows))
	for i, r := range rows {
		ids[i] = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(r.ids))}, Data: r.ids}
	}
	if _, err := tensor.Stack(ids); err == nil || !strings.Contains(err.Error(), "stack expects each tensor to be equal size") {
		t.Fatalf("naive stacking of rows of lengths 1..300: err = %v, want the equal-size error", err)
	}

	// Each row alone, unpadded, mask all ones.
	for i := range rows {
		r := &rows[i]
		l := int64(len(r.ids))
		mask := make([]int64, l)
		for j := range mask {
			mask[j] = 1
		}
		out, err := h.Infer(ctx, map[string]*tensor.Tensor{
			"input_ids":      {DType: tensor.Int64, Shape: []int64{1, l}, Data: r.ids},
			"attention_mask": {DType: tensor.Int64, Shape: []int64{1, l}, Data: mask},
		})
		if err != nil {
			t.Fatalf("row %d alone (length %d): %v", i, l, err)
		}
		r.logits = gruFloats(t, out["logits"], []int64{1, 4})
		r.scores = gruFloats(t, out["token_scores"], []int64{1, l})
		if r.fixture >= 0 {
			where := fmt.Sprintf("row %d alone (fixture row %d, length %d)", i, r.fixture, l)
			gruCompare(t, where+" logits vs numpy", r.logits, fix.Outputs.Logits[r.fixture])
			gruCompare(t, where+" token_scores vs numpy", r.scores, fix.Outputs.TokenScores[r.fixture])
		}
	}

	buckets := []int64{32, 64, 96, 128, 160, 192, 224, 256, 288, 320}
	trim := map[string]int{"token_scores": 0, "logits": -1}
	for _, c := range []struct {
		name string
		cfg  batch.Config
	}{
		{"buckets", batch.Config{MaxSize: 32, Pad: map[string]batch.PadSpec{"input_ids": {Buckets: buckets}}, MaskInput: "attention_mask", TrimAxis: trim}},
		{"buckets/max_size=128", batch.Config{MaxSize: 128, MaxBytes: 64 << 20, Pad: map[string]batch.PadSpec{"input_ids": {Buckets: buckets}}, MaskInput: "attention_mask", TrimAxis: trim}},
		{"pad-to-longest", batch.Config{MaxSize: 32, Pad: map[string]batch.PadSpec{"input_ids": {}}, MaskInput: "attention_mask", TrimAxis: trim}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bt, err := batch.New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]map[string]*tensor.Tensor, len(rows))
			var batches, mixed, padded int
			run := func(bs []*batch.Batch) {
				for _, b := range bs {
					batches++
					padded += b.PaddedElems
					if b.PaddedElems > 0 && b.Len() > 1 {
						mixed++
					}
					outs, errs := batch.Isolate(ctx, b, h.Infer)
					for j, ref := range b.Refs {
						if errs[j] != nil {
							t.Fatalf("batch %s: row %d: %v", b.Key, ref, errs[j])
						}
						got[ref.(int)] = outs[j]
					}
				}
			}
			now := time.Now()
			for i, id := range ids {
				bs, err := bt.Add(now, batch.Item{Inputs: map[string]*tensor.Tensor{"input_ids": id}, Ref: i})
				if err != nil {
					t.Fatalf("Add row %d: %v", i, err)
				}
				run(bs)
			}
			run(bt.Flush())
			if mixed == 0 || padded == 0 {
				t.Fatalf("%d batches, none mixed rows of different lengths: the test would not exercise padding", batches)
			}
			worst := 0.0
			for i, r := range rows {
				out := got[i]
				if out == nil {
					t.Fatalf("row %d got no outputs", i)
				}
				l := int64(len(r.ids))
				where := fmt.Sprintf("row %d (length %d)", i, l)
				lg := gruFloats(t, out["logits"], []int64{4})
				sc := gruFloats(t, out["token_scores"], []int64{l})
				worst = max(worst, gruCompare(t, where+" batched vs alone: logits", lg, r.logits),
					gruCompare(t, where+" batched vs alone: token_scores", sc, r.scores))
				if r.fixture >= 0 {
					gruCompare(t, where+" batched vs numpy: logits", lg, fix.Outputs.Logits[r.fixture])
					gruCompare(t, where+" batched vs numpy: token_scores", sc, fix.Outputs.TokenScores[r.fixture])
				}
			}
			t.Logf("%d rows in %d batches (%d mixed lengths), %d padded elements; max |batched - alone| = %.2g",
				len(rows), batches, mixed, padded, worst)
		})
	}
}

// gruFloats checks t is float32 of the given shape and returns its values.
func gruFloats(t *testing.T, x *tensor.Tensor, shape []int64) []float64 {
	t.Helper()
	if x == nil || x.DType != tensor.Float32 || !slices.Equal(x.Shape, shape) {
		t.Fatalf("output %v, want float32%s", x, tensor.ShapeString(shape))
	}
	d := x.Data.([]float32)
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

// gruCompare fails the test when got and want differ by more than gruTol
// anywhere, and returns the largest difference.
func gruCompare(t *testing.T, what string, got, want []float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(got[i] - want[i])
		if !(d <= gruTol) { // NaN fails too
			t.Fatalf("%s: value %d is %v, want %v (|diff| %.3g > %g)", what, i, got[i], want[i], d, gruTol)
		}
		worst = max(worst, d)
	}
	return worst
}
