package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", `Check pipeline.yaml without touching Kafka: the config's fields, the input
Avro schema (file, or the registry's latest for the input topic), the model's
declared inputs and outputs, and that every mapping fits (field types, dtypes,
shapes). Problems are printed as FILE: FIELD: what was expected vs found.
Exit status 0 when valid, 2 when not.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, _ := newLogger(stderr, "warn", false)
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	p, err := processor.Build(ctx, cfg, modelLoader(log, nil), processor.BuildOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "%s: valid\n", cfg.File)
	for _, h := range p.Models {
		fmt.Fprintf(stdout, "  model %s version %s\n", h.Name(), h.Version())
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
