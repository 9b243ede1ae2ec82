package onnx_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/internal/repo"
	"github.com/kinfer/kinfer/tensor"
)

// modelDir is testdata/models/<name> at the repository root.
func modelDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := repo.Root()
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, "testdata", "models", name)
	if _, err := os.Stat(filepath.Join(p, "model.onnx")); err != nil {
		tb.Fatalf("fixture model %s is missing (testdata/models/make_models.py makes it): %v", name, err)
	}
	return p
}

func modelPath(tb testing.TB, name string) string {
	return filepath.Join(modelDir(tb, name), "model.onnx")
}

// envTestProvider names the execution provider the handler tests run on
// when set: on a GPU machine with ONNX Runtime's GPU build
// (scripts/gpu-check.sh), KINFER_TEST_PROVIDER=cuda runs every test that
// loads through load on CUDA, and fails any model that falls back to the
// CPU. Unset (CI, this repository's CPU library): the CPU.
const envTestProvider = "KINFER_TEST_PROVIDER"

// load loads a model for a test, on $KINFER_TEST_PROVIDER where opts name
// no provider, and closes it when the test ends.
func load(tb testing.TB, opts onnx.Options) *onnx.Handler {
	tb.Helper()
	orttest.Require(tb)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tb.Output(), nil))
	}
	want := ""
	if p := os.Getenv(envTestProvider); p != "" && opts.Provider == "" {
		want, opts.Provider = p, p
		if _, bench := tb.(*testing.B); p == onnx.ProviderCUDA && opts.ProviderOptions == nil && !bench {
			// The fixtures hold fp32 results: TF32 matrix products (CUDA's
			// default on Ampere and later) round to 10 mantissa bits.
			// Benchmarks keep the default: what a user's model runs with.
			opts.ProviderOptions = map[string]string{"use_tf32": "0"}
		}
	}
	h, err := onnx.Load(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	if want != "" && h.ActiveProvider() != want {
		h.Close()
		tb.Fatalf("%s=%s, but %s runs on %s", envTestProvider, want, opts.Path, h.ActiveProvider())
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return h
}

func TestConformance(t *testing.T) {
	orttest.Require(t)
	cases := []struct {
		name   string
		model  string
		opts   onnx.Options
		ragged bool
	}{
		{name: "fraud", model: "fraud"},
		{name: "fnn", model: "fnn"},
		// Several sessions: the pool hands batches to different sessions
		// concurrently.
		{name: "fnn/copies=4", model: "fnn", opts: onnx.Options{Copies: 4, IntraOpThreads: 1}},
		// Rows of different lengths, padded with id 0 and mask 0.
		{name: "seqpool", model: "seqpool", ragged: true},
		{name: "doubler", model: "doubler"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := modelDir(t, c.model)
			handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
				opts := c.opts
				opts.Path = filepath.Join(dir, "model.onnx")
				return load(t, opts)
			}, handlertest.Features{
				Fixture:      filepath.Join(dir, "expected.json"),
				DynamicBatch: true,
				Tolerance:    1e-5,
				Ragged:       c.ragged,
			})
		})
	}
}

func TestSpecs(t *testing.T) {
	spec := func(name string, dt tensor.DType, shape ...int64) handlers.TensorSpec {
		return handlers.TensorSpec{Name: name, DType: dt, Shape: shape}
	}
	cases := []struct {
		model         string
		inputs, outpu []handlers.TensorSpec
	}{
		{"fraud",
			[]handlers.TensorSpec{spec("features", tensor.Float32, -1, 8)},
			[]handlers.TensorSpec{spec("label", tensor.Int64, -1), spec("probabilities", tensor.Float32, -1, 2)}},
		{"fnn",
			[]handlers.TensorSpec{spec("input", tensor.Float32, -1, 784)},
			[]handlers.TensorSpec{spec("label", tensor.Int64, -1), spec("probabilities", tensor.Float32, -1, 10)}},
		{"seqpool",
			[]handlers.TensorSpec{spec("input_ids", tensor.Int64, -1, -1), spec("attention_mask", tensor.Int64, -1, -1)},
			[]handlers.TensorSpec{spec("logits", tensor.Float32, -1, 4), spec("token_scores", tensor.Float32, -1, -1)}},
		{"doubler",
			[]handlers.TensorSpec{spec("x", tensor.Float32, -1, 4)},
			[]handlers.TensorSpec{spec("y", tensor.Float32, -1, 4)}},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			h := load(t, onnx.Options{Path: modelPath(t, c.model)})
			if got := h.Inputs(); !slices.EqualFunc(got, c.inputs, specEqual) {
				t.Errorf("Inputs() = %v, want %v", got, c.inputs)
			}
			if got := h.Outputs(); !slices.EqualFunc(got, c.outpu, specEqual) {
				t.Errorf("Outputs() = %v, want %v", got, c.outpu)
			}
		})
	}
}

