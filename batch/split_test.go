package batch

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

const poison = 666_666

// pairWidth is the last dim of tokenModel's "pair" output; 7 so that the
// shape rule of Split is never fooled when rows are at least 8 long.
const pairWidth = 7

var errPoison = errors.New("poison token")

// tokenModel is a fake model over ids int64[B,P], feat float32[B,3,P] and
// mask int64[B,P]. Its outputs are per token (tok, pair, featOut), so
// padding must be trimmed off them, or pooled over the real tokens (pooled),
// so the mask must be right. It fails on a real token equal to poison.
func tokenModel(_ context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	ids, feat, mask := in["ids"], in["feat"], in["mask"]
	bsz, p := int(ids.Shape[0]), int(ids.Shape[1])
	idv, fv, mv := ids.Data.([]int64), feat.Data.([]float32), mask.Data.([]int64)
	tok := make([]float32, bsz*p)
	pair := make([]float64, bsz*p*pairWidth)
	pooled := make([]float64, bsz)
	featOut := make([]float32, len(fv))
	for b := range bsz {
		for j := range p {
			i := b*p + j
			if mv[i] == 1 && idv[i] == poison {
				return nil, fmt.Errorf("row %d: %w", b, errPoison)
			}
			tok[i] = float32(2*idv[i] + 1)
			for q := range pairWidth {
				pair[pairWidth*i+q] = float64(idv[i] * int64(q-3))
			}
			pooled[b] += float64(idv[i] * mv[i])
		}
	}
	for i, v := range fv {
		featOut[i] = v * 10
	}
	return map[string]*tensor.Tensor{
		"tok":      {DType: tensor.Float32, Shape: []int64{int64(bsz), int64(p)}, Data: tok},
		"pair":     {DType: tensor.Float64, Shape: []int64{int64(bsz), int64(p), pairWidth}, Data: pair},
		"pooled":   {DType: tensor.Float64, Shape: []int64{int64(bsz), 1}, Data: pooled},
		"feat_out": {DType: tensor.Float32, Shape: []int64{int64(bsz), 3, int64(p)}, Data: featOut},
	}, nil
}

// alone runs the model on one row, unpadded, as a batch of one.
func alone(t testing.TB, row map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	t.Helper()
	l := row["ids"].Shape[0]
	ones := make([]int64, l)
	for i := range ones {
		ones[i] = 1
	}
	in := map[string]*tensor.Tensor{"mask": ints64([]int64{1, l}, ones...)}
	for name, x := range row {
		st, err := tensor.Stack([]*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		in[name] = st
	}
	out, err := tokenModel(context.Background(), in)
	if err != nil {
		return nil, err
	}
	res := map[string]*tensor.Tensor{}
	for name, o := range out {
		rows, err := tensor.Unstack(o)
		if err != nil {
			t.Fatal(err)
		}
		res[name] = rows[0]
	}
	return res, nil
}

func sameTensors(a, b map[string]*tensor.Tensor) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d tensors vs %d", len(a), len(b))
	}
	for name, x := range a {
		y := b[name]
		if y == nil || x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || x.Len() != y.Len() {
			return fmt.Errorf("%s: %v%v vs %v", name, x.DType, x.Shape, y)
		}
		for i := range x.Len() {
			if x.Float64At(i) != y.Float64At(i) {
				return fmt.Errorf("%s[%d]: %v vs %v", name, i, x.Float64At(i), y.Float64At(i))
			}
		}
	}
	return nil
}

type tokenRows struct {
	cfg  Config
	rows []map[string]*tensor.Tensor
}

