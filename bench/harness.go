// Package bench is kinfer's benchmark harness. Run measures, in one run
// against a real Kafka broker, the physical ceilings (ONNX Runtime alone
// at its best batch size, and a Kafka consume+produce pass-through), kinfer's
// sustained end-to-end throughput and its latency at fixed offered loads,
// and the engine's CPU and allocations per record split by stage; it writes
// the results as JSON, Markdown and PNG plots.
//
// The command is bench/cmd/kinfer-bench (`make bench`). Short mode runs
// everything with tiny sizes, to check that the harness works (CI), not to
// time anything.
//
// batching_test.go holds go-test benchmarks of batching strategies on real
// models, without Kafka.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/repo"
)

// Options configure Run. The zero value of each field means its default.
type Options struct {
	// Root is the repository root (testdata/models, deploy/kafka). Default:
	// found upwards from the working directory.
	Root string
	// Brokers is the Kafka cluster to use. Required.
	Brokers []string
	// BrokerNote says where the brokers came from, for the report.
	BrokerNote string
	// OutDir receives report.json, report.md and the PNG plots. Required.
	OutDir string
	// Short runs every workload with tiny sizes: a check that the harness
	// works, not a measurement.
	Short bool
	// Workloads to run: fnn, fnn-raw, text. Default all three.
	Workloads []string
	// Partitions of every topic. Default 4.
	Partitions int
	// BatchSizes for the ONNX Runtime ceiling and kinfer's batch sweep.
	// Default 1, 8, 32, 64, 128 (short: 1, 8, 32).
	BatchSizes []int
	// LoadFractions are the offered loads of the latency runs, as
	// fractions of the sustained throughput. Default 0.25, 0.5, 0.9.
	LoadFractions []float64
	// MaxDelayMs is batch.max_delay. Default 5.
	MaxDelayMs float64
	// SkipStages skips the per-stage CPU split.
	SkipStages bool
	// Progress receives one line per step. Default: none.
	Progress io.Writer
	// GC is what ApplyGC set, for the report. Default: Go's defaults.
	GC GCSettings
	// ProfileDir, when set, receives a CPU profile of every sustained
	// run (the pass-through rounds and kinfer's runs, the whole process),
	// named <workload>-<run>.pprof, for `go tool pprof`.
	ProfileDir string
}

// sizes scale the run: full measures, short checks.
type sizes struct {
	ortDur        time.Duration
	ortRepeats    int
	records       map[string]int
	sweepRounds   int
	sweepMaxTime  time.Duration
	latencyDur    time.Duration
	stageRecords  map[string]int
	stageRepeats  int
	distinctTexts int
	// liveDur is runLiveCapacity's run.
	liveDur time.Duration
	// maxOffered caps the rate the latency loads are fractions of (short
	// mode: its throughput figures are not measurements).
	maxOffered float64
}

func sizesFor(short bool) sizes {
	if short {
		return sizes{ortDur: 20 * time.Millisecond, ortRepeats: 1,
			records:     map[string]int{"fnn": 400, "fnn-raw": 400, "text": 120},
			sweepRounds: 1, sweepMaxTime: time.Second, latencyDur: 700 * time.Millisecond, liveDur: time.Second,
			stageRecords: map[string]int{"small": 300, "fnn": 200, "fnn-raw": 200}, stageRepeats: 1, distinctTexts: 256,
			maxOffered: 200}
	}
	return sizes{ortDur: time.Second, ortRepeats: 3,
		records:     map[string]int{"fnn": 60000, "fnn-raw": 60000, "text": 12000},
		sweepRounds: 3, sweepMaxTime: 3 * time.Second, latencyDur: 6 * time.Second, liveDur: 6 * time.Second,
		stageRecords: map[string]int{"small": 20000, "fnn": 4000, "fnn-raw": 4000}, stageRepeats: 5, distinctTexts: 4096}
}

