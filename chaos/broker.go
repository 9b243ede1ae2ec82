package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startedBy is what kafka.sh records as the starter of the harness's own
// broker (KAFKA_STARTED_BY): a broker left behind by an interrupted run is
// recognised, adopted and restarted like one started now.
const startedBy = "kinfer-chaos"

// broker is the harness's private single-node broker, run with
// deploy/kafka/kafka.sh on its own ports and data directory, so that
// restarting it disturbs nobody else's tests.
type broker struct {
	script    string
	port      int
	env       []string
	runDir    string
	startedUs bool
}

func newBroker(script, cache string, port, controllerPort int) *broker {
	env := append(os.Environ(),
		"KAFKA_PORT="+strconv.Itoa(port),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(controllerPort),
		"KAFKA_STARTED_BY="+startedBy,
		"KINFER_CACHE="+cache)
	return &broker{script: script, port: port, env: env, runDir: filepath.Join(cache, "kafka", "run", strconv.Itoa(port))}
}

func (b *broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// start starts a broker on fresh data. A broker already on the port is
// reused only when kafka.sh says an earlier harness run started it.
func (b *broker) start(ctx context.Context) error {
	if _, err := exec.LookPath("java"); err != nil {
		return fmt.Errorf("java not found: the harness's broker needs Java 17+ (or pass --brokers)")
	}
	out, err := b.run(ctx, "start")
	if err != nil {
		return err
	}
	if bytes.Contains(out, []byte("already running")) {
		raw, _ := os.ReadFile(filepath.Join(b.runDir, "started-by"))
		if by := strings.TrimSpace(string(raw)); by != startedBy {
			return fmt.Errorf("a broker someone else started (%q) already runs on %s: pick another --kafka-port, or pass --brokers to use it without restarts", by, b.addr())
		}
	}
	b.startedUs = true
	return nil
}

// restart stops the broker (SIGTERM, a clean shutdown) and starts it on
// the same data.
func (b *broker) restart(ctx context.Context) error {
	_, err := b.run(ctx, "restart")
	return err
}

func (b *broker) stop(ctx context.Context) error {
	if !b.startedUs {
		return nil
	}
	_, err := b.run(ctx, "stop")
	b.startedUs = false
	return err
}

func (b *broker) run(ctx context.Context, sub string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", b.script, sub)
	cmd.Env = b.env
	// kafka.sh detaches the broker with its output in a file; never hang on
	// a pipe a grandchild kept open.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", b.script, sub, err, lastLines(string(out), 30))
	}
	return out, nil
}

// createTopics creates the run's topics (partitions each, replication 1)
// and waits until every partition has a leader.
func createTopics(ctx context.Context, brokers []string, partitions int32, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for {
		tds, err := adm.ListTopics(ctx, topics...)
		ready := err == nil
		for _, t := range topics {
			td, ok := tds[t]
			if !ok || td.Err != nil || len(td.Partitions) != int(partitions) {
				ready = false
				break
			}
			for _, p := range td.Partitions {
				if p.Err != nil || p.Leader < 0 {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %s not ready: %w", strings.Join(topics, ", "), errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func deleteTopics(ctx context.Context, brokers []string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err == nil {
		err = resp.Error()
	}
	return err
}

// offsets returns the group's committed offsets and the input's end
// offsets, per partition.
func offsets(ctx context.Context, adm *kadm.Client, group, topic string) (committed, ends map[int32]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	le, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = le.Error()
	}
	if err != nil {
		return nil, nil, err
	}
	fo, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return nil, nil, err
	}
	ends, committed = map[int32]int64{}, map[int32]int64{}
	le.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	fo.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.Topic == topic && o.At >= 0 {
			committed[o.Partition] = o.At
		}
	})
	return committed, ends, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
