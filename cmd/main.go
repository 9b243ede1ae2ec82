// Package kinfercmd is the kinfer command line: the run, replay, fit,
// validate, demo and version subcommands, their flags, signal handling and
// wiring. The kinfer binary (cmd/kinfer) is nothing but a call to Main.
//
// A build of kinfer with model kinds of your own is the same one line plus
// an import of the package that registers them (handlers.Register in its
// init), as Caddy's caddycmd does for plugins:
//
//	package main
//
//	import (
//		"os"
//
//		kinfercmd "github.com/kinfer/kinfer/cmd"
//		_ "example.com/you/rules" // registers model kind "rules"
//	)
//
//	func main() { os.Exit(kinfercmd.Main()) }
//
// pipeline.yaml then selects the kind with model.kind, and every
// subcommand (validate included) knows it. The onnx and remote kinds are
// always built in. examples/custom-handler is a complete, tested example.
package kinfercmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
)

const usage = `kinfer: streaming inference on Kafka.

Usage:
  kinfer <command> [flags]

Commands:
  run       join a consumer group and predict every record of the input topic
  replay    run the pipeline as a batch job over a topic slice or Avro files
  fit       fit the transform stages on a topic slice or Avro files, write the artifacts
  validate  check a pipeline.yaml against its Avro schema and model, without Kafka
  demo      run the fraud example end to end on an embedded Kafka
  version   print the version and the model kinds built in

Run 'kinfer <command> --help' for a command's flags.
Exit status: 0 on success or clean shutdown (SIGINT/SIGTERM drain in-flight
records and commit), 1 on a runtime failure, 2 on a usage or config error.
`

// Version is what `kinfer version` prints. cmd/kinfer sets it from its
// own main.version (-ldflags "-X main.version=..."); a custom build sets
// it before calling Main, or links it in with
// -ldflags "-X github.com/kinfer/kinfer/cmd.Version=...". Default: "dev".
var Version = "dev"

// Main runs the subcommand that os.Args names, writing to os.Stdout and
// os.Stderr, and returns the exit status for os.Exit: 0 on success or a
// clean shutdown, 1 on a runtime failure, 2 on a usage or config error.
// SIGINT and SIGTERM stop a run gracefully (drain, commit, exit 0).
func Main() int {
	return Run(os.Args[1:], os.Stdout, os.Stderr)
}

// Run is Main with the arguments (without the program name) and the
// output streams given, for tests and for programs that embed the
// command line.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "replay":
		err = cmdReplay(ctx, args[1:], stdout, stderr)
	case "validate":
		err = cmdValidate(ctx, args[1:], stdout, stderr)
	case "fit":
		err = cmdFit(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kinfer", Version)
		fmt.Fprintln(stdout, "model kinds:", strings.Join(handlers.Kinds(), ", "))
	default:
		fmt.Fprintf(stderr, "kinfer: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return exitCode(err, stderr)
}

// usageError marks errors that should exit 2.
type usageError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "kinfer: %v\n", err)
	var ue usageError
	if _, ok := config.AsError(err); ok || errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newFlags builds a FlagSet whose --help prints a description first.
func newFlags(name, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kinfer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kinfer %s [flags]\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func newLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)}
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// transformArtifactsFlag adds --transform-artifacts; apply overrides the
// config's transform_artifacts with it when it was given (relative to the
// working directory).
func transformArtifactsFlag(fs *flag.FlagSet) (apply func(cfg *config.Config) error) {
	dir := fs.String("transform-artifacts", "", "artifact directory written by kinfer fit (overrides transform_artifacts)")
	return func(cfg *config.Config) error {
		if *dir == "" {
			return nil
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return usageError{err}
		}
		cfg.TransformArtifacts = abs
		return cfg.Validate()
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
