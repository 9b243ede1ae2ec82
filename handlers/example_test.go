package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/tensor"
)

// logistic is a custom handler in plain Go: a hand-written scoring rule
// (a logistic regression whose weights come from the config), the kind of
// model a team keeps next to its ONNX ones. It scores features
// float32[?,N] into label int64[?] (1 when p >= 0.5) and probabilities
// float32[?,2].
type logistic struct {
	name, version string
	weights       []float64
	bias          float64
	closed        atomic.Bool
}

// openLogistic is its handlers.Factory: pipeline.yaml's
//
//	model: {name: rules, kind: logistic, options: {weights: "0.8,-1.5", bias: "0.1"}}
//
// becomes a Spec with those options.
func openLogistic(_ context.Context, spec handlers.Spec) (handlers.ModelHandler, error) {
	o := spec.Opts()
	ws := o.String("weights", "")
	bias := o.Float("bias", 0)
	if err := o.Err(); err != nil {
		return nil, err
	}
	if ws == "" {
		return nil, fmt.Errorf("model %s: option weights is required (comma-separated numbers)", spec.Name)
	}
	h := &logistic{name: spec.Name, version: spec.Version, bias: bias}
	for _, w := range strings.Split(ws, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			return nil, fmt.Errorf("model %s: option weights: %q is not a number", spec.Name, w)
		}
		h.weights = append(h.weights, f)
	}
	if h.version == "" {
		h.version = "1"
	}
	return h, nil
}

func (h *logistic) Name() string    { return h.name }
func (h *logistic) Version() string { return h.version }

func (h *logistic) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "features", DType: tensor.Float32, Shape: []int64{-1, int64(len(h.weights))}}}
}

func (h *logistic) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{
		{Name: "label", DType: tensor.Int64, Shape: []int64{-1}},
		{Name: "probabilities", DType: tensor.Float32, Shape: []int64{-1, 2}},
	}
}

func (h *logistic) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, handlers.ErrClosed
	}
	// CheckInputs does what every handler must: exactly the declared
	// inputs, right dtype and shape, one batch size. Its errors wrap
	// handlers.ErrInvalidInput, so the engine dead-letters the rows
	// instead of retrying.
	n, err := handlers.CheckInputs(h.Inputs(), in)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", h.name, err)
	}
	x := in["features"].Data.([]float32)
	labels := make([]int64, n)
	probs := make([]float32, 2*n)
	for r := range n {
		z := h.bias
		for j, w := range h.weights {
			z += w * float64(x[r*len(h.weights)+j])
		}
		p := 1 / (1 + math.Exp(-z))
		probs[2*r], probs[2*r+1] = float32(1-p), float32(p)
		if p >= 0.5 {
			labels[r] = 1
		}
	}
	return map[string]*tensor.Tensor{
		"label":         {DType: tensor.Int64, Shape: []int64{int64(n)}, Data: labels},
		"probabilities": {DType: tensor.Float32, Shape: []int64{int64(n), 2}, Data: probs},
	}, nil
}

func (h *logistic) Close() error {
	h.closed.Store(true)
	return nil
}

func init() {
	// A custom handler registers once, by name, like a database/sql
	// driver; pipeline.yaml then selects it with model.kind.
	handlers.Register("logistic", openLogistic)
}

// A custom model handler in Go: implement handlers.ModelHandler, register
// a Factory under a kind, and open models of that kind by name.
func Example() {
	ctx := context.Background()
	h, err := handlers.Open(ctx, "logistic", handlers.Spec{
		Name:    "rules",
		Version: "2024-06",
		Options: map[string]string{"weights": "0.8,-1.5", "bias": "0.1"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	fmt.Println(h.Name(), h.Version(), h.Inputs(), h.Outputs())
	out, err := h.Infer(ctx, map[string]*tensor.Tensor{
		"features": {DType: tensor.Float32, Shape: []int64{2, 2}, Data: []float32{3, 0.5, 0, 2}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("label", out["label"].Data)
	fmt.Printf("p(1) %.3f %.3f\n", out["probabilities"].Data.([]float32)[1], out["probabilities"].Data.([]float32)[3])

	// A typo in the options is caught when the model is opened.
	_, err = handlers.Open(ctx, "logistic", handlers.Spec{Name: "rules", Options: map[string]string{"weights": "1", "bais": "0.1"}})
	fmt.Println(err)
	// Output:
	// rules 2024-06 [features float32[?,2]] [label int64[?] probabilities float32[?,2]]
	// label [1 0]
	// p(1) 0.852 0.052
	// handlers: opening logistic model rules: model rules: unknown option bais
}

// TestExampleHandlerConformance runs the shared conformance suite on the
// example's custom handler, as every handler must pass it.
func TestExampleHandlerConformance(t *testing.T) {
	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
		h, err := handlers.Open(context.Background(), "logistic", handlers.Spec{
			Name:    "rules",
			Options: map[string]string{"weights": "0.8,-1.5,0.25,1", "bias": "-0.2"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}, handlertest.Features{DynamicBatch: true})
}

func TestExampleHandlerRefusesBadInput(t *testing.T) {
	h, err := openLogistic(context.Background(), handlers.Spec{Name: "rules", Options: map[string]string{"weights": "1,2"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Infer(context.Background(), map[string]*tensor.Tensor{"features": tensor.New(tensor.Float32, []int64{1, 3})})
	if !errors.Is(err, handlers.ErrInvalidInput) {
		t.Fatalf("3 features for 2 weights: %v; want ErrInvalidInput", err)
	}
}
