package kinfercmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/transform"
)

func cmdFit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fit", `Fit the transform section's stages (z-scores, min/max, quantiles and
buckets, vocabularies, idf) on a bounded pass over data, and write the
artifact directory that run, replay and validate load (transform_artifacts in
pipeline.yaml, or their --transform-artifacts flag).

The data is a slice of a topic (offsets [from, to) per partition, fixed when
fit starts) or Avro container files, as for kinfer replay; flags override the
config's replay section. Each record is decoded and transformed exactly as in
streaming: a row that a field policy dead-letters is skipped and counted, a
field whose policy is "error" stops the fit. One pass over the data, or one
more per level where a fitted stage reads another fitted stage's output; every
pass reads the slice in the same order (partition after partition, file after
file), so the same data gives the same artifacts, byte for byte. No model is
loaded and nothing is written to Kafka.

The directory is written under a temporary name and renamed when complete; an
existing directory is never overwritten (fit into a new directory per
version). It holds manifest.json (the artifact version, the fit's row counts,
each stage's fingerprint, sha256 of every file) and one JSON file per fitted
stage; see docs/transform.md. The summary (rows, passes, dead letters by
reason, the version) goes to stdout.
Exit status: 0 when the artifacts are written, 1 on a runtime failure, 2 on a
usage or config error.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	out := fs.String("out", "", "artifact directory to create (required; must not exist)")
	brokers := fs.String("brokers", "", "comma-separated seed brokers (overrides kafka.brokers)")
	srcFlags := addSourceFlags(fs, "fit on", "the end offsets when fit starts")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "structured JSON logs (false: text)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{fmt.Errorf("--out: required (the artifact directory to create)")}
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	set := flagsSet(fs)
	r := &cfg.Replay
	if err := srcFlags.apply(set, r); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.HasTransform() {
		return &config.Error{File: cfg.File, Problems: []config.Problem{{Field: "transform.stages", Message: "required: kinfer fit fits the transform section's stages, and there are none"}}}
	}
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return usageError{err}
	}
	if _, err := os.Stat(outDir); err == nil {
		return fmt.Errorf("--out: %s already exists; fit into a new directory (artifact directories are never overwritten)", outDir)
	}
	tp, err := processor.NewTransform(cfg)
	if err != nil {
		return err
	}

	start := time.Now()
	src := transform.Source(func(context.Context, func(map[string]any) error) error { return nil })
	inputName := "no input (no stage needs fitting)"
	var input *processor.FitInput
	if tp.NeedsFit() {
		input, err = processor.OpenFitInput(ctx, cfg, tp, processor.FitInputOptions{Brokers: splitList(*brokers), Logger: log})
		if err != nil {
			return err
		}
		defer input.Close()
		src, inputName = input.Source(), input.Name
		log.Info("fit starting", "input", inputName, "records", input.Records, "passes", tp.NewFitter().Passes())
	}
	arts, err := tp.Fit(ctx, src)
	if err != nil {
		return fmt.Errorf("fitting on %s: %w", inputName, err)
	}
	elapsed := time.Since(start)
	if input != nil {
		// Records that do not decode are dead letters in streaming too.
		if n, reasons := input.Undecodable(); n > 0 {
			st := &arts.Manifest.Fit
			st.Rows += n
			st.DeadLettered += n
			if st.Reasons == nil {
				st.Reasons = map[string]int64{}
			}
			for k, v := range reasons {
				st.Reasons[k] += v
			}
		}
	}
	if err := transform.WriteArtifacts(outDir, arts); err != nil {
		return err
	}
	written, err := transform.ReadArtifacts(outDir)
	if err != nil {
		return fmt.Errorf("reading back the artifacts just written: %w", err)
	}
	printFitSummary(stdout, written, inputName, outDir, elapsed)
	return nil
}

func printFitSummary(w io.Writer, a *transform.Artifacts, input, dir string, elapsed time.Duration) {
	m := a.Manifest
	st := m.Fit
	rate := 0.0
	if elapsed > 0 {
		rate = float64(st.Rows) / elapsed.Seconds()
	}
	fmt.Fprintf(w, "fit complete: %d rows in %v (%.0f rows/s), %d pass(es)\n", st.Rows, elapsed.Round(time.Millisecond), rate, st.Passes)
	fmt.Fprintf(w, "  input:          %s\n", input)
	fmt.Fprintf(w, "  rows:           %d\n", st.Rows)
	fmt.Fprintf(w, "  fitted on:      %d\n", st.Rows-st.DeadLettered)
	fmt.Fprintf(w, "  dead-lettered:  %d%s\n", st.DeadLettered, reasons(st.Reasons))
	fmt.Fprintf(w, "  passes:         %d\n", st.Passes)
	fmt.Fprintf(w, "  artifacts:      %s\n", dir)
	fmt.Fprintf(w, "  version:        %s\n", m.Version)
	for _, s := range m.Stages {
		what := "nothing to fit"
		if s.File != "" {
			what = s.File
		}
		fmt.Fprintf(w, "  stage %d %s %q: %s\n", s.Index, s.Type, s.Fields, what)
	}
}
