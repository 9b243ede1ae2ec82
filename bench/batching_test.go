// Package bench holds kinfer's benchmarks. batching_test.go compares
// batching strategies on real models through ONNX Runtime, without Kafka:
// one row per call, pad to the longest row of each batch, and shape
// buckets.
package bench

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/internal/repo"
	"github.com/kinfer/kinfer/tensor"
)

func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := repo.Root()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

func loadModel(tb testing.TB, name string) handlers.ModelHandler {
	tb.Helper()
	orttest.Require(tb)
	threads, _ := strconv.Atoi(os.Getenv("KINFER_BENCH_THREADS")) // 0: the handler's default
	h, err := onnx.Load(context.Background(), onnx.Options{Path: filepath.Join(repoRoot(tb), "testdata/models", name, "model.onnx"),
		Copies: benchCopies(), IntraOpThreads: threads, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// seqRows makes n token rows of uniformly random length 1..300.
func seqRows(n int) []map[string]*tensor.Tensor { return seqRowsN(n, 300, 1000) }

// seqRowsN makes n rows of uniformly random length 1..maxLen with token
// ids below vocab.
func seqRowsN(n, maxLen int, vocab int64) []map[string]*tensor.Tensor {
	rng := rand.New(rand.NewPCG(7, 11))
	rows := make([]map[string]*tensor.Tensor, n)
	for i := range rows {
		l := 1 + rng.IntN(maxLen)
		ids := make([]int64, l)
		for j := range ids {
			ids[j] = rng.Int64N(vocab)
		}
		rows[i] = map[string]*tensor.Tensor{"input_ids": {DType: tensor.Int64, Shape: []int64{int64(l)}, Data: ids}}
	}
	return rows
}

func mlpRows(n int) []map[string]*tensor.Tensor {
	rng := rand.New(rand.NewPCG(3, 5))
	rows := make([]map[string]*tensor.Tensor, n)
	for i := range rows {
		x := make([]float32, 784)
		for j := range x {
			x[j] = rng.Float32()
		}
		rows[i] = map[string]*tensor.Tensor{"input": {DType: tensor.Float32, Shape: []int64{784}, Data: x}}
	}
	return rows
}

// buckets16 are sequence buckets every 16 tokens up to 256.
var buckets16 = []int64{16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256}

// buckets32 are sequence buckets every 32 tokens up to 320.
var buckets32 = []int64{32, 64, 96, 128, 160, 192, 224, 256, 288, 320}

// inferer is the part of handlers.ModelHandler that runBatched uses.
type inferer interface {
	Infer(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error)
}

// benchCopies is the number of ONNX Runtime sessions (model.copies) and
// of batches in flight: $KINFER_BENCH_COPIES, default 1.
func benchCopies() int {
	n, _ := strconv.Atoi(os.Getenv("KINFER_BENCH_COPIES"))
	return max(1, n)
}

// runBatched pushes b.N rows (cycling rows) through a batcher and the
// model, as a backlog would, and reports rows/s and the padding ratio (see
// batchedRate).
func runBatched(b *testing.B, model inferer, rows []map[string]*tensor.Tensor, cfg batch.Config) {
	b.ResetTimer()
	rate, pad := batchedRate(b, model, rows, cfg, b.N)
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(pad, "padding-ratio")
}

// batchedRate pushes n rows (cycling rows) through a batcher and the
// model, as a backlog would: full batches leave at once, the rest at the
// end. With KINFER_BENCH_COPIES=c, c batches run at once on c goroutines
// (the model's c sessions) while this one forms the next, as the engine
// does with model.copies. It returns rows/s and the padding ratio.
func batchedRate(tb testing.TB, model inferer, rows []map[string]*tensor.Tensor, cfg batch.Config, n int) (float64, float64) {
	bt, err := batch.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	infer := func(x *batch.Batch) {
		outs, errs := batch.Isolate(ctx, x, model.Infer)
		for _, err := range errs {
			if err != nil {
				tb.Error(err)
			}
		}
		x.Release(outs) // as the engine does: the next batch reuses the buffers
	}
	copies := benchCopies()
	work := make(chan *batch.Batch, copies)
	var wg sync.WaitGroup
	for range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range work {
				infer(x)
			}
		}()
	}
	var padded, total int
	run := func(bs []*batch.Batch) {
		for _, x := range bs {
			padded += x.PaddedElems
			total += x.TotalElems
			work <- x
		}
	}
	now := time.Now()
	start := time.Now()
	for i := range n {
		bs, err := bt.Add(now, batch.Item{Inputs: rows[i%len(rows)], Ref: i})
		if err != nil {
			tb.Fatal(err)
		}
		run(bs)
		if tb.Failed() {
			break
		}
	}
	run(bt.Flush())
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	ratio := 0.0
	if total > 0 {
		ratio = float64(padded) / float64(total)
	}
	return float64(n) / elapsed.Seconds(), ratio
}

// padConfig batches token rows (input_ids) of the sequence models: one
// row a call (maxSize 1), padded to the longest of up to maxSize rows (no
// buckets), or to buckets; with the generated attention_mask and the
// outputs trimmed back to each row's length by trim.
func padConfig(maxSize int, buckets []int64, trim map[string]int) batch.Config {
	cfg := batch.Config{MaxSize: maxSize, Pad: map[string]batch.PadSpec{"input_ids": {Buckets: buckets}}, MaskInput: "attention_mask", TrimAxis: trim}
	if maxSize > 1 {
		cfg.MaxBytes = 64 << 20
	}
	return cfg
}

// BenchmarkBatchingRatio measures seq/buckets128 against seq/batch1 in
// alternating segments on one model session, b.N pairs (run it with
// -benchtime 10x or more): a drift in the machine's speed hits both sides
// of a pair, and the median of the pairs' ratios is the figure the 5x
// target of shape buckets over batch size 1 is checked against.
func BenchmarkBatchingRatio(b *testing.B) {
	seq := seqRows(2048)
	model := loadModel(b, "seqpool")
	trim := map[string]int{"token_scores": 0, "logits": -1}
	one, buckets := padConfig(1, nil, trim), padConfig(128, buckets32, trim)
	batchedRate(b, model, seq, one, 500) // warm up both paths
	batchedRate(b, model, seq, buckets, 2048)
	var ratios, ones, bs []float64
	var pad float64
	b.ResetTimer()
	for i := range b.N {
		var r1, rb float64
		if i%2 == 0 {
			r1, _ = batchedRate(b, model, seq, one, 4000)
			rb, pad = batchedRate(b, model, seq, buckets, 20000)
		} else {
			rb, pad = batchedRate(b, model, seq, buckets, 20000)
			r1, _ = batchedRate(b, model, seq, one, 4000)
		}
		ratios, ones, bs = append(ratios, rb/r1), append(ones, r1), append(bs, rb)
	}
	b.ReportMetric(median(ratios), "median-ratio")
	b.ReportMetric(slices.Min(ratios), "min-ratio")
	b.ReportMetric(slices.Max(ratios), "max-ratio")
	b.ReportMetric(median(ones), "batch1-rows/s")
	b.ReportMetric(median(bs), "buckets128-rows/s")
	b.ReportMetric(pad, "padding-ratio")
}

// BenchmarkBatching compares, in one run, batch size 1, pad-to-longest and
// shape buckets (at most 32 or 128 rows a batch) on variable-length
// sequence models (seqpool: embedding + masked mean pool; seqgru: GRU;
// lengths 1..300; textenc: attention, lengths 1..256) and on a fixed-shape
// MLP (fnn: 784 floats).
func BenchmarkBatching(b *testing.B) {
	seq := seqRows(2048)
	enc := seqRowsN(512, 256, 2000)
	mlp := mlpRows(512)
	// seqgru runs each row for its real length (its sequence_lens come
	// from the mask), on the same rows and outputs as seqpool.
	seqTrim := map[string]int{"token_scores": 0, "logits": -1}
	encTrim := map[string]int{"embedding": -1}
	for _, c := range []struct {
		name, model string
		rows        []map[string]*tensor.Tensor
		cfg         batch.Config
	}{
		{"seq/batch1", "seqpool", seq, padConfig(1, nil, seqTrim)},
		{"seq/pad-to-max", "seqpool", seq, padConfig(32, nil, seqTrim)},
		{"seq/buckets", "seqpool", seq, padConfig(32, buckets32, seqTrim)},
		{"seq/buckets128", "seqpool", seq, padConfig(128, buckets32, seqTrim)},
		{"gru/batch1", "seqgru", seq, padConfig(1, nil, seqTrim)},
		{"gru/pad-to-max", "seqgru", seq, padConfig(32, nil, seqTrim)},
		{"gru/buckets", "seqgru", seq, padConfig(32, buckets32, seqTrim)},
		{"gru/buckets128", "seqgru", seq, padConfig(128, buckets32, seqTrim)},
		{"textenc/batch1", "textenc", enc, padConfig(1, nil, encTrim)},
		{"textenc/pad-to-max", "textenc", enc, padConfig(32, nil, encTrim)},
		{"textenc/buckets", "textenc", enc, padConfig(32, buckets16, encTrim)},
		{"mlp/batch1", "fnn", mlp, batch.Config{MaxSize: 1}},
		{"mlp/batch32", "fnn", mlp, batch.Config{MaxSize: 32, MaxBytes: 64 << 20}},
	} {
		b.Run(c.name, func(b *testing.B) {
			runBatched(b, loadModel(b, c.model), c.rows, c.cfg)
		})
	}
}

// standIn is a model without ONNX Runtime: it checks a batch as every
// handler must (handlers.CheckInputs) and returns fresh outputs of
// seqpool's shapes, as onnxruntime_go's copy of a real model's would be.
type standIn struct{ specs []handlers.TensorSpec }

func (m standIn) Infer(_ context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	n, err := handlers.CheckInputs(m.specs, in)
	if err != nil {
		return nil, err
	}
	seqLen := in["input_ids"].Shape[1]
	return map[string]*tensor.Tensor{
		"logits":       {DType: tensor.Float32, Shape: []int64{int64(n), 4}, Data: make([]float32, n*4)},
		"token_scores": {DType: tensor.Float32, Shape: []int64{int64(n), seqLen}, Data: make([]float32, n*int(seqLen))},
	}, nil
}

// BenchmarkBatchingGoSide is seq/buckets with the model replaced by a
// stand-in: what kinfer's own code (batching, stacking, the input check,
// splitting and trimming) costs per row, without ONNX Runtime's share and
// its noise.
func BenchmarkBatchingGoSide(b *testing.B) {
	seq := seqRows(2048)
	model := standIn{specs: []handlers.TensorSpec{
		{Name: "input_ids", DType: tensor.Int64, Shape: []int64{-1, -1}},
		{Name: "attention_mask", DType: tensor.Int64, Shape: []int64{-1, -1}},
	}}
	b.ReportAllocs()
	runBatched(b, model, seq, padConfig(32, buckets32, map[string]int{"token_scores": 0, "logits": -1}))
}
