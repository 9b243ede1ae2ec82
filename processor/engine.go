// Package processor is kinfer's engine: it takes records from a source in
// per-partition order, decodes them, batches rows by shape, runs the model,
// restores input order per partition, writes predictions or dead-letter
// records to a sink, and reports which input offsets are safe to commit.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Sink writes output records. done is called exactly once per record, when
// it is durable (err == nil) or has failed for good.
type Sink interface {
	Write(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error))
}

// EngineConfig sets up one Engine.
type EngineConfig struct {
	OutputTopic     string
	DeadLetterTopic string
	// Batch and InferWorkers configure the one step of an engine built by
	// NewEngine; graph engines take them from each Step.
	Batch        batch.Config
	InferWorkers int
	// DecodeWorkers decode records in parallel. Default GOMAXPROCS.
	DecodeWorkers      int
	MaxInFlightRecords int
	MaxInFlightBytes   int64
}

// Engine is the pipeline between a source and a sink. Submit feeds it,
// Close drains it. Submit is called from one goroutine (the source's poll
// loop).
type Engine struct {
	cfg     EngineConfig
	codec   Codec
	steps   []*stepRun
	sink    Sink
	metrics *Metrics
	log     *slog.Logger
	budget  *budget
	// produced counts acknowledged predictions (looked up once).
	produced prometheus.Counter

	// decodeChs feed the decode workers, one each. A partition always goes
	// to the same worker, so its rows reach the batchers in offset order
	// and batches cut each partition's rows in order (a model swapped
	// mid-stream then switches versions at one point per partition).
	// Rows travel in slices (a fetch's records of one partition, up to
	// decodeChunk), one channel operation per slice instead of per row.
	decodeChs []chan []*row
	// encodeCh feeds the encode workers (as many as decode workers) with
	// the rows of a batch that went through the last step, so encoding
	// predictions runs beside inference instead of after it on the
	// model's worker.
	encodeCh chan []*row

	stages    sync.WaitGroup
	closeOnce sync.Once

	// abortCtx ends waits on unavailable dependencies once a drain has
	// given up (Abort).
	abortCtx context.Context
	abort    context.CancelFunc

	fatalOnce sync.Once
	fatalErr  error
	fatal     chan struct{}
}

// stepRun is a Step's running stage: a batcher goroutine fed by in, and
// workers running the batches it sends on work.
type stepRun struct {
	*Step
	idx  int
	in   chan []*row
	work chan stepBatch
	// busy counts this step's batches queued for or in inference; the
	// next step reads it to tell whether more rows are about to come.
	busy atomic.Int64
}

type stepBatch struct {
	variant string
	b       *batch.Batch
}

// row is one input record moving through the stages.
type row struct {
	lane *lane
	seq  uint64
	ent  *entry
	rec  *kgo.Record
	dec  Decoded
	t0   time.Time
	// variant serves the row at its current step; stepIn are that step's
	// inputs; outs and served collect each finished step's outputs and
	// model.
	variant string
	// model is the step, then the model, the row is at: the dead-letter
	// metric's model label.
	model  string
	stepIn map[string]*tensor.Tensor
	outs   []map[string]*tensor.Tensor
	served []ModelInfo
}

// result is what the sink receives for one row: a prediction or a dead
// letter.
type result struct {
	row *row
	out *kgo.Record
	dlq bool
}

// NewEngine starts an engine running one model on the decoded inputs as
// they are.
func NewEngine(cfg EngineConfig, codec Codec, model handlers.ModelHandler, sink Sink, m *Metrics, log *slog.Logger) (*Engine, error) {
	step := &Step{Name: model.Name(), Batch: cfg.Batch, Workers: cfg.InferWorkers, Models: SingleModel{Model: model}}
	return NewGraphEngine(cfg, codec, []*Step{step}, sink, m, log)
}