func (o *Options) defaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("bench: no brokers")
	}
	if o.OutDir == "" {
		return errors.New("bench: no output folder")
	}
	if o.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []string{"fnn", "fnn-raw", "text"}
	}
	for _, w := range o.Workloads {
		if !slices.Contains([]string{"fnn", "fnn-raw", "text"}, w) {
			return fmt.Errorf("bench: unknown workload %q (want fnn, fnn-raw or text)", w)
		}
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if len(o.BatchSizes) == 0 {
		o.BatchSizes = []int{1, 8, 32, 64, 128}
		if o.Short {
			o.BatchSizes = []int{1, 8, 32}
		}
	}
	if len(o.LoadFractions) == 0 {
		o.LoadFractions = []float64{0.25, 0.5, 0.9}
	}
	if o.MaxDelayMs <= 0 {
		o.MaxDelayMs = 5
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// FindRoot walks up from the working directory to the folder holding
// go.mod.
func FindRoot() (string, error) {
	dir, err := repo.Root()
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return dir, nil
}

// Run runs the whole harness and writes the report into opts.OutDir.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if _, err := onnx.LibraryPath(); err != nil {
		return nil, fmt.Errorf("bench: ONNX Runtime not found (run `make ort`): %w", err)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kinfer-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	sz := sizesFor(opts.Short)
	start := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(opts.Progress, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	rep := &Report{
		StartedAt: start.UTC(), Short: opts.Short, Brokers: opts.Brokers, BrokerNote: opts.BrokerNote,
		Partitions: opts.Partitions, MaxDelayMs: opts.MaxDelayMs,
		Host: hostInfo(),
	}
	rep.Host.GC = opts.GC
	if rep.Host.GC.GOGC == "" {
		rep.Host.GC = GCSettings{GOGC: "100", Source: "Go's defaults"}
	}
	log := quietLogger(opts.Progress)
	prefix := "kbench-" + strconv.FormatInt(start.UnixNano()%1e9, 36)
	var seq atomic.Int64
	env := e2eEnv{root: opts.Root, brokers: opts.Brokers, dir: work, partitions: opts.Partitions, prefix: prefix, log: log, seq: &seq}

	if !opts.SkipStages {
		cases, err := stageCases(opts.Root)
		if err != nil {
			return nil, err
		}
		for _, c := range cases {
			progress("stage split: %s record (%d bytes)", stageRecordName(c.w.Name), c.w.ValueBytes())
			sp, err := runStageSplit(ctx, stageEnv{brokers: opts.Brokers, dir: work, partitions: opts.Partitions,
				records: sz.stageRecords[c.w.Name], repeats: sz.stageRepeats, prefix: prefix}, c)
			if err != nil {
				return nil, err
			}
			rep.Stages = append(rep.Stages, *sp)
		}
	}

	ortCache := map[string][]BatchPoint{}
	for _, name := range opts.Workloads {
		var w *Workload
		var err error
		switch name {
		case "fnn":
			w, err = FNNWorkload(opts.Root, false)
		case "fnn-raw":
			w, err = FNNWorkload(opts.Root, true)
		case "text":
			w, err = TextWorkload(sz.distinctTexts)
		}
		if err != nil {
			return nil, err
		}
		wr := WorkloadReport{Name: w.Name, Description: w.Description, ValueBytes: w.ValueBytes()}

		model := strings.TrimSuffix(w.Name, "-raw")
		if pts, ok := ortCache[model]; ok {
			wr.ORT = pts
		} else {
			progress("%s: ONNX Runtime alone at batch sizes %v", w.Name, opts.BatchSizes)
			if wr.ORT, err = ortCeiling(ctx, opts.Root, w, opts.BatchSizes, sz.ortDur, sz.ortRepeats, log); err != nil {
				return nil, err
			}
			ortCache[model] = wr.ORT
		}
		wr.ORTBest = bestPoint(wr.ORT)

		n := sz.records[w.Name]
		in := env.name(w.Name, "in")
		if err := createTopics(ctx, opts.Brokers, opts.Partitions, in); err != nil {
			return nil, err
		}
		progress("%s: preloading %d records (%d bytes each)", w.Name, n, w.ValueBytes())
		if err := preload(ctx, opts.Brokers, in, w, n); err != nil {
			deleteTopics(opts.Brokers, in)
			return nil, err
		}
		err = func() error {
			defer deleteTopics(opts.Brokers, in)
			// The pass-through runs right before every kinfer run (the
			// first one right after the preload, while the broker still
			// flushes it): the ceiling is its best run, and each kinfer run
			// is also compared with the pass-through just before it, a pair
			// that a drift in the machine's speed hits on both sides.
			passThrough := func(tag string) (float64, error) {
				out := env.name(w.Name, "copy-"+tag)
				if err := createTopics(ctx, opts.Brokers, opts.Partitions, out); err != nil {
					return 0, err
				}
				progress("%s: Kafka pass-through of %d records, %s", w.Name, n, tag)
				var t Throughput
				err := profiled(opts.ProfileDir, fmt.Sprintf("%s-passthrough-%s", w.Name, tag), func() (err error) {
					t, err = kafkaPassThrough(ctx, opts.Brokers, in, out, env.name(w.Name, "copy-group-"+tag), n)
					return err
				})
				deleteTopics(opts.Brokers, out)
				if err != nil {
					return 0, err
				}
				wr.KafkaRounds = append(wr.KafkaRounds, t.RecordsPerSec)
				if t.RecordsPerSec > wr.Kafka.RecordsPerSec {
					wr.Kafka = t
				}
				return t.RecordsPerSec, nil
			}
			// kinfer at every batch size, in rounds (each round in another
			// order, so a drift in the machine's load hits every size), each
			// run over the same preloaded backlog from its start with a
			// fresh group. Past maxTime a run stops and drains what it
			// holds (up to max_in_flight_records), so a run gets no more
			// records than the model alone could do in that time.
			runs := map[int][]Sustained{}
			for r := range sz.sweepRounds {
				order := slices.Clone(opts.BatchSizes)
				if r%2 == 1 {
					slices.Reverse(order)
				}
				for _, b := range order {
					before, err := passThrough(fmt.Sprintf("r%d-b%d", r+1, b))
					if err != nil {
						return err
					}
					m := min(n, max(100, int(ortAt(wr.ORT, b)*sz.sweepMaxTime.Seconds())))
					progress("%s: kinfer end to end, round %d/%d, %d records, max_size %d, max_delay %gms", w.Name, r+1, sz.sweepRounds, m, b, opts.MaxDelayMs)
					var s Sustained
					err = profiled(opts.ProfileDir, fmt.Sprintf("%s-kinfer-b%d-r%d", w.Name, b, r+1), func() (err error) {
						s, err = runSustained(ctx, env, w, in, m, b, opts.MaxDelayMs, sz.sweepMaxTime)
						return err
					})
					if err != nil {
						return err
					}
					s.PassThroughBefore = before
					runs[b] = append(runs[b], s)
				}
			}
			for _, b := range opts.BatchSizes {
				wr.Sweep = append(wr.Sweep, medianRun(runs[b]))
			}
			slices.SortFunc(wr.Sweep, func(a, b Sustained) int { return a.BatchSize - b.BatchSize })
			wr.EndToEnd = bestSustained(wr.Sweep)
			return nil
		}()
		if err != nil {
			return nil, err
		}
		wr.ceilings()

		base := wr.EndToEnd.RecordsPerSec
		if base <= 0 {
			return nil, fmt.Errorf("%s: no end-to-end throughput to base the offered loads on", w.Name)
		}
		progress("%s: kinfer's rate while the harness produces the input live, max_size %d", w.Name, wr.EndToEnd.BatchSize)
		if wr.LiveCapacity, wr.LiveRates, err = runLiveCapacity(ctx, env, w, wr.EndToEnd.BatchSize, opts.MaxDelayMs, sz.liveDur); err != nil {
			return nil, err
		}
		base = min(base, wr.LiveCapacity)
		if sz.maxOffered > 0 {
			base = min(base, sz.maxOffered)
		}
		wr.LoadBase = base
		progress("%s: latency at %v of %.0f records/s, max_size %d", w.Name, opts.LoadFractions, base, wr.EndToEnd.BatchSize)
		if wr.Latency, err = runLatency(ctx, env, w, base, opts.LoadFractions, sz.latencyDur, opts.MaxDelayMs, kinferRunner(env, w, wr.EndToEnd.BatchSize, opts.MaxDelayMs)); err != nil {
			return nil, err
		}
		progress("%s: Kafka pass-through latency at the same loads", w.Name)
		if wr.KafkaLatency, err = runLatency(ctx, env, w, base, opts.LoadFractions, sz.latencyDur, opts.MaxDelayMs, passThroughRunner(env)); err != nil {
			return nil, err
		}
		wr.latencyTarget(opts.MaxDelayMs)
		rep.Workloads = append(rep.Workloads, wr)
	}
	rep.Host.LoadAvgEnd = loadAvg()
	rep.Seconds = time.Since(start).Seconds()
	rep.notes()
	progress("writing %s", opts.OutDir)
	if err := rep.Write(opts.OutDir); err != nil {
		return rep, err
	}
	return rep, nil
}

// ortAt is the ONNX Runtime throughput at batch size b.
func ortAt(ps []BatchPoint, b int) float64 {
	for _, p := range ps {
		if p.BatchSize == b {
			return p.RowsPerSec
		}
	}
	return 0
}

// medianRun is the run with the median throughput (the lower middle of
// an even count), with every run's throughput in Rounds.
func medianRun(ss []Sustained) Sustained {
	if len(ss) == 0 {
		return Sustained{}
	}
	s := slices.Clone(ss)
	slices.SortFunc(s, func(a, b Sustained) int { return cmp.Compare(a.RecordsPerSec, b.RecordsPerSec) })
	m := s[(len(s)-1)/2]
	m.Rounds, m.PairedRatios = nil, nil
	for _, x := range ss {
		m.Rounds = append(m.Rounds, x.RecordsPerSec)
		if x.PassThroughBefore > 0 {
			m.PairedRatios = append(m.PairedRatios, x.RecordsPerSec/x.PassThroughBefore)
		}
	}
	return m
}

// bestSustained is the run with the highest throughput.
func bestSustained(ss []Sustained) Sustained {
	var best Sustained
	for _, s := range ss {
		if s.RecordsPerSec > best.RecordsPerSec {
			best = s
		}
	}
	return best
}

// hostInfo describes the machine.
func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadAvgStart: loadAvg()}
	if p, err := onnx.LibraryPath(); err == nil {
		h.ORTLibrary = p
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					h.CPUModel = strings.TrimSpace(v)
					break
				}
			}
		}
	}
	return h
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// profiled runs fn under a CPU profile written to dir/name.pprof, or
// just runs it when dir is empty.
func profiled(dir, name string, fn func() error) error {
	if dir == "" {
		return fn()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("profiling %s: %w", name, err)
	}
	err = fn()
	pprof.StopCPUProfile()
	return err
}
