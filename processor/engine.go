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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/tensor"
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
	Batch           batch.Config
	// DecodeWorkers decode records in parallel. Default GOMAXPROCS.
	DecodeWorkers int
	// InferWorkers run batches in parallel; match the model's session
	// copies. Default 1.
	InferWorkers       int
	MaxInFlightRecords int
	MaxInFlightBytes   int64
}

// Engine is the pipeline between a source and a sink. Submit feeds it,
// Close drains it. It is safe to Submit to different lanes from one
// goroutine only (the source's poll loop).
type Engine struct {
	cfg     EngineConfig
	codec   Codec
	model   handlers.ModelHandler
	info    ModelInfo
	sink    Sink
	metrics *Metrics
	log     *slog.Logger
	budget  *budget
	// produced counts acknowledged predictions (looked up once).
	produced prometheus.Counter

	decodeCh chan *row
	batchCh  chan *row
	inferCh  chan *batch.Batch

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

// row is one input record moving through the stages.
type row struct {
	lane *lane
	seq  uint64
	ent  *entry
	rec  *kgo.Record
	dec  Decoded
	t0   time.Time
}

// result is what the sink receives for one row: a prediction or a dead
// letter.
type result struct {
	row *row
	out *kgo.Record
	dlq bool
}

// NewEngine starts the engine's stage goroutines. Close stops them.
func NewEngine(cfg EngineConfig, codec Codec, model handlers.ModelHandler, sink Sink, m *Metrics, log *slog.Logger) (*Engine, error) {
	if cfg.DecodeWorkers <= 0 {
		cfg.DecodeWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.InferWorkers <= 0 {
		cfg.InferWorkers = 1
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
	bt, err := batch.New(cfg.Batch)
	if err != nil {
		return nil, fmt.Errorf("engine: batch config: %w", err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{
		cfg:      cfg,
		codec:    codec,
		model:    model,
		info:     ModelInfo{Name: model.Name(), Version: model.Version()},
		sink:     sink,
		metrics:  m,
		log:      log,
		budget:   newBudget(cfg.MaxInFlightRecords, cfg.MaxInFlightBytes),
		decodeCh: make(chan *row, cfg.DecodeWorkers*64),
		batchCh:  make(chan *row, cfg.Batch.MaxSize*4+64),
		inferCh:  make(chan *batch.Batch, cfg.InferWorkers),
		fatal:    make(chan struct{}),
	}
	e.abortCtx, e.abort = context.WithCancel(context.Background())
	m.modelInfo(e.info)
	e.produced = m.Produced.WithLabelValues(cfg.OutputTopic)

	var decoders sync.WaitGroup
	for range cfg.DecodeWorkers {
		decoders.Add(1)
		go func() { defer decoders.Done(); e.decodeLoop() }()
	}
	e.stages.Add(1)
	go func() {
		defer e.stages.Done()
		decoders.Wait()
		close(e.batchCh)
	}()
	e.stages.Add(1)
	go func() { defer e.stages.Done(); e.batchLoop(bt) }()
	for range cfg.InferWorkers {
		e.stages.Add(1)
		go func() { defer e.stages.Done(); e.inferLoop() }()
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
	size := int64(len(rec.Value) + len(rec.Key))
	if err := e.budget.acquire(ctx, size); err != nil {
		return false, err
	}
	ent, seq, ok := l.track(rec, size)
	if !ok {
		e.budget.release(size)
		return false, nil
	}
	if l.consumed == nil {
		l.consumed = e.metrics.Consumed.WithLabelValues(rec.Topic, strconv.Itoa(int(rec.Partition)))
	}
	l.consumed.Inc()
	r := &row{lane: l, seq: seq, ent: ent, rec: rec, t0: time.Now()}
	select {
	case e.decodeCh <- r:
		return true, nil
	case <-ctx.Done():
		// The record is tracked; it must still flow or be abandoned. Hand
		// it over without the context so tracking stays consistent.
		e.decodeCh <- r
		return true, nil
	}
}

// Close stops taking records and waits until every submitted row has gone
// through the stages (results handed to the sink). It does not wait for
// the sink's acknowledgements; see WaitDurable.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { close(e.decodeCh) })
	e.stages.Wait()
}

// InFlight reports records and bytes submitted but not yet durable.
func (e *Engine) InFlight() (int, int64) { return e.budget.inFlight() }

// Abort gives up on rows waiting for an unavailable dependency: they are
// dropped without output, so their offsets stay uncommitted. Call it when
// a drain times out.
func (e *Engine) Abort() { e.abort() }

func (e *Engine) decodeLoop() {
	for r := range e.decodeCh {
		if r.lane.abandoned.Load() {
			continue
		}
		d, err := e.codec.Decode(e.abortCtx, r.rec)
		if err != nil && e.abortCtx.Err() != nil && ReasonOf(err) == ReasonUnavailable {
			continue // aborted: not durable, not committed, redone later
		}
		if err != nil {
			e.deadLetter(r, ReasonOf(err), err)
			continue
		}
		r.dec = d
		e.batchCh <- r
	}
}

func (e *Engine) batchLoop(bt *batch.Batcher) {
	defer close(e.inferCh)
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
		if dl, ok := bt.NextDeadline(); ok {
			timer.Reset(max(time.Until(dl), 0))
			armed = true
		}
	}
	send := func(bs []*batch.Batch) {
		for _, b := range bs {
			e.inferCh <- b
		}
	}
	for {
		select {
		case r, ok := <-e.batchCh:
			if !ok {
				send(bt.Flush())
				return
			}
			bs, err := bt.Add(time.Now(), batch.Item{Inputs: r.dec.Inputs, Ref: r})
			if err != nil {
				reason := ReasonBatch
				var be *batch.RowError
				if errors.As(err, &be) && be.Reason != "" {
					reason = be.Reason
				}
				e.deadLetter(r, reason, err)
			}
			send(bs)
			// Drain what is already queued before paying for a timer reset.
			if len(e.batchCh) > 0 {
				continue
			}
			rearm()
		case <-timer.C:
			armed = false
			send(bt.Due(time.Now()))
			rearm()
		}
	}
}

func (e *Engine) inferLoop() {
	ctx := context.Background()
	for b := range e.inferCh {
		e.runBatch(ctx, b)
	}
}

func (e *Engine) runBatch(ctx context.Context, b *batch.Batch) {
	start := time.Now()
	for _, t := range b.Enqueued {
		e.metrics.queueWait(e.info.Name, start.Sub(t))
	}
	e.metrics.batch(e.info.Name, b)
	calls := 0
	outs, rowErrs := batch.Isolate(ctx, b, func(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
		calls++
		t := time.Now()
		out, err := e.model.Infer(ctx, in)
		e.metrics.inference(e.info.Name, time.Since(t), err)
		return out, err
	})
	if calls > 1 {
		e.log.Warn("batch failed in the model; isolated failing rows", "model", e.info.Name, "rows", len(b.Refs), "calls", calls)
	}
	for i, ref := range b.Refs {
		r := ref.(*row)
		if rowErrs != nil && rowErrs[i] != nil {
			e.deadLetter(r, ReasonInference, rowErrs[i])
			continue
		}
		val, err := e.codec.Encode(ctx, r.dec, outs[i], e.info)
		if err != nil {
			e.deadLetter(r, ReasonOf(err), err)
			continue
		}
		h := sourceHeaders(r.rec)
		h = append(h, kgo.RecordHeader{Key: HeaderModel, Value: []byte(e.info.Name)}, kgo.RecordHeader{Key: HeaderModelVersion, Value: []byte(e.info.Version)})
		out := &kgo.Record{Topic: e.cfg.OutputTopic, Key: r.rec.Key, Value: val, Headers: h}
		e.deliver(&result{row: r, out: out})
	}
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
			e.metrics.deadLettered(ReasonOfRecord(out))
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
