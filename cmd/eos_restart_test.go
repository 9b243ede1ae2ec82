package kinfercmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kinfer/kinfer/internal/gen"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// TestExactlyOnceSurvivesLostSession: while the broker drops EndTxn
// requests (as during a broker restart), a transaction fails to end with
// its outcome unconfirmed and the producer stays inside it, where franz-go
// cannot begin another (kinfer used to exit 1 here). kinfer aborts the
// open transaction (franz-go's TryAbort retry, which bumps the epoch) and
// goes on; when even that fails for the drain timeout (the broker also
// drops InitProducerId), it starts a new member with a new session. Either
// way every record gets exactly one committed prediction.
func TestExactlyOnceSurvivesLostSession(t *testing.T) {
	t.Run("abort", func(t *testing.T) {
		// The 3rd to 6th EndTxn are dropped; the abort needs none.
		testLostSession(t, "aborted the transaction a failed end left open", func(key int16, n int64, since time.Duration) bool {
			return key == int16(kmsg.EndTxn) && n > 2 && n <= 6
		})
	})
	t.Run("new session", func(t *testing.T) {
		// From the 3rd EndTxn on, EndTxn and InitProducerId are dropped
		// for 3 s: longer than the 1 s drain timeout the abort may take.
		testLostSession(t, "the transactional session is lost; starting a new one", func(key int16, n int64, since time.Duration) bool {
			return n > 2 && since < 3*time.Second
		})
	})
}

// testLostSession runs 3000 records exactly-once while drop says which
// requests the broker drops (n counts EndTxn requests so far; since is
// the time since the first dropped one), and wants the log to show
// recovered.
func testLostSession(t *testing.T, recovered string, drop func(key int16, n int64, since time.Duration) bool) {
	orttest.Require(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "tx", "preds", "tx.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	// Each dropped request closes the connection.
	var calls, refused atomic.Int64
	var first atomic.Int64 // unix nanos of the first drop
	for _, key := range []int16{int16(kmsg.EndTxn), int16(kmsg.InitProducerID)} {
		cluster.ControlKey(key, func(kmsg.Request) (kmsg.Response, error, bool) {
			cluster.KeepControl()
			n := calls.Load()
			if key == int16(kmsg.EndTxn) {
				n = calls.Add(1)
			}
			var since time.Duration
			if f := first.Load(); f != 0 {
				since = time.Duration(time.Now().UnixNano() - f)
			}
			if drop(key, n, since) {
				first.CompareAndSwap(0, time.Now().UnixNano())
				refused.Add(1)
				return nil, errors.New("dropped by the test"), true
			}
			return nil, nil, false
		})
	}

	root := repoRoot(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`kafka: {brokers: [%q], group: eos-lost, input_topic: tx, output_topic: preds, dead_letter_topic: tx.dlq}
schema: {input_schema_file: %s}
model:
  name: fraud
  path: %s
  inputs:
    - {tensor: features, fields: [amount, merchant_risk, distance_km, hour_of_day, txn_count_1h, account_age_days, is_foreign, avg_amount_30d], dtype: float32, shape: [8]}
batch: {max_size: 32, max_delay: 2ms}
output: {passthrough: [transaction_id]}
processing: {guarantee: exactly_once, commit_interval: 50ms, drain_timeout: 1s}
metrics: {disabled: true}
`, brokers[0], filepath.Join(root, "examples/fraud/transaction.avsc"), filepath.Join(root, "testdata/models/fraud/model.onnx"))), 0o644)

	avsc, err := os.ReadFile(filepath.Join(root, "examples/fraud/transaction.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schema.NewEncoder(string(avsc))
	if err != nil {
		t.Fatal(err)
	}
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	defer prod.Close()
	g := gen.NewTransactions(7)
	const n = 3000
	produce := func(from, to int) {
		for range to - from {
			key, native := g.Next()
			v, err := enc.Encode(native)
			if err != nil {
				t.Fatal(err)
			}
			prod.Produce(context.Background(), &kgo.Record{Topic: "tx", Key: []byte(key), Value: v}, nil)
		}
		if err := prod.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	logs := &lockedBuffer{}
	_, stop := startPipeline(t, cfgPath, modelLoader(quietLogger(), nil), processor.RunOptions{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		// Give up on a refused request at once, as a client does once a
		// broker stays down past its retries.
		ClientOpts: []kgo.Opt{kgo.RequestRetries(0)},
	})
	for i := range 10 { // ten bursts: ten transactions or more
		produce(i*n/10, (i+1)*n/10)
		time.Sleep(200 * time.Millisecond)
	}

	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("preds", "tx.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cons.Close()
	seen := map[string]int{}
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for total < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d predictions committed (dropped %d requests)\n%s", total, n, refused.Load(), logs.String())
		}
		fs.EachRecord(func(r *kgo.Record) {
			sp, _ := processor.HeaderValue(r, processor.HeaderSourcePartition)
			so, _ := processor.HeaderValue(r, processor.HeaderSourceOffset)
			seen[sp+"@"+so]++
			total++
		})
	}
	// Anything more would be a duplicate: wait a little for stragglers.
	late, lateCancel := context.WithTimeout(context.Background(), time.Second)
	defer lateCancel()
	cons.PollFetches(late).EachRecord(func(*kgo.Record) { total++ })
	stop()
	if refused.Load() == 0 {
		t.Fatalf("no request was dropped (%d EndTxn seen): the test did not exercise a failed transaction", calls.Load())
	}
	if !strings.Contains(logs.String(), recovered) {
		t.Fatalf("the log does not say %q:\n%s", recovered, logs.String())
	}
	if total != n || len(seen) != n {
		t.Fatalf("%d committed outputs for %d distinct inputs of %d", total, len(seen), n)
	}
	t.Logf("dropped %d requests; %d inputs, each predicted once", refused.Load(), n)
}

// lockedBuffer is a log destination for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
