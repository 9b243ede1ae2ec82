package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kinfer/kinfer/internal/config"
)

// Report is everything one run measured.
type Report struct {
	StartedAt  time.Time `json:"started_at"`
	Seconds    float64   `json:"seconds"`
	Short      bool      `json:"short"`
	Host       Host      `json:"host"`
	Brokers    []string  `json:"brokers"`
	BrokerNote string    `json:"broker_note,omitempty"`
	Partitions int       `json:"partitions"`
	MaxDelayMs float64   `json:"max_delay_ms"`

	Workloads []WorkloadReport `json:"workloads"`
	Stages    []StageSplit     `json:"stages"`
	Notes     []string         `json:"notes"`
	// Plots are the PNG files written beside the report.
	Plots []string `json:"plots"`
}

// Host describes the machine the run measured.
type Host struct {
	CPUs         int    `json:"cpus"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model,omitempty"`
	OS           string `json:"os"`
	GoVersion    string `json:"go_version"`
	ORTLibrary   string `json:"ort_library,omitempty"`
	LoadAvgStart string `json:"loadavg_start"`
	// GC is the garbage-collector settings of the run (the harness's
	// process runs both kinfer and the Kafka pass-through).
	GC         GCSettings `json:"gc"`
	LoadAvgEnd string     `json:"loadavg_end"`
}

// WorkloadReport is one workload's ceilings, end-to-end throughput and
// latencies.
type WorkloadReport struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	ValueBytes  int    `json:"value_bytes"`

	// ORT is ONNX Runtime alone at each batch size; ORTBest its best.
	ORT     []BatchPoint `json:"ort"`
	ORTBest BatchPoint   `json:"ort_best"`
	// Kafka is the consume+produce pass-through of the same records.
	Kafka Throughput `json:"kafka_pass_through"`
	// KafkaRounds are the pass-through's records/s in every run; Kafka
	// is the best of them.
	KafkaRounds []float64 `json:"kafka_pass_through_rounds,omitempty"`
	// Ceiling is min(ORTBest, Kafka) and CeilingName which one it is.
	Ceiling     float64 `json:"ceiling_records_per_sec"`
	CeilingName string  `json:"ceiling"`

	// Sweep is kinfer end to end at each batch size; EndToEnd the best.
	Sweep    []Sustained `json:"sweep"`
	EndToEnd Sustained   `json:"end_to_end"`
	// Ratios of the end-to-end throughput to each ceiling.
	RatioToCeiling float64 `json:"ratio_to_ceiling"`
	RatioToORT     float64 `json:"ratio_to_ort"`
	RatioToKafka   float64 `json:"ratio_to_kafka"`
	// RatioPaired is the median, over the end-to-end batch size's runs, of
	// each run against the pass-through run right before it.
	RatioPaired float64 `json:"ratio_paired"`

	// LiveCapacity is kinfer's records/s while the harness produces the
	// input live on the same machine (runLiveCapacity: the median of
	// LiveRates, its half-second rates); LoadBase is the
	// rate the latency loads are fractions of: the lower of it and
	// EndToEnd (in short mode, capped further).
	LiveCapacity float64   `json:"live_capacity_per_sec"`
	LiveRates    []float64 `json:"live_rates_per_half_second,omitempty"`
	LoadBase     float64   `json:"load_base_per_sec"`

	Latency []LatencyPoint `json:"latency"`
	// KafkaLatency is the pass-through's latency at the same loads: the
	// floor that the broker, the clients and this machine set.
	KafkaLatency []LatencyPoint `json:"kafka_pass_through_latency"`
	// LatencyTarget checks p99 at 50% load against max_delay + 3x the
	// batch inference time.
	LatencyTarget *LatencyTarget `json:"latency_target,omitempty"`
}

