// Package chaos is kinfer's fault harness. Against a real Kafka broker it
// runs `kinfer run` processes on the fraud model while a producer writes a
// known sequence, and meanwhile SIGKILLs instances at random moments,
// restarts the broker, and adds and removes extra instances in the same
// consumer group. Then it reads everything back with read_committed and
// checks, per input partition, that no input lost its output and, for
// exactly-once, that none was written twice or out of order.
//
// The command is chaos/cmd/kinfer-chaos (`make chaos`); the tests tagged
// chaos run it sized for CI.
package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/repo"
	"github.com/kinfer/kinfer/schema"
)

// Paths relative to the repository root.
const (
	DefaultModel  = "testdata/models/fraud/model.onnx"
	DefaultSchema = "examples/fraud/transaction.avsc"
	DefaultScript = "deploy/kafka/kafka.sh"
)

// Config is a run. Zero fields take the defaults documented on them.
type Config struct {
	// KinferBin is the kinfer executable to run. Required.
	KinferBin string
	// RepoRoot holds the model, the schema and deploy/kafka/kafka.sh.
	// Default: the nearest folder above the working directory with go.mod.
	RepoRoot string
	// Brokers, when set, are an existing cluster to use; the harness then
	// restarts no broker (it cannot) and says so in the report. Default:
	// the harness starts its own single-node broker with kafka.sh on
	// KafkaPort, restarts it during the run and stops it at the end.
	Brokers []string
	// KafkaPort and KafkaControllerPort are the own broker's listeners.
	// Defaults 39792 and 39793: apart from the test broker (39092), so that
	// restarting it disturbs no other test.
	KafkaPort, KafkaControllerPort int
	// Cache is KINFER_CACHE for kafka.sh (jars, data, run folders).
	// Default: $KINFER_CACHE, else <repo>/.cache.
	Cache string

	// Guarantee is processing.guarantee: at_least_once (default) or
	// exactly_once.
	Guarantee string
	// Records is the length of the known sequence. Default 100000.
	Records int64
	// Duration is how long the producer takes to write them at a steady
	// rate (longer when the broker stalls it). Default 90s.
	Duration time.Duration
	// Kills is how many times an instance is SIGKILLed. Default 10; set
	// NoKills for none.
	Kills int
	// BrokerRestarts is how many times the broker restarts. Default 1.
	BrokerRestarts int
	// MembershipChanges is how many extra instances join the group and
	// later leave it (SIGTERM). Default 2 (slots 2 and 3, overlapping).
	MembershipChanges int
	// NoKills, NoBrokerRestarts and NoMembershipChanges turn the defaults
	// above off.
	NoKills, NoBrokerRestarts, NoMembershipChanges bool
	// Seed draws the schedule and the records. Default: from the clock
	// (the report records it).
	Seed uint64
	// Partitions of every topic. Default 6.
	Partitions int32

	// SessionTimeout is kafka.session_timeout: how soon a killed member's
	// partitions move. Default 6s (the broker's minimum).
	SessionTimeout time.Duration
	// CommitInterval is processing.commit_interval. Default: kinfer's own
	// for the guarantee (not written to the config).
	CommitInterval time.Duration
	// DrainTimeout is processing.drain_timeout. Default 10s.
	DrainTimeout time.Duration
	// StaticMembership gives each instance slot its own kafka.instance_id.
	// Default false: dynamic members, so every kill and restart goes
	// through a rebalance (a restarted static member takes its old
	// partitions back without one, which tests less).
	StaticMembership bool
	// RestartDelayMin and RestartDelayMax bound the random wait before a
	// killed instance restarts. Defaults 200ms and 2s.
	RestartDelayMin, RestartDelayMax time.Duration
	// SettleTimeout bounds the wait, after the last input, for the group's
	// committed offsets to reach the input's end. Default 3m.
	SettleTimeout time.Duration

	// Out is the JSON detail file (Markdown beside it). Default
	// chaos-report.json.
	Out string
	// WorkDir holds the generated configs and every instance's log.
	// Default: a new temporary folder, removed after a passing run.
	WorkDir string
	// KeepTopics keeps the run's topics on external brokers.
	KeepTopics bool
	// Log receives progress lines. Default: none.
	Log io.Writer
}

