package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBrokerPort is the client port of the broker the harness starts
// for itself (its controller listens on the next port). It differs from
// the test broker's (39092) and the chaos harness's (39792), so a
// benchmark never shares a broker with a test run.
const DefaultBrokerPort = 39892

// Broker is the Kafka broker a run uses: one that was given, or one
// started with deploy/kafka/kafka.sh and stopped by Stop.
type Broker struct {
	Addrs []string
	// Started is true when this run started the broker.
	Started bool
	stop    func() error
}

// Stop stops a broker this run started; it is safe to call twice.
func (b *Broker) Stop() error {
	if b == nil || b.stop == nil {
		return nil
	}
	f := b.stop
	b.stop = nil
	return f()
}

// StartBroker starts a fresh single-node Apache Kafka 4 broker from the
// Maven Central jars on 127.0.0.1:port (deploy/kafka/kafka.sh, which
// needs Java 17+ and Maven the first time), waits until it serves
// metadata, and returns it. A broker already running on that port is
// reused and left running.
func StartBroker(ctx context.Context, root string, port int) (*Broker, error) {
	script := filepath.Join(root, "deploy/kafka/kafka.sh")
	run := func(ctx context.Context, sub string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "bash", script, sub)
		cmd.Env = append(os.Environ(),
			"KAFKA_PORT="+strconv.Itoa(port),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(port+1),
			"KAFKA_STARTED_BY=kinfer-bench")
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("%s %s: %w\n%s", script, sub, err, out)
		}
		return out, nil
	}
	// The broker's ports lie in Linux's ephemeral range, so another
	// process's outgoing connection can hold one for a moment: retry a
	// start that failed to bind.
	var out []byte
	var err error
	for attempt := 1; ; attempt++ {
		out, err = run(ctx, "start")
		if err == nil || attempt == 3 || !bytes.Contains(out, []byte("exited during start-up")) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return nil, err
	}
	b := &Broker{Addrs: []string{"127.0.0.1:" + strconv.Itoa(port)}}
	if !bytes.Contains(out, []byte("already running")) {
		b.Started = true
		b.stop = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := run(ctx, "stop")
			return err
		}
	}
	return b, nil
}

// newClient is a franz-go client on brokers.
func newClient(brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
}

// createTopics creates topics with the given partitions and waits until
// every partition has a leader.
func createTopics(ctx context.Context, brokers []string, partitions int, names ...string) error {
	// kadm answers from metadata cached for MetadataMinAge (default 5s):
	// keep it short, or waiting for the leaders takes 5s.
	cl, err := newClient(brokers, kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, names...)
	if err != nil {
		return fmt.Errorf("creating topics %s: %w", strings.Join(names, ", "), err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	for {
		tds, err := adm.ListTopics(ctx, names...)
		if err == nil && ready(tds, names, partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %s: partitions without a leader: %w", strings.Join(names, ", "), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ready(tds kadm.TopicDetails, names []string, partitions int) bool {
	for _, n := range names {
		td, ok := tds[n]
		if !ok || td.Err != nil || len(td.Partitions) != partitions {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

// deleteTopics removes topics, best effort (the broker's disk is the
// limit on long runs).
func deleteTopics(brokers []string, names ...string) {
	cl, err := newClient(brokers)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, names...)
}

// endOffsets sums the end offsets of topic's partitions.
func endOffsets(ctx context.Context, brokers []string, topic string) (int64, error) {
	cl, err := newClient(brokers)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	var errs []error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
		n += o.Offset
	})
	return n, errors.Join(errs...)
}

// preload produces n records of w to topic (keys spread over the
// partitions) and waits until all are acknowledged.
func preload(ctx context.Context, brokers []string, topic string, w *Workload, n int) error {
	cl, err := newClient(brokers, kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var first error
	errc := make(chan error, 1)
	for i := range n {
		key := []byte("k" + strconv.Itoa(i))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: w.Value(i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case first = <-errc:
	default:
	}
	if first != nil {
		return fmt.Errorf("preloading %s: %w", topic, first)
	}
	return nil
}