// randomTokenBatches batches random token rows and returns the batches and
// the rows (indexed by Ref).
func randomTokenBatches(t testing.TB, rng *rand.Rand, poisonRate float64) ([]*Batch, tokenRows) {
	var buckets []int64
	if rng.IntN(2) == 0 {
		buckets = []int64{4, 8, 16, 32, 64}
	}
	// Either name the axes to trim, or rely on Split's shape rule with rows
	// long enough (>= 8) that no other dim of tokenModel's outputs (3 and
	// pairWidth) can equal a padded length.
	var trim map[string]int
	minLen := int64(8)
	if rng.IntN(2) == 0 {
		trim = map[string]int{"tok": 0, "pair": 0, "pooled": -1, "feat_out": 1}
		minLen = 1
	}
	cfg := Config{
		TrimAxis:  trim,
		MaxSize:   1 + rng.IntN(33),
		MaskInput: "mask",
		Pad: map[string]PadSpec{
			"ids":  {Buckets: buckets, Value: float64(rng.IntN(3))},
			"feat": {Axis: 1, Buckets: buckets, Value: -1},
		},
	}
	b := mustNew(t, cfg)
	tr := tokenRows{cfg: cfg}
	var out []*Batch
	for r := range 1 + rng.IntN(120) {
		l := minLen + rng.Int64N(41-minLen)
		ids := filled(tensor.Int64, []int64{l}, r*100)
		if rng.Float64() < poisonRate {
			ids.Data.([]int64)[rng.Int64N(l)] = poison
		}
		row := map[string]*tensor.Tensor{"ids": ids, "feat": filled(tensor.Float32, []int64{3, l}, r*1000)}
		tr.rows = append(tr.rows, row)
		ready, err := b.Add(t0, Item{Inputs: row, Ref: r})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ready...)
	}
	return append(out, b.Flush()...), tr
}

// Split gives each row exactly what running it alone gives.
func TestPropertySplitMatchesRowAlone(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 300 {
		batches, tr := randomTokenBatches(t, rng, 0)
		for _, bt := range batches {
			res, err := tokenModel(context.Background(), bt.Inputs)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := bt.Split(res)
			if err != nil {
				t.Fatalf("iter %d: Split: %v", iter, err)
			}
			if len(rows) != len(bt.Refs) {
				t.Fatalf("iter %d: Split gave %d rows for %d", iter, len(rows), len(bt.Refs))
			}
			for i, ref := range bt.Refs {
				want, _ := alone(t, tr.rows[ref.(int)])
				if err := sameTensors(rows[i], want); err != nil {
					t.Fatalf("iter %d: batch %s row %d differs from running it alone: %v", iter, bt.Key, i, err)
				}
			}
		}
	}
}

func TestSplitTable(t *testing.T) {
	b := mustNew(t, Config{Pad: map[string]PadSpec{"x": {Buckets: []int64{4}}}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"x": seq(1, 2)}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"x": seq(3, 4, 5)}})
	bt := b.Flush()[0]
	tests := []struct {
		name    string
		outputs map[string]*tensor.Tensor
		want    [][]int64 // per row, the data of output "y"
		shapes  [][]int64
		wantErr string
	}{
		{"per token trimmed", map[string]*tensor.Tensor{"y": ints64([]int64{2, 4}, 1, 2, 0, 0, 3, 4, 5, 0)},
			[][]int64{{1, 2}, {3, 4, 5}}, [][]int64{{2}, {3}}, ""},
		{"no padded axis", map[string]*tensor.Tensor{"y": ints64([]int64{2, 3}, 1, 2, 3, 4, 5, 6)},
			[][]int64{{1, 2, 3}, {4, 5, 6}}, [][]int64{{3}, {3}}, ""},
		{"padded length off the pad axis is kept", map[string]*tensor.Tensor{"y": ints64([]int64{2, 1, 4}, 1, 2, 3, 4, 5, 6, 7, 8)},
			[][]int64{{1, 2, 3, 4}, {5, 6, 7, 8}}, [][]int64{{1, 4}, {1, 4}}, ""},
		{"wrong batch dim", map[string]*tensor.Tensor{"y": seq(1, 2, 3)}, nil, nil, "want leading dim 2"},
		{"scalar output", map[string]*tensor.Tensor{"y": ints64(nil, 1)}, nil, nil, "want leading dim 2"},
		{"nil output", map[string]*tensor.Tensor{"y": nil}, nil, nil, "nil tensor"},
		{"inconsistent output", map[string]*tensor.Tensor{"y": ints64([]int64{2, 2}, 1)}, nil, nil, "needs 4 elements"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := bt.Split(tc.outputs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Split: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for r := range rows {
				y := rows[r]["y"]
				if !slices.Equal(y.Data.([]int64), tc.want[r]) || !slices.Equal(y.Shape, tc.shapes[r]) {
					t.Fatalf("row %d: %v%v, want %v%v", r, y.Shape, y.Data, tc.shapes[r], tc.want[r])
				}
			}
		})
	}
}

