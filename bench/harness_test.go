package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/internal/orttest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// The short mode of the whole harness against the real broker: every
// workload, the ceilings, the sweep, the latency loads and the stage
// split run with tiny sizes, and the results folder holds a report.json
// that parses into plausible figures, a report.md with its tables, and
// valid PNG plots. It checks that the harness works, not how fast kinfer
// is.
func TestIntegrationBenchShort(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	orttest.Require(t)
	dir := t.TempDir()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Options{Brokers: brokers, OutDir: dir, Short: true, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("short harness run: %v", time.Since(start).Round(time.Millisecond))

	back, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !back.Short || len(back.Workloads) != 3 || len(back.Stages) != 3 {
		t.Fatalf("report: short %v, %d workloads, %d stage splits; want short, 3 and 3", back.Short, len(back.Workloads), len(back.Stages))
	}
	if back.Host.GC.GOGC == "" || back.Host.GC.Source == "" {
		t.Errorf("report does not say its GC settings: %+v", back.Host.GC)
	}
	cpuMeasured := 0
	for _, w := range back.Workloads {
		for _, s := range append(w.Sweep, Sustained{Throughput: w.Kafka}) {
			if s.CPUMicrosPerRecord < 0 || s.CPUMicrosPerRecord > 1e6 {
				t.Errorf("%s: CPU per record %v µs", w.Name, s.CPUMicrosPerRecord)
			}
			if s.CPUMicrosPerRecord > 0 {
				cpuMeasured++
			}
		}
		if len(w.ORT) != 3 || w.ORTBest.RowsPerSec <= 0 {
			t.Errorf("%s: ONNX Runtime points %+v", w.Name, w.ORT)
		}
		if w.Kafka.RecordsPerSec <= 0 || w.Kafka.Records <= 0 {
			t.Errorf("%s: Kafka pass-through %+v", w.Name, w.Kafka)
		}
		if w.EndToEnd.PassThroughBefore <= 0 || len(w.EndToEnd.PairedRatios) == 0 || w.RatioPaired <= 0 || len(w.KafkaRounds) != len(w.Sweep)*len(w.EndToEnd.Rounds) {
			t.Errorf("%s: paired pass-through %v, ratios %v (median %v), %d pass-through runs", w.Name, w.EndToEnd.PassThroughBefore, w.EndToEnd.PairedRatios, w.RatioPaired, len(w.KafkaRounds))
		}
		if len(w.Sweep) != 3 || w.EndToEnd.RecordsPerSec <= 0 || w.EndToEnd.DeadLetters != 0 {
			t.Errorf("%s: end to end %+v, sweep %+v", w.Name, w.EndToEnd, w.Sweep)
		}
		if w.Ceiling != math.Min(w.ORTBest.RowsPerSec, w.Kafka.RecordsPerSec) || w.RatioToCeiling <= 0 {
			t.Errorf("%s: ceiling %v (%s), ratio %v", w.Name, w.Ceiling, w.CeilingName, w.RatioToCeiling)
		}
		if w.LiveCapacity <= 0 || w.LoadBase <= 0 || w.LoadBase > min(w.LiveCapacity, w.EndToEnd.RecordsPerSec) {
			t.Errorf("%s: live capacity %v, load base %v (sustained %v)", w.Name, w.LiveCapacity, w.LoadBase, w.EndToEnd.RecordsPerSec)
		}
		if len(w.Latency) != 3 || len(w.KafkaLatency) != 3 {
			t.Fatalf("%s: %d latency points and %d for the pass-through, want 3 each", w.Name, len(w.Latency), len(w.KafkaLatency))
		}
		for _, l := range append(w.Latency, w.KafkaLatency...) {
			if l.Measured == 0 || l.P50Ms <= 0 || l.P50Ms > l.P95Ms || l.P95Ms > l.P99Ms || l.P99Ms > l.MaxMs || l.MaxDelayMs != 5 {
				t.Errorf("%s: latency point %+v", w.Name, l)
			}
		}
	}
	if cpuMeasured == 0 {
		t.Error("no sustained run measured its CPU per record")
	}
	for _, sp := range back.Stages {
		if sp.Engine.CPUNsPerRecord <= 0 || sp.Engine.AllocsPerRecord <= 0 || sp.Costliest == "" || sp.PathCPUNsPerRecord <= 0 {
			t.Errorf("%s: engine %+v, costliest %q", sp.Record, sp.Engine, sp.Costliest)
		}
		for _, s := range sp.Stages {
			if s.InPath && s.CPUNsPerRecord <= 0 {
				t.Errorf("%s: stage %s: %+v", sp.Record, s.Stage, s.Cost)
			}
		}
	}
	checkResults(t, dir, rep)
}

// checkResults asserts that dir holds what Write writes: parseable JSON, a
// Markdown report with its tables, and one valid PNG per plot.
func checkResults(t *testing.T, dir string, rep *Report) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| workload | record bytes | ONNX Runtime alone (best batch) | Kafka pass-through | min(ceilings) |",
		"| workload | batch size | ONNX Runtime alone rows/s |",
		"CPU µs/record",
		"| workload | load | offered/s | achieved/s |",
		"| stage | CPU ns/record | allocs/record |",
		"Costliest stage:",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if want := 2 * len(rep.Workloads); len(rep.Plots) != want {
		t.Errorf("%d plots, want %d: %v", len(rep.Plots), want, rep.Plots)
	}
	for _, f := range rep.Plots {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
			t.Errorf("%s: %v pixels", f, b)
		}
		if !strings.Contains(string(md), "("+f+")") {
			t.Errorf("report.md does not show %s", f)
		}
	}
}

