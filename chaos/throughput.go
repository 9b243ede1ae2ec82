package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
)

// ThroughputRun is one guarantee measured once: one `kinfer run` instance,
// no faults, working off a backlog of c.Records records.
type ThroughputRun struct {
	Guarantee string `json:"guarantee"`
	Round     int    `json:"round"`
	// StartupSeconds is from the process start to its first output (model
	// load, group join, first fetch).
	StartupSeconds float64 `json:"startup_seconds"`
	// Seconds is from the first output until a read_committed consumer can
	// see every prediction.
	Seconds          float64 `json:"seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	Outputs          int64   `json:"outputs"`
	Missing          int64   `json:"missing"`
	Duplicated       int64   `json:"duplicated"`
}

// ThroughputReport compares guarantees on the same input in one run.
type ThroughputReport struct {
	Records    int64           `json:"records"`
	Partitions int32           `json:"partitions"`
	Model      string          `json:"model"`
	Brokers    []string        `json:"brokers"`
	Runs       []ThroughputRun `json:"runs"`
	// Best is each guarantee's highest records per second over the rounds.
	Best map[string]float64 `json:"best_records_per_second"`
}

// Summary is one line: records per second per guarantee, and the ratio of
// the second guarantee to the first.
func (t *ThroughputReport) Summary(guarantees []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos-throughput: records=%d partitions=%d instances=1", t.Records, t.Partitions)
	for _, g := range guarantees {
		fmt.Fprintf(&b, " %s=%.0f/s", g, t.Best[g])
	}
	if len(guarantees) == 2 && t.Best[guarantees[0]] > 0 {
		fmt.Fprintf(&b, " ratio=%.2f", t.Best[guarantees[1]]/t.Best[guarantees[0]])
	}
	return b.String()
}

// Throughput measures guarantees against each other in one run: it writes
// c.Records records once, then for each round and guarantee (the order
// alternating between rounds) runs one `kinfer run` instance with a fresh
// group and fresh output topics over that backlog, timing it from its
// first output until every prediction is visible to a read_committed
// consumer, and checks the output. Faults in c are ignored. The report goes to c.Out.
func Throughput(ctx context.Context, c Config, guarantees []string, rounds int) (*ThroughputReport, error) {
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	if rounds < 1 {
		rounds = 1
	}
	r := &run{c: c, start: time.Now()}
	workDir := c.WorkDir
	if workDir == "" {
		d, err := os.MkdirTemp("", "kinfer-chaos-throughput-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		workDir = d
	}
	brokers, _, stopBroker, err := r.useBroker(ctx)
	if err != nil {
		return nil, err
	}
	defer stopBroker()
	rep := &ThroughputReport{Records: c.Records, Partitions: c.Partitions, Model: DefaultModel, Brokers: brokers, Best: map[string]float64{}}

	avsc, err := os.ReadFile(filepath.Join(c.RepoRoot, DefaultSchema))
	if err != nil {
		return nil, err
	}
	enc, err := schema.NewEncoder(string(avsc))
	if err != nil {
		return nil, err
	}
	inDec, err := schema.NewFileDecoder(string(avsc))
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("chaos-throughput-%d", r.start.UnixMilli())
	in := base + "-in"
	if err := createTopics(ctx, brokers, c.Partitions, in); err != nil {
		return nil, err
	}
	r.logf("writing %d records into %s", c.Records, in)
	prod, err := newProducer(brokers, in, enc, c.Seed, c.Records, float64(c.Records)*10)
	if err != nil {
		return nil, err
	}
	if err := prod.run(ctx); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	var inputs []Input
	if err := readCommitted(ctx, brokers, []string{in}, func(rec *kgo.Record) { inputs = append(inputs, inputOf(inDec, rec)) }); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	for round := 1; round <= rounds; round++ {
		order := slices.Clone(guarantees)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, g := range order {
			name := fmt.Sprintf("%s-%s-%d", base, strings.ReplaceAll(g, "_", "-"), round)
			p := pipeline{
				brokers: brokers, group: name + "-group", in: in, out: name + "-out", dlq: name + "-dlq",
				model: filepath.Join(c.RepoRoot, DefaultModel), schema: filepath.Join(c.RepoRoot, DefaultSchema),
				guarantee: g, sessionTimeout: c.SessionTimeout, commitInterval: c.CommitInterval,
				drainTimeout: c.DrainTimeout, rebalance: 2 * c.DrainTimeout,
			}
			cfgPath := filepath.Join(workDir, name+".yaml")
			if err := writeFile(cfgPath, p.yaml()); err != nil {
				return nil, err
			}
			predSchema, err := validate(ctx, c.KinferBin, cfgPath)
			if err != nil {
				return nil, err
			}
			predDec, err := schema.NewFileDecoder(predSchema)
			if err != nil {
				return nil, err
			}
			if err := createTopics(ctx, brokers, c.Partitions, p.out, p.dlq); err != nil {
				return nil, err
			}
			res, err := r.measure(ctx, adm, p, cfgPath, workDir, len(rep.Runs)+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", g, err)
			}
			res.Guarantee, res.Round = g, round
			if _, err := waitStable(ctx, brokers, p.out, p.dlq); err != nil {
				return nil, err
			}
			var outputs []Output
			if err := readCommitted(ctx, brokers, []string{p.out, p.dlq}, func(rec *kgo.Record) {
				outputs = append(outputs, outputOf(predDec, inDec, in, rec.Topic == p.dlq, rec))
			}); err != nil {
				return nil, err
			}
			v := Check(g, c.Records, inputs, outputs)
			res.Outputs, res.Missing, res.Duplicated = v.Totals.Outputs, v.Totals.Missing, v.Totals.Duplicated
			rep.Runs = append(rep.Runs, res)
			rep.Best[g] = max(rep.Best[g], res.RecordsPerSecond)
			r.logf("%s round %d: %.0f records/s (%.1fs after a %.1fs start-up); outputs %d, missing %d, duplicated %d",
				g, round, res.RecordsPerSecond, res.Seconds, res.StartupSeconds, res.Outputs, res.Missing, res.Duplicated)
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.Out), 0o755); err != nil {
		return rep, err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(c.Out, append(b, '\n'), 0o644); err != nil {
		return rep, err
	}
	return rep, nil
}

// measure runs one instance over the backlog and times it.
func (r *run) measure(ctx context.Context, adm *kadm.Client, p pipeline, cfgPath, workDir string, n int) (ThroughputRun, error) {
	exits := make(chan exited, 1)
	start := time.Now()
	pr, err := startProc(r.c.KinferBin, cfgPath, workDir, 1, n, exits)
	if err != nil {
		return ThroughputRun{}, err
	}
	stop := func() {
		pr.signal(syscall.SIGTERM, endTerm)
		select {
		case <-exits:
		case <-time.After(r.c.DrainTimeout + 20*time.Second):
			pr.signal(syscall.SIGKILL, endKill)
			<-exits
		}
	}
	var first time.Time
	deadline := time.Now().Add(r.c.SettleTimeout)
	for {
		select {
		case <-ctx.Done():
			stop()
			return ThroughputRun{}, ctx.Err()
		case x := <-exits:
			return ThroughputRun{}, fmt.Errorf("kinfer run ended: %s\n%s", describe(x.state, x.err), logTail(pr.logPath, 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return ThroughputRun{}, fmt.Errorf("the group did not commit the input's end within %v", r.c.SettleTimeout)
		}
		if first.IsZero() {
			if outputEnd(ctx, adm, p.out) > 0 {
				first = time.Now()
			}
			continue
		}
		// Done when a read_committed consumer can see every prediction:
		// without transactions, once the output holds one per input (a run
		// without faults writes no duplicates); with them, once the group
		// has committed the input's end, which commits in the same
		// transaction as the last outputs. Waiting for at-least-once's own
		// offset commit instead would charge it up to a commit interval.
		var done bool
		if p.guarantee == config.ExactlyOnce {
			committed, ends, err := offsets(ctx, adm, p.group, p.in)
			done = err == nil && caughtUp(committed, ends, r.c.Records)
		} else {
			done = outputEnd(ctx, adm, p.out) >= r.c.Records
		}
		if done {
			done := time.Now()
			stop()
			secs := done.Sub(first).Seconds()
			return ThroughputRun{StartupSeconds: first.Sub(start).Seconds(), Seconds: secs, RecordsPerSecond: float64(r.c.Records) / secs}, nil
		}
	}
}

// outputEnd sums a topic's high watermarks; -1 when they cannot be listed.
func outputEnd(ctx context.Context, adm *kadm.Client, topic string) int64 {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
