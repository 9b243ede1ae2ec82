package batch

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

// BenchmarkAddFixedShape: MNIST-like rows of 784 float32, one shape key.
// ns/op and allocs/op are per row, stacking included (amortized over the
// batch the row leaves in).
func BenchmarkAddFixedShape(b *testing.B) {
	items := make([]Item, 1024)
	for i := range items {
		items[i] = Item{Inputs: map[string]*tensor.Tensor{"pixels": filled(tensor.Float32, []int64{784}, i)}, Ref: i}
	}
	benchAdd(b, Config{}, items)
}

// BenchmarkAddVarLen: token rows of 1..256 ids, bucketed 16..256, with a
// generated attention mask.
func BenchmarkAddVarLen(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	items := make([]Item, 1024)
	for i := range items {
		l := 1 + rng.Int64N(256)
		items[i] = Item{Inputs: map[string]*tensor.Tensor{"input_ids": filled(tensor.Int64, []int64{l}, i)}, Ref: i}
	}
	benchAdd(b, Config{
		MaskInput: "attention_mask",
		Pad:       map[string]PadSpec{"input_ids": {Buckets: []int64{16, 32, 64, 128, 256}}},
	}, items)
}

func benchAdd(b *testing.B, cfg Config, items []Item) {
	bt := mustNew(b, cfg)
	now := t0
	rows := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		ready, err := bt.Add(now, items[i%len(items)])
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range ready {
			rows += x.Len()
		}
		i++
	}
	rows += bt.Pending()
	if rows != i {
		b.Fatalf("%d rows out of %d", rows, i)
	}
}

// BenchmarkIsolateVarLen: un-batching one batch of 32 token rows of
// 1..256 ids (bucket 256) into per-row outputs, logits [4] kept whole and
// per-token scores trimmed to each row's length, through Isolate on a run
// that succeeds. ns/op and allocs/op are per batch.
func BenchmarkIsolateVarLen(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	bt := mustNew(b, Config{
		MaxSize:   32,
		MaskInput: "attention_mask",
		Pad:       map[string]PadSpec{"input_ids": {Buckets: []int64{256}}},
		TrimAxis:  map[string]int{"logits": -1},
	})
	var bs []*Batch
	for i := 0; len(bs) == 0; i++ {
		l := 1 + rng.Int64N(256)
		var err error
		if bs, err = bt.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"input_ids": filled(tensor.Int64, []int64{l}, i)}, Ref: i}); err != nil {
			b.Fatal(err)
		}
	}
	x := bs[0]
	n := int64(x.Len())
	outs := map[string]*tensor.Tensor{
		"logits":       filled(tensor.Float32, []int64{n, 4}, 0),
		"token_scores": filled(tensor.Float32, []int64{n, 256}, 0),
	}
	run := func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) { return outs, nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rows, errs := Isolate(ctx, x, run)
		if errs[0] != nil || len(rows[0]) != 2 {
			b.Fatal(errs[0])
		}
	}
}