func (c *Config) setDefaults() error {
	if c.KinferBin == "" {
		return errors.New("the kinfer executable is required (--kinfer-bin)")
	}
	if _, err := os.Stat(c.KinferBin); err != nil {
		return fmt.Errorf("--kinfer-bin: %w", err)
	}
	if abs, err := filepath.Abs(c.KinferBin); err == nil {
		c.KinferBin = abs
	}
	if c.RepoRoot == "" {
		root, err := FindRepoRoot()
		if err != nil {
			return err
		}
		c.RepoRoot = root
	}
	def := func(p *int, v int, off bool) {
		if off {
			*p = 0
		} else if *p == 0 {
			*p = v
		}
	}
	def(&c.KafkaPort, 39792, false)
	def(&c.KafkaControllerPort, c.KafkaPort+1, false)
	def(&c.Kills, 10, c.NoKills)
	def(&c.BrokerRestarts, 1, c.NoBrokerRestarts)
	def(&c.MembershipChanges, 2, c.NoMembershipChanges)
	switch c.Guarantee {
	case "":
		c.Guarantee = config.AtLeastOnce
	case config.AtLeastOnce, config.ExactlyOnce:
	default:
		return fmt.Errorf("guarantee %q: expected %s or %s", c.Guarantee, config.AtLeastOnce, config.ExactlyOnce)
	}
	if c.Records == 0 {
		c.Records = 100000
	}
	if c.Duration == 0 {
		c.Duration = 90 * time.Second
	}
	if c.Records < 0 || c.Duration < 0 || c.Kills < 0 || c.BrokerRestarts < 0 || c.MembershipChanges < 0 {
		return errors.New("records, duration, kills, broker restarts and membership changes cannot be negative")
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	durDef := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	durDef(&c.SessionTimeout, 6*time.Second)
	durDef(&c.DrainTimeout, 10*time.Second)
	durDef(&c.RestartDelayMin, 200*time.Millisecond)
	durDef(&c.RestartDelayMax, 2*time.Second)
	durDef(&c.SettleTimeout, 3*time.Minute)
	if c.RestartDelayMax < c.RestartDelayMin {
		c.RestartDelayMax = c.RestartDelayMin
	}
	if c.Out == "" {
		c.Out = "chaos-report.json"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// FindRepoRoot returns the nearest folder above the working directory that
// holds go.mod.
func FindRepoRoot() (string, error) {
	dir, err := repo.Root()
	if err != nil {
		return "", fmt.Errorf("%w: pass the repository root", err)
	}
	return dir, nil
}

// slot is an instance position: 1 runs throughout, 2 and 3 come and go.
type slot struct {
	id        int
	want      bool // should be running
	proc      *proc
	restartAt time.Time // when a stopped wanted slot starts again
	starts    int
	cfgPath   string
}

// run is one harness run's state.
type run struct {
	c      Config
	rep    *Report
	rng    *rand.Rand
	start  time.Time
	prod   *producer
	slots  map[int]*slot
	exits  chan exited
	br     *broker
	adm    *kadm.Client
	admCl  *kgo.Client
	failed int // unexpected exits, to stop a crash loop
}

// maxUnexpectedExits stops a run whose instances keep dying by themselves.
const maxUnexpectedExits = 30

// Run runs the harness. The error is for a run that could not be carried
// out (no broker, no executable, kinfer rejecting the config: that wraps
// ErrUnsupported when the guarantee is not implemented yet); a run that
// was carried out returns its Report, whose Result says whether the
// guarantee held, and writes it to c.Out.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	r := &run{c: c, start: time.Now(), rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15)),
		slots: map[int]*slot{}, exits: make(chan exited, 16)}
	r.rep = &Report{
		Guarantee: c.Guarantee, Seed: c.Seed, Records: c.Records, Rate: float64(c.Records) / c.Duration.Seconds(),
		PlannedKills: c.Kills, PlannedBrokerRestarts: c.BrokerRestarts, PlannedMembershipChgs: c.MembershipChanges,
		StaticMembership: c.StaticMembership, SessionTimeoutSeconds: c.SessionTimeout.Seconds(),
		CommitIntervalSeconds: c.CommitInterval.Seconds(), Partitions: c.Partitions, KinferBin: c.KinferBin,
	}
	rep := r.rep

	workDir := c.WorkDir
	if workDir == "" {
		d, err := os.MkdirTemp("", "kinfer-chaos-")
		if err != nil {
			return nil, err
		}
		workDir = d
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	rep.WorkDir = workDir

	// The broker.
	brokers, own, stopBroker, err := r.useBroker(ctx)
	if err != nil {
		return nil, err
	}
	defer stopBroker()
	rep.OwnBroker = own
	if !own && c.BrokerRestarts > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("external brokers: the %d planned broker restart(s) were skipped (the harness restarts only a broker it started)", c.BrokerRestarts))
		c.BrokerRestarts = 0
	}
	rep.Brokers = brokers
	r.admCl, err = kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer r.admCl.Close()
	r.adm = kadm.NewClient(r.admCl)

	// Topics and configs.
	base := fmt.Sprintf("chaos-%s-%d", strings.ReplaceAll(c.Guarantee, "_", "-"), r.start.UnixMilli())
	rep.InputTopic, rep.OutputTopic, rep.DeadLetterTopic, rep.Group = base+"-in", base+"-out", base+"-dlq", base+"-group"
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = createTopics(tctx, brokers, c.Partitions, rep.InputTopic, rep.OutputTopic, rep.DeadLetterTopic)
	cancel()
	if err != nil {
		return nil, err
	}
	if !rep.OwnBroker && !c.KeepTopics {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := deleteTopics(dctx, brokers, rep.InputTopic, rep.OutputTopic, rep.DeadLetterTopic); err != nil {
				r.logf("deleting topics: %v", err)
			}
		}()
	}
	for id := 1; id <= 3; id++ {
		p := pipeline{
			brokers: brokers, group: rep.Group, in: rep.InputTopic, out: rep.OutputTopic, dlq: rep.DeadLetterTopic,
			model: filepath.Join(c.RepoRoot, DefaultModel), schema: filepath.Join(c.RepoRoot, DefaultSchema),
			guarantee: c.Guarantee, sessionTimeout: c.SessionTimeout, commitInterval: c.CommitInterval,
			drainTimeout: c.DrainTimeout, rebalance: 2 * c.DrainTimeout,
		}
		if c.StaticMembership {
			p.instanceID = fmt.Sprintf("chaos-slot-%d", id)
		}
		s := &slot{id: id, cfgPath: filepath.Join(workDir, fmt.Sprintf("pipeline-%d.yaml", id))}
		if err := writeFile(s.cfgPath, p.yaml()); err != nil {
			return nil, err
		}
		r.slots[id] = s
	}
	predSchema, err := validate(ctx, c.KinferBin, r.slots[1].cfgPath)
	if err != nil {
		return nil, err
	}
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
	predDec, err := schema.NewFileDecoder(predSchema)
	if err != nil {
		return nil, fmt.Errorf("the prediction schema kinfer validate printed: %w", err)
	}

	// The run: instance 1, the producer, the schedule.
	defer r.killAll()
	r.slots[1].want = true
	if err := r.startSlot(r.slots[1], "first instance"); err != nil {
		return nil, err
	}
	r.prod, err = newProducer(brokers, rep.InputTopic, enc, c.Seed, c.Records, rep.Rate)
	if err != nil {
		return nil, err
	}
	pctx, stopProducer := context.WithCancel(ctx)
	defer stopProducer()
	prodDone := make(chan error, 1)
	go func() { prodDone <- r.prod.run(pctx) }()
	r.logf("producing %d records at %.0f/s into %s (%d partitions); guarantee %s, seed %d; logs in %s",
		c.Records, rep.Rate, rep.InputTopic, c.Partitions, c.Guarantee, c.Seed, workDir)

	events := plan(r.rng, c.Records, c.Kills, c.BrokerRestarts, c.MembershipChanges)
	var produced time.Time
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for produced.IsZero() || len(events) > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-prodDone:
			if err != nil {
				return nil, fmt.Errorf("producer: %w", err)
			}
			produced = time.Now()
			rep.ProduceSeconds = produced.Sub(r.start).Seconds()
			r.event(Event{Kind: "produced", Detail: fmt.Sprintf("all %d records acknowledged", c.Records)})
		case x := <-r.exits:
			if err := r.reap(x); err != nil {
				return nil, err
			}
		case <-tick.C:
		}
		if err := r.restartDue(); err != nil {
			return nil, err
		}
		for len(events) > 0 && r.prod.handed.Load() >= events[0].At {
			done, err := r.fire(ctx, events[0])
			if err != nil {
				return nil, err
			}
			if !done {
				break // no instance to kill yet: try again next tick
			}
			events = events[1:]
		}
	}

	// Settle: wait until the group has committed the whole input.
	r.logf("all events done and all input written; waiting (at most %v) for the group to commit the input's end", c.SettleTimeout)
	settleBy := time.Now().Add(c.SettleTimeout)
	for !rep.Settled && time.Now().Before(settleBy) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case x := <-r.exits:
			if err := r.reap(x); err != nil {
				return nil, err
			}
		case <-time.After(500 * time.Millisecond):
		}
		if err := r.restartDue(); err != nil {
			return nil, err
		}
		committed, ends, err := offsets(ctx, r.adm, rep.Group, rep.InputTopic)
		if err == nil && caughtUp(committed, ends, c.Records) {
			rep.Settled = true
			rep.CatchUpSeconds = time.Since(produced).Seconds()
		}
	}
	if !rep.Settled {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the group's committed offsets did not reach the input's end within %v", c.SettleTimeout))
	}
	r.event(Event{Kind: "settled", Detail: fmt.Sprintf("%v after %.1fs", rep.Settled, time.Since(produced).Seconds())})
	if err := r.stopAll(ctx); err != nil {
		return nil, err
	}
	if committed, ends, err := offsets(ctx, r.adm, rep.Group, rep.InputTopic); err == nil {
		rep.CommittedAtEnd, rep.InputEnd = committed, ends
	}

	// Check.
	r.logf("reading back %s, %s and %s with read_committed", rep.InputTopic, rep.OutputTopic, rep.DeadLetterTopic)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	open, err := waitStable(wctx, brokers, rep.OutputTopic, rep.DeadLetterTopic)
	cancel()
	if err != nil {
		return nil, err
	}
	if len(open) > 0 {
		rep.OpenTxns = open
		rep.Notes = append(rep.Notes, "transactions still open after 90s (read up to their last stable offsets): "+strings.Join(open, ", "))
	}
	var inputs []Input
	var outputs []Output
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := readCommitted(rctx, brokers, []string{rep.InputTopic}, func(rec *kgo.Record) {
		inputs = append(inputs, inputOf(inDec, rec))
	}); err != nil {
		return nil, err
	}
	if err := readCommitted(rctx, brokers, []string{rep.OutputTopic, rep.DeadLetterTopic}, func(rec *kgo.Record) {
		outputs = append(outputs, outputOf(predDec, inDec, rep.InputTopic, rec.Topic == rep.DeadLetterTopic, rec))
	}); err != nil {
		return nil, err
	}
	rep.Verdict = Check(c.Guarantee, c.Records, inputs, outputs)
	rep.Failures = append(rep.Failures, rep.Verdict.Failures...)
	if rep.Kills < c.Kills || rep.BrokerRestarts < c.BrokerRestarts || rep.MembershipChanges < c.MembershipChanges {
		rep.Failures = append(rep.Failures, fmt.Sprintf("faults not all carried out: %d of %d kills, %d of %d broker restarts, %d of %d membership changes",
			rep.Kills, c.Kills, rep.BrokerRestarts, c.BrokerRestarts, rep.MembershipChanges, c.MembershipChanges))
	}
	rep.Result = Pass
	if len(rep.Failures) > 0 {
		rep.Result = Fail
	}
	rep.ElapsedSeconds = time.Since(r.start).Seconds()
	if _, err := rep.Write(c.Out); err != nil {
		return rep, fmt.Errorf("writing the report: %w", err)
	}
	if rep.Result == Pass && c.WorkDir == "" {
		os.RemoveAll(workDir)
		rep.WorkDir = ""
	}
	return rep, nil
}

