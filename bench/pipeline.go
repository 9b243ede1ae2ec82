package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kinfer/kinfer/handlers"
	_ "github.com/kinfer/kinfer/handlers/onnx" // registers kind "onnx"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/tensor"
)

// quietLogger drops kinfer's logs below warnings; bench output is the
// report.
func quietLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// onnxLoader opens models the way `kinfer run` does (the handler
// registry), without hot reload.
func onnxLoader(log *slog.Logger) processor.ModelLoader {
	return func(ctx context.Context, mc config.Model, path string) (handlers.ModelHandler, error) {
		return handlers.Open(ctx, mc.Kind, handlers.Spec{
			Name: mc.Name, Version: mc.Version, Path: path, URL: mc.URL,
			Copies: mc.Copies, IntraOpThreads: mc.IntraOpThreads, Provider: mc.Provider, DeviceID: mc.DeviceID,
			Options: mc.Options, Logger: log,
		})
	}
}

// buildPipeline writes yaml to dir/name and builds the pipeline with load.
func buildPipeline(ctx context.Context, dir, name, yaml string, load processor.ModelLoader) (*processor.Pipeline, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(path, []byte(yaml))
	if err != nil {
		return nil, err
	}
	p, err := processor.Build(ctx, cfg, load, processor.BuildOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// writeSchema writes w's input schema into dir and returns its path.
func writeSchema(dir, name, schemaJSON string) (string, error) {
	path := filepath.Join(dir, name+".avsc")
	return path, os.WriteFile(path, []byte(schemaJSON), 0o644)
}

// noopModel answers every batch with zeros of its declared outputs'
// shapes: the engine's own cost, without a model's.
type noopModel struct {
	name    string
	inputs  []handlers.TensorSpec
	outputs []handlers.TensorSpec
}

func (m *noopModel) Name() string                   { return m.name }
func (m *noopModel) Version() string                { return "noop" }
func (m *noopModel) Inputs() []handlers.TensorSpec  { return m.inputs }
func (m *noopModel) Outputs() []handlers.TensorSpec { return m.outputs }
func (m *noopModel) Close() error                   { return nil }

func (m *noopModel) Infer(_ context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	n := int64(0)
	for _, t := range inputs {
		if len(t.Shape) > 0 {
			n = t.Shape[0]
		}
		break
	}
	out := make(map[string]*tensor.Tensor, len(m.outputs))
	for _, o := range m.outputs {
		shape := append([]int64{n}, o.Shape[1:]...)
		for i, d := range shape {
			if d < 0 {
				shape[i] = 1
			}
		}
		out[o.Name] = tensor.New(o.DType, shape)
	}
	return out, nil
}

// noopLoader returns m for every model of the pipeline.
func noopLoader(m *noopModel) processor.ModelLoader {
	return func(context.Context, config.Model, string) (handlers.ModelHandler, error) { return m, nil }
}