func specEqual(a, b handlers.TensorSpec) bool {
	return a.Name == b.Name && a.DType == b.DType && slices.Equal(a.Shape, b.Shape)
}

func TestNameVersionAndDefaults(t *testing.T) {
	path := modelPath(t, "fraud")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wantSHA := hex.EncodeToString(sum[:])

	h := load(t, onnx.Options{Path: path})
	if h.Name() != "fraud" {
		t.Errorf("Name() = %q, want the folder name %q", h.Name(), "fraud")
	}
	if h.SHA256() != wantSHA {
		t.Errorf("SHA256() = %s, want %s", h.SHA256(), wantSHA)
	}
	if h.Version() != wantSHA[:12] {
		t.Errorf("Version() = %q, want the first 12 hex digits of the SHA-256, %q", h.Version(), wantSHA[:12])
	}
	// load asks for $KINFER_TEST_PROVIDER where it is set.
	if want := cmp.Or(os.Getenv(envTestProvider), onnx.ProviderCPU); h.ActiveProvider() != want {
		t.Errorf("ActiveProvider() = %q, want %s (cpu by default)", h.ActiveProvider(), want)
	}
	if h.Copies() != 1 {
		t.Errorf("Copies() = %d, want 1 by default", h.Copies())
	}

	named := load(t, onnx.Options{Path: path, Name: "fraud-v2", Version: "2024-06-01", Copies: 3})
	if named.Name() != "fraud-v2" || named.Version() != "2024-06-01" || named.Copies() != 3 {
		t.Errorf("Name, Version, Copies = %q, %q, %d; want the options' fraud-v2, 2024-06-01, 3",
			named.Name(), named.Version(), named.Copies())
	}

	// A model file not called model.onnx is named after the file.
	dir := t.TempDir()
	other := filepath.Join(dir, "scorer.onnx")
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if h := load(t, onnx.Options{Path: other}); h.Name() != "scorer" {
		t.Errorf("Name() = %q for %s, want %q", h.Name(), other, "scorer")
	}
}

