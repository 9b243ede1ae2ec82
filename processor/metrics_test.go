package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
)

// metered is one group member whose metrics land on its own registry.
type metered struct {
	*member
	reg    *prometheus.Registry
	stream *Stream
}

func startMetered(t *testing.T, addrs []string, group string, model *doubler, cfg StreamConfig, opts ...kgo.Opt) *metered {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cfg.Group, cfg.InputTopic = group, "in"
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 50 * time.Millisecond
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	s := NewStream(cfg, m, quietLog())
	opts = append(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0)}, s.GroupOpts()...), opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{OutputTopic: "out", DeadLetterTopic: "in.dlq", Batch: batch.Config{MaxSize: 16, MaxDelay: time.Millisecond}},
		floatCodec{n: 4}, model, KafkaSink{Client: cl}, m, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	m.RegisterInFlight(reg, e)
	ctx, cancel := context.WithCancel(context.Background())
	mem := &member{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := s.Run(ctx, cl, e)
		cl.Close()
		mem.done <- err
	}()
	return &metered{member: mem, reg: reg, stream: s}
}

// scrape gathers a registry into family name -> metrics.
func scrape(t *testing.T, g prometheus.Gatherer) map[string][]*dto.Metric {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range fams {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

// value sums a family's counter, gauge or untyped values over the series
// whose labels include want.
func value(ms []*dto.Metric, want map[string]string) float64 {
	var sum float64
	for _, m := range ms {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// histo returns the sample count and sum of a family's histograms over the
// series whose labels include want.
func histo(ms []*dto.Metric, want map[string]string) (count uint64, sum float64) {
	for _, m := range ms {
		if m.Histogram != nil && hasLabels(m, want) {
			count += m.Histogram.GetSampleCount()
			sum += m.Histogram.GetSampleSum()
		}
	}
	return count, sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The counters and histograms agree with what went in and came out: every
// consumed record counted once, predictions and dead letters (by model and
// reason) equal to what the output topics hold, one end-to-end latency per
// prediction, batch sizes summing to the predicted rows; and once caught
// up, every owned partition shows zero lag and nothing in flight.
func TestStreamMetricsAgreeWithOutputs(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	prod, _ := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	defer prod.Close()
	const n, bad = 2000, 50
	produceInputs(t, prod, 0, n, bad, 0)
	m := startMetered(t, addrs, "gm1", &doubler{n: 4}, StreamConfig{})
	got := consumeOutputs(t, addrs, n)
	var predicted, dead int
	for _, outs := range got.byInput {
		if outs[0].Topic == "out" {
			predicted++
		} else {
			dead++
		}
	}
	if dead != n/bad || predicted != n-n/bad {
		t.Fatalf("outputs: %d predicted, %d dead letters", predicted, dead)
	}
	// Produced is counted in the produce callback, which may run just after
	// the consumer above saw the record: wait for the counters to settle.
	var s map[string][]*dto.Metric
	eventually(t, 10*time.Second, "counters never matched the outputs", func() bool {
		s = scrape(t, m.reg)
		return value(s["kinfer_records_produced_total"], map[string]string{"topic": "out"}) == float64(predicted) &&
			value(s["kinfer_records_dead_lettered_total"], map[string]string{"model": "", "reason": "decode_error"}) == float64(dead)
	})
	if v := value(s["kinfer_records_consumed_total"], nil); v != n {
		t.Fatalf("consumed %v, want %d", v, n)
	}
	if len(s["kinfer_records_consumed_total"]) != testPartitions {
		t.Fatalf("consumed has %d partition series, want %d", len(s["kinfer_records_consumed_total"]), testPartitions)
	}
	if cnt, sum := histo(s["kinfer_end_to_end_latency_seconds"], nil); cnt != uint64(predicted) || sum <= 0 {
		t.Fatalf("end-to-end latency: %d samples (sum %v), want %d", cnt, sum, predicted)
	}
	model := map[string]string{"model": "doubler"}
	batches, rows := histo(s["kinfer_model_batch_size_rows"], model)
	if rows != float64(predicted) {
		t.Fatalf("batch sizes sum to %v rows, want %d", rows, predicted)
	}
	if v := value(s["kinfer_model_inferences_total"], model); v != float64(batches) {
		t.Fatalf("%v inferences for %d batches", v, batches)
	}
	if cnt, _ := histo(s["kinfer_model_queue_wait_seconds"], model); cnt != uint64(predicted) {
		t.Fatalf("queue wait: %d samples, want %d", cnt, predicted)
	}
	if cnt, _ := histo(s["kinfer_model_inference_seconds"], model); cnt != batches {
		t.Fatalf("inference latency: %d samples, want %d", cnt, batches)
	}
	if v := value(s["kinfer_model_failures_total"], model); v != 0 || len(s["kinfer_model_failures_total"]) != 1 {
		t.Fatalf("failures: %v over %d series, want one series at 0", v, len(s["kinfer_model_failures_total"]))
	}
	if v := value(s["kinfer_model_loaded_info"], map[string]string{"model": "doubler", "version": "v1"}); v != 1 {
		t.Fatalf("loaded info %v", v)
	}
	if v := value(s["kinfer_rebalances_total"], map[string]string{"event": "assigned"}); v != testPartitions {
		t.Fatalf("assigned %v partitions", v)
	}
	eventually(t, 10*time.Second, "lag and in-flight never reached 0 on every partition", func() bool {
		s = scrape(t, m.reg)
		return len(s["kinfer_consumer_lag_records"]) == testPartitions && value(s["kinfer_consumer_lag_records"], nil) == 0 &&
			len(s["kinfer_partition_in_flight_records"]) == testPartitions && value(s["kinfer_partition_in_flight_records"], nil) == 0 &&
			value(s["kinfer_in_flight_records"], nil) == 0
	})
	m.stop(t)
	// Leaving the group revokes every partition: their gauges go with them.
	s = scrape(t, m.reg)
	if len(s["kinfer_consumer_lag_records"]) != 0 || len(s["kinfer_partition_in_flight_records"]) != 0 {
		t.Fatalf("after leaving: %d lag and %d in-flight series remain", len(s["kinfer_consumer_lag_records"]), len(s["kinfer_partition_in_flight_records"]))
	}
}

// Lag shows a backlog while a slow model works through it and returns to
// 0; a partition's lag series moves with the partition when a second
// member joins, so the two members together always report each partition
// once.
func TestStreamLagFollowsBacklogAndPartitions(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	prod, _ := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	defer prod.Close()
	const n = 1200
	produceInputs(t, prod, 0, n, 0, 0)
	// 75 batches of 16 at 15ms each: about a second of backlog.
	a := startMetered(t, addrs, "gm2", &doubler{n: 4, delay: 15 * time.Millisecond}, StreamConfig{})
	var maxLag, maxInFlight float64
	eventually(t, 30*time.Second, "lag never returned to 0", func() bool {
		s := scrape(t, a.reg)
		lag := value(s["kinfer_consumer_lag_records"], nil)
		maxLag = max(maxLag, lag)
		maxInFlight = max(maxInFlight, value(s["kinfer_partition_in_flight_records"], nil))
		return len(s["kinfer_consumer_lag_records"]) == testPartitions && lag == 0 && maxLag > 0
	})
	t.Logf("backlog of %d: lag peaked at %v records, in flight at %v", n, maxLag, maxInFlight)
	if maxLag > n || maxInFlight <= 0 {
		t.Fatalf("lag peaked at %v (of %d records), in-flight at %v", maxLag, n, maxInFlight)
	}

	b := startMetered(t, addrs, "gm2", &doubler{n: 4}, StreamConfig{})
	series := func(m *metered) int { return len(scrape(t, m.reg)["kinfer_consumer_lag_records"]) }
	eventually(t, 30*time.Second, "the partitions' lag series did not split between the members", func() bool {
		na, nb := series(a), series(b)
		return na > 0 && nb > 0 && na+nb == testPartitions
	})
	// New input on every partition reaches 0 lag on both members.
	produceInputs(t, prod, n, 300, 0, 0)
	eventually(t, 30*time.Second, "lag did not return to 0 on both members", func() bool {
		sa, sb := scrape(t, a.reg), scrape(t, b.reg)
		return value(sa["kinfer_records_consumed_total"], nil)+value(sb["kinfer_records_consumed_total"], nil) >= n+300 &&
			value(sa["kinfer_consumer_lag_records"], nil) == 0 && value(sb["kinfer_consumer_lag_records"], nil) == 0
	})
	b.stop(t)
	eventually(t, 30*time.Second, "the first member did not take every partition back", func() bool { return series(a) == testPartitions })
	if series(b) != 0 {
		t.Fatalf("the member that left still reports %d partitions", series(b))
	}
	a.stop(t)
}

// ReadyErr says why a member is not ready: not joined before the first
// assignment, ready once joined, shutting down once draining, and brokers
// unreachable when none has answered within BrokerTimeout.
func TestStreamReadiness(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	if err := NewStream(StreamConfig{Group: "g", InputTopic: "in"}, nil, quietLog()).ReadyErr(); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("before running: %v, want ErrNotJoined", err)
	}
	// Fetch long-polls return every 100ms here (5s by default, which the
	// default BrokerTimeout of 30s covers).
	fast := kgo.FetchMaxWait(100 * time.Millisecond)
	m := startMetered(t, addrs, "gr", &doubler{n: 4}, StreamConfig{BrokerTimeout: 500 * time.Millisecond}, fast)
	eventually(t, 20*time.Second, "never ready", func() bool { return m.stream.ReadyErr() == nil })
	// Idle in the group (no input), fetch long-polls keep the brokers'
	// answers fresh: still ready well past BrokerTimeout.
	time.Sleep(1500 * time.Millisecond)
	if err := m.stream.ReadyErr(); err != nil {
		t.Fatalf("idle member: %v", err)
	}
	m.cancel()
	eventually(t, 5*time.Second, "draining member still ready", func() bool { return errors.Is(m.stream.ReadyErr(), ErrShuttingDown) })
	m.stop(t)

	// A member whose cluster goes away stops being ready.
	c2 := newCluster(t)
	m2 := startMetered(t, c2.ListenAddrs(), "gr2", &doubler{n: 4}, StreamConfig{BrokerTimeout: 500 * time.Millisecond, DrainTimeout: time.Second}, fast)
	eventually(t, 20*time.Second, "second member never ready", func() bool { return m2.stream.ReadyErr() == nil })
	c2.Close()
	eventually(t, 10*time.Second, "member without brokers still ready", func() bool { return errors.Is(m2.stream.ReadyErr(), ErrBrokersUnreachable) })
	m2.cancel() // its client cannot leave a group on a dead cluster; do not wait
}

// Partitions that never held a record still get a lag series (at 0) as
// soon as they are assigned: the end offsets are listed on assignment.
func TestStreamLagOnEmptyPartitions(t *testing.T) {
	c := newCluster(t)
	m := startMetered(t, c.ListenAddrs(), "ge", &doubler{n: 4}, StreamConfig{})
	eventually(t, 20*time.Second, "empty partitions got no lag series", func() bool {
		s := scrape(t, m.reg)
		return len(s["kinfer_consumer_lag_records"]) == testPartitions && value(s["kinfer_consumer_lag_records"], nil) == 0
	})
	m.stop(t)
}