// LatencyTarget is the latency goal at 50% load: p99 at most max_delay
// plus three times the model's time for one batch of the sustained
// max_size (from the ONNX Runtime ceiling at that size).
type LatencyTarget struct {
	BatchSize       int     `json:"batch_size"`
	BatchInferMs    float64 `json:"batch_inference_ms"`
	TargetMs        float64 `json:"target_ms"`
	P99Ms           float64 `json:"p99_ms"`
	Met             bool    `json:"met"`
	PassThroughP99  float64 `json:"pass_through_p99_ms"`
	AboveFloorP99Ms float64 `json:"p99_above_pass_through_ms"`
}

// latencyTarget computes the check from the 50% load point, if any.
func (w *WorkloadReport) latencyTarget(maxDelayMs float64) {
	rate := ortAt(w.ORT, w.EndToEnd.BatchSize)
	for i, l := range w.Latency {
		if l.LoadFraction != 0.5 || rate <= 0 || l.Measured == 0 {
			continue
		}
		t := &LatencyTarget{BatchSize: w.EndToEnd.BatchSize, BatchInferMs: 1e3 * float64(w.EndToEnd.BatchSize) / rate, P99Ms: l.P99Ms}
		t.TargetMs = maxDelayMs + 3*t.BatchInferMs
		t.Met = l.P99Ms <= t.TargetMs
		if i < len(w.KafkaLatency) {
			t.PassThroughP99 = w.KafkaLatency[i].P99Ms
			t.AboveFloorP99Ms = l.P99Ms - t.PassThroughP99
		}
		w.LatencyTarget = t
	}
}

func (w *WorkloadReport) ceilings() {
	w.Ceiling, w.CeilingName = w.ORTBest.RowsPerSec, fmt.Sprintf("ONNX Runtime alone (batch %d)", w.ORTBest.BatchSize)
	if w.Kafka.RecordsPerSec < w.Ceiling {
		w.Ceiling, w.CeilingName = w.Kafka.RecordsPerSec, "Kafka pass-through"
	}
	e := w.EndToEnd.RecordsPerSec
	w.RatioToCeiling, w.RatioToORT, w.RatioToKafka = safeDiv(e, w.Ceiling), safeDiv(e, w.ORTBest.RowsPerSec), safeDiv(e, w.Kafka.RecordsPerSec)
	w.RatioPaired = median(w.EndToEnd.PairedRatios)
}

func safeDiv(a, b float64) float64 {
	if b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return 0
	}
	return a / b
}

