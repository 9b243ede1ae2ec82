package onnx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kinfer/kinfer/tensor"
)

func TestSpecOf(t *testing.T) {
	info := func(vt ort.ONNXType, dt ort.TensorElementDataType, dims ...int64) ort.InputOutputInfo {
		return ort.InputOutputInfo{Name: "x", OrtValueType: vt, DataType: dt, Dimensions: ort.NewShape(dims...)}
	}
	ok := []struct {
		dt   ort.TensorElementDataType
		want tensor.DType
	}{
		{ort.TensorElementDataTypeFloat, tensor.Float32},
		{ort.TensorElementDataTypeDouble, tensor.Float64},
		{ort.TensorElementDataTypeInt32, tensor.Int32},
		{ort.TensorElementDataTypeInt64, tensor.Int64},
		{ort.TensorElementDataTypeUint8, tensor.Uint8},
		{ort.TensorElementDataTypeInt8, tensor.Int8},
		{ort.TensorElementDataTypeBool, tensor.Bool},
	}
	for _, c := range ok {
		s, err := specOf("input", info(ort.ONNXTypeTensor, c.dt, -1, 3))
		if err != nil || s.DType != c.want || s.Name != "x" || len(s.Shape) != 2 || s.Shape[0] != -1 || s.Shape[1] != 3 {
			t.Errorf("specOf(%v) = %v, %v; want x %v[?,3]", c.dt, s, err, c.want)
		}
	}
	bad := []struct {
		info ort.InputOutputInfo
		want []string
	}{
		{info(ort.ONNXTypeTensor, ort.TensorElementDataTypeFloat16, -1, 3), []string{`output "x"`, "float16", "does not support"}},
		{info(ort.ONNXTypeTensor, ort.TensorElementDataTypeString, -1), []string{`output "x"`, "string"}},
		{info(ort.ONNXTypeTensor, ort.TensorElementDataTypeUint64, -1), []string{`output "x"`, "uint64"}},
		{info(ort.ONNXTypeSequence, ort.TensorElementDataTypeUndefined), []string{`output "x"`, "not a tensor", "zipmap=False"}},
		{info(ort.ONNXTypeMap, ort.TensorElementDataTypeUndefined), []string{`output "x"`, "not a tensor"}},
	}
	for _, c := range bad {
		_, err := specOf("output", c.info)
		if err == nil {
			t.Errorf("specOf(%v) accepted it", c.info.String())
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("specOf(%v) error %q does not mention %q", c.info.String(), err, w)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{Path: "/models/fraud/model.onnx", Copies: 4}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "fraud" || o.Provider != ProviderCPU || o.InterOpThreads != 1 || o.Logger == nil {
		t.Errorf("defaults: %+v", o)
	}
	if want := max(1, runtime.GOMAXPROCS(0)/4); o.IntraOpThreads != want {
		t.Errorf("IntraOpThreads = %d for 4 copies, want GOMAXPROCS/4 = %d", o.IntraOpThreads, want)
	}
	if o, _ := (Options{Path: "m.onnx", Provider: " CUDA "}).withDefaults(); o.Provider != ProviderCUDA {
		t.Errorf("Provider %q, want cuda", o.Provider)
	}
}

// TestSessionConfig: spinning is off unless asked for, and other entries
// reach ONNX Runtime as given.
func TestSessionConfig(t *testing.T) {
	// pipeline.yaml's options: session.<key> keeps its prefix for ORT.
	if got := sessionConfig(map[string]string{"intra_op.allow_spinning": "1"}); got[ConfigAllowSpinning] != "1" || len(got) != 1 {
		t.Errorf("sessionConfig: %v", got)
	}
	requireLibrary(t)
	for _, tc := range []struct {
		config    map[string]string
		key, want string
	}{
		{nil, ConfigAllowSpinning, "0"},
		{map[string]string{ConfigAllowSpinning: "1"}, ConfigAllowSpinning, "1"},
		{map[string]string{"session.inter_op.allow_spinning": "0"}, "session.inter_op.allow_spinning", "0"},
	} {
		o, err := Options{Path: "m.onnx", SessionConfig: tc.config}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		so, err := sessionOptions(o, ProviderCPU)
		if err != nil {
			t.Fatal(err)
		}
		got, err := so.GetSessionConfigEntry(tc.key)
		so.Destroy()
		if err != nil || got != tc.want {
			t.Errorf("config %v: %s = %q (%v), want %q", tc.config, tc.key, got, err, tc.want)
		}
	}
}

func requireLibrary(t *testing.T) {
	t.Helper()
	if err := Init(); err != nil {
		if errors.Is(err, ErrLibraryNotFound) && os.Getenv("CI") != "true" {
			t.Skipf("skipping, ONNX Runtime is not installed (run `make ort`): %v", err)
		}
		t.Fatal(err)
	}
}

func doublerPath(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "models", "doubler", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInferWaitsForSession holds the only session, so Infer has to wait:
// it must give up when its context ends, and Close must wait for the
// session to come back rather than free it under a running batch.
func TestInferWaitsForSession(t *testing.T) {
	requireLibrary(t)
	h, err := Load(context.Background(), Options{Path: doublerPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	x := map[string]*tensor.Tensor{"x": tensor.New(tensor.Float32, []int64{1, 4})}

	s := <-h.pool // a batch "running"
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Infer(ctx, x); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free session") {
		t.Errorf("Infer while all sessions are busy: %v, want a DeadlineExceeded while waiting for a session", err)
	}

	closed := make(chan error)
	go func() { closed <- h.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a session was still in use", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := h.Infer(context.Background(), x); !errors.Is(err, ErrClosed) {
		t.Errorf("Infer while closing: %v, want ErrClosed", err)
	}
	h.pool <- s // the batch finishes
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the session came back")
	}
}
