package kinfercmd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/kafkatest"
)

// backlogRSSLimit is the documented bound (README, "Memory") for the
// settings this test uses: about 100 MiB for the process with ONNX
// Runtime loaded, plus max_in_flight_bytes and fetch_max_bytes per broker,
// with room for Go's garbage collector to run late.
const backlogRSSLimit = 256 << 20

// A backlog of 1,000,000 records and a slow pipeline (one row per model
// call): fetching waits for the in-flight budget, so the processor's
// resident memory stays under the bound however much is queued.
func TestIntegrationBacklogBoundedMemory(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	const n = 1_000_000
	tp := newTopics(t, brokers)
	prod := newProducer(t, brokers, tp, fix, nil)
	prod.cl = kafkatest.Client(t, brokers, kgo.ProducerLinger(20*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(200000))
	start := time.Now()
	prod.produce(0, n, nil, 0)
	t.Logf("queued %d records in %v", n, time.Since(start))

	cfgPath := writeConfig(t, brokers, tp, "")
	raw, _ := os.ReadFile(cfgPath)
	cfg := strings.Replace(string(raw), "batch:\n  max_size: 64", "batch:\n  max_size: 1", 1)
	cfg = strings.Replace(cfg, "processing:\n", "processing:\n  max_in_flight_records: 5000\n  max_in_flight_bytes: 8MiB\n", 1)
	cfg = strings.Replace(cfg, "  session_timeout: 6s\n", "  session_timeout: 6s\n  fetch_max_bytes: 8MiB\n", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildKinfer(t)
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var peak int64
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		rss, err := rssBytes(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("reading RSS: %v\n%s", err, logs.String())
		}
		peak = max(peak, rss)
		if os.Getenv("KINFER_TRACE_RSS") != "" {
			t.Logf("rss %.1f MiB", float64(rss)/(1<<20))
		}
	}
	hwm, _ := procStatus(cmd.Process.Pid, "VmHWM:")
	peak = max(peak, hwm)
	done := outputCount(t, brokers, tp)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, logs.String())
	}
	t.Logf("peak RSS %.1f MiB with %d of %d records done after 12 s (bound %d MiB)", float64(peak)/(1<<20), done, n, backlogRSSLimit>>20)
	if done == 0 || done >= n {
		t.Fatalf("%d of %d done: the test needs a backlog that is being worked on", done, n)
	}
	if peak > backlogRSSLimit {
		t.Fatalf("peak RSS %d MiB over the %d MiB bound", peak>>20, backlogRSSLimit>>20)
	}
}

func outputCount(t *testing.T, brokers []string, tp topics) int64 {
	ends, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListEndOffsets(context.Background(), tp.out, tp.dlq)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func rssBytes(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// procStatus reads a "kB" field of /proc/PID/status in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}