func TestLoadErrors(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(modelPath(t, "fnn"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts onnx.Options
		want []string // substrings of the error
		is   error
	}{
		{name: "not a model", opts: onnx.Options{Path: write("garbage.onnx", []byte("this is not an ONNX model\n"))},
			want: []string{"garbage.onnx", "not a model ONNX Runtime can load"}},
		{name: "truncated model", opts: onnx.Options{Path: write("half.onnx", good[:len(good)/2])},
			want: []string{"half.onnx", "not a model ONNX Runtime can load"}},
		{name: "empty file", opts: onnx.Options{Path: write("empty.onnx", nil)},
			want: []string{"empty.onnx", "not a model ONNX Runtime can load"}},
		{name: "missing file", opts: onnx.Options{Path: filepath.Join(dir, "nope", "model.onnx")},
			want: []string{"model nope", "model.onnx"}, is: os.ErrNotExist},
		{name: "no path", opts: onnx.Options{}, want: []string{"Path is empty"}},
		{name: "unknown provider", opts: onnx.Options{Path: modelPath(t, "fnn"), Provider: "tpu"},
			want: []string{`unknown provider "tpu"`, "cpu, cuda or tensorrt"}},
		{name: "negative copies", opts: onnx.Options{Path: modelPath(t, "fnn"), Copies: -1}, want: []string{"Copies is -1"}},
		{name: "negative threads", opts: onnx.Options{Path: modelPath(t, "fnn"), IntraOpThreads: -2}, want: []string{"IntraOpThreads is -2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := onnx.Load(context.Background(), c.opts)
			if err == nil {
				h.Close()
				t.Fatal("Load succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
		})
	}
}

func TestLoadCancelled(t *testing.T) {
	orttest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h, err := onnx.Load(ctx, onnx.Options{Path: modelPath(t, "doubler")})
	if !errors.Is(err, context.Canceled) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("Load with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestProviderFallback asks for GPU providers. Where they cannot run (no
// GPU, or an ONNX Runtime build without them, like the npm one fetch-ort.sh
// caches) the handler must still load, on the CPU, say so in a warning and
// in ActiveProvider, and give correct results.
func TestProviderFallback(t *testing.T) {
	dir := modelDir(t, "doubler")
	for _, provider := range []string{onnx.ProviderCUDA, onnx.ProviderTensorRT} {
		t.Run(provider, func(t *testing.T) {
			var logs bytes.Buffer
			h := load(t, onnx.Options{
				Path:            filepath.Join(dir, "model.onnx"),
				Provider:        provider,
				ProviderOptions: map[string]string{},
				Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
			})
			active := h.ActiveProvider()
			t.Logf("requested %s, active %s; logs:\n%s", provider, active, logs.String())
			switch {
			case active == provider:
				// A GPU machine with the provider libraries installed.
			case active == onnx.ProviderCPU || (provider == onnx.ProviderTensorRT && active == onnx.ProviderCUDA):
				if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "falling back") {
					t.Errorf("fell back from %s to %s without a warning; logs:\n%s", provider, active, logs.String())
				}
			default:
				t.Fatalf("ActiveProvider() = %q after requesting %q", active, provider)
			}
			fx, err := handlertest.LoadFixture(filepath.Join(dir, "expected.json"), h.Inputs(), h.Outputs())
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Infer(context.Background(), fx.Inputs[1])
			if err == nil {
				t.Fatalf("Infer accepted a row without a batch dim")
			}
			x, _ := tensor.Stack([]*tensor.Tensor{fx.Inputs[1]["x"]})
			out, err = h.Infer(context.Background(), map[string]*tensor.Tensor{"x": x})
			if err != nil {
				t.Fatal(err)
			}
			got, want := out["y"].Data.([]float32), fx.Outputs[1]["y"].Data.([]float32)
			if !slices.Equal(got, want) {
				t.Errorf("y = %v, want %v", got, want)
			}
		})
	}
}

func TestInferErrors(t *testing.T) {
	h := load(t, onnx.Options{Path: modelPath(t, "fraud")})
	ctx := context.Background()
	features := func(shape ...int64) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{"features": tensor.New(tensor.Float32, shape)}
	}
	cases := []struct {
		name   string
		inputs map[string]*tensor.Tensor
		want   []string
	}{
		{"wrong width", features(2, 7), []string{`input "features" has shape [2,7]`, "features float32[?,8]", "dim 1 must be 8"}},
		{"wrong rank", features(8), []string{`input "features" has shape [8] (rank 1)`, "(rank 2)"}},
		{"wrong dtype", map[string]*tensor.Tensor{"features": tensor.New(tensor.Float64, []int64{2, 8})},
			[]string{`input "features" is float64`, "features float32[?,8]"}},
		{"unknown name", map[string]*tensor.Tensor{"feature": tensor.New(tensor.Float32, []int64{2, 8})},
			[]string{`unknown input "feature"`, "features float32[?,8]"}},
		{"missing", map[string]*tensor.Tensor{}, []string{`missing input "features"`}},
		{"empty batch", features(0, 8), []string{"holds no elements"}},
		{"bad data", map[string]*tensor.Tensor{"features": {DType: tensor.Float32, Shape: []int64{2, 8}, Data: make([]float32, 15)}},
			[]string{`input "features"`, "needs 16 elements, data has 15"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Infer(ctx, c.inputs)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, onnx.ErrInvalidInput) {
				t.Errorf("error %q does not wrap ErrInvalidInput", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Infer(ctx, features(1, 8)); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("Infer after Close: %v, want ErrClosed", err)
	}
}

// TestInputsNotModified checks that zero-copy inputs stay the caller's:
// ONNX Runtime reads the Go slice but must not write to it.
func TestInputsNotModified(t *testing.T) {
	h := load(t, onnx.Options{Path: modelPath(t, "doubler")})
	data := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	in := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{2, 4}, Data: data}
	out, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"x": in})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(data, []float32{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("input changed to %v", data)
	}
	y := out["y"].Data.([]float32)
	if want := []float32{3, 5, 7, 9, 11, 13, 15, 17}; !slices.Equal(y, want) {
		t.Errorf("y = %v, want %v", y, want)
	}
	// Outputs are fresh: a second batch must not overwrite the first's.
	data[0] = 100
	if _, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"x": in}); err != nil {
		t.Fatal(err)
	}
	if y[0] != 3 {
		t.Errorf("first output changed to %v after a second Infer", y[0])
	}
}

func TestLibraryPath(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, ".cache", "ort", onnx.ORTVersion, "libonnxruntime.so")
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, []byte("\x7fELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()

	t.Run("env wins", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, lib)
		t.Chdir(empty)
		if got, err := onnx.LibraryPath(); err != nil || got != lib {
			t.Errorf("LibraryPath() = %q, %v; want %q", got, err, lib)
		}
	})
	t.Run("env names a missing file", func(t *testing.T) {
		missing := filepath.Join(empty, "libonnxruntime.so")
		t.Setenv(onnx.EnvLibrary, missing)
		t.Chdir(root) // a cached library must not hide the mistake
		_, err := onnx.LibraryPath()
		if !errors.Is(err, onnx.ErrLibraryNotFound) || !strings.Contains(err.Error(), missing) {
			t.Errorf("LibraryPath() error = %v; want ErrLibraryNotFound naming %s", err, missing)
		}
	})
	t.Run("KINFER_CACHE", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, "")
		t.Setenv(onnx.EnvCache, filepath.Join(root, ".cache"))
		t.Chdir(empty)
		if got, err := onnx.LibraryPath(); err != nil || got != lib {
			t.Errorf("LibraryPath() = %q, %v; want %q", got, err, lib)
		}
	})
	t.Run("working directory and up", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, "")
		t.Setenv(onnx.EnvCache, "")
		t.Chdir(deep)
		if got, err := onnx.LibraryPath(); err != nil || got != lib {
			t.Errorf("LibraryPath() = %q, %v; want %q", got, err, lib)
		}
	})
	t.Run("nowhere", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, "")
		t.Setenv(onnx.EnvCache, "")
		t.Chdir(empty)
		got, err := onnx.LibraryPath()
		if err == nil {
			t.Skipf("found %s next to the test binary", got)
		}
		if !errors.Is(err, onnx.ErrLibraryNotFound) {
			t.Errorf("error %v does not wrap ErrLibraryNotFound", err)
		}
		if want := "set KINFER_ORT_LIB or run `make ort` (which runs scripts/fetch-ort.sh)"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})
}