// notes states what the numbers say and what to doubt.
func (r *Report) notes() {
	var n []string
	if r.Short {
		n = append(n, "SHORT MODE: tiny sizes, one repeat; these numbers check that the harness works and measure nothing.")
	}
	n = append(n, fmt.Sprintf("One machine (%d CPUs, GOMAXPROCS %d) shared by the broker (a JVM), kinfer, and the harness's own producers and consumers; load average %s at the start, %s at the end. Ceilings and kinfer compete for the same cores, so all figures are for this shared setup.",
		r.Host.CPUs, r.Host.GOMAXPROCS, r.Host.LoadAvgStart, r.Host.LoadAvgEnd))
	if r.Host.GC.Source == deploymentFile {
		n = append(n, fmt.Sprintf("Garbage collector: %s, as kinfer runs when deployed; the pass-through and the ONNX Runtime ceiling run in the same process under the same settings. `kinfer-bench --gc=go` (or GOGC in the environment) measures otherwise.", r.Host.GC))
	}
	for _, w := range r.Workloads {
		n = append(n, fmt.Sprintf("%s: kinfer sustains %s records/s end to end (max_size %d) = %.0f%% of min(ceilings) = %s (%s); %.0f%% of ONNX Runtime alone, %.0f%% of the Kafka pass-through.",
			w.Name, num(w.EndToEnd.RecordsPerSec), w.EndToEnd.BatchSize, 100*w.RatioToCeiling, num(w.Ceiling), w.CeilingName, 100*w.RatioToORT, 100*w.RatioToKafka))
		if len(w.KafkaRounds) > 1 && w.CeilingName == "Kafka pass-through" {
			rounds := make([]string, len(w.KafkaRounds))
			for i, x := range w.KafkaRounds {
				rounds[i] = num(x)
			}
			med := median(w.KafkaRounds)
			n = append(n, fmt.Sprintf("%s: Kafka pass-through runs %s records/s; the best is the ceiling (conservative: kinfer's figure is a median). Against the pass-through's median run (%s), kinfer's end to end is %.2f.",
				w.Name, strings.Join(rounds, ", "), num(med), safeDiv(w.EndToEnd.RecordsPerSec, med)))
		}
		if len(w.EndToEnd.PairedRatios) > 0 && w.CeilingName == "Kafka pass-through" {
			pr := make([]string, len(w.EndToEnd.PairedRatios))
			for i, x := range w.EndToEnd.PairedRatios {
				pr[i] = fmt.Sprintf("%.2f", x)
			}
			n = append(n, fmt.Sprintf("%s: each kinfer run at max_size %d against the pass-through run right before it: %s; median %.2f (the figure least moved by the machine's drift).",
				w.Name, w.EndToEnd.BatchSize, strings.Join(pr, ", "), w.RatioPaired))
		}
		if k, e := w.Kafka.CPUMicrosPerRecord, w.EndToEnd.CPUMicrosPerRecord; k > 0 && e > 0 {
			n = append(n, fmt.Sprintf("%s: this process spent %.1f µs of CPU per record running kinfer end to end (max_size %d) and %.1f µs in the pass-through: the difference, %.1f µs, is kinfer's work beyond fetching (decoding, batching, the model, encoding, ordering), less the cheaper produce of a small prediction instead of a copy.",
				w.Name, e, w.EndToEnd.BatchSize, k, e-k))
		}
		if t := w.LatencyTarget; t != nil {
			verdict := "met"
			if !t.Met {
				verdict = "not met"
			}
			floor := ""
			if t.PassThroughP99 > 0 {
				floor = fmt.Sprintf("; the pass-through alone has p99 %.1f ms at this load, so kinfer adds %.1f ms to the floor of this machine", t.PassThroughP99, t.AboveFloorP99Ms)
				if t.PassThroughP99 > t.TargetMs {
					floor += " (the floor alone is above the target)"
				}
			}
			n = append(n, fmt.Sprintf("%s latency target at 50%% load: p99 %.1f ms against max_delay + 3 x batch inference time = %g + 3 x %.2f ms (max_size %d) = %.1f ms: %s%s.",
				w.Name, t.P99Ms, r.MaxDelayMs, t.BatchInferMs, t.BatchSize, t.TargetMs, verdict, floor))
		}
		if len(w.Latency) > 0 {
			var parts []string
			for _, l := range w.Latency {
				parts = append(parts, fmt.Sprintf("%.0f%% load: p50 %.1f ms (%.1fx max_delay), p99 %.1f ms (%.1fx)", 100*l.LoadFraction, l.P50Ms, l.P50OverMaxDelay, l.P99Ms, l.P99OverMaxDelay))
			}
			n = append(n, fmt.Sprintf("%s latency vs max_delay %g ms: %s.", w.Name, r.MaxDelayMs, strings.Join(parts, "; ")))
		}
	}
	if len(r.Workloads) > 0 {
		n = append(n, "The latency runs add work the sustained runs do not have: the harness produces the input at the offered rate and consumes every prediction, in the same process, and the broker serves both on the same two cores. So the loads are fractions of the lower of the sustained figure and kinfer's rate while the harness produces the input live (below, per workload); the 90% step can still build a queue.")
		for _, w := range r.Workloads {
			if w.LiveCapacity > 0 && len(w.LiveRates) > 0 {
				n = append(n, fmt.Sprintf("%s: sustained %s records/s from a backlog, %s records/s with the input produced live (median of its half-second rates, %s to %s); the loads are fractions of %s records/s.",
					w.Name, num(w.EndToEnd.RecordsPerSec), num(w.LiveCapacity), num(slices.Min(w.LiveRates)), num(slices.Max(w.LiveRates)), num(w.LoadBase)))
			}
		}
		n = append(n, fmt.Sprintf("Latency includes the output producer's linger (kafka.producer_linger, default %s, used here and by the pass-through): at low load a prediction can wait that long before it is sent, on top of batch.max_delay.", config.DefaultProducerLinger))
	}
	n = append(n, r.avroNote()...)
	n = append(n, "CPU per stage is the whole process's user+system time (getrusage) over the stage's loop divided by records, median of the repeats after a warm-up; fetch and produce count only the client side (the broker's CPU is another process). The benchmark pipelines configure no transform stages, so the engine-alone figure has none; the transform row is transform.Pipeline.Apply timed alone on the decoded record, what such a stage would add.")
	r.Notes = n
}

