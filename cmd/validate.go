package kinfercmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

// warnAdvice logs the pipeline's batching advice (processor.Pipeline.Advice)
// as warnings when a run or replay starts.
func warnAdvice(log *slog.Logger, p *processor.Pipeline) {
	for _, a := range p.Advice() {
		log.Warn("batches held back by the settings", "advice", a)
	}
}

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", `Check pipeline.yaml without touching Kafka: the config's fields, the input
Avro schema (file, or the registry's latest for the input topic), the model's
declared inputs and outputs, and that every mapping fits (field types, dtypes,
shapes). With a transform section: the stages' options, the record fields they
read, and the artifact directory (present, checksums intact, fitted for these
stages), as run and replay check it. Problems are printed as FILE: FIELD: what
was expected vs found. Exit status 0 when valid, 2 when not.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	artifacts := transformArtifactsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, _ := newLogger(stderr, "warn", false)
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if err := artifacts(cfg); err != nil {
		return err
	}
	var load modelLoad
	p, err := processor.Build(ctx, cfg, load.wrap(modelLoader(log, nil)), processor.BuildOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "%s: valid\n", cfg.File)
	for _, a := range p.Advice() {
		fmt.Fprintf(stdout, "  advice: %s\n", a)
	}
	if tp := p.Transform; tp != nil {
		fmt.Fprintf(stdout, "  transform: %d stages, version %s", len(tp.Stages()), processor.TransformVersion(tp))
		if a := tp.Artifacts(); a != nil {
			fmt.Fprintf(stdout, " (artifacts %s, fitted on %d rows)", cfg.Resolve(cfg.TransformArtifacts), a.Manifest.Fit.Rows-a.Manifest.Fit.DeadLettered)
		}
		fmt.Fprintln(stdout)
		for _, o := range tp.Outputs() {
			desc := o.Kind
			if o.Kind == "tensor" {
				desc = fmt.Sprintf("tensor %v %v", o.DType, o.Shape)
			}
			fmt.Fprintf(stdout, "    output %s (stage %d): %s\n", o.Name, o.Stage, desc)
		}
	}
	for _, l := range load.loaded {
		if l.active != "" && l.active != l.requested {
			fmt.Fprintf(stdout, "  note: model %s asks for %s but runs on %s here (the warning above says why; a GPU build of ONNX Runtime: make ort-gpu)\n",
				l.name, l.requested, l.active)
		}
	}
	for _, h := range p.Models {
		fmt.Fprintf(stdout, "  model %s version %s", h.Name(), h.Version())
		if pr, ok := h.(handlers.ProviderReporter); ok {
			fmt.Fprintf(stdout, " on %s", pr.ActiveProvider())
		}
		fmt.Fprintln(stdout)
		for _, s := range h.Inputs() {
			fmt.Fprintf(stdout, "    input  %s\n", s)
		}
		for _, s := range h.Outputs() {
			fmt.Fprintf(stdout, "    output %s\n", s)
		}
	}
	fmt.Fprintf(stdout, "  prediction schema:\n%s\n", p.Codec.OutputSchema)
	return nil
}
