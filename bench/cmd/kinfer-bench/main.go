// Command kinfer-bench runs kinfer's benchmark harness (package bench) in
// one go against a real Kafka broker: the ceilings (ONNX Runtime alone,
// Kafka pass-through), kinfer's sustained end-to-end throughput, its
// latency at fixed offered loads, and the engine's cost per record by
// stage. It writes report.json, report.md and PNG plots into a results
// folder and prints the Markdown report.
//
//	kinfer-bench [--brokers host:port,...] [--out DIR] [--short] [--workloads fnn,fnn-raw,text] [--gc deploy|go] [--cpuprofile DIR]
//	kinfer-bench --render DIR   # rewrite DIR's report.md and plots from its report.json
//
// Without --brokers (or KINFER_TEST_BROKERS) it starts its own broker with
// deploy/kafka/kafka.sh on 127.0.0.1:39892 and stops it at the end.
// KINFER_BENCH_SHORT=1 is --short. Exit status: 0 done, 1 failed, 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kinfer/kinfer/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("kinfer-bench", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("KINFER_TEST_BROKERS"), "Kafka brokers (default $KINFER_TEST_BROKERS; empty: start one with deploy/kafka/kafka.sh)")
	port := fs.Int("port", bench.DefaultBrokerPort, "client port of the broker started when no brokers are given (the controller uses the next port)")
	out := fs.String("out", "", "results folder (default bench/results/<UTC timestamp>)")
	short := fs.Bool("short", os.Getenv("KINFER_BENCH_SHORT") == "1", "tiny sizes: check that the harness works, measure nothing (or KINFER_BENCH_SHORT=1)")
	workloads := fs.String("workloads", "fnn,fnn-raw,text", "workloads to run, comma-separated: fnn, fnn-raw, text")
	partitions := fs.Int("partitions", 4, "partitions per topic")
	maxDelay := fs.Duration("max-delay", 5*time.Millisecond, "batch.max_delay of kinfer's pipelines")
	skipStages := fs.Bool("skip-stages", false, "skip the per-stage CPU split")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long")
	gc := fs.String("gc", "deploy", "garbage-collector settings: deploy (GOGC and GOMEMLIMIT of deploy/k8s/deployment.yaml, as kinfer runs deployed) or go (Go's defaults); GOGC or GOMEMLIMIT in the environment win over both")
	profile := fs.String("cpuprofile", "", "write a CPU profile of every sustained run (pass-through rounds and kinfer's runs) into this folder")
	render := fs.String("render", "", "only rewrite report.md and the plots of this results folder from its report.json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kinfer-bench [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kinfer-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *render != "" {
		rep, err := bench.ReadReport(filepath.Join(*render, "report.json"))
		if err == nil {
			err = rep.Write(*render)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kinfer-bench:", err)
			return 1
		}
		fmt.Print(rep.Markdown())
		return 0
	}
	root, err := bench.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinfer-bench:", err)
		return 2
	}
	if *gc != "deploy" && *gc != "go" {
		fmt.Fprintf(os.Stderr, "kinfer-bench: --gc=%q: want deploy or go\n", *gc)
		return 2
	}
	gcSettings, err := bench.ApplyGC(root, *gc == "deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinfer-bench:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results", time.Now().UTC().Format("20060102T150405Z"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	opts := bench.Options{Root: root, OutDir: *out, Short: *short, Partitions: *partitions,
		MaxDelayMs: float64(*maxDelay) / float64(time.Millisecond), SkipStages: *skipStages, Progress: os.Stderr, ProfileDir: *profile, GC: gcSettings}
	for _, w := range strings.Split(*workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			opts.Workloads = append(opts.Workloads, w)
		}
	}
	if *brokers != "" {
		opts.Brokers = strings.Split(*brokers, ",")
		opts.BrokerNote = "given"
	} else {
		fmt.Fprintf(os.Stderr, "kinfer-bench: starting a Kafka broker on 127.0.0.1:%d (deploy/kafka/kafka.sh)\n", *port)
		b, err := bench.StartBroker(ctx, root, *port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kinfer-bench:", err)
			return 1
		}
		defer func() {
			if err := b.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "kinfer-bench: stopping the broker:", err)
			}
		}()
		opts.Brokers = b.Addrs
		opts.BrokerNote = "Apache Kafka 4 from deploy/kafka/kafka.sh, port " + strconv.Itoa(*port)
		if !b.Started {
			opts.BrokerNote += ", already running"
		}
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinfer-bench:", err)
		return 1
	}
	fmt.Print(rep.Markdown())
	fmt.Fprintf(os.Stderr, "kinfer-bench: results in %s (report.json, report.md, %s) after %.0f s\n", *out, strings.Join(rep.Plots, ", "), rep.Seconds)
	return 0
}