// A report renders without a broker or a model: JSON, Markdown with the
// ratios and the costliest stage, and the plots; and it reads back.
func TestReportWrite(t *testing.T) {
	rep := &Report{StartedAt: time.Unix(1_700_000_000, 0).UTC(), Seconds: 300, Host: Host{CPUs: 2, GOMAXPROCS: 2, LoadAvgStart: "0.5 0.4 0.3", LoadAvgEnd: "1.9 1.0 0.6"},
		Brokers: []string{"127.0.0.1:39892"}, Partitions: 4, MaxDelayMs: 5}
	w := WorkloadReport{Name: "fnn", Description: "test", ValueBytes: 3140,
		ORT:   []BatchPoint{{1, 40_000}, {8, 300_000}, {32, 500_000}},
		Kafka: Throughput{Records: 1000, Seconds: 0.1, RecordsPerSec: 10_000},
		Sweep: []Sustained{{BatchSize: 1, Throughput: Throughput{RecordsPerSec: 3_000}}, {BatchSize: 8, Throughput: Throughput{RecordsPerSec: 5_000}}, {BatchSize: 32, Throughput: Throughput{RecordsPerSec: 6_000}}},
		Latency: []LatencyPoint{{LoadFraction: 0.25, OfferedPerSec: 1500, P50Ms: 9, P95Ms: 14, P99Ms: 20, MaxMs: 30, MaxDelayMs: 5},
			{LoadFraction: 0.5, OfferedPerSec: 3000, P50Ms: 10, P95Ms: 16, P99Ms: 25, MaxMs: 40, MaxDelayMs: 5}},
	}
	w.ORTBest = bestPoint(w.ORT)
	w.EndToEnd = bestSustained(w.Sweep)
	w.ceilings()
	if w.CeilingName != "Kafka pass-through" || w.RatioToCeiling != 0.6 || w.EndToEnd.BatchSize != 32 {
		t.Fatalf("ceiling %q, ratio %v, best batch %d; want the Kafka pass-through, 0.6, 32", w.CeilingName, w.RatioToCeiling, w.EndToEnd.BatchSize)
	}
	rep.Workloads = []WorkloadReport{w}
	arr := StageSplit{Record: "fnn-array", Stages: []StageCost{
		{Stage: StageFetch, InPath: true, Cost: Cost{CPUNsPerRecord: 500}},
		{Stage: StageDecode, InPath: true, Cost: Cost{CPUNsPerRecord: 30_000, AllocsPerRecord: 790}},
		{Stage: StageMap, InPath: true, Cost: Cost{CPUNsPerRecord: 5_000, AllocsPerRecord: 5}},
		{Stage: StageTransform, Note: "n/a"},
		{Stage: StageBatch, InPath: true, Cost: Cost{CPUNsPerRecord: 900}},
		{Stage: StageEncode, InPath: true, Cost: Cost{CPUNsPerRecord: 1_000}},
		{Stage: StageProduce, InPath: true, Cost: Cost{CPUNsPerRecord: 3_000}},
	}, Engine: Cost{CPUNsPerRecord: 40_000}}
	raw := arr
	raw.Record = "fnn-raw"
	raw.Stages = append([]StageCost(nil), arr.Stages...)
	raw.Stages[1].CPUNsPerRecord, raw.Stages[2].CPUNsPerRecord = 500, 1_000
	raw.Engine.CPUNsPerRecord = 6_000
	arr.finish()
	raw.finish()
	if arr.Costliest != StageDecode || arr.Overhead.CPUNsPerRecord != 3_100 || arr.PathCPUNsPerRecord != 43_500 {
		t.Fatalf("costliest %q, overhead %v, path %v", arr.Costliest, arr.Overhead.CPUNsPerRecord, arr.PathCPUNsPerRecord)
	}
	rep.Stages = []StageSplit{arr, raw}
	rep.notes()
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	checkResults(t, dir, rep)
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| **0.60** |", "the codec IS the bottleneck", "`encoding: raw`", "**decode (Avro → native)**"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	back, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil || back.Workloads[0].RatioToCeiling != 0.6 {
		t.Fatalf("read back: %v, %+v", err, back)
	}
}

