package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestRegister(t *testing.T) {
	f := func(context.Context, handlers.Spec) (handlers.ModelHandler, error) { return nil, errors.New("no") }
	handlers.Register("registry-test-a", f)
	mustPanic(t, "registering a kind twice", func() { handlers.Register("registry-test-a", f) })
	mustPanic(t, "an empty kind", func() { handlers.Register("", f) })
	mustPanic(t, "a kind with spaces around it", func() { handlers.Register(" x", f) })
	mustPanic(t, "a nil factory", func() { handlers.Register("registry-test-nil", nil) })

	kinds := handlers.Kinds()
	if !slices.Contains(kinds, "registry-test-a") || !slices.Contains(kinds, "logistic") || !slices.IsSorted(kinds) {
		t.Errorf("Kinds() = %v; want sorted, with registry-test-a and logistic", kinds)
	}
	if slices.Contains(kinds, "registry-test-nil") {
		t.Error("a refused registration is listed")
	}
}

func TestOpen(t *testing.T) {
	var got handlers.Spec
	handlers.Register("registry-test-spy", func(_ context.Context, spec handlers.Spec) (handlers.ModelHandler, error) {
		got = spec
		return nil, errors.New("model file is corrupt")
	})
	handlers.Register("registry-test-nilnil", func(context.Context, handlers.Spec) (handlers.ModelHandler, error) {
		return nil, nil
	})

	_, err := handlers.Open(context.Background(), "registry-test-spy", handlers.Spec{Name: "fraud", Path: "m.onnx"})
	if err == nil || err.Error() != "handlers: opening registry-test-spy model fraud: model file is corrupt" {
		t.Errorf("factory error: %v", err)
	}
	if got.Name != "fraud" || got.Path != "m.onnx" || got.Logger == nil {
		t.Errorf("the factory got %+v; want the spec, with a default logger", got)
	}

	_, err = handlers.Open(context.Background(), "registry-test-nilnil", handlers.Spec{Name: "m"})
	if err == nil || !strings.Contains(err.Error(), "no handler and no error") {
		t.Errorf("a factory returning nil, nil: %v", err)
	}

	_, err = handlers.Open(context.Background(), "tensorflow", handlers.Spec{Name: "m"})
	if !errors.Is(err, handlers.ErrUnknownKind) || !strings.Contains(err.Error(), `"tensorflow"`) || !strings.Contains(err.Error(), "logistic") {
		t.Errorf("unknown kind: %v; want ErrUnknownKind naming the kind and listing the registered ones", err)
	}
}

func TestOpts(t *testing.T) {
	spec := handlers.Spec{Name: "m", Options: map[string]string{
		"n": " 4 ", "f": "0.5", "b": "yes", "d": "250ms", "s": "x",
		"header.A": "1", "header.B": "2",
		"bad_int": "four", "bad_bool": "maybe", "bad_dur": "5", "bad_float": "1,5",
		"typo": "1",
	}}
	o := spec.Opts()
	if v := o.Int("n", 0); v != 4 {
		t.Errorf("Int = %d", v)
	}
	if v := o.Float("f", 0); v != 0.5 {
		t.Errorf("Float = %v", v)
	}
	if v := o.Bool("b", false); !v {
		t.Errorf("Bool = %v", v)
	}
	if v := o.Duration("d", 0); v != 250*time.Millisecond {
		t.Errorf("Duration = %v", v)
	}
	if v := o.String("s", ""); v != "x" {
		t.Errorf("String = %q", v)
	}
	if v := o.Int("absent", 7); v != 7 {
		t.Errorf("default Int = %d", v)
	}
	if v := o.Prefixed("header."); len(v) != 2 || v["A"] != "1" || v["B"] != "2" {
		t.Errorf("Prefixed = %v", v)
	}
	if v := o.Int("bad_int", 3); v != 3 {
		t.Errorf("unparsable Int returned %d; want the default", v)
	}
	o.Bool("bad_bool", false)
	o.Duration("bad_dur", 0)
	o.Float("bad_float", 0)
	err := o.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	for _, want := range []string{
		"model m: ",
		`option bad_int: "four" is not an integer`,
		`option bad_bool: "maybe" is not a boolean`,
		`option bad_dur: "5" is not a duration`,
		`option bad_float: "1,5" is not a number`,
		"unknown option typo",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q; want it to say %q", err, want)
		}
	}
	if err := (handlers.Spec{Name: "m"}).Opts().Err(); err != nil {
		t.Errorf("no options: %v", err)
	}
}

