package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/tensor"
)

// BatchPoint is a throughput at one batch size.
type BatchPoint struct {
	BatchSize  int     `json:"batch_size"`
	RowsPerSec float64 `json:"rows_per_sec"`
}

// Throughput is a timed run over a fixed number of records.
type Throughput struct {
	Records       int     `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	// CPUMicrosPerRecord is this process's CPU time (user + system, all
	// threads: franz-go, kinfer, ONNX Runtime, the collector) over the
	// timed interval, per record: steadier than records/s on a shared
	// machine, and the broker's CPU is not in it.
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record,omitempty"`
}

// loadONNX opens a model of testdata/models with the handler's defaults,
// as a pipeline step without options gets it.
func loadONNX(ctx context.Context, root, name string, log *slog.Logger) (handlers.ModelHandler, error) {
	return onnx.Load(ctx, onnx.Options{Path: filepath.Join(root, "testdata/models", name, "model.onnx"), Logger: log})
}

// ortJob is one batch shape of a batch size: a step running one batch
// of that shape, its rows, and the share of all rows that get this shape.
type ortJob struct {
	step   func() error
	rows   int
	weight float64
}

// ortCeiling times ONNX Runtime alone on batches built beforehand, for
// each batch size. The text model's cost depends on the padded length, so
// each padding bucket is timed on its own and the time per row weighted
// by the share of rows that land in it (timing a few batches in a row
// would over- or under-represent the long ones). Each figure is the
// median of repeats runs of about dur.
func ortCeiling(ctx context.Context, root string, w *Workload, sizes []int, dur time.Duration, repeats int, log *slog.Logger) ([]BatchPoint, error) {
	var jobsFor func(b int) ([]ortJob, error)
	switch w.Name {
	case "fnn", "fnn-raw":
		m, err := loadONNX(ctx, root, "fnn", log)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		px, err := fnnPixels(root)
		if err != nil {
			return nil, err
		}
		jobsFor = func(b int) ([]ortJob, error) {
			x := make([]float32, 0, b*784)
			for i := range b {
				x = append(x, px[i%len(px)]...)
			}
			in := map[string]*tensor.Tensor{"input": {DType: tensor.Float32, Shape: []int64{int64(b), 784}, Data: x}}
			step := func() error { _, err := m.Infer(ctx, in); return err }
			return []ortJob{{step: step, rows: b, weight: 1}}, nil
		}
	case "text":
		enc, err := loadONNX(ctx, root, "textenc", log)
		if err != nil {
			return nil, err
		}
		defer enc.Close()
		cls, err := loadONNX(ctx, root, "textcls", log)
		if err != nil {
			return nil, err
		}
		defer cls.Close()
		rows := textTokens(4096, 7) // the text workload's records
		jobsFor = func(b int) ([]ortJob, error) {
			// Batches as the engine's batcher forms them from rows in
			// arrival order: per padding bucket, with the mask.
			bt, err := batch.New(batch.Config{MaxSize: b, MaxBytes: 64 << 20, MaskInput: "attention_mask",
				Pad: map[string]batch.PadSpec{"input_ids": {Buckets: []int64{16, 32, 64, 128, 256}}}})
			if err != nil {
				return nil, err
			}
			var all []*batch.Batch
			now := time.Now()
			for i, r := range rows {
				bs, err := bt.Add(now, batch.Item{Inputs: map[string]*tensor.Tensor{"input_ids": {DType: tensor.Int64, Shape: []int64{int64(len(r))}, Data: r}}, Ref: i})
				if err != nil {
					return nil, err
				}
				all = append(all, bs...)
			}
			full := len(all)
			all = append(all, bt.Flush()...)
			// One batch per shape (a full one where there is one), and
			// the share of rows of that shape.
			pick := map[string]*batch.Batch{}
			count := map[string]int{}
			var keys []string
			for i, bb := range all {
				if _, ok := pick[bb.Key]; !ok {
					keys = append(keys, bb.Key)
					pick[bb.Key] = bb
				} else if i < full && pick[bb.Key].Len() < bb.Len() {
					pick[bb.Key] = bb
				}
				count[bb.Key] += bb.Len()
			}
			var jobs []ortJob
			for _, k := range keys {
				bb := pick[k]
				step := func() error {
					out, err := enc.Infer(ctx, bb.Inputs)
					if err != nil {
						return err
					}
					_, err = cls.Infer(ctx, map[string]*tensor.Tensor{"embedding": out["embedding"]})
					return err
				}
				jobs = append(jobs, ortJob{step: step, rows: bb.Len(), weight: float64(count[k]) / float64(len(rows))})
			}
			return jobs, nil
		}
	default:
		return nil, fmt.Errorf("no ONNX Runtime ceiling for workload %q", w.Name)
	}
	var points []BatchPoint
	for _, b := range sizes {
		jobs, err := jobsFor(b)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs { // the first run of each shape allocates
			if err := j.step(); err != nil {
				return nil, fmt.Errorf("%s at batch %d: %w", w.Name, b, err)
			}
		}
		per := dur / time.Duration(len(jobs))
		var rates []float64
		for range max(repeats, 1) {
			secPerRow := 0.0
			for _, j := range jobs {
				runs := 0
				start := time.Now()
				for time.Since(start) < per || runs == 0 {
					if err := j.step(); err != nil {
						return nil, fmt.Errorf("%s at batch %d: %w", w.Name, b, err)
					}
					runs++
				}
				secPerRow += j.weight * time.Since(start).Seconds() / float64(runs*j.rows)
			}
			rates = append(rates, 1/secPerRow)
		}
		points = append(points, BatchPoint{BatchSize: b, RowsPerSec: median(rates)})
	}
	return points, nil
}

