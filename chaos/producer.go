package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/gen"
	"github.com/kinfer/kinfer/schema"
)

// txPrefix starts every transaction_id the producer writes; the rest is
// the record's number in the known sequence.
const txPrefix = "chaos-"

func txID(seq int64) string { return fmt.Sprintf("%s%09d", txPrefix, seq) }

// producer writes the known sequence 0..total-1 at a steady rate: fraud
// transactions keyed by account (so spread over every partition), each
// with its sequence number in transaction_id.
type producer struct {
	cl    *kgo.Client
	topic string
	enc   *schema.Encoder
	gen   *gen.Transactions
	total int64
	rate  float64 // records per second

	handed atomic.Int64 // records given to the client: the schedule's clock
	acked  atomic.Int64
	mu     sync.Mutex
	errs   int64
	first  error
}

func newProducer(brokers []string, topic string, enc *schema.Encoder, seed uint64, total int64, rate float64) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond),
		// About two seconds of input: while the broker is down the
		// producer soon blocks, so the schedule's clock (records handed
		// over) stops too, instead of racing ahead through a buffer and
		// firing the following events in a burst when the broker returns.
		kgo.MaxBufferedRecords(max(500, int(2*rate))),
		// Retry for as long as it takes: through a broker restart, and
		// through the moments after it when the topic is not yet served.
		kgo.UnknownTopicRetries(-1))
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, topic: topic, enc: enc, gen: gen.NewTransactions(seed), total: total, rate: rate}, nil
}

// run produces the sequence and waits until every record is acknowledged.
// It does not catch up after a stall (a broker restart fills the client's
// buffer): the rate stays steady and the run grows longer instead, so that
// faults keep landing mid-stream.
func (p *producer) run(ctx context.Context) error {
	defer p.cl.Close()
	base := time.Now()
	var i int64
	for i < p.total {
		due := int64(time.Since(base).Seconds()*p.rate) + 1
		if due > i+int64(p.rate) { // more than a second behind: stalled
			base = time.Now().Add(-time.Duration(float64(i) / p.rate * float64(time.Second)))
			due = i + 1
		}
		for ; i < min(due, p.total); i++ {
			key, native := p.gen.Next()
			native["transaction_id"] = txID(i)
			v, err := p.enc.Encode(native)
			if err != nil {
				return fmt.Errorf("encoding record %d: %w", i, err)
			}
			p.cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: v}, p.done)
			p.handed.Store(i + 1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first != nil {
		return fmt.Errorf("%d of %d records failed to produce, first: %w", p.errs, p.total, p.first)
	}
	return nil
}

func (p *producer) done(_ *kgo.Record, err error) {
	if err == nil {
		p.acked.Add(1)
		return
	}
	p.mu.Lock()
	p.errs++
	if p.first == nil {
		p.first = err
	}
	p.mu.Unlock()
}