func TestCheckInputs(t *testing.T) {
	specs := []handlers.TensorSpec{
		{Name: "ids", DType: tensor.Int64, Shape: []int64{-1, -1}},
		{Name: "dense", DType: tensor.Float32, Shape: []int64{-1, 3}},
	}
	good := func() map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{
			"ids":   tensor.New(tensor.Int64, []int64{2, 5}),
			"dense": tensor.New(tensor.Float32, []int64{2, 3}),
		}
	}
	if n, err := handlers.CheckInputs(specs, good()); err != nil || n != 2 {
		t.Fatalf("good batch: %d, %v", n, err)
	}
	for name, mutate := range map[string]func(m map[string]*tensor.Tensor){
		`unknown input "x"`:                  func(m map[string]*tensor.Tensor) { m["x"] = m["ids"] },
		`missing input "dense"`:              func(m map[string]*tensor.Tensor) { delete(m, "dense") },
		`input "ids" is float32`:             func(m map[string]*tensor.Tensor) { m["ids"] = tensor.New(tensor.Float32, []int64{2, 5}) },
		`(dim 1 must be 3)`:                  func(m map[string]*tensor.Tensor) { m["dense"] = tensor.New(tensor.Float32, []int64{2, 4}) },
		`batch size 3 but input "ids" has 2`: func(m map[string]*tensor.Tensor) { m["dense"] = tensor.New(tensor.Float32, []int64{3, 3}) },
		`holds no elements`:                  func(m map[string]*tensor.Tensor) { m["ids"] = tensor.New(tensor.Int64, []int64{2, 0}) },
		`(rank 1)`:                           func(m map[string]*tensor.Tensor) { m["ids"] = tensor.New(tensor.Int64, []int64{10}) },
		`needs 6 elements`:                   func(m map[string]*tensor.Tensor) { m["dense"].Shape = []int64{2, 3}; m["dense"].Data = []float32{1} },
	} {
		m := good()
		mutate(m)
		_, err := handlers.CheckInputs(specs, m)
		if !errors.Is(err, handlers.ErrInvalidInput) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestCheckOutputs(t *testing.T) {
	specs := []handlers.TensorSpec{{Name: "p", DType: tensor.Float32, Shape: []int64{-1, 2}}}
	ok := map[string]*tensor.Tensor{"p": tensor.New(tensor.Float32, []int64{3, 2})}
	if err := handlers.CheckOutputs(specs, ok, 3); err != nil {
		t.Fatal(err)
	}
	for want, out := range map[string]map[string]*tensor.Tensor{
		`output "p" missing`:        {},
		`not among the declared`:    {"p": ok["p"], "q": ok["p"]},
		`for a batch of 3`:          {"p": tensor.New(tensor.Float32, []int64{2, 2})},
		`output "p" is int64[3,2]`:  {"p": tensor.New(tensor.Int64, []int64{3, 2})},
		`has shape [3,5]; declared`: {"p": tensor.New(tensor.Float32, []int64{3, 5})},
	} {
		if err := handlers.CheckOutputs(specs, out, 3); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestSameSpecs(t *testing.T) {
	a := []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 8}}}
	if err := handlers.SameSpecs("inputs", a, handlers.CloneSpecs(a)); err != nil {
		t.Error(err)
	}
	b := []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 784}}}
	err := handlers.SameSpecs("inputs", b, a)
	if err == nil || err.Error() != "inputs are [x float32[?,784]]; want [x float32[?,8]]" {
		t.Errorf("got %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"", "0", "1", "01", "2", "9", "10", "10a", "11", "100", "v1", "v2", "v10", "1.9.3"}
	// Check pairs rather than one total sort: "1.9.3" and "v1" are in
	// different families; only the stated relations matter.
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1}, {"9", "10", -1}, {"10", "9", 1}, {"100", "11", 1},
		{"v2", "v10", -1}, {"1.9.3", "1.10.0", -1}, {"1.10.0", "1.10.0", 0},
		{"1", "01", -1}, {"2024-06-01", "2024-12-01", -1}, {"10", "10a", -1},
		{"", "0", -1}, {"a", "b", -1}, {"model-2", "model-10", -1},
	} {
		if got := handlers.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c.a, c.b, got, c.want)
		}
		if got := handlers.CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d (antisymmetry)", c.b, c.a, got, -c.want)
		}
	}
	nums := ordered[:10]
	if !slices.IsSortedFunc(nums, handlers.CompareVersions) {
		t.Errorf("%v is not sorted by CompareVersions", nums)
	}
}

type fixedVersion struct {
	handlers.ModelHandler
	version string
}

func (f fixedVersion) InferVersion(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, string, error) {
	out, err := f.ModelHandler.Infer(ctx, in)
	return out, f.version, err
}

func TestInferVersion(t *testing.T) {
	h, err := handlers.Open(context.Background(), "logistic", handlers.Spec{Name: "r", Version: "v1", Options: map[string]string{"weights": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]*tensor.Tensor{"features": tensor.New(tensor.Float32, []int64{1, 1})}
	if _, v, err := handlers.InferVersion(context.Background(), h, in); err != nil || v != "v1" {
		t.Errorf("plain handler: version %q, %v; want Version()", v, err)
	}
	if _, v, err := handlers.InferVersion(context.Background(), fixedVersion{h, "v2"}, in); err != nil || v != "v2" {
		t.Errorf("VersionInferer: version %q, %v; want its own", v, err)
	}
	if _, v, err := handlers.InferVersion(context.Background(), h, map[string]*tensor.Tensor{}); err == nil || v != "" {
		t.Errorf("failed call: version %q, err %v", v, err)
	}
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("shape mismatch"), false},
		{fmt.Errorf("calling: %w", handlers.ErrUnavailable), true},
		{fmt.Errorf("calling: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("wrapped: %w", tempErr(true)), true},
		{fmt.Errorf("wrapped: %w", tempErr(false)), false},
	} {
		if got := handlers.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

type tempErr bool

func (e tempErr) Error() string   { return "temp" }
func (e tempErr) Temporary() bool { return bool(e) }