func TestMaskTable(t *testing.T) {
	tests := []struct {
		name string
		pad  PadSpec
		lens []int64
		want [][]int64
	}{
		{"buckets", PadSpec{Buckets: []int64{2, 4}}, []int64{3, 4, 3},
			[][]int64{{1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0}}},
		{"longest", PadSpec{}, []int64{3, 1, 0},
			[][]int64{{1, 1, 1, 1, 0, 0, 0, 0, 0}}},
		{"truncated", PadSpec{Buckets: []int64{2}, Truncate: true}, []int64{5, 1},
			[][]int64{{1, 1, 1, 0}}},
		{"two buckets", PadSpec{Buckets: []int64{1, 2}}, []int64{2, 1, 2},
			[][]int64{{1, 1, 1, 1}, {1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, Config{MaskInput: "attention_mask", Pad: map[string]PadSpec{"input_ids": tc.pad}})
			for _, l := range tc.lens {
				if _, err := b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"input_ids": filled(tensor.Int64, []int64{l}, 1)}}); err != nil {
					t.Fatal(err)
				}
			}
			bs := b.Flush()
			if len(bs) != len(tc.want) {
				t.Fatalf("%d batches, want %d", len(bs), len(tc.want))
			}
			for i, bt := range bs {
				if got := bt.Inputs["attention_mask"].Data.([]int64); !slices.Equal(got, tc.want[i]) {
					t.Fatalf("batch %d mask %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

// Isolate finds exactly the poison rows, gives every other row what running
// it alone gives, and runs the model at most 1 + 2k*ceil(log2 n) times.
func TestPropertyIsolate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := range 300 {
		rate := []float64{0, 0.02, 0.1, 0.5, 1}[rng.IntN(5)]
		batches, tr := randomTokenBatches(t, rng, rate)
		for _, bt := range batches {
			calls := 0
			run := func(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
				calls++
				return tokenModel(ctx, in)
			}
			outs, errs := Isolate(context.Background(), bt, run)
			n, k := bt.Len(), 0
			for i, ref := range bt.Refs {
				want, werr := alone(t, tr.rows[ref.(int)])
				if werr != nil {
					k++
					if !errors.Is(errs[i], errPoison) || outs[i] != nil {
						t.Fatalf("iter %d: poison row %d: err %v, outs %v", iter, i, errs[i], outs[i] != nil)
					}
					continue
				}
				if errs[i] != nil {
					t.Fatalf("iter %d: healthy row %d failed: %v", iter, i, errs[i])
				}
				if err := sameTensors(outs[i], want); err != nil {
					t.Fatalf("iter %d: row %d differs from running it alone: %v", iter, i, err)
				}
			}
			bound := 1 + 2*k*bits.Len(uint(n-1)) // bits.Len(n-1) = ceil(log2 n)
			if calls > bound {
				t.Fatalf("iter %d: %d runs for %d rows with %d poison, want <= %d", iter, calls, n, k, bound)
			}
			if k == 0 && calls != 1 {
				t.Fatalf("iter %d: %d runs for a healthy batch", iter, calls)
			}
		}
	}
}

func TestIsolateEdges(t *testing.T) {
	mk := func(n int, poisoned ...int) *Batch {
		b := mustNew(t, Config{MaxSize: n, MaskInput: "mask", Pad: map[string]PadSpec{"ids": {}, "feat": {Axis: 1}},
			TrimAxis: map[string]int{"tok": 0, "pair": 0, "pooled": -1, "feat_out": 1}})
		var out []*Batch
		for r := range n {
			ids := filled(tensor.Int64, []int64{int64(1 + r%3)}, r)
			if slices.Contains(poisoned, r) {
				ids.Data.([]int64)[0] = poison
			}
			ready, _ := b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"ids": ids, "feat": filled(tensor.Float32, []int64{3, int64(1 + r%3)}, r)}, Ref: r})
			out = append(out, ready...)
		}
		if len(out) != 1 {
			t.Fatalf("want one full batch")
		}
		return out[0]
	}
	t.Run("panic is an error of the rows", func(t *testing.T) {
		run := func(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			out, err := tokenModel(ctx, in)
			if err != nil {
				panic(err)
			}
			return out, nil
		}
		_, errs := Isolate(context.Background(), mk(8, 3), run)
		for i, err := range errs {
			if (i == 3) != (err != nil) || i == 3 && !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("row %d: err %v", i, err)
			}
		}
	})
	t.Run("cancelled context stops bisecting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		run := func(ctx context.Context, _ map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			calls++
			cancel()
			return nil, ctx.Err()
		}
		_, errs := Isolate(ctx, mk(8), run)
		if calls != 1 {
			t.Fatalf("%d runs, want 1", calls)
		}
		for i, err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("row %d: err %v, want context.Canceled", i, err)
			}
		}
	})
	t.Run("outputs that cannot be split fail all rows at once", func(t *testing.T) {
		calls := 0
		run := func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			calls++
			return map[string]*tensor.Tensor{"y": seq(1)}, nil
		}
		_, errs := Isolate(context.Background(), mk(4), run)
		if calls != 1 {
			t.Fatalf("%d runs, want 1", calls)
		}
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "leading dim") {
				t.Fatalf("row %d: err %v", i, err)
			}
		}
	})
	t.Run("sub-batches carry the mask", func(t *testing.T) {
		var sizes []int64
		run := func(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			m := in["mask"]
			if m == nil || m.Shape[0] != in["ids"].Shape[0] || m.Shape[1] != in["ids"].Shape[1] {
				t.Fatalf("sub-batch mask %v for ids %v", m, in["ids"].Shape)
			}
			sizes = append(sizes, m.Shape[0])
			return tokenModel(ctx, in)
		}
		_, errs := Isolate(context.Background(), mk(5, 4), run)
		if !slices.Equal(sizes, []int64{5, 2, 3, 1, 2, 1, 1}) || errs[4] == nil {
			t.Fatalf("runs of sizes %v, errs %v", sizes, errs)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		outs, errs := Isolate(context.Background(), &Batch{}, func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			t.Fatal("run called for an empty batch")
			return nil, nil
		})
		if len(outs) != 0 || len(errs) != 0 {
			t.Fatal("results for an empty batch")
		}
	})
}

