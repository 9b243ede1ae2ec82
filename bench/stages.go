package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

// Stage names, in pipeline order.
const (
	StageFetch     = "fetch"
	StageDecode    = "decode (Avro → native)"
	StageMap       = "decode (native → tensors)"
	StageTransform = "transform"
	StageBatch     = "batch (add, stack, no-op infer, split)"
	StageEncode    = "encode (prediction → Avro)"
	StageProduce   = "produce"
)

// StageCost is one stage's cost per record.
type StageCost struct {
	Stage string `json:"stage"`
	Cost
	// InPath is false for a stage the engine does not run today (the
	// transform stage is timed on its own, as an estimate).
	InPath bool   `json:"in_path"`
	Note   string `json:"note,omitempty"`
}

// StageSplit is the per-record cost of every stage for one record type,
// and of the engine alone (decode to encode with a no-op model and sink,
// every goroutine, channel and the reorder buffer included).
type StageSplit struct {
	Record     string      `json:"record"`
	ValueBytes int         `json:"value_bytes"`
	Records    int         `json:"records_per_repeat"`
	Repeats    int         `json:"repeats"`
	Stages     []StageCost `json:"stages"`
	// Engine is the engine alone; Overhead is Engine minus its stages
	// (decode, map, batch, encode): goroutines, channels, reorder, commit
	// tracking.
	Engine   Cost `json:"engine"`
	Overhead Cost `json:"engine_overhead"`
	// Costliest is the stage in the path with the most CPU per record.
	Costliest string `json:"costliest"`
	// PathCPUNsPerRecord is fetch + engine + produce (the engine's stages
	// if they add up to more): the CPU one record costs a kinfer process
	// apart from the model.
	PathCPUNsPerRecord float64 `json:"path_cpu_ns_per_record"`
}

// stageCase is a record type the stage split runs.
type stageCase struct {
	w         *Workload
	model     *noopModel
	mapping   []schema.InputMapping
	transform *transform.Config
	note      string
}

func smallWorkload(n int) (*Workload, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	natives := make([]map[string]any, n)
	for i := range natives {
		natives[i] = map[string]any{
			"id": int64(i), "amount": rng.Float64() * 500, "risk": rng.Float32(), "distance": rng.Float32() * 100,
			"hour": int32(rng.IntN(24)), "count_1h": int32(rng.IntN(20)), "age_days": int32(rng.IntN(3000)),
			"foreign": int32(rng.IntN(2)), "avg_30d": rng.Float64() * 300, "score": rng.Int64N(1000),
		}
	}
	values, err := encodeAll(smallSchema, natives)
	return &Workload{Name: "small", Schema: smallSchema, values: values,
		Description: "10 scalar fields (id + 9 features of Avro double, float, int, long) -> features float32[9]",
		Models: `model:
  name: small
  path: noop.onnx
  inputs: [{tensor: features, fields: [amount, risk, distance, hour, count_1h, age_days, foreign, avg_30d, score], dtype: float32}]
`}, err
}

func stageCases(root string) ([]stageCase, error) {
	small, err := smallWorkload(256)
	if err != nil {
		return nil, err
	}
	fnnArr, err := FNNWorkload(root, false)
	if err != nil {
		return nil, err
	}
	fnnRaw, err := FNNWorkload(root, true)
	if err != nil {
		return nil, err
	}
	fnnModel := &noopModel{name: "fnn",
		inputs:  []handlers.TensorSpec{{Name: "input", DType: tensor.Float32, Shape: []int64{-1, 784}}},
		outputs: []handlers.TensorSpec{{Name: "label", DType: tensor.Int64, Shape: []int64{-1}}, {Name: "probabilities", DType: tensor.Float32, Shape: []int64{-1, 10}}}}
	smallModel := &noopModel{name: "small",
		inputs:  []handlers.TensorSpec{{Name: "features", DType: tensor.Float32, Shape: []int64{-1, 9}}},
		outputs: []handlers.TensorSpec{{Name: "probabilities", DType: tensor.Float32, Shape: []int64{-1, 2}}}}
	zOut := make([]string, len(smallFeatures))
	for i, f := range smallFeatures {
		zOut[i] = f + "_z"
	}
	return []stageCase{
		{w: small, model: smallModel,
			mapping:   []schema.InputMapping{{Tensor: "features", Fields: smallFeatures, DType: tensor.Float32, Shape: []int64{9}}},
			transform: &transform.Config{Stages: []transform.StageConfig{{Type: transform.TypeScaleToZScore, Fields: smallFeatures, Outputs: zOut}}},
			note:      "scale_to_z_score of the 9 features"},
		{w: fnnArr, model: fnnModel,
			mapping:   []schema.InputMapping{{Tensor: "input", Fields: []string{"pixels"}, DType: tensor.Float32, Shape: []int64{784}}},
			transform: &transform.Config{Stages: []transform.StageConfig{{Type: transform.TypeScaleTo01, Fields: []string{"pixels"}, Outputs: []string{"pixels_01"}}}},
			note:      "scale_to_0_1 of the 784 pixels"},
		{w: fnnRaw, model: fnnModel,
			mapping: []schema.InputMapping{{Tensor: "input", Fields: []string{"pixels"}, Encoding: schema.EncodingRaw, DType: tensor.Float32, Shape: []int64{784}}},
			note:    "raw tensor bytes skip the transform stages (they read native values)"},
	}, nil
}