// bestPoint is the point with the highest throughput.
func bestPoint(ps []BatchPoint) BatchPoint {
	var best BatchPoint
	for _, p := range ps {
		if p.RowsPerSec > best.RowsPerSec {
			best = p
		}
	}
	return best
}

// passThroughOpts are the client settings of both pass-throughs (the
// throughput ceiling and the latency floor): a group member on in with
// kinfer's fetch sizes and fetch wait and kinfer's default producer
// linger, producing to the partition it consumed from. franz-go's own
// default linger (10ms) would put up to 10ms on the floor that kinfer
// (1ms) does not pay.
func passThroughOpts(group, in string) []kgo.Opt {
	return []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(config.DefaultFetchMaxBytes), kgo.FetchMaxPartitionBytes(config.DefaultFetchMaxPartitionBytes),
		kgo.FetchMaxWait(config.FetchMaxWait), kgo.ProducerLinger(config.DefaultProducerLinger),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}
}

func kafkaPassThrough(ctx context.Context, brokers []string, in, out, group string, n int) (Throughput, error) {
	cl, err := newClient(brokers, append(passThroughOpts(group, in), kgo.DisableAutoCommit())...)
	if err != nil {
		return Throughput{}, err
	}
	defer cl.Close()
	var acked atomic.Int64
	var first time.Time // first records fetched
	var cpu0 time.Duration
	var last atomic.Int64 // unix nanos
	var failed atomic.Pointer[error]
	done := make(chan struct{})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	sent := 0
	for sent < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return Throughput{}, fmt.Errorf("pass-through copied %d of %d: %w", acked.Load(), n, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return Throughput{}, errs[0].Err
		}
		if first.IsZero() && fs.NumRecords() > 0 {
			first, cpu0 = time.Now(), cpuTime()
		}
		fs.EachRecord(func(r *kgo.Record) {
			if sent >= n {
				return
			}
			sent++
			cl.Produce(ctx, &kgo.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
				if acked.Add(1) == int64(n) {
					last.Store(time.Now().UnixNano())
					close(done)
				}
			})
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Throughput{}, fmt.Errorf("pass-through: %d of %d copies acknowledged", acked.Load(), n)
	}
	cpu := cpuTime() - cpu0
	if e := failed.Load(); e != nil {
		return Throughput{}, *e
	}
	secs := time.Unix(0, last.Load()).Sub(first).Seconds()
	return Throughput{Records: n, Seconds: secs, RecordsPerSec: rate(n, secs), CPUMicrosPerRecord: perRecordMicros(cpu, n)}, nil
}

// perRecordMicros is d per record in microseconds.
func perRecordMicros(d time.Duration, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d) / 1e3 / float64(n)
}

// rate is n per secs, 0 for an empty interval.
func rate(n int, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}
