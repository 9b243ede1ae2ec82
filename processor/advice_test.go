package processor

import (
	"strings"
	"testing"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/tensor"
)

// specModel is a model known only by its input specs.
type specModel struct {
	doubler
	inputs []handlers.TensorSpec
}

func (m *specModel) Inputs() []handlers.TensorSpec { return m.inputs }

func TestAdvice(t *testing.T) {
	image := &specModel{inputs: []handlers.TensorSpec{{Name: "pixels", DType: tensor.Float32, Shape: []int64{-1, 3, 224, 224}}}}
	text := &specModel{inputs: []handlers.TensorSpec{{Name: "ids", DType: tensor.Int64, Shape: []int64{-1, -1}}}}
	small := &specModel{inputs: []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 784}}}}
	pipeline := func(inFlight config.ByteSize, steps ...*Step) *Pipeline {
		cfg := &config.Config{}
		cfg.Processing.MaxInFlightBytes = inFlight
		return &Pipeline{Config: cfg, Steps: steps}
	}
	step := func(name string, m handlers.ModelHandler, size, bytes int) *Step {
		return &Step{Name: name, Batch: batch.Config{MaxSize: size, MaxBytes: bytes}, Models: SingleModel{Model: m}}
	}
	cases := []struct {
		name string
		p    *Pipeline
		want []string // one substring per line of advice
	}{
		{name: "images at the defaults", p: pipeline(64<<20, step("resnet", image, 64, 8<<20)),
			want: []string{
				`step "resnet": a row's inputs take 588KiB, so batch.max_bytes (8MiB) holds 13 rows, fewer than batch.max_size (64): set batch.max_bytes to at least 37MiB`,
			}},
		{name: "images with room", p: pipeline(1<<30, step("resnet", image, 64, 64<<20))},
		{name: "in-flight too small for full batches", p: pipeline(64<<20, step("resnet", image, 64, 64<<20)),
			want: []string{`holds fewer than two full batches of step "resnet" (36.8MiB each), so the next batch fills only once one is written: set it to at least 147MiB`}},
		// Sequences have no fixed row size; small rows fit.
		{name: "text and small rows", p: pipeline(64<<20, step("enc", text, 32, 8<<20), step("mlp", small, 128, 8<<20))},
		// Each step by its own batch limits; the in-flight bytes by the
		// first step's batches (13 rows, 7.5MiB, fit 64MiB 8 times).
		{name: "two steps", p: pipeline(64<<20, step("resnet", image, 64, 8<<20), step("big", image, 2000, 1<<30)),
			want: []string{`holds 13 rows`, `step "big": a row's inputs take 588KiB, so batch.max_bytes (1GiB) holds 1783 rows, fewer than batch.max_size (2000): set batch.max_bytes to at least 2GiB`}},
		{name: "cut batches still too large for the budget", p: pipeline(16<<20, step("resnet", image, 64, 10<<20)),
			want: []string{`holds 17 rows`, `(16MiB) holds fewer than two full batches of step "resnet" (9.8MiB each)`}},
		// Only the first step's rows are input records.
		{name: "later step", p: pipeline(64<<20, step("enc", text, 32, 8<<20), step("resnet", image, 64, 64<<20))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.p.Advice()
			if len(got) != len(c.want) {
				t.Fatalf("Advice() = %q, want %d lines", got, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %d = %q, want it to say %q", i, got[i], w)
				}
			}
		})
	}
}
