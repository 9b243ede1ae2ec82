package kinfercmd

import (
	"context"
	"log/slog"

	"github.com/kinfer/kinfer/handlers"
	_ "github.com/kinfer/kinfer/handlers/onnx" // registers kind "onnx"
	"github.com/kinfer/kinfer/handlers/reload"
	_ "github.com/kinfer/kinfer/handlers/remote" // registers kind "remote"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

// modelLoader opens a step's model through the handler registry (onnx,
// remote, or a custom kind) and, when the step has a reload section,
// wraps it in a hot reloader that swaps in new versions that load and keep
// the same inputs and outputs, counting swaps and refusals in m (nil: not
// counted).
func modelLoader(log *slog.Logger, m *processor.Metrics) processor.ModelLoader {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, mc config.Model, path string) (handlers.ModelHandler, error) {
		spec := handlers.Spec{
			Name: mc.Name, Version: mc.Version, Path: path, URL: mc.URL,
			Copies: mc.Copies, IntraOpThreads: mc.IntraOpThreads, Provider: mc.Provider, DeviceID: mc.DeviceID,
			Options: mc.Options, Logger: log,
		}
		if mc.Reload == nil {
			return handlers.Open(ctx, mc.Kind, spec)
		}
		r := mc.Reload
		return reload.New(ctx, reload.Options{
			Path:     path,
			Load:     reload.Opener(mc.Kind, spec),
			FileName: r.FileName,
			Interval: r.Interval,
			Settle:   r.Settle,
			SHA256:   r.SHA256,
			Logger:   log,
			OnReload: func(ev reload.Event) {
				if m != nil {
					m.ObserveReload(mc.Name, ev.Previous, ev.Version, ev.Err)
				}
			},
		})
	}
}
