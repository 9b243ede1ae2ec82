package processor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Feeder submits records of one input partition to an engine without a
// Kafka source, so the engine can be driven and measured alone (the
// benchmark harness in bench/ times decode, batch, infer, order and encode
// with a no-op model and sink this way). Records must be submitted in
// offset order; a Feeder is used from one goroutine.
type Feeder struct {
	e *Engine
	l *lane
}

// NewFeeder returns a Feeder for topic/partition on e.
func NewFeeder(e *Engine, topic string, partition int32) *Feeder {
	return &Feeder{e: e, l: newLane(topic, partition)}
}

// Submit hands rec to the engine, blocking while the in-flight budget is
// used up (see Engine.Submit). rec.Topic and rec.Partition should be the
// Feeder's.
func (f *Feeder) Submit(ctx context.Context, rec *kgo.Record) (bool, error) {
	return f.e.Submit(ctx, f.l, rec)
}

// SubmitAll hands recs to the engine in one go, as the Kafka source does
// with a fetch's records of one partition (see Engine.SubmitAll), and
// returns how many it took.
func (f *Feeder) SubmitAll(ctx context.Context, recs []*kgo.Record) (int, error) {
	return f.e.SubmitAll(ctx, f.l, recs)
}