// avroNote says whether the Avro codec is the engine's bottleneck, with
// numbers, and names the faster option.
func (r *Report) avroNote() []string {
	var arr, raw *StageSplit
	for i := range r.Stages {
		switch r.Stages[i].Record {
		case "fnn-array":
			arr = &r.Stages[i]
		case "fnn-raw":
			raw = &r.Stages[i]
		}
	}
	if arr == nil {
		return nil
	}
	da, ma := arr.stage(StageDecode), arr.stage(StageMap)
	avro := da.CPUNsPerRecord + ma.CPUNsPerRecord
	share := safeDiv(avro, arr.PathCPUNsPerRecord)
	verdict := "is not"
	if arr.Costliest == StageDecode || arr.Costliest == StageMap || share >= 0.4 {
		verdict = "IS"
	}
	s := fmt.Sprintf("Avro codec: for the FNN record as an Avro array of 784 floats, decoding (%.1f µs, %.0f allocs) plus mapping to a tensor (%.1f µs, %.0f allocs) is %.1f µs of the %.1f µs of CPU a record costs outside the model (%.0f%%): the codec %s the bottleneck.",
		da.CPUNsPerRecord/1e3, da.AllocsPerRecord, ma.CPUNsPerRecord/1e3, ma.AllocsPerRecord, avro/1e3, arr.PathCPUNsPerRecord/1e3, 100*share, verdict)
	if raw != nil {
		dr, mr := raw.stage(StageDecode), raw.stage(StageMap)
		rawCost := dr.CPUNsPerRecord + mr.CPUNsPerRecord
		s += fmt.Sprintf(" The faster option is the raw-tensor encoding (`encoding: raw`, a bytes field of 3,136 little-endian float32): decode+map %.1f µs and %.0f allocs, %.0fx cheaper, %.1f µs per record in all (%.1fx).",
			rawCost/1e3, dr.AllocsPerRecord+mr.AllocsPerRecord, safeDiv(avro, rawCost), raw.PathCPUNsPerRecord/1e3, safeDiv(arr.PathCPUNsPerRecord, raw.PathCPUNsPerRecord))
	}
	s += " kinfer decodes arrays of float, double, int and long straight into typed slices (schema.decodeNative); goavro, which boxes every element into []any, took about 17 µs and 788 allocations for this record (`go test -bench Decode784 ./schema/`)."
	return []string{s}
}

func (sp *StageSplit) stage(name string) StageCost {
	for _, s := range sp.Stages {
		if s.Stage == name {
			return s
		}
	}
	return StageCost{}
}