// NewGraphEngine starts an engine that runs every row through steps in
// order. Close stops it.
func NewGraphEngine(cfg EngineConfig, codec Codec, steps []*Step, sink Sink, m *Metrics, log *slog.Logger) (*Engine, error) {
	if cfg.DecodeWorkers <= 0 {
		cfg.DecodeWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxInFlightRecords <= 0 {
		cfg.MaxInFlightRecords = 10000
	}
	if cfg.MaxInFlightBytes <= 0 {
		cfg.MaxInFlightBytes = 64 << 20
	}
	if cfg.OutputTopic == "" || cfg.DeadLetterTopic == "" {
		return nil, errors.New("engine: output and dead-letter topics are required")
	}
	if len(steps) == 0 {
		return nil, errors.New("engine: no model steps")
	}
	for _, s := range steps {
		if _, err := batch.New(s.Batch); err != nil {
			return nil, fmt.Errorf("engine: step %q: batch config: %w", s.Name, err)
		}
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{
		cfg:     cfg,
		codec:   codec,
		sink:    sink,
		metrics: m,
		log:     log,
		budget:  newBudget(cfg.MaxInFlightRecords, cfg.MaxInFlightBytes),
		fatal:   make(chan struct{}),
	}
	e.abortCtx, e.abort = context.WithCancel(context.Background())
	e.produced = m.Produced.WithLabelValues(cfg.OutputTopic)
	for range cfg.DecodeWorkers {
		e.decodeChs = append(e.decodeChs, make(chan []*row, 64))
	}
	e.encodeCh = make(chan []*row, cfg.DecodeWorkers)
	for i, s := range steps {
		workers := max(s.Workers, 1)
		e.steps = append(e.steps, &stepRun{Step: s, idx: i,
			in:   make(chan []*row, max(s.Batch.MaxSize, 1)*4+64),
			work: make(chan stepBatch, workers)})
		if sm, ok := s.Models.(SingleModel); ok {
			m.modelInfo(ModelInfo{Name: sm.Model.Name(), Version: sm.Model.Version()})
		}
		if ab, ok := s.Models.(*ABModels); ok {
			for _, v := range ab.Models {
				m.modelInfo(ModelInfo{Name: v.Name(), Version: v.Version()})
			}
		}
	}

	// Each stage closes the next one's input when it is done, so Close
	// drains the graph front to back.
	var decoders sync.WaitGroup
	for _, ch := range e.decodeChs {
		decoders.Add(1)
		go func() { defer decoders.Done(); e.decodeLoop(ch) }()
	}
	e.stages.Add(1)
	go func() {
		defer e.stages.Done()
		decoders.Wait()
		close(e.steps[0].in)
	}()
	for i, s := range e.steps {
		e.stages.Add(1)
		go func() { defer e.stages.Done(); e.batchLoop(s) }()
		var workers sync.WaitGroup
		for range max(s.Workers, 1) {
			workers.Add(1)
			go func() { defer workers.Done(); e.inferLoop(s) }()
		}
		e.stages.Add(1)
		go func() {
			defer e.stages.Done()
			workers.Wait()
			if i+1 < len(e.steps) {
				close(e.steps[i+1].in)
			} else {
				close(e.encodeCh)
			}
		}()
	}
	for range cfg.DecodeWorkers {
		e.stages.Add(1)
		go func() {
			defer e.stages.Done()
			for rows := range e.encodeCh {
				for _, r := range rows {
					e.finish(r)
				}
			}
		}()
	}
	return e, nil
}

// Fatal is closed when the engine hit an error it cannot route to the
// dead-letter topic (the sink refused a dead-letter record). Err says why.
func (e *Engine) Fatal() <-chan struct{} { return e.fatal }

// Err returns the fatal error, if any.
func (e *Engine) Err() error {
	select {
	case <-e.fatal:
		return e.fatalErr
	default:
		return nil
	}
}

func (e *Engine) fail(err error) {
	e.fatalOnce.Do(func() {
		e.fatalErr = err
		close(e.fatal)
	})
}

// Submit hands one record to the engine. Records of one lane must be
// submitted in offset order. It blocks while the in-flight budget is used
// up. It returns false without taking the record when the lane no longer
// accepts records (revoked).
func (e *Engine) Submit(ctx context.Context, l *lane, rec *kgo.Record) (bool, error) {
	n, err := e.SubmitAll(ctx, l, []*kgo.Record{rec})
	return n == 1, err
}

// decodeChunk is the most rows handed to a decode worker at once: enough
// to make the hand-over cheap, few enough that decoding starts while the
// rest of a large fetch is still being tracked.
const decodeChunk = 64

// SubmitAll hands records of one lane to the engine, in offset order, as
// Submit does one by one, and returns how many it took: fewer than
// len(recs) when the lane stopped accepting records (revoked) or ctx
// ended while the in-flight budget was used up (then with ctx's error).
func (e *Engine) SubmitAll(ctx context.Context, l *lane, recs []*kgo.Record) (int, error) {
	ch := e.decodeChs[int(uint32(l.partition))%len(e.decodeChs)]
	pending := make([]*row, 0, min(len(recs), decodeChunk))
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if l.consumed == nil {
			l.consumed = e.metrics.Consumed.WithLabelValues(pending[0].rec.Topic, strconv.Itoa(int(l.partition)))
		}
		l.consumed.Add(float64(len(pending)))
		select {
		case ch <- pending:
		case <-ctx.Done():
			// The rows are tracked; they must still flow or be abandoned.
			// Hand them over without the context so tracking stays
			// consistent.
			ch <- pending
		}
		pending = make([]*row, 0, min(len(recs), decodeChunk))
	}
	now := time.Now()
	for i, rec := range recs {
		size := int64(len(rec.Value) + len(rec.Key))
		if !e.budget.tryAcquire(size) {
			// The rows held here count against the budget: let them go
			// before waiting for it to free up.
			flush()
			if err := e.budget.acquire(ctx, size); err != nil {
				return i, err
			}
			now = time.Now()
		}
		ent, seq, ok := l.track(rec, size)
		if !ok {
			e.budget.release(size)
			flush()
			return i, nil
		}
		pending = append(pending, &row{lane: l, seq: seq, ent: ent, rec: rec, t0: now})
		if len(pending) == decodeChunk {
			flush()
		}
	}
	flush()
	return len(recs), nil
}

// Close stops taking records and waits until every submitted row has gone
// through the stages (results handed to the sink). It does not wait for
// the sink's acknowledgements; see WaitDurable.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		for _, ch := range e.decodeChs {
			close(ch)
		}
	})
	e.stages.Wait()
}