// stageEnv is what the stage split needs from the run.
type stageEnv struct {
	brokers    []string
	dir        string
	partitions int
	records    int
	repeats    int
	prefix     string
}

// runStageSplit measures every stage of c, and the engine alone.
func runStageSplit(ctx context.Context, env stageEnv, c stageCase) (*StageSplit, error) {
	w := c.w
	sp := &StageSplit{Record: stageRecordName(w.Name), ValueBytes: w.ValueBytes(), Records: env.records, Repeats: env.repeats}
	schemaFile, err := writeSchema(env.dir, "stage-"+w.Name, w.Schema)
	if err != nil {
		return nil, err
	}
	out, dlq := env.prefix+"-stage-"+w.Name+"-out", env.prefix+"-stage-"+w.Name+"-dlq"
	in := env.prefix + "-stage-" + w.Name + "-in"
	yaml := w.pipelineYAML("", schemaFile, env.brokers, env.prefix+"-stage", in, out, dlq, 64, 5)
	p, err := buildPipeline(ctx, env.dir, "stage-"+w.Name+".yaml", yaml, noopLoader(c.model))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	n := env.records
	k := len(w.values)

	// Decoded rows, outputs and predictions of the distinct values, the
	// inputs of the later stages.
	bg := context.Background()
	decoded := make([]processor.Decoded, k)
	for i := range k {
		if decoded[i], err = p.Codec.Decode(bg, &kgo.Record{Value: w.values[i]}); err != nil {
			return nil, fmt.Errorf("decoding %s value %d: %w", w.Name, i, err)
		}
	}
	step := p.Steps[0]

	add := func(name string, inPath bool, note string, run func() (int, error)) error {
		cost, err := measure(env.repeats, run)
		if err != nil {
			return fmt.Errorf("%s: stage %s: %w", w.Name, name, err)
		}
		sp.Stages = append(sp.Stages, StageCost{Stage: name, Cost: cost, InPath: inPath, Note: note})
		return nil
	}

	// fetch: a new consumer reading the preloaded records from the start,
	// with kinfer's fetch sizes (its set-up is part of the cost, spread
	// over the records).
	if err := createTopics(ctx, env.brokers, env.partitions, in, out, dlq); err != nil {
		return nil, err
	}
	defer deleteTopics(env.brokers, in, out, dlq)
	if err := preload(ctx, env.brokers, in, w, n); err != nil {
		return nil, err
	}
	err = add(StageFetch, true, "franz-go consumer, kinfer's fetch sizes, snappy batches (franz-go's default); client side only", func() (int, error) {
		cons, err := newClient(env.brokers, kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(config.DefaultFetchMaxBytes), kgo.FetchMaxPartitionBytes(config.DefaultFetchMaxPartitionBytes),
			kgo.FetchMaxWait(config.FetchMaxWait))
		if err != nil {
			return 0, err
		}
		defer cons.Close()
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		got := 0
		for got < n {
			fs := cons.PollFetches(fctx)
			if err := fctx.Err(); err != nil {
				return 0, fmt.Errorf("fetched %d of %d records: %w", got, n, err)
			}
			if errs := fs.Errors(); len(errs) > 0 {
				return 0, errs[0].Err
			}
			got += fs.NumRecords()
		}
		return got, nil
	})
	if err != nil {
		return nil, err
	}

	dec, err := schema.NewFileDecoder(w.Schema)
	if err != nil {
		return nil, err
	}
	if err := add(StageDecode, true, "Avro binary to native form (numeric arrays as typed slices)", func() (int, error) {
		for i := range n {
			if _, err := dec.Decode(bg, w.values[i%k]); err != nil {
				return 0, err
			}
		}
		return n, nil
	}); err != nil {
		return nil, err
	}

	natives := make([]map[string]any, k)
	for i := range k {
		r, err := dec.Decode(bg, w.values[i])
		if err != nil {
			return nil, err
		}
		natives[i] = r.Native
	}
	mapper, err := schema.NewMapper(w.Schema, c.mapping)
	if err != nil {
		return nil, err
	}
	if err := add(StageMap, true, "fields to named tensors", func() (int, error) {
		for i := range n {
			if _, err := mapper.Map(natives[i%k]); err != nil {
				return 0, err
			}
		}
		return n, nil
	}); err != nil {
		return nil, err
	}

	if c.transform != nil {
		tp, err := transform.New(*c.transform)
		if err != nil {
			return nil, err
		}
		arts, err := tp.Fit(bg, func(_ context.Context, observe func(map[string]any) error) error {
			for _, r := range natives {
				if err := observe(cloneRow(r)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if tp, err = tp.Bind(arts); err != nil {
			return nil, err
		}
		rows := make([]map[string]any, k)
		for i := range k {
			rows[i] = cloneRow(natives[i])
		}
		if err := add(StageTransform, false, c.note+"; transform.Pipeline.Apply alone (the benchmark pipelines have no transform stage)", func() (int, error) {
			for i := range n {
				if err := tp.Apply(rows[i%k]); err != nil {
					return 0, err
				}
			}
			return n, nil
		}); err != nil {
			return nil, err
		}
	} else {
		sp.Stages = append(sp.Stages, StageCost{Stage: StageTransform, Note: c.note})
	}

	// batch: the step's batcher, and the no-op model through batch.Isolate
	// (stack, run, split), as the engine's infer workers do.
	var rowOuts []map[string]*tensor.Tensor
	if err := add(StageBatch, true, fmt.Sprintf("max_size %d", step.Batch.MaxSize), func() (int, error) {
		bt, err := batch.New(step.Batch)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		run := func(bs []*batch.Batch) error {
			for _, b := range bs {
				outs, errs := batch.Isolate(bg, b, c.model.Infer)
				if err := errors.Join(errs...); err != nil {
					return err
				}
				if rowOuts == nil {
					rowOuts = outs
				}
				b.Release(outs) // as the engine does
			}
			return nil
		}
		for i := range n {
			bs, err := bt.Add(now, batch.Item{Inputs: decoded[i%k].Inputs, Ref: i})
			if err != nil {
				return 0, err
			}
			if err := run(bs); err != nil {
				return 0, err
			}
		}
		return n, run(bt.Flush())
	}); err != nil {
		return nil, err
	}

	info := []processor.ModelInfo{{Name: c.model.name, Version: c.model.Version()}}
	predictions := make([][]byte, k)
	for i := range k {
		res := processor.Result{Outputs: []map[string]*tensor.Tensor{rowOuts[i%len(rowOuts)]}, Models: info}
		if predictions[i], err = p.Codec.Encode(bg, decoded[i], res); err != nil {
			return nil, err
		}
	}
	if err := add(StageEncode, true, "pass-through id, outputs, model name and version", func() (int, error) {
		for i := range n {
			res := processor.Result{Outputs: []map[string]*tensor.Tensor{rowOuts[i%len(rowOuts)]}, Models: info}
			if _, err := p.Codec.Encode(bg, decoded[i%k], res); err != nil {
				return 0, err
			}
		}
		return n, nil
	}); err != nil {
		return nil, err
	}

	// produce: predictions with kinfer's five headers, kinfer's client
	// defaults, until every record is acknowledged.
	prod, err := newClient(env.brokers, kgo.ProducerLinger(config.DefaultProducerLinger))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	if err := add(StageProduce, true, fmt.Sprintf("franz-go producer, kinfer's client defaults (snappy, %s linger), until acknowledged; client side only", config.DefaultProducerLinger), func() (int, error) {
		var failed atomic.Pointer[error]
		for i := range n {
			h := []kgo.RecordHeader{
				{Key: processor.HeaderSourceTopic, Value: []byte(in)},
				{Key: processor.HeaderSourcePartition, Value: []byte(strconv.Itoa(i % env.partitions))},
				{Key: processor.HeaderSourceOffset, Value: []byte(strconv.Itoa(i))},
				{Key: processor.HeaderModel, Value: []byte(c.model.name)},
				{Key: processor.HeaderModelVersion, Value: []byte("noop")},
			}
			prod.Produce(ctx, &kgo.Record{Topic: out, Key: []byte("k" + strconv.Itoa(i)), Value: predictions[i%k], Headers: h}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			})
		}
		if err := prod.Flush(ctx); err != nil {
			return 0, err
		}
		if e := failed.Load(); e != nil {
			return 0, *e
		}
		return n, nil
	}); err != nil {
		return nil, err
	}

	// The engine alone: records submitted straight to it over the
	// partitions' lanes, a no-op model, a sink that acknowledges at once.
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: in, Partition: int32(i % env.partitions), Offset: int64(i / env.partitions),
			Key: []byte("k" + strconv.Itoa(i)), Value: w.values[i%k], Timestamp: time.Now()}
	}
	sp.Engine, err = measure(env.repeats, func() (int, error) { return runEngine(ctx, p, recs, env.partitions, dlq) })
	if err != nil {
		return nil, fmt.Errorf("%s: engine: %w", w.Name, err)
	}
	sp.finish()
	return sp, nil
}

// stageRecordName names the record types in the report.
func stageRecordName(w string) string {
	switch w {
	case "fnn":
		return "fnn-array"
	default:
		return w
	}
}

func cloneRow(r map[string]any) map[string]any {
	out := make(map[string]any, len(r)+16)
	for k, v := range r {
		out[k] = v
	}
	return out
}

// ackSink acknowledges every record at once and counts them.
type ackSink struct {
	dlq    string
	n      atomic.Int64
	dead   atomic.Int64
	target int64
	done   chan struct{}
}

func (s *ackSink) Write(_ context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	if rec.Topic == s.dlq {
		s.dead.Add(1)
	}
	done(rec, nil)
	if s.n.Add(1) == s.target {
		close(s.done)
	}
}

// runEngine pushes recs through a fresh engine of p into an ackSink and
// waits until every record is acknowledged.
func runEngine(ctx context.Context, p *processor.Pipeline, recs []*kgo.Record, partitions int, dlq string) (int, error) {
	sink := &ackSink{dlq: dlq, target: int64(len(recs)), done: make(chan struct{})}
	eng, err := processor.NewPipelineEngine(p, sink, processor.NewMetrics(nil), quietLogger(nil))
	if err != nil {
		return 0, err
	}
	feeders := make([]*processor.Feeder, partitions)
	for i := range feeders {
		feeders[i] = processor.NewFeeder(eng, recs[0].Topic, int32(i))
	}
	// As a fetch hands them over: a window of records, each partition's
	// share in one go.
	const window = 1024
	byPart := make([][]*kgo.Record, partitions)
	for from := 0; from < len(recs); from += window {
		for _, r := range recs[from:min(from+window, len(recs))] {
			byPart[r.Partition] = append(byPart[r.Partition], r)
		}
		for p, rs := range byPart {
			if n, err := feeders[p].SubmitAll(ctx, rs); n != len(rs) || err != nil {
				eng.Close()
				return 0, fmt.Errorf("submit refused after %d of %d: %v", n, len(rs), err)
			}
			byPart[p] = rs[:0]
		}
	}
	select {
	case <-sink.done:
	case <-time.After(2 * time.Minute):
		eng.Close()
		return 0, fmt.Errorf("engine acknowledged %d of %d records", sink.n.Load(), len(recs))
	}
	eng.Close()
	if d := sink.dead.Load(); d > 0 {
		return 0, fmt.Errorf("%d records dead-lettered", d)
	}
	return len(recs), nil
}

// finish derives the overhead, the costliest stage and the path total.
func (sp *StageSplit) finish() {
	sum := Cost{}
	var fetch, produce float64
	best := -1.0
	for _, s := range sp.Stages {
		if !s.InPath {
			continue
		}
		switch s.Stage {
		case StageFetch:
			fetch = s.CPUNsPerRecord
		case StageProduce:
			produce = s.CPUNsPerRecord
		default:
			sum.CPUNsPerRecord += s.CPUNsPerRecord
			sum.WallNsPerRecord += s.WallNsPerRecord
			sum.AllocsPerRecord += s.AllocsPerRecord
			sum.BytesPerRecord += s.BytesPerRecord
		}
		if s.CPUNsPerRecord > best {
			best, sp.Costliest = s.CPUNsPerRecord, s.Stage
		}
	}
	sp.Overhead = Cost{
		CPUNsPerRecord:  sp.Engine.CPUNsPerRecord - sum.CPUNsPerRecord,
		WallNsPerRecord: sp.Engine.WallNsPerRecord - sum.WallNsPerRecord,
		AllocsPerRecord: sp.Engine.AllocsPerRecord - sum.AllocsPerRecord,
		BytesPerRecord:  sp.Engine.BytesPerRecord - sum.BytesPerRecord,
	}
	if sp.Overhead.CPUNsPerRecord > best {
		sp.Costliest = "engine overhead (goroutines, channels, reorder, tracking)"
	}
	// The engine alone and its stages are measured apart; where noise
	// makes the stages add up to more than the engine, count the stages.
	sp.PathCPUNsPerRecord = fetch + max(sp.Engine.CPUNsPerRecord, sum.CPUNsPerRecord) + produce
}
