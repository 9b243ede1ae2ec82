package kinfercmd

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
)

// TestProviderFallbackMetric: a model configured for CUDA on a machine (or
// an ONNX Runtime build) without it runs on the CPU, and the metrics say
// so: kinfer_model_execution_provider_info{requested="cuda",active="cpu"}.
func TestProviderFallbackMetric(t *testing.T) {
	orttest.Require(t)
	path := filepath.Join(repoRoot(t), "testdata/models/fnn/model.onnx")
	var load modelLoad
	for _, provider := range []string{"cuda", ""} {
		h, err := load.wrap(modelLoader(quietLogger(), nil))(context.Background(),
			config.Model{Name: "fnn", Kind: "onnx", Provider: provider, Copies: 1}, path)
		if err != nil {
			t.Fatalf("provider %q: %v", provider, err)
		}
		defer h.Close()
	}
	reg := prometheus.NewRegistry()
	m := processor.NewMetrics(reg)
	observeLoads(m, load.loaded)

	gpu, cpu := load.loaded[0], load.loaded[1]
	if gpu.requested != "cuda" || cpu.requested != "cpu" || cpu.active != "cpu" {
		t.Fatalf("loads recorded %+v and %+v", gpu, cpu)
	}
	if gpu.active == "cuda" {
		t.Logf("this machine runs CUDA: no fallback to see")
	} else if gpu.active != "cpu" {
		t.Fatalf("cuda model runs on %q, want cuda or its fallback cpu", gpu.active)
	}
	if v := testutil.ToFloat64(m.ModelProvider.WithLabelValues("fnn", "cuda", gpu.active)); v != 1 {
		t.Errorf("kinfer_model_execution_provider_info{requested=cuda,active=%s} = %v, want 1", gpu.active, v)
	}
	if n := testutil.CollectAndCount(m.ModelProvider); n != 2 {
		t.Errorf("%d provider series, want 2 (one per load)", n)
	}
}
