package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// Sustained is kinfer working off a backlog: records per second from the
// first record taken to the last acknowledged prediction.
type Sustained struct {
	BatchSize  int     `json:"batch_size"`
	MaxDelayMs float64 `json:"max_delay_ms"`
	Throughput
	// StartupSeconds is from RunStream's start to the first record taken
	// (group join, first fetch); FirstOutputMs from then to the first
	// acknowledged prediction.
	StartupSeconds float64 `json:"startup_seconds"`
	FirstOutputMs  float64 `json:"first_output_ms"`
	// Rounds are the records per second of every run at this batch size
	// (the figures above are the median run's).
	Rounds      []float64 `json:"rounds,omitempty"`
	DeadLetters int64     `json:"dead_letters"`
	// PassThroughBefore is the Kafka pass-through's records/s in the run
	// right before this one; PairedRatios are every run's records/s over
	// that (on the median run).
	PassThroughBefore float64   `json:"pass_through_before,omitempty"`
	PairedRatios      []float64 `json:"paired_ratios,omitempty"`
}

// e2eEnv is what the end-to-end runs need from the harness.
type e2eEnv struct {
	root       string
	brokers    []string
	dir        string
	partitions int
	prefix     string
	log        *slog.Logger
	seq        *atomic.Int64
}

func (e e2eEnv) name(parts ...string) string {
	s := fmt.Sprintf("%s-%d", e.prefix, e.seq.Add(1))
	for _, p := range parts {
		s += "-" + p
	}
	return s
}

// sumCounters adds up every series of a counter vector.
func sumCounters(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil && d.Counter != nil {
			sum += d.Counter.GetValue()
		}
	}
	return sum
}

// stream is one in-process `kinfer run` (processor.RunStream) of a
// workload's pipeline.
type stream struct {
	p       *processor.Pipeline
	m       *processor.Metrics
	cancel  context.CancelFunc
	done    chan error
	started time.Time
	out     string
	dlq     string
}

func startStream(ctx context.Context, env e2eEnv, w *Workload, in, out, dlq string, batchSize int, maxDelayMs float64) (*stream, error) {
	schemaFile, err := writeSchema(env.dir, w.Name, w.Schema)
	if err != nil {
		return nil, err
	}
	group := env.name(w.Name, "group")
	yaml := w.pipelineYAML(env.root, schemaFile, env.brokers, group, in, out, dlq, batchSize, maxDelayMs)
	p, err := buildPipeline(ctx, env.dir, group+".yaml", yaml, onnxLoader(env.log))
	if err != nil {
		return nil, err
	}
	s := &stream{p: p, m: processor.NewMetrics(nil), done: make(chan error, 1), out: out, dlq: dlq}
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.started = time.Now()
	go func() {
		s.done <- processor.RunStream(rctx, p, processor.RunOptions{Brokers: env.brokers, Metrics: s.m, Logger: env.log})
	}()
	return s, nil
}

func (s *stream) produced() float64 { return sumCounters(s.m.Produced) }
func (s *stream) dead() float64     { return sumCounters(s.m.DeadLettered) }

// stop drains and stops the stream and releases the models.
func (s *stream) stop() error {
	s.cancel()
	var err error
	select {
	case err = <-s.done:
	case <-time.After(2 * time.Minute):
		err = errors.New("kinfer did not stop within 2 minutes")
	}
	return errors.Join(err, s.p.Close())
}