func TestSplitTrimAxis(t *testing.T) {
	// Two padded inputs on different axes, padded to 2: an output of
	// per-row shape [2,2] could carry either.
	b := mustNew(t, Config{MaskInput: "mask", Pad: map[string]PadSpec{"a": {}, "b": {Axis: 1}}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(1, 2), "b": ints64([]int64{1, 2}, 1, 2)}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(3), "b": ints64([]int64{1, 1}, 3)}})
	bt := b.Flush()[0]
	out := map[string]*tensor.Tensor{"y": ints64([]int64{2, 2, 2}, 1, 2, 3, 4, 5, 6, 7, 8)}
	if _, err := bt.Split(out); err == nil || !strings.Contains(err.Error(), `set Config.TrimAxis["y"]`) {
		t.Fatalf("Split of an ambiguous output: err = %v, want one asking for TrimAxis", err)
	}
	for _, tc := range []struct {
		axis int
		want [][]int64
	}{
		{0, [][]int64{{1, 2, 3, 4}, {5, 6}}},
		{1, [][]int64{{1, 2, 3, 4}, {5, 7}}},
		{-1, [][]int64{{1, 2, 3, 4}, {5, 6, 7, 8}}},
	} {
		b := mustNew(t, Config{MaskInput: "mask", TrimAxis: map[string]int{"y": tc.axis}, Pad: map[string]PadSpec{"a": {}, "b": {Axis: 1}}})
		b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(1, 2), "b": ints64([]int64{1, 2}, 1, 2)}})
		b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(3), "b": ints64([]int64{1, 1}, 3)}})
		rows, err := b.Flush()[0].Split(out)
		if err != nil {
			t.Fatalf("TrimAxis %d: %v", tc.axis, err)
		}
		for r, want := range tc.want {
			if got := rows[r]["y"].Data.([]int64); !slices.Equal(got, want) {
				t.Fatalf("TrimAxis %d: row %d = %v, want %v", tc.axis, r, got, want)
			}
		}
	}
	// When no row is shorter than the padded length there is nothing to
	// trim, so nothing is ambiguous.
	b = mustNew(t, Config{MaskInput: "mask", Pad: map[string]PadSpec{"a": {}, "b": {Axis: 1}}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(1, 2), "b": ints64([]int64{1, 2}, 1, 2)}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(3, 4), "b": ints64([]int64{1, 2}, 3, 4)}})
	if _, err := b.Flush()[0].Split(out); err != nil {
		t.Fatalf("Split with every row full length: %v", err)
	}
	// A TrimAxis that does not fit the output is an error, not a guess.
	b = mustNew(t, Config{TrimAxis: map[string]int{"y": 1}, Pad: map[string]PadSpec{"a": {}}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(1, 2)}})
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"a": seq(3)}})
	if _, err := b.Flush()[0].Split(map[string]*tensor.Tensor{"y": ints64([]int64{2, 2}, 1, 2, 3, 4)}); err == nil {
		t.Fatal("Split with TrimAxis past the rank: no error")
	}
}
