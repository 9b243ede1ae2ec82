// Command kinfer-chaos is kinfer's fault harness: it runs `kinfer run`
// instances against a real Kafka broker while a producer writes a known
// sequence, SIGKILLs instances at random moments, restarts the broker,
// adds and removes extra group members, and then checks every input's
// output with read_committed. It prints one summary line on stdout and
// writes the detail to --out (JSON, Markdown beside it).
//
// Exit status: 0 PASS, 1 FAIL or a run that could not be carried out,
// 2 a usage error or a config kinfer rejects (such as a guarantee it does
// not implement yet).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kinfer/kinfer/chaos"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinfer-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: kinfer-chaos --kinfer-bin bin/kinfer [flags]
       kinfer-chaos --mode throughput [--guarantees at_least_once,exactly_once] [flags]

Runs kinfer on the fraud model against a real Kafka broker while a producer
writes a known sequence; SIGKILLs instances at random moments, restarts the
broker, adds and removes extra instances in the group; then reads the output
with read_committed and reports inputs, outputs, missing, duplicated and out
of order per input partition. One summary line on stdout, detail in --out.

By default the harness starts its own broker (deploy/kafka/kafka.sh on
--kafka-port) and restarts it mid-run; with --brokers it uses those and
skips broker restarts.

Flags:
`)
		fs.PrintDefaults()
	}
	var c chaos.Config
	brokers := fs.String("brokers", "", "comma-separated brokers of an existing cluster (default: start one; restarts need that)")
	fs.StringVar(&c.KinferBin, "kinfer-bin", "bin/kinfer", "the kinfer executable")
	fs.StringVar(&c.RepoRoot, "repo", "", "repository root with the model, schema and kafka.sh (default: found from the working directory)")
	fs.IntVar(&c.KafkaPort, "kafka-port", 39792, "client port of the harness's own broker (controller: port+1)")
	fs.StringVar(&c.Guarantee, "guarantee", "at_least_once", "processing.guarantee: at_least_once or exactly_once")
	fs.Int64Var(&c.Records, "records", 100000, "records in the known sequence")
	fs.DurationVar(&c.Duration, "duration", 90*time.Second, "how long the producer takes to write them (steady rate)")
	fs.IntVar(&c.Kills, "kills", 10, "SIGKILLs of a running instance, at random moments")
	fs.IntVar(&c.BrokerRestarts, "broker-restarts", 1, "broker restarts (own broker only)")
	fs.IntVar(&c.MembershipChanges, "membership-changes", 2, "extra instances that join the group and later leave it")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed for the schedule and the records (0: from the clock; the report has it)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 6*time.Second, "kafka.session_timeout of the instances")
	fs.DurationVar(&c.CommitInterval, "commit-interval", 0, "processing.commit_interval of the instances (0: kinfer's default for the guarantee)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "processing.drain_timeout of the instances")
	fs.BoolVar(&c.StaticMembership, "static-membership", false, "give each instance slot a kafka.instance_id")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", 3*time.Minute, "bound on the wait for the group to commit the input's end")
	fs.StringVar(&c.Out, "out", "chaos-report.json", "detail report (JSON; Markdown written beside it)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "folder for configs and instance logs (default: a temporary one, removed after a PASS)")
	fs.BoolVar(&c.KeepTopics, "keep-topics", false, "keep the run's topics on external brokers")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	mode := fs.String("mode", "chaos", "chaos: the fault run; throughput: one instance per guarantee over the same backlog, no faults")
	guarantees := fs.String("guarantees", "at_least_once,exactly_once", "throughput mode: the guarantees to compare")
	rounds := fs.Int("rounds", 1, "throughput mode: measurements per guarantee (order alternates)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kinfer-chaos: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	// An explicit 0 means none, not the library's default.
	c.NoKills = c.Kills == 0
	c.NoBrokerRestarts = c.BrokerRestarts == 0
	c.NoMembershipChanges = c.MembershipChanges == 0
	if !*quiet {
		c.Log = stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch *mode {
	case "chaos":
	case "throughput":
		gs := strings.Split(*guarantees, ",")
		t, err := chaos.Throughput(ctx, c, gs, *rounds)
		if err != nil {
			fmt.Fprintf(stderr, "kinfer-chaos: %v\n", err)
			if errors.Is(err, chaos.ErrUnsupported) {
				return 2
			}
			return 1
		}
		fmt.Fprintln(stdout, t.Summary(gs))
		fmt.Fprintf(stderr, "kinfer-chaos: detail in %s\n", c.Out)
		return 0
	default:
		fmt.Fprintf(stderr, "kinfer-chaos: --mode %q: expected chaos or throughput\n", *mode)
		return 2
	}
	rep, err := chaos.Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "kinfer-chaos: %v\n", err)
		if errors.Is(err, chaos.ErrUnsupported) {
			return 2
		}
		return 1
	}
	fmt.Fprintln(stdout, rep.Summary())
	fmt.Fprintf(stderr, "kinfer-chaos: detail in %s\n", c.Out)
	if rep.Result != chaos.Pass {
		for _, f := range rep.Failures {
			fmt.Fprintf(stderr, "kinfer-chaos: FAIL: %s\n", f)
		}
		if rep.WorkDir != "" {
			fmt.Fprintf(stderr, "kinfer-chaos: configs and instance logs kept in %s\n", rep.WorkDir)
		}
		return 1
	}
	return 0
}
