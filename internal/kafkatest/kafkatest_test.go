package kafkatest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

// TestIntegrationBroker proves the broker Brokers hands out is a working Kafka:
// a topic is created, 100 records go in and come back once each, in order
// within each partition.
func TestIntegrationBroker(t *testing.T) {
	brokers := Brokers(t)
	const partitions, n = 3, 100
	topic := NewTopic(t, brokers, partitions)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod := Client(t, brokers, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	want := make(map[int32][]string, partitions)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		p := int32(i % partitions)
		v := fmt.Sprintf("value-%03d", i)
		want[p] = append(want[p], v)
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v), Partition: p})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}

	cons := Client(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	got := make(map[int32][]string, partitions)
	lastOffset := map[int32]int64{}
	total := 0
	for total < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before %v", total, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetching %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, last)
			}
			lastOffset[r.Partition] = r.Offset
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			total++
		})
	}
	if total != n {
		t.Fatalf("consumed %d records, want %d", total, n)
	}
	for p := range int32(partitions) {
		if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Errorf("partition %d: got %v, want %v", p, got[p], want[p])
		}
	}
}

func TestBrokersFromEnv(t *testing.T) {
	t.Setenv(EnvBrokers, " a:9092, b:9093 ,,")
	got := Brokers(t)
	if fmt.Sprint(got) != "[a:9092 b:9093]" {
		t.Fatalf("Brokers = %q, want [a:9092 b:9093]", got)
	}
}

func TestTopicName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	long := string(make([]byte, 400))
	for _, name := range []string{"TestX", "TestX/sub case#1", long} {
		a, b := topicName(name), topicName(name)
		if !valid.MatchString(a) {
			t.Errorf("topicName(%.20q) = %q: not a valid Kafka topic name", name, a)
		}
		if a == b {
			t.Errorf("topicName(%.20q) returned %q twice", name, a)
		}
	}
}

func TestLiveLeases(t *testing.T) {
	dir := t.TempDir()
	// Our own pid is alive; a pid far beyond pid_max is not; junk is not a lease.
	for _, name := range []string{strconv.Itoa(os.Getpid()), "999999999", "junk"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := liveLeases(dir); n != 1 {
		t.Fatalf("liveLeases = %d, want 1", n)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != strconv.Itoa(os.Getpid()) {
		t.Fatalf("stale leases not removed: %v", ents)
	}
}