// runSustained runs kinfer over the backlog in topic in until n records
// have an acknowledged output, or maxTime after the first record was
// taken, and times it from the first record taken (consumed) to the last
// acknowledged output counted. Counting from the first record taken
// rather than the first output keeps short runs, whose outputs are
// acknowledged in a few large produce responses, from dividing by
// nothing; on a backlog of seconds the two differ by one batch's time.
func runSustained(ctx context.Context, env e2eEnv, w *Workload, in string, n, batchSize int, maxDelayMs float64, maxTime time.Duration) (Sustained, error) {
	out, dlq := env.name(w.Name, "out"), env.name(w.Name, "dlq")
	if err := createTopics(ctx, env.brokers, env.partitions, out, dlq); err != nil {
		return Sustained{}, err
	}
	defer deleteTopics(env.brokers, out, dlq)
	s, err := startStream(ctx, env, w, in, out, dlq, batchSize, maxDelayMs)
	if err != nil {
		return Sustained{}, err
	}
	res := Sustained{BatchSize: batchSize, MaxDelayMs: maxDelayMs}
	var first, firstOut, last time.Time
	var cpuFirst, cpuLast time.Duration
	var cLast float64
	deadline := time.Now().Add(10 * time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for last.IsZero() {
		select {
		case err := <-s.done:
			s.done <- err
			_ = s.stop()
			return res, fmt.Errorf("kinfer stopped early: %v", err)
		case <-ctx.Done():
			_ = s.stop()
			return res, ctx.Err()
		case now := <-tick.C:
			if first.IsZero() && sumCounters(s.m.Consumed) > 0 {
				first, cpuFirst = now, cpuTime()
			}
			c := s.produced() + s.dead()
			if firstOut.IsZero() && c > 0 {
				firstOut = now
			}
			if c >= float64(n) || (!first.IsZero() && now.Sub(first) >= maxTime && c > 0) {
				last, cLast, cpuLast = now, c, cpuTime()
			}
			if now.After(deadline) {
				_ = s.stop()
				return res, fmt.Errorf("%s: %v of %d outputs after 10 minutes", w.Name, c, n)
			}
		}
	}
	if first.IsZero() {
		first = firstOut
	}
	res.DeadLetters = int64(s.dead())
	res.StartupSeconds = first.Sub(s.started).Seconds()
	res.FirstOutputMs = float64(firstOut.Sub(first)) / 1e6
	secs := last.Sub(first).Seconds()
	res.Throughput = Throughput{Records: int(cLast), Seconds: secs, RecordsPerSec: rate(int(cLast), secs)}
	if cpuFirst > 0 {
		res.CPUMicrosPerRecord = perRecordMicros(cpuLast-cpuFirst, int(cLast))
	}
	if err := s.stop(); err != nil {
		return res, err
	}
	if res.DeadLetters > 0 {
		return res, fmt.Errorf("%s: %d records dead-lettered", w.Name, res.DeadLetters)
	}
	if got, err := endOffsets(ctx, env.brokers, out); err != nil || got < int64(cLast) {
		return res, fmt.Errorf("%s: output topic holds %d records, want at least %d (%v)", w.Name, got, int(cLast), err)
	}
	return res, checkOutputs(ctx, env.brokers, out, s.p.Codec.OutputSchema, min(int(cLast), 200), "id", "model_name", w.PredictionField)
}

// liveWindow is how far the live producer may run ahead of kinfer's
// outputs: twice kinfer's default processing.max_in_flight_records, so
// kinfer never waits for input, while the producer sends no faster than
// kinfer works (unthrottled, a producer of small records takes the cores
// that the model needs, and the figure would measure that fight).
const liveWindow = 20000

// runLiveCapacity is the rate kinfer carries while the harness produces
// its input on the same machine, as in the latency runs (the sustained
// runs read a backlog produced before them, so the producer's and the
// broker's work on the input is not in their figure). The producer keeps
// liveWindow records ahead of kinfer's outputs; once predictions flow,
// the capacity is the median of kinfer's half-second rates over the last
// two thirds of dur (the rates are returned too). The latency
// loads are fractions of the lower of this and the sustained figure.
func runLiveCapacity(ctx context.Context, env e2eEnv, w *Workload, batchSize int, maxDelayMs float64, dur time.Duration) (float64, []float64, error) {
	in, out, dlq := env.name(w.Name, "live-in"), env.name(w.Name, "live-out"), env.name(w.Name, "live-dlq")
	if err := createTopics(ctx, env.brokers, env.partitions, in, out, dlq); err != nil {
		return 0, nil, err
	}
	defer deleteTopics(env.brokers, in, out, dlq)
	s, err := startStream(ctx, env, w, in, out, dlq, batchSize, maxDelayMs)
	if err != nil {
		return 0, nil, err
	}
	defer s.stop()
	prod, err := newClient(env.brokers, kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return 0, nil, err
	}
	defer prod.Close()
	// Warm-up: a few records on every partition, all predicted before the
	// run starts. On a topic this new, kinfer's consumer can take seconds
	// to fetch from some partitions (seen: 3-4 s with nothing fetched from
	// part of the topic while every partition was assigned); that is
	// startup, not capacity.
	nWarm := 64 * env.partitions
	warm := make([]*kgo.Record, nWarm)
	for i := range warm {
		warm[i] = &kgo.Record{Topic: in, Partition: int32(i % env.partitions), Value: w.Value(i)}
	}
	if err := prod.ProduceSync(ctx, warm...).FirstErr(); err != nil {
		return 0, nil, fmt.Errorf("%s: producing the live warm-up: %w", w.Name, err)
	}
	var failed atomic.Pointer[error]
	outputs := func() float64 { return s.produced() + s.dead() }
	wait := func(d time.Duration, until func() bool) error {
		deadline := time.Now().Add(d)
		for !until() {
			if e := failed.Load(); e != nil {
				return fmt.Errorf("%s: producing the live input: %w", w.Name, *e)
			}
			if time.Now().After(deadline) {
				return nil
			}
			select {
			case err := <-s.done:
				s.done <- err
				return fmt.Errorf("%s: kinfer stopped early: %v", w.Name, err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	}
	if err := wait(2*time.Minute, func() bool { return outputs() >= float64(nWarm) }); err != nil {
		return 0, nil, err
	}
	if n := outputs(); n < float64(nWarm) {
		return 0, nil, fmt.Errorf("%s: %v of %d warm-up predictions within 2 minutes", w.Name, n, nWarm)
	}

	pctx, stopProducing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := nWarm; pctx.Err() == nil; {
			if float64(i)-outputs() >= liveWindow {
				time.Sleep(time.Millisecond)
				continue
			}
			for end := i + 256; i < end; i++ {
				prod.Produce(pctx, &kgo.Record{Topic: in, Partition: int32(i % env.partitions), Value: w.Value(i)}, func(_ *kgo.Record, err error) {
					if err != nil && pctx.Err() == nil {
						failed.CompareAndSwap(nil, &err)
					}
				})
			}
		}
	}()
	defer wg.Wait()
	defer stopProducing()

	never := func() bool { return false }
	if err := wait(dur/3, never); err != nil {
		return 0, nil, err
	}
	// Half-second rates, and their median: one stall of the shared
	// machine (a broker flushing to disk) does not set the loads.
	var rates []float64
	c0, t0 := outputs(), time.Now()
	for range max(int((dur-dur/3)/(500*time.Millisecond)), 1) {
		if err := wait(500*time.Millisecond, never); err != nil {
			return 0, nil, err
		}
		c1, t1 := outputs(), time.Now()
		rates = append(rates, (c1-c0)/t1.Sub(t0).Seconds())
		c0, t0 = c1, t1
	}
	if d := s.dead(); d > 0 {
		return 0, rates, fmt.Errorf("%s: %v dead letters during the live run", w.Name, d)
	}
	if median(rates) <= 0 {
		return 0, rates, fmt.Errorf("%s: kinfer predicted nothing in most of the live run's half seconds: %v", w.Name, rates)
	}
	return median(rates), rates, nil
}

// LatencyPoint is the latency at one offered load: from the input
// record's send time to the prediction's arrival at a consumer.
type LatencyPoint struct {
	LoadFraction   float64 `json:"load_fraction"`
	OfferedPerSec  float64 `json:"offered_per_sec"`
	AchievedPerSec float64 `json:"achieved_per_sec"`
	Records        int     `json:"records"`
	Measured       int     `json:"measured"`
	P50Ms          float64 `json:"p50_ms"`
	P95Ms          float64 `json:"p95_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	MaxDelayMs     float64 `json:"max_delay_ms"`
	// P50OverMaxDelay and P99OverMaxDelay compare with batch.max_delay.
	P50OverMaxDelay float64 `json:"p50_over_max_delay"`
	P99OverMaxDelay float64 `json:"p99_over_max_delay"`
	// P50ByHalfSecond is the p50 of the records sent in each half second
	// of the step, whether a queue builds up or latency is only spiky.
	P50ByHalfSecond []float64 `json:"p50_by_half_second"`
}

// runner is what a latency run measures: kinfer, or the Kafka
// pass-through. done yields the error that ended it early; stop ends it.
type runner interface {
	stop() error
	doneCh() chan error
}

// startFunc starts a runner from topic in to out (dead letters to dlq).
type startFunc func(ctx context.Context, in, out, dlq string) (runner, error)

func (s *stream) doneCh() chan error { return s.done }

// kinferRunner starts kinfer on w at batchSize.
func kinferRunner(env e2eEnv, w *Workload, batchSize int, maxDelayMs float64) startFunc {
	return func(ctx context.Context, in, out, dlq string) (runner, error) {
		return startStream(ctx, env, w, in, out, dlq, batchSize, maxDelayMs)
	}
}

// passThrough copies records from one topic to another as they come, as
// kafkaPassThrough does: the latency floor of any Kafka processor here.
type passThrough struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (p *passThrough) doneCh() chan error { return p.done }

func (p *passThrough) stop() error {
	var err error
	p.once.Do(func() {
		p.cancel()
		select {
		case err = <-p.done:
		case <-time.After(time.Minute):
			err = errors.New("pass-through did not stop")
		}
		p.cl.Close()
	})
	return err
}

func passThroughRunner(env e2eEnv) startFunc {
	return func(ctx context.Context, in, out, _ string) (runner, error) {
		cl, err := newClient(env.brokers, passThroughOpts(env.name("copy-group"), in)...)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		p := &passThrough{cl: cl, cancel: cancel, done: make(chan error, 1)}
		go func() {
			for rctx.Err() == nil {
				fs := cl.PollFetches(rctx)
				fs.EachRecord(func(r *kgo.Record) {
					cl.Produce(rctx, &kgo.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: r.Value}, nil)
				})
			}
			p.done <- nil
		}()
		return p, nil
	}
}

// latency keys: phase byte, then the send time in nanoseconds since the
// run's base time (monotonic: producer and consumer share the process).
const keyLen = 9

// runLatency starts kinfer on an empty topic, then for each load fraction
// produces at that fraction of sustained records per second, steadily,
// for dur, and measures every record's latency. The first warmFrac of
// each phase is not counted.
func runLatency(ctx context.Context, env e2eEnv, w *Workload, sustained float64, fractions []float64, dur time.Duration, maxDelayMs float64, start startFunc) ([]LatencyPoint, error) {
	in, out, dlq := env.name(w.Name, "lat-in"), env.name(w.Name, "lat-out"), env.name(w.Name, "lat-dlq")
	if err := createTopics(ctx, env.brokers, env.partitions, in, out, dlq); err != nil {
		return nil, err
	}
	defer deleteTopics(env.brokers, in, out, dlq)
	s, err := start(ctx, in, out, dlq)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	prod, err := newClient(env.brokers, kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	cons, err := newClient(env.brokers, kgo.ConsumeTopics(out, dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	defer cons.Close()

	base := time.Now()
	var mu sync.Mutex
	lat := map[byte][]float64{} // phase -> ms
	sendAt := map[byte][]int64{}
	var deadSeen atomic.Int64
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := int64(time.Since(base))
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic == dlq {
					deadSeen.Add(1)
				}
				if len(r.Key) != keyLen {
					return
				}
				ph, sent := r.Key[0], int64(binary.BigEndian.Uint64(r.Key[1:]))
				lat[ph] = append(lat[ph], float64(now-sent)/1e6)
				sendAt[ph] = append(sendAt[ph], sent)
			})
			mu.Unlock()
		}
	}()
	defer wg.Wait()
	defer ccancel()

	var failed atomic.Pointer[error]
	produce := func(phase byte, i int) {
		key := make([]byte, keyLen)
		key[0] = phase
		now := time.Now()
		binary.BigEndian.PutUint64(key[1:], uint64(now.Sub(base)))
		prod.Produce(ctx, &kgo.Record{Topic: in, Key: key, Value: w.Value(i), Timestamp: now}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	// steady produces rate records per second for dur, in 1ms steps.
	steady := func(phase byte, rate float64, dur time.Duration) (int, time.Duration) {
		start := time.Now()
		sent := 0
		for {
			el := time.Since(start)
			if el >= dur {
				return sent, el
			}
			for due := int(el.Seconds() * rate); sent < due; sent++ {
				produce(phase, sent)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor := func(phase byte, n int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for {
			mu.Lock()
			got := len(lat[phase])
			mu.Unlock()
			if got >= n {
				return nil
			}
			if e := failed.Load(); e != nil {
				return *e
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: phase %d: %d of %d predictions within %v", w.Name, phase, got, n, timeout)
			}
			select {
			case err := <-s.doneCh():
				s.doneCh() <- err
				return fmt.Errorf("stopped early: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	// Warm-up (phase 0): the group joins, the models see their first
	// batches of every shape.
	warmRate := max(50, min(sustained*0.1, 500))
	nWarm, _ := steady(0, warmRate, time.Second)
	if err := waitFor(0, nWarm, 2*time.Minute); err != nil {
		return nil, err
	}
	var points []LatencyPoint
	for i, f := range fractions {
		phase := byte(i + 1)
		r := f * sustained
		sent, el := steady(phase, r, dur)
		if err := waitFor(phase, sent, dur+time.Minute); err != nil {
			return points, err
		}
		mu.Lock()
		ls, ts := lat[phase], sendAt[phase]
		mu.Unlock()
		// Skip the first tenth of the phase: the step from the previous
		// load is not steady state.
		cut := int64(time.Duration(float64(el) * 0.1))
		var t0 int64 = -1
		for _, t := range ts {
			if t0 < 0 || t < t0 {
				t0 = t
			}
		}
		var kept []float64
		for j, l := range ls {
			if ts[j]-t0 >= cut {
				kept = append(kept, l)
			}
		}
		windows := map[int64][]float64{}
		for j, l := range ls {
			windows[(ts[j]-t0)/int64(500*time.Millisecond)] = append(windows[(ts[j]-t0)/int64(500*time.Millisecond)], l)
		}
		var series []float64
		for k := int64(0); k <= int64(el/(500*time.Millisecond)); k++ {
			win := windows[k]
			if len(win) == 0 {
				continue // the step's last, partial window
			}
			slices.Sort(win)
			series = append(series, percentile(win, 0.5))
		}
		slices.Sort(kept)
		p := LatencyPoint{LoadFraction: f, OfferedPerSec: r, AchievedPerSec: float64(sent) / el.Seconds(), Records: sent, Measured: len(kept),
			P50Ms: percentile(kept, 0.50), P95Ms: percentile(kept, 0.95), P99Ms: percentile(kept, 0.99), MaxDelayMs: maxDelayMs, P50ByHalfSecond: series}
		if len(kept) > 0 {
			p.MaxMs = kept[len(kept)-1]
		}
		if maxDelayMs > 0 {
			p.P50OverMaxDelay, p.P99OverMaxDelay = p.P50Ms/maxDelayMs, p.P99Ms/maxDelayMs
		}
		points = append(points, p)
		time.Sleep(300 * time.Millisecond)
	}
	if d := deadSeen.Load(); d > 0 {
		return points, fmt.Errorf("%s: %d dead letters during the latency runs", w.Name, d)
	}
	return points, nil
}

// checkOutputs reads a sample of a topic's predictions back and checks
// that they decode with the pipeline's output schema and carry the
// fields every prediction has.
func checkOutputs(ctx context.Context, brokers []string, topic, outSchema string, sample int, fields ...string) error {
	dec, err := schema.NewFileDecoder(outSchema)
	if err != nil {
		return err
	}
	cl, err := newClient(brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := 0
	for got < sample {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: read %d of %d predictions", topic, got, sample)
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			if got >= sample || bad != nil {
				return
			}
			got++
			rec, err := dec.Decode(ctx, r.Value)
			if err != nil {
				bad = fmt.Errorf("%s: prediction at %d@%d: %w", topic, r.Partition, r.Offset, err)
				return
			}
			for _, f := range fields {
				if _, ok := rec.Native[f]; !ok {
					bad = fmt.Errorf("%s: prediction at %d@%d has no field %q", topic, r.Partition, r.Offset, f)
					return
				}
			}
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}