// caughtUp reports whether every partition's committed offset is its end
// and the ends hold all records.
func caughtUp(committed, ends map[int32]int64, records int64) bool {
	var total int64
	for p, end := range ends {
		total += end
		if committed[p] != end && end > 0 {
			return false
		}
	}
	return total >= records
}

// useBroker returns the brokers to use: c.Brokers, or else a broker the
// harness starts (own), stopped by the returned func.
func (r *run) useBroker(ctx context.Context) (brokers []string, own bool, stop func(), err error) {
	if len(r.c.Brokers) > 0 {
		return r.c.Brokers, false, func() {}, nil
	}
	cache := cmp.Or(r.c.Cache, os.Getenv("KINFER_CACHE"), filepath.Join(r.c.RepoRoot, ".cache"))
	r.br = newBroker(filepath.Join(r.c.RepoRoot, DefaultScript), cache, r.c.KafkaPort, r.c.KafkaControllerPort)
	r.logf("starting a broker on %s with %s", r.br.addr(), DefaultScript)
	t0 := time.Now()
	if err := r.br.start(ctx); err != nil {
		return nil, false, nil, err
	}
	r.logf("broker ready in %.1fs", time.Since(t0).Seconds())
	return []string{r.br.addr()}, true, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := r.br.stop(sctx); err != nil {
			r.logf("stopping the broker: %v", err)
		}
	}, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.c.Log, "chaos: %6.1fs "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
}