// InFlight reports records and bytes submitted but not yet durable.
func (e *Engine) InFlight() (int, int64) { return e.budget.inFlight() }

// Abort gives up on rows waiting for an unavailable dependency: they are
// dropped without output, so their offsets stay uncommitted. Call it when
// a drain times out.
func (e *Engine) Abort() { e.abort() }

func (e *Engine) decodeLoop(in <-chan []*row) {
	for rs := range in {
		e.enterAll(0, e.decodeRows(rs))
	}
}

// decodeRows decodes rs in place and returns the rows that decoded (the
// others are dead-lettered or dropped).
func (e *Engine) decodeRows(rs []*row) []*row {
	ok := rs[:0]
	for _, r := range rs {
		if r.lane.abandoned.Load() {
			continue
		}
		d, err := e.codec.Decode(e.abortCtx, r.rec)
		if err != nil && e.abortCtx.Err() != nil && ReasonOf(err) == ReasonUnavailable {
			continue // aborted: not durable, not committed, redone later
		}
		var stop *StopError
		if errors.As(err, &stop) {
			// A transform field policy "error": stop, leaving the record
			// uncommitted, rather than dead-letter it.
			e.fail(fmt.Errorf("%s/%d@%d: %w", r.rec.Topic, r.rec.Partition, r.rec.Offset, err))
			continue
		}
		if err != nil {
			e.deadLetter(r, ReasonOf(err), err)
			continue
		}
		r.dec = d
		r.outs = make([]map[string]*tensor.Tensor, len(e.steps))
		r.served = make([]ModelInfo, len(e.steps))
		ok = append(ok, r)
	}
	return ok
}

// enterAll sends rs to step i in one hand-over (the last step's rows go
// to the encode workers from runBatch). Rows that cannot enter are
// dead-lettered.
func (e *Engine) enterAll(i int, rs []*row) {
	s := e.steps[i]
	ok := rs[:0]
	for _, r := range rs {
		r.model = s.Name
		variant, err := s.Models.Route(r.rec.Key, r.dec)
		if err != nil {
			e.deadLetter(r, ReasonOf(err), fmt.Errorf("step %q: %w", s.Name, err))
			continue
		}
		in, err := s.inputsFor(r)
		if err != nil {
			e.deadLetter(r, ReasonInference, err)
			continue
		}
		r.variant, r.stepIn = variant, in
		ok = append(ok, r)
	}
	if len(ok) > 0 {
		s.in <- ok
	}
}

