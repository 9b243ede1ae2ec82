package onnx_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/tensor"
)

// resnetRelTol bounds |kinfer - PyTorch| relative to the largest |logit|
// (make_resnet50.py's bound for onnxruntime on the CPU).
const resnetRelTol = 1e-4

// resnetTF32RelTol is the bound with CUDA's TF32 matrix products on: 10
// mantissa bits per product, through 50 layers.
const resnetTF32RelTol = 2e-2

// resnetDir is workload 3's model (orttest.ResNet50Dir). The tests and
// benchmarks below skip where it was not made: CI has no torch, and the
// model is for GPU runs (scripts/gpu-check.sh makes it and runs them on
// CUDA).
func resnetDir(tb testing.TB) string {
	tb.Helper()
	dir, ok, err := orttest.ResNet50Dir()
	if err != nil {
		tb.Fatal(err)
	}
	if !ok {
		tb.Skipf("no ResNet-50 model in %s (`make resnet50` makes it; it needs torch)", dir)
	}
	return dir
}

// TestResNet50 runs the ResNet-50 export on $KINFER_TEST_PROVIDER (the CPU
// by default) and compares its logits with PyTorch's, one image at a time
// and for all four in one batch. On CUDA it also runs with TF32 on, as
// CUDA's default is, and logs how far that moves the logits.
func TestResNet50(t *testing.T) {
	dir := resnetDir(t)
	h := load(t, onnx.Options{Path: filepath.Join(dir, "model.onnx")})
	fx, err := handlertest.LoadFixture(filepath.Join(dir, "expected.json"), h.Inputs(), h.Outputs())
	if err != nil {
		t.Fatal(err)
	}
	largest := 0.0
	for _, row := range fx.Outputs {
		for j := range row["logits"].Len() {
			largest = math.Max(largest, math.Abs(row["logits"].Float64At(j)))
		}
	}
	scale := math.Max(1, largest)
	diff := func(h *onnx.Handler) (one, batch float64) {
		for i, row := range fx.Inputs {
			x, _ := tensor.Stack([]*tensor.Tensor{row["pixels"]})
			out, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"pixels": x})
			if err != nil {
				t.Fatalf("image %d: %v", i, err)
			}
			one = math.Max(one, maxAbsDiff(t, i, out["logits"], 0, fx.Outputs[i]["logits"]))
		}
		rows := make([]*tensor.Tensor, len(fx.Inputs))
		for i, row := range fx.Inputs {
			rows[i] = row["pixels"]
		}
		x, _ := tensor.Stack(rows)
		out, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"pixels": x})
		if err != nil {
			t.Fatalf("batch of %d: %v", len(rows), err)
		}
		for i := range rows {
			batch = math.Max(batch, maxAbsDiff(t, i, out["logits"], i, fx.Outputs[i]["logits"]))
		}
		return one, batch
	}
	one, batch := diff(h)
	t.Logf("on %s: max |kinfer - PyTorch| = %.3g one image at a time, %.3g in a batch of %d (largest |logit| %.3g)",
		h.ActiveProvider(), one, batch, len(fx.Inputs), largest)
	if bound := resnetRelTol * scale; one > bound || batch > bound {
		t.Errorf("logits differ from PyTorch's by up to %.3g, want <= %.3g", max(one, batch), bound)
	}
	if h.ActiveProvider() != onnx.ProviderCUDA {
		return
	}
	tf32 := load(t, onnx.Options{Path: filepath.Join(dir, "model.onnx"), Provider: onnx.ProviderCUDA,
		ProviderOptions: map[string]string{"use_tf32": "1"}})
	one, batch = diff(tf32)
	t.Logf("on cuda with TF32: max |kinfer - PyTorch| = %.3g one image at a time, %.3g in a batch", one, batch)
	if bound := resnetTF32RelTol * scale; one > bound || batch > bound {
		t.Errorf("with TF32 the logits differ from PyTorch's by up to %.3g, want <= %.3g", max(one, batch), bound)
	}
}

// BenchmarkInferResNet50 is ONNX Runtime alone on ResNet-50 at each batch
// size, on $KINFER_TEST_PROVIDER (on CUDA with its defaults, TF32 on):
//
//	KINFER_TEST_PROVIDER=cuda go test -run '^$' -bench ResNet50 ./handlers/onnx/
func BenchmarkInferResNet50(b *testing.B) {
	benchInfer(b, resnetDir(b), "pixels", []int{1, 8, 32, 64, 128})
}