func TestPercentileMedian(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(xs, 0.5); p != 5 {
		t.Errorf("p50 = %v, want 5", p)
	}
	if p := percentile(xs, 0.99); p != 10 {
		t.Errorf("p99 = %v, want 10", p)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v, want 2", m)
	}
	if m, p := median(nil), percentile(nil, 0.5); m != 0 || p != 0 {
		t.Errorf("empty: median %v, percentile %v; want 0 (JSON has no NaN)", m, p)
	}
}

// TestDeployGC reads the shipped deployment's GC settings, the ones
// `make bench` runs under.
func TestDeployGC(t *testing.T) {
	gogc, limit, err := deployGC(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(gogc); err != nil {
		t.Errorf("GOGC %q in %s is not a number", gogc, deploymentFile)
	}
	if n, err := parseMemLimit(limit); err != nil || n <= 0 {
		t.Errorf("GOMEMLIMIT %q in %s: %d, %v", limit, deploymentFile, n, err)
	}
	for in, want := range map[string]int64{"1GiB": 1 << 30, "512MiB": 512 << 20, "3KiB": 3 << 10, "1000": 1000, "7B": 7, "2TiB": 2 << 40} {
		if got, err := parseMemLimit(in); err != nil || got != want {
			t.Errorf("parseMemLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1GB", "-1GiB", "lots", "1.5GiB"} {
		if _, err := parseMemLimit(in); err == nil {
			t.Errorf("parseMemLimit(%q) did not fail", in)
		}
	}
}

// TestLatencyTarget: p99 at 50% load against max_delay + 3x the batch
// inference time at the sustained max_size, and the pass-through's floor.
func TestLatencyTarget(t *testing.T) {
	w := WorkloadReport{
		ORT:          []BatchPoint{{BatchSize: 8, RowsPerSec: 1000}, {BatchSize: 64, RowsPerSec: 3200}},
		EndToEnd:     Sustained{BatchSize: 64},
		Latency:      []LatencyPoint{{LoadFraction: 0.25, P99Ms: 1, Measured: 10}, {LoadFraction: 0.5, P99Ms: 60, Measured: 10}},
		KafkaLatency: []LatencyPoint{{LoadFraction: 0.25, P99Ms: 1}, {LoadFraction: 0.5, P99Ms: 12}},
	}
	w.latencyTarget(5)
	got := w.LatencyTarget
	// 64 rows at 3,200 rows/s: 20 ms a batch; 5 + 3 x 20 = 65 ms.
	if got == nil || got.BatchInferMs != 20 || got.TargetMs != 65 || !got.Met || got.PassThroughP99 != 12 || got.AboveFloorP99Ms != 48 {
		t.Fatalf("target %+v", got)
	}
	w.Latency[1].P99Ms = 66
	w.latencyTarget(5)
	if w.LatencyTarget.Met {
		t.Errorf("p99 66 ms met a 65 ms target: %+v", w.LatencyTarget)
	}
	w.Latency[1].P99Ms, w.Latency[1].Measured = 0, 0
	w.LatencyTarget = nil
	w.latencyTarget(5)
	if w.LatencyTarget != nil {
		t.Errorf("a target from a 50%% point that measured nothing: %+v", w.LatencyTarget)
	}
	w.Latency = w.Latency[:1]
	w.LatencyTarget = nil
	w.latencyTarget(5)
	if w.LatencyTarget != nil {
		t.Errorf("a target without a 50%% point: %+v", w.LatencyTarget)
	}
}