// batchLoop owns a step's batchers, one per variant (rows of different
// models never share a batch), and flushes them by size, bytes and delay.
//
// A later step of a chain gets its rows as whole batches of the step
// before. Waiting batch.max_delay for more only pays while that step has
// batches queued or running (their rows arrive within one inference);
// when it has none, the next rows are at least a max_delay away, so the
// step sends what it holds at once instead of adding its own delay.
func (e *Engine) batchLoop(s *stepRun) {
	defer close(s.work)
	var up *stepRun
	if s.idx > 0 {
		up = e.steps[s.idx-1]
	}
	batchers := map[string]*batch.Batcher{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	armed := false
	rearm := func() {
		if armed && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		armed = false
		var next time.Time
		for _, bt := range batchers {
			if dl, ok := bt.NextDeadline(); ok && (next.IsZero() || dl.Before(next)) {
				next = dl
			}
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
			armed = true
		}
	}
	send := func(variant string, bs []*batch.Batch) {
		for _, b := range bs {
			s.busy.Add(1)
			s.work <- stepBatch{variant: variant, b: b}
		}
	}
	for {
		select {
		case rs, ok := <-s.in:
			if !ok {
				for v, bt := range batchers {
					send(v, bt.Flush())
				}
				return
			}
			now := time.Now()
			for _, r := range rs {
				bt := batchers[r.variant]
				if bt == nil {
					bt, _ = batch.New(s.Batch) // validated in NewGraphEngine
					batchers[r.variant] = bt
				}
				bs, err := bt.Add(now, batch.Item{Inputs: r.stepIn, Ref: r})
				if err != nil {
					reason := ReasonBatch
					var be *batch.RowError
					if errors.As(err, &be) && be.Reason != "" {
						reason = be.Reason
					}
					e.deadLetter(r, reason, fmt.Errorf("step %q: %w", s.Name, err))
				}
				send(r.variant, bs)
			}
			// Drain what is already queued before paying for a timer reset.
			if len(s.in) > 0 {
				continue
			}
			// The step before counts a batch as done before it hands the
			// rows over, so idle here means its rows are all in s.in.
			if up != nil && up.busy.Load() == 0 && len(s.in) == 0 {
				for v, bt := range batchers {
					send(v, bt.Flush())
				}
			}
			rearm()
		case <-timer.C:
			armed = false
			now := time.Now()
			for v, bt := range batchers {
				send(v, bt.Due(now))
				if bt.Pending() == 0 && len(batchers) > 1 {
					delete(batchers, v) // per-key steps see many variants
				}
			}
			rearm()
		}
	}
}

func (e *Engine) inferLoop(s *stepRun) {
	ctx := context.Background()
	for sb := range s.work {
		e.runBatch(ctx, s, sb)
	}
}

func (e *Engine) runBatch(ctx context.Context, s *stepRun, sb stepBatch) {
	b := sb.b
	h, release, err := s.Models.Acquire(ctx, sb.variant)
	if err != nil {
		reason := ReasonOf(err)
		if reason == ReasonUnexpected {
			reason = ReasonInference
		}
		for _, ref := range b.Refs {
			e.deadLetter(ref.(*row), reason, fmt.Errorf("step %q: %w", s.Name, err))
		}
		s.busy.Add(-1)
		return
	}
	defer release()
	info := ModelInfo{Name: h.Name(), Version: h.Version()}
	start := time.Now()
	for _, t := range b.Enqueued {
		e.metrics.queueWait(info.Name, start.Sub(t))
	}
	e.metrics.batch(info.Name, b)
	calls := 0
	outs, rowErrs := batch.Isolate(ctx, b, func(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
		// A model that is only unavailable (a remote server overloaded)
		// gets the same batch again after a backoff, for as long as it
		// takes: its rows are fine and must not be dead-lettered. Waiting
		// here fills the in-flight budget, which stops fetching.
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			calls++
			t := time.Now()
			out, version, err := handlers.InferVersion(ctx, h, in)
			e.metrics.inference(info.Name, time.Since(t), err)
			if err == nil {
				info.Version = version // Isolate runs sub-batches one at a time
				return out, nil
			}
			if !handlers.IsTransient(err) {
				return nil, err
			}
			e.log.Warn("model unavailable; retrying the batch", "step", s.Name, "model", info.Name, "wait", wait, "err", err)
			select {
			case <-e.abortCtx.Done():
				return nil, &RowError{Reason: ReasonUnavailable, Err: err}
			case <-time.After(wait):
			}
		}
	})
	if calls > 1 {
		e.log.Warn("batch failed in the model; isolated failing rows", "step", s.Name, "model", info.Name, "rows", len(b.Refs), "calls", calls)
	}
	last := s.idx+1 == len(e.steps)
	var done []*row // rows for the encode workers, or the next step
	for i, ref := range b.Refs {
		r := ref.(*row)
		if rowErrs[i] != nil && ReasonOf(rowErrs[i]) == ReasonUnavailable {
			continue // aborted while the model was unavailable: redone later
		}
		if rowErrs[i] != nil {
			r.model = info.Name
			e.deadLetter(r, ReasonInference, fmt.Errorf("step %q, model %s %s: %w", s.Name, info.Name, info.Version, rowErrs[i]))
			continue
		}
		r.outs[s.idx] = outs[i]
		r.served[s.idx] = info
		r.stepIn = nil
		done = append(done, r)
	}
	// The model is done with the stacked inputs: reuse their buffers
	// (kept when a model returned an input as an output).
	b.Release(outs)
	// Done before the rows move on: see batchLoop.
	s.busy.Add(-1)
	if len(done) == 0 {
		return
	}
	if last {
		e.encodeCh <- done
		return
	}
	e.enterAll(s.idx+1, done)
}