// TestLoadWithoutLibrary runs Load in a child process (Init happens once
// per process) whose environment has no usable ONNX Runtime library.
func TestLoadWithoutLibrary(t *testing.T) {
	if mode := os.Getenv("KINFER_ONNX_TEST_CHILD"); mode != "" {
		loadWithoutLibraryChild(t, mode)
		return
	}
	notALib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(notALib, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := modelPath(t, "doubler")
	cases := []struct {
		mode, lib string
	}{
		{"missing", ""},
		{"broken", notALib},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLoadWithoutLibrary$", "-test.v", "-test.count=1")
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(),
				"KINFER_ONNX_TEST_CHILD="+c.mode,
				"KINFER_ONNX_TEST_MODEL="+model,
				onnx.EnvLibrary+"="+c.lib,
				onnx.EnvCache+"=")
			out, err := cmd.CombinedOutput()
			if strings.Contains(string(out), "--- SKIP") {
				t.Skipf("child skipped:\n%s", out)
			}
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
		})
	}
}

func loadWithoutLibraryChild(t *testing.T, mode string) {
	if mode == "missing" {
		if p, err := onnx.LibraryPath(); err == nil {
			t.Skipf("a library is installed next to the test binary (%s)", p)
		}
	}
	opts := onnx.Options{Path: os.Getenv("KINFER_ONNX_TEST_MODEL")}
	for range 2 { // the error is kept, not retried into something else
		h, err := onnx.Load(context.Background(), opts)
		if err == nil {
			h.Close()
			t.Fatal("Load succeeded without a usable ONNX Runtime library")
		}
		var want []string
		switch mode {
		case "missing":
			if !errors.Is(err, onnx.ErrLibraryNotFound) {
				t.Errorf("error %v does not wrap ErrLibraryNotFound", err)
			}
			want = []string{"set KINFER_ORT_LIB or run `make ort` (which runs scripts/fetch-ort.sh)"}
		case "broken":
			want = []string{"initializing ONNX Runtime from", os.Getenv(onnx.EnvLibrary)}
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		t.Logf("Load: %v", err)
	}
}

func BenchmarkInferFNN(b *testing.B) {
	benchInfer(b, modelDir(b, "fnn"), "input", []int{1, 8, 32, 128})
}

// benchInfer measures Infer on batches of each size, made of the rows of
// dir's expected.json, on $KINFER_TEST_PROVIDER (default the CPU), and
// reports rows/s.
func benchInfer(b *testing.B, dir, input string, sizes []int) {
	h := load(b, onnx.Options{Path: filepath.Join(dir, "model.onnx")})
	fx, err := handlertest.LoadFixture(filepath.Join(dir, "expected.json"), h.Inputs(), h.Outputs())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			rows := make([]*tensor.Tensor, n)
			for i := range rows {
				rows[i] = fx.Inputs[i%len(fx.Inputs)][input]
			}
			x, err := tensor.Stack(rows)
			if err != nil {
				b.Fatal(err)
			}
			in := map[string]*tensor.Tensor{input: x}
			ctx := context.Background()
			for b.Loop() {
				if _, err := h.Infer(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
