package handlertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/tensor"
)

// affine is a pure-Go handler computing y = 2x + 1 on x float32[?,4], the
// same function as testdata/models/doubler, so the suite can be checked
// without ONNX Runtime. bug switches on one deliberate defect.
type affine struct {
	bug    string
	mu     sync.Mutex
	closed bool
}

func (h *affine) Name() string    { return "affine" }
func (h *affine) Version() string { return "1" }
func (h *affine) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}}
}
func (h *affine) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 4}}}
}

func (h *affine) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil && h.bug != "ignores context" {
		return nil, err
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed && h.bug != "works after close" {
		return nil, errors.New("closed")
	}
	x, ok := in["x"]
	if h.bug == "panics on bad input" {
		_ = x.Data.([]float32)[0] // nil map entry or wrong type: panic
	}
	if !ok || len(in) != 1 || x == nil {
		return nil, errors.New("want exactly one input, x")
	}
	if err := x.Validate(); err != nil {
		return nil, err
	}
	if x.DType != tensor.Float32 || len(x.Shape) != 2 || x.Shape[1] != 4 || x.Shape[0] == 0 {
		return nil, fmt.Errorf("x is %v%s, want float32[?,4]", x.DType, tensor.ShapeString(x.Shape))
	}
	xs := x.Data.([]float32)
	ys := make([]float32, len(xs))
	for i, v := range xs {
		ys[i] = 2*v + 1
		if h.bug == "wrong values" {
			ys[i] = 2 * v
		}
	}
	n := int(x.Shape[0])
	if h.bug == "mixes rows in batches" && n > 1 {
		copy(ys[:4], ys[4:8]) // row 0 gets row 1's result
	}
	return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: []int64{int64(n), 4}, Data: ys}}, nil
}

func (h *affine) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed && h.bug == "close twice fails" {
		return errors.New("already closed")
	}
	h.closed = true
	return nil
}

func fixture(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "models", "doubler", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing (testdata/models/make_models.py makes it): %v", err)
	}
	return p
}

// versioned adds InferVersion to affine; with the "misreports version"
// bug it names a version other than Version().
type versioned struct{ *affine }

func (h versioned) InferVersion(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, string, error) {
	out, err := h.Infer(ctx, in)
	if err != nil {
		return nil, "", err
	}
	if h.bug == "misreports version" {
		return out, "2", nil
	}
	return out, h.Version(), nil
}

func newAffine(bug string) func(t *testing.T) handlers.ModelHandler {
	return func(t *testing.T) handlers.ModelHandler {
		if bug == "misreports version" {
			return versioned{&affine{bug: bug}}
		}
		return &affine{bug: bug}
	}
}

func TestCorrectHandlerPasses(t *testing.T) {
	t.Run("fixture", func(t *testing.T) {
		handlertest.Run(t, newAffine(""), handlertest.Features{Fixture: fixture(t), DynamicBatch: true})
	})
	t.Run("synthetic", func(t *testing.T) {
		handlertest.Run(t, newAffine(""), handlertest.Features{DynamicBatch: true})
	})
	t.Run("VersionInferer", func(t *testing.T) {
		handlertest.Run(t, func(t *testing.T) handlers.ModelHandler { return versioned{&affine{}} },
			handlertest.Features{Fixture: fixture(t), DynamicBatch: true})
	})
}

// TestSuiteCatchesBugs runs the suite against deliberately broken handlers
// in child processes and checks that it fails, for the right reason.
func TestSuiteCatchesBugs(t *testing.T) {
	if bug := os.Getenv("HANDLERTEST_BUG"); bug != "" {
		handlertest.Run(t, newAffine(bug), handlertest.Features{Fixture: fixture(t), DynamicBatch: true})
		return
	}
	cases := []struct{ bug, want string }{
		{"wrong values", "PerRow"},
		{"mixes rows in batches", "differs from the row inferred alone"},
		{"panics on bad input", "handler panicked"},
		{"ignores context", "CancelledContext"},
		{"close twice fails", "second Close"},
		{"works after close", "Infer after Close returned"},
		{"misreports version", `InferVersion reports version "2"; Version() is "1"`},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesBugs$", "-test.count=1")
			cmd.Env = append(os.Environ(), "HANDLERTEST_BUG="+c.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a handler that %s:\n%s", c.bug, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("the suite failed, but without mentioning %q:\n%s", c.want, out)
			}
		})
	}
}

func TestLoadFixture(t *testing.T) {
	specs := []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}}
	outs := []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 4}}}
	fx, err := handlertest.LoadFixture(fixture(t), specs, outs)
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Inputs) != 10 || len(fx.Outputs) != 10 {
		t.Fatalf("got %d input rows and %d output rows, want 10 and 10", len(fx.Inputs), len(fx.Outputs))
	}
	x := fx.Inputs[1]["x"]
	if !slices.Equal(x.Shape, []int64{4}) || !slices.Equal(x.Data.([]float32), []float32{2.15, -2.47, 6.04, -6.51}) {
		t.Errorf("row 1 x = %v%v", x.Data, x.Shape)
	}

	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, fmt.Sprintf("f%d.json", len(s)))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ints := []handlers.TensorSpec{{Name: "ids", DType: tensor.Int64, Shape: []int64{-1, -1}}}
	bad := []struct{ json, want string }{
		{`{"inputs": {"ids": [[1, 2], [3, 4.5]]}}`, "not an integer"},
		{`{"inputs": {"ids": [[1, [2]]]}}`, "ragged"},
		{`{"inputs": {"other": [[1]]}}`, `"other"`},
		{`{"inputs": {}}`, `no "ids"`},
		{`{"inputs": {"ids": [[1]]}, "outputs": {"ids": [[1], [2]]}}`, "not one of the model's outputs"},
	}
	for _, c := range bad {
		_, err := handlertest.LoadFixture(write(c.json), ints, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadFixture(%s) error = %v, want one mentioning %q", c.json, err, c.want)
		}
	}
	fx, err = handlertest.LoadFixture(write(`{"inputs": {"ids": [[1, 2, 3], [9007199254740993]]}}`), ints, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fx.Inputs[1]["ids"].Data.([]int64); got[0] != 9007199254740993 {
		t.Errorf("large int64 parsed as %d (precision lost)", got[0])
	}
}