// num formats a figure: two decimals below 10, else whole with
// thousands separators.
func num(x float64) string {
	if math.Abs(x) < 10 {
		return fmt.Sprintf("%.2f", x)
	}
	s := fmt.Sprintf("%.0f", math.Abs(x))
	var b strings.Builder
	if x < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ReadReport reads a report.json that Write wrote.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Write writes report.json, report.md and the plots into dir.
func (r *Report) Write(dir string) error {
	plots, err := r.plot(dir)
	if err != nil {
		return err
	}
	r.Plots = plots
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.Short {
		mode = "short (checks the harness; not a measurement)"
	}
	p("# kinfer benchmark, %s\n\n", r.StartedAt.Format(time.RFC3339))
	p("Mode: %s. Took %.0f s. Machine: %d CPUs (%s), GOMAXPROCS %d, %s, %s, %s; load average %s at the start, %s at the end. Broker: %s%s, %d partitions per topic. batch.max_delay %g ms.\n\n",
		mode, r.Seconds, r.Host.CPUs, r.Host.CPUModel, r.Host.GOMAXPROCS, r.Host.OS, r.Host.GoVersion, r.Host.GC, r.Host.LoadAvgStart, r.Host.LoadAvgEnd,
		strings.Join(r.Brokers, ","), paren(r.BrokerNote), r.Partitions, r.MaxDelayMs)

	if len(r.Workloads) > 0 {
		p("## End to end against the ceilings\n\n")
		p("| workload | record bytes | ONNX Runtime alone (best batch) | Kafka pass-through | min(ceilings) | kinfer end to end (max_size) | end to end / min(ceilings) | / ORT | / Kafka | / pass-through run before (median) |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, w := range r.Workloads {
			p("| %s | %d | %s/s (%d) | %s/s | %s/s | %s/s (%d) | **%.2f** | %.2f | %.2f | %.2f |\n", w.Name, w.ValueBytes,
				num(w.ORTBest.RowsPerSec), w.ORTBest.BatchSize, num(w.Kafka.RecordsPerSec), num(w.Ceiling),
				num(w.EndToEnd.RecordsPerSec), w.EndToEnd.BatchSize, w.RatioToCeiling, w.RatioToORT, w.RatioToKafka, w.RatioPaired)
		}
		p("\n")
		for _, w := range r.Workloads {
			p("- **%s**: %s.\n", w.Name, w.Description)
		}
		p("\nONNX Runtime alone: `Infer` on batches built beforehand (text: full batches per padding bucket, with the mask, encoder then classifier), median of the repeats. Kafka pass-through: a franz-go group member copying the same preloaded records to another topic (same partition, kinfer's fetch sizes and producer defaults), timed from the first records fetched to the last copy acknowledged, right before every kinfer run; the ceiling is its best run, and the last column is the median of kinfer's runs at the chosen max_size each against the pass-through run right before it. kinfer: `processor.Build` + `processor.RunStream` in this process over the same preloaded topic with a fresh group, timed from the first record taken to the last prediction acknowledged (the group join before that is the startup column). Each batch size runs in several rounds of up to a few seconds of the backlog; the tables show the median run, and the end-to-end figure is the best median.\n\n")

		p("## Throughput against batch size\n\n")
		p("| workload | batch size | ONNX Runtime alone rows/s | kinfer end to end records/s (median) | every round | CPU µs/record | records | startup s |\n| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n")
		for _, w := range r.Workloads {
			for _, pt := range w.ORT {
				e := "n/a"
				rec, st, rounds, cpu := "", "", "", ""
				for _, s := range w.Sweep {
					if s.BatchSize == pt.BatchSize {
						e, rec, st, cpu = num(s.RecordsPerSec), fmt.Sprint(s.Records), fmt.Sprintf("%.1f", s.StartupSeconds), micros(s.CPUMicrosPerRecord)
						var rs []string
						for _, x := range s.Rounds {
							rs = append(rs, num(x))
						}
						rounds = strings.Join(rs, ", ")
					}
				}
				p("| %s | %d | %s | %s | %s | %s | %s | %s |\n", w.Name, pt.BatchSize, num(pt.RowsPerSec), e, rounds, cpu, rec, st)
			}
		}
		p("\nCPU µs/record: this process's CPU time (user + system, every thread) over the median run's timed interval, per record; the broker's CPU is not in it. The Kafka pass-through's best round took %s.\n\n", passCPU(r.Workloads))
		for _, f := range r.Plots {
			if strings.HasPrefix(f, "throughput") {
				p("![%s](%s)\n", f, f)
			}
		}

		p("\n## Latency at fixed offered loads\n\n")
		p("Records produced at a steady rate (a fraction of the load base: the lower of the sustained end-to-end throughput and kinfer's rate with the input produced live on this machine) with their send time in the key; a consumer on the output topic measures arrival minus send time. The first tenth of each load step is not counted. max_delay is batch.max_delay. The pass-through columns are the Kafka pass-through (consume and produce, no model, same client settings) at the same loads: the floor that the broker, the clients and this machine set.\n\n")
		p("| workload | load | offered/s | achieved/s | records | p50 ms | p95 ms | p99 ms | max ms | p50 / max_delay | p99 / max_delay | pass-through p50 ms | pass-through p99 ms |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, w := range r.Workloads {
			for i, l := range w.Latency {
				k50, k99 := "n/a", "n/a"
				if i < len(w.KafkaLatency) {
					k50, k99 = fmt.Sprintf("%.1f", w.KafkaLatency[i].P50Ms), fmt.Sprintf("%.1f", w.KafkaLatency[i].P99Ms)
				}
				p("| %s | %.0f%% | %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n", w.Name, 100*l.LoadFraction, num(l.OfferedPerSec), num(l.AchievedPerSec),
					l.Measured, l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs, l.P50OverMaxDelay, l.P99OverMaxDelay, k50, k99)
			}
		}
		p("\n")
		for _, f := range r.Plots {
			if strings.HasPrefix(f, "latency") {
				p("![%s](%s)\n", f, f)
			}
		}
		p("\n")
	}

	if len(r.Stages) > 0 {
		p("## Engine cost per record, by stage (no-op model)\n\n")
		p("CPU time (all goroutines, GC included) and heap allocations per record; median of the repeats. \"engine alone\" is decode to encode through the real engine (lanes, channels, batcher, reorder buffer, commit tracking) with a model that returns zeros and a sink that acknowledges at once; \"overhead\" is that minus its stages.\n\n")
		for _, sp := range r.Stages {
			p("### %s record (%d bytes)\n\n", sp.Record, sp.ValueBytes)
			p("| stage | CPU ns/record | allocs/record | bytes/record | note |\n| --- | ---: | ---: | ---: | --- |\n")
			for _, s := range sp.Stages {
				if !s.InPath && s.CPUNsPerRecord == 0 {
					p("| %s | n/a | n/a | n/a | %s |\n", s.Stage, s.Note)
					continue
				}
				name := s.Stage
				if name == sp.Costliest {
					name = "**" + name + "**"
				}
				p("| %s | %s | %.1f | %s | %s |\n", name, num(s.CPUNsPerRecord), s.AllocsPerRecord, num(s.BytesPerRecord), s.Note)
			}
			ov := "engine overhead (goroutines, channels, reorder, tracking)"
			if sp.Costliest == ov {
				ov = "**" + ov + "**"
			}
			ovCPU := num(sp.Overhead.CPUNsPerRecord)
			if sp.Overhead.CPUNsPerRecord < 0 {
				ovCPU = fmt.Sprintf("≈ 0 (%s: within the noise)", ovCPU)
			}
			p("| %s | %s | %.1f | %s | engine alone minus decode, map, batch, encode |\n", ov, ovCPU, sp.Overhead.AllocsPerRecord, num(sp.Overhead.BytesPerRecord))
			p("| engine alone (decode → encode) | %s | %.1f | %s | %d records × %d repeats |\n", num(sp.Engine.CPUNsPerRecord), sp.Engine.AllocsPerRecord, num(sp.Engine.BytesPerRecord), sp.Records, sp.Repeats)
			p("| fetch + engine + produce | %s | | | at most %s records/s per core apart from the model |\n\n", num(sp.PathCPUNsPerRecord), num(safeDiv(1e9, sp.PathCPUNsPerRecord)))
			p("Costliest stage: **%s**.\n\n", sp.Costliest)
		}
	}

	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// micros formats a CPU time per record, "" when not measured.
func micros(us float64) string {
	if us <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", us)
}

// passCPU lists the pass-through's CPU per record by workload.
func passCPU(ws []WorkloadReport) string {
	var parts []string
	for _, w := range ws {
		if w.Kafka.CPUMicrosPerRecord > 0 {
			parts = append(parts, fmt.Sprintf("%s µs/record on %s", micros(w.Kafka.CPUMicrosPerRecord), w.Name))
		}
	}
	if len(parts) == 0 {
		return "an unmeasured CPU time"
	}
	return strings.Join(parts, ", ")
}