// finish encodes a row that went through every step and delivers it.
func (e *Engine) finish(r *row) {
	val, err := e.codec.Encode(context.Background(), r.dec, Result{Outputs: r.outs, Models: r.served})
	if err != nil {
		e.deadLetter(r, ReasonOf(err), err)
		return
	}
	last := r.served[len(r.served)-1]
	h := predictionHeaders(r.rec, last.Name, last.Version)
	e.deliver(&result{row: r, out: &kgo.Record{Topic: e.cfg.OutputTopic, Key: r.rec.Key, Value: val, Headers: h}})
}

func (e *Engine) deadLetter(r *row, reason string, err error) {
	e.log.Debug("dead-lettering record", "topic", r.rec.Topic, "partition", r.rec.Partition, "offset", r.rec.Offset, "reason", reason, "err", err)
	e.deliver(&result{row: r, out: deadLetter(e.cfg.DeadLetterTopic, r.rec, reason, err), dlq: true})
}

// deliver puts a result in its lane's reorder buffer and writes every
// result that is now next in input order.
func (e *Engine) deliver(res *result) {
	l := res.row.lane
	l.emitMu.Lock()
	defer l.emitMu.Unlock()
	if l.abandoned.Load() {
		return
	}
	if res.row.seq == l.emitSeq && len(l.waiting) == 0 {
		// In order, nothing held back: the common case skips the map.
		l.emitSeq++
		e.write(res)
		return
	}
	l.waiting[res.row.seq] = res
	for {
		next, ok := l.waiting[l.emitSeq]
		if !ok {
			return
		}
		delete(l.waiting, l.emitSeq)
		l.emitSeq++
		e.write(next)
	}
}

func (e *Engine) write(res *result) {
	r := res.row
	e.sink.Write(context.Background(), res.out, func(out *kgo.Record, err error) {
		if err != nil && (errors.Is(err, kgo.ErrClientClosed) || e.abortCtx.Err() != nil) {
			// Shutting down after a drain gave up: the record is not
			// durable and stays uncommitted, to be redone. It is not a
			// bad record, so it is not dead-lettered.
			return
		}
		if err != nil {
			if !res.dlq {
				// The prediction could not be written (too large, say):
				// route the input to the dead-letter topic instead.
				e.log.Warn("prediction not written; dead-lettering its input", "topic", r.rec.Topic, "partition", r.rec.Partition, "offset", r.rec.Offset, "err", err)
				dl := &result{row: r, out: deadLetter(e.cfg.DeadLetterTopic, r.rec, ReasonProduce, err), dlq: true}
				e.write(dl)
				return
			}
			e.fail(fmt.Errorf("writing dead-letter record for %s/%d@%d: %w", r.rec.Topic, r.rec.Partition, r.rec.Offset, err))
			return
		}
		if r.lane.finish(r.ent, entryAcked) {
			e.budget.release(r.ent.bytes)
		}
		if res.dlq {
			e.metrics.deadLettered(r.model, ReasonOfRecord(out))
		} else {
			e.produced.Inc()
			if !r.rec.Timestamp.IsZero() {
				e.metrics.EndToEnd.Observe(time.Since(r.rec.Timestamp).Seconds())
			}
		}
	})
}

// ReasonOfRecord returns a dead-letter record's reason header.
func ReasonOfRecord(r *kgo.Record) string {
	v, _ := HeaderValue(r, HeaderReason)
	return v
}

// abandonLane drops a lane's undelivered rows and releases their budget.
func (e *Engine) abandonLane(l *lane) {
	for _, ent := range l.abandon() {
		e.budget.release(ent.bytes)
	}
}