func (r *run) event(e Event) {
	e.T = time.Since(r.start).Seconds()
	if r.prod != nil {
		e.Produced = r.prod.handed.Load()
	}
	r.rep.Events = append(r.rep.Events, e)
	msg := e.Kind
	if e.Slot > 0 {
		msg += fmt.Sprintf(" slot %d", e.Slot)
	}
	if e.PID > 0 {
		msg += fmt.Sprintf(" pid %d", e.PID)
	}
	if e.Seconds > 0 {
		msg += fmt.Sprintf(" (took %.1fs)", e.Seconds)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	r.logf("[produced %d] %s", e.Produced, msg)
}

func (r *run) startSlot(s *slot, why string) error {
	s.starts++
	s.restartAt = time.Time{}
	p, err := startProc(r.c.KinferBin, s.cfgPath, r.rep.WorkDir, s.id, s.starts, r.exits)
	if err != nil {
		return err
	}
	s.proc = p
	r.event(Event{Kind: "start", Slot: s.id, PID: p.pid, Detail: why})
	return nil
}

// restartDue starts wanted slots whose restart time has come.
func (r *run) restartDue() error {
	for id := 1; id <= 3; id++ {
		s := r.slots[id]
		if s.want && s.proc == nil && !s.restartAt.IsZero() && !time.Now().Before(s.restartAt) {
			if err := r.startSlot(s, "restart"); err != nil {
				return err
			}
		}
	}
	return nil
}

// reap records a process's end and, when it ended by itself, restarts it.
func (r *run) reap(x exited) error {
	p := x.p
	s := r.slots[p.slot]
	if s.proc == p {
		s.proc = nil
	}
	e := Exit{T: x.at.Sub(r.start).Seconds(), Slot: p.slot, N: p.n, PID: p.pid, Uptime: x.at.Sub(p.started).Seconds(),
		Asked: p.asked, How: describe(x.state, x.err), Expected: expected(p.asked, x.state), Log: p.logPath}
	if !e.Expected {
		e.LogTail = logTail(p.logPath, 40)
		r.rep.UnexpectedExits++
		r.failed++
		r.event(Event{Kind: "unexpected_exit", Slot: p.slot, PID: p.pid, Detail: fmt.Sprintf("%s (asked: %q); log %s", e.How, p.asked, p.logPath)})
		if s.want && s.restartAt.IsZero() {
			s.restartAt = time.Now().Add(time.Second)
		}
		if r.failed > maxUnexpectedExits {
			r.rep.Exits = append(r.rep.Exits, e)
			return fmt.Errorf("%d instances ended by themselves; the last (slot %d): %s\n%s", r.failed, p.slot, e.How, e.LogTail)
		}
	}
	if s.want && s.restartAt.IsZero() {
		s.restartAt = time.Now() // joined again while the last one was leaving
	}
	r.rep.Exits = append(r.rep.Exits, e)
	return nil
}

// fire carries out an event. It returns false when it cannot yet: a kill
// with no instance up for at least half a second, a leave of an instance
// that is down until its restart or up for less than a second.
func (r *run) fire(ctx context.Context, ev planned) (bool, error) {
	switch ev.Kind {
	case EventKill:
		var up []*slot
		for id := 1; id <= 3; id++ {
			s := r.slots[id]
			if s.proc != nil && s.proc.asked == "" && time.Since(s.proc.started) >= 500*time.Millisecond {
				up = append(up, s)
			}
		}
		if len(up) == 0 {
			return false, nil
		}
		s := up[r.rng.IntN(len(up))]
		delay := r.c.RestartDelayMin + time.Duration(r.rng.Int64N(int64(r.c.RestartDelayMax-r.c.RestartDelayMin)+1))
		s.proc.signal(syscall.SIGKILL, endKill)
		s.restartAt = time.Now().Add(delay)
		r.rep.Kills++
		r.event(Event{Kind: EventKill, Slot: s.id, PID: s.proc.pid, Detail: fmt.Sprintf("up %.1fs; restart in %v", time.Since(s.proc.started).Seconds(), delay.Round(time.Millisecond))})
	case EventBrokerRestart:
		r.event(Event{Kind: EventBrokerRestart, Detail: "stopping"})
		t0 := time.Now()
		if err := r.br.restart(ctx); err != nil {
			return false, fmt.Errorf("restarting the broker: %w", err)
		}
		r.rep.BrokerRestarts++
		r.event(Event{Kind: "broker_ready", Seconds: time.Since(t0).Seconds()})
	case EventJoin:
		s := r.slots[ev.Slot]
		s.want = true
		if s.proc == nil {
			if err := r.startSlot(s, "joins the group"); err != nil {
				return false, err
			}
		}
	case EventLeave:
		// A clean leave: when the instance was just killed, wait for its
		// restart, so every membership change ends with a SIGTERM. A
		// process needs a moment to install its SIGTERM handler (a SIGTERM
		// at 0.0 s up killed one before main ran): wait a second.
		s := r.slots[ev.Slot]
		if s.proc == nil || s.proc.asked != "" || time.Since(s.proc.started) < time.Second {
			return false, nil
		}
		s.want = false
		r.rep.MembershipChanges++
		s.proc.signal(syscall.SIGTERM, endTerm)
		r.event(Event{Kind: EventLeave, Slot: s.id, PID: s.proc.pid, Detail: fmt.Sprintf("SIGTERM after %.1fs up", time.Since(s.proc.started).Seconds())})
	}
	return true, nil
}

// stopAll sends SIGTERM to every running instance and waits for them to
// drain and exit (SIGKILL after the drain timeout and a margin).
func (r *run) stopAll(ctx context.Context) error {
	for id := 1; id <= 3; id++ {
		s := r.slots[id]
		s.want = false
		s.restartAt = time.Time{}
		if s.proc != nil && s.proc.asked == "" {
			s.proc.signal(syscall.SIGTERM, endTerm)
			r.event(Event{Kind: "stop", Slot: s.id, PID: s.proc.pid, Detail: "SIGTERM (end of run)"})
		}
	}
	deadline := time.After(r.c.DrainTimeout + 20*time.Second)
	for r.running() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case x := <-r.exits:
			if err := r.reap(x); err != nil {
				return err
			}
		case <-deadline:
			for _, s := range r.slots {
				if s.proc != nil {
					r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("slot %d (pid %d) ignored SIGTERM; killed", s.id, s.proc.pid))
					s.proc.signal(syscall.SIGKILL, "")
				}
			}
			deadline = nil
		}
	}
	return nil
}

func (r *run) running() int {
	n := 0
	for _, s := range r.slots {
		if s.proc != nil {
			n++
		}
	}
	return n
}

// killAll SIGKILLs whatever still runs (an aborted run) and waits for it.
func (r *run) killAll() {
	var left []*proc
	for _, s := range r.slots {
		if s.proc != nil {
			s.proc.signal(syscall.SIGKILL, endKill)
			left = append(left, s.proc)
		}
	}
	timeout := time.After(10 * time.Second)
	for len(left) > 0 {
		select {
		case x := <-r.exits:
			left = slices.DeleteFunc(left, func(p *proc) bool { return p == x.p })
		case <-timeout:
			return
		}
	}
}
