package processor

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
)

const testPartitions = 6

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, "in", "out", "in.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// member is one running processor in the group.
type member struct {
	cancel context.CancelFunc
	done   chan error
}

func startMember(t *testing.T, addrs []string, group string) *member {
	return startMemberMode(t, addrs, group, "")
}

var memberSeq atomic.Int64

// startMemberMode starts a member; a non-empty txnPrefix runs it
// exactly-once with a transactional id made from it.
func startMemberMode(t *testing.T, addrs []string, group, txnPrefix string) *member {
	t.Helper()
	s := NewStream(StreamConfig{Group: group, InputTopic: "in", CommitInterval: 50 * time.Millisecond, DrainTimeout: 10 * time.Second, ExactlyOnce: txnPrefix != ""}, nil, quietLog())
	opts := append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0)}, s.GroupOpts()...)
	var (
		cl   *kgo.Client
		sess *kgo.GroupTransactSession
		sink Sink
		err  error
	)
	if txnPrefix != "" {
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("%s-%d", txnPrefix, memberSeq.Add(1))))
		if sess, err = kgo.NewGroupTransactSession(opts...); err != nil {
			t.Fatal(err)
		}
		cl = sess.Client()
		sink = s.NewTxnSink(cl)
	} else {
		if cl, err = kgo.NewClient(opts...); err != nil {
			t.Fatal(err)
		}
		sink = KafkaSink{Client: cl}
	}
	e, err := NewEngine(EngineConfig{OutputTopic: "out", DeadLetterTopic: "in.dlq", Batch: batch.Config{MaxSize: 16, MaxDelay: time.Millisecond}},
		floatCodec{n: 4}, &doubler{n: 4}, sink, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cancel: cancel, done: make(chan error, 1)}
	go func() {
		if sess != nil {
			err = s.RunExactlyOnce(ctx, sess, e)
		} else {
			err = s.Run(ctx, cl, e)
		}
		cl.Close()
		m.done <- err
	}()
	return m
}

func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("member stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("member did not stop")
	}
}

// produceInputs writes n records with values [i, 0, 0, 0]; every badEvery-th
// (if > 0) is corrupt. It returns the inputs by position.
func produceInputs(t *testing.T, cl *kgo.Client, from, n, badEvery int, pace time.Duration) {
	t.Helper()
	for i := from; i < from+n; i++ {
		v := floatBytes([]float32{float32(i), 0, 0, 0})
		if badEvery > 0 && i%badEvery == badEvery-1 {
			v = []byte("corrupt")
		}
		rec := &kgo.Record{Topic: "in", Key: []byte("key-" + strconv.Itoa(i%97)), Value: v}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
}

// collected reads predictions and dead letters back and indexes them by
// the input position named in their headers.
type collected struct {
	mu      sync.Mutex
	byInput map[string][]*kgo.Record
	total   int
	// order: per (output partition, input partition), the input offsets in
	// the order they appear.
	order map[[2]int32][]int64
}

func consumeOutputs(t *testing.T, addrs []string, want int) *collected {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("out", "in.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := &collected{byInput: map[string][]*kgo.Record{}, order: map[[2]int32][]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for c.total < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d outputs before the deadline", c.total, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sp, _ := HeaderValue(r, HeaderSourcePartition)
			so, _ := HeaderValue(r, HeaderSourceOffset)
			c.byInput[sp+"@"+so] = append(c.byInput[sp+"@"+so], r)
			c.total++
			p, _ := strconv.Atoi(sp)
			o, _ := strconv.ParseInt(so, 10, 64)
			k := [2]int32{r.Partition, int32(p)}
			if r.Topic == "out" {
				c.order[k] = append(c.order[k], o)
			}
		})
	}
	return c
}

func endOffsets(t *testing.T, addrs []string) map[int32]int64 {
	t.Helper()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), "in")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func committed(t *testing.T, addrs []string, group string) map[int32]int64 {
	t.Helper()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

func checkOutputs(t *testing.T, c *collected, ends map[int32]int64, badEvery int, allowDup bool) {
	t.Helper()
	inputs := 0
	for p, end := range ends {
		for off := int64(0); off < end; off++ {
			inputs++
			outs := c.byInput[fmt.Sprintf("%d@%d", p, off)]
			if len(outs) == 0 {
				t.Fatalf("input %d@%d has no output or dead letter", p, off)
			}
			if len(outs) > 1 && !allowDup {
				t.Fatalf("input %d@%d has %d outputs", p, off, len(outs))
			}
		}
	}
	for k, offs := range c.order {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] && !allowDup {
				t.Fatalf("output partition %d: input %d offsets out of order: %d after %d", k[0], k[1], offs[i], offs[i-1])
			}
		}
	}
	for _, outs := range c.byInput {
		r := outs[0]
		if r.Topic == "in.dlq" {
			if ReasonOfRecord(r) != "decode_error" {
				t.Fatalf("dead letter with reason %q", ReasonOfRecord(r))
			}
			continue
		}
		y := bytesFloats(r.Value)
		x := (y[0] - 1) / 2
		if want := "key-" + strconv.Itoa(int(x)%97); string(r.Key) != want {
			t.Fatalf("prediction for x=%v has key %q, want %q", x, r.Key, want)
		}
		if badEvery > 0 && int(x)%badEvery == badEvery-1 {
			t.Fatalf("corrupt input %v was predicted", x)
		}
	}
	if inputs == 0 {
		t.Fatal("no inputs")
	}
}

// One member end to end on kfake: every input yields exactly one output
// (prediction or dead letter), keys and per-partition order kept, and the
// committed offsets reach the end after a clean shutdown.
func TestStreamEndToEnd(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	prod, _ := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	defer prod.Close()
	const n, bad = 3000, 50
	produceInputs(t, prod, 0, n, bad, 0)
	m := startMember(t, addrs, "g1")
	got := consumeOutputs(t, addrs, n)
	m.stop(t)
	ends := endOffsets(t, addrs)
	checkOutputs(t, got, ends, bad, false)
	if cm := committed(t, addrs, "g1"); fmt.Sprint(cm) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, end offsets %v", cm, ends)
	}
}

// Two members and a rebalance mid-stream (the second joins, then the first
// leaves): no record lost, and because revoked partitions are drained and
// committed before the handover, none is processed by both.
func TestStreamRebalanceNoLossNoDuplicates(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	prod, _ := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	defer prod.Close()
	const n = 3000
	a := startMember(t, addrs, "g2")
	produceInputs(t, prod, 0, n/3, 0, 0)
	b := startMember(t, addrs, "g2")
	produceInputs(t, prod, n/3, n/3, 0, 200*time.Microsecond)
	a.stop(t)
	produceInputs(t, prod, 2*n/3, n-2*(n/3), 0, 0)
	got := consumeOutputs(t, addrs, n)
	b.stop(t)
	checkOutputs(t, got, endOffsets(t, addrs), 0, false)
	if got.total != n {
		t.Fatalf("%d outputs for %d inputs", got.total, n)
	}
}

// Exactly-once with a rebalance mid-stream (a member joins, the first
// leaves) and corrupt records: a read_committed consumer sees exactly one
// output per input, in order, and the offsets reach the end.
func TestStreamExactlyOnceRebalance(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	prod, _ := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	defer prod.Close()
	const n, bad = 3000, 97
	a := startMemberMode(t, addrs, "eos", "eos-txn")
	produceInputs(t, prod, 0, n/3, bad, 0)
	b := startMemberMode(t, addrs, "eos", "eos-txn")
	produceInputs(t, prod, n/3, n/3, bad, 200*time.Microsecond)
	a.stop(t)
	produceInputs(t, prod, 2*n/3, n-2*(n/3), bad, 0)
	got := consumeOutputs(t, addrs, n)
	b.stop(t)
	ends := endOffsets(t, addrs)
	checkOutputs(t, got, ends, bad, false)
	if got.total != n {
		t.Fatalf("%d outputs for %d inputs", got.total, n)
	}
	if cm := committed(t, addrs, "eos"); fmt.Sprint(cm) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, end offsets %v", cm, ends)
	}
}
