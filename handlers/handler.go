// Package handlers runs models. A ModelHandler describes its inputs and
// outputs and infers batches of named tensors; the engine decides what a
// failure means (retry, dead letter, stop).
package handlers

import (
	"context"
	"fmt"

	"github.com/kinfer/kinfer/tensor"
)

// TensorSpec describes one model input or output. Dims of -1 are dynamic;
// the leading dim of a batched model is the batch axis.
type TensorSpec struct {
	Name  string
	DType tensor.DType
	Shape []int64
}

func (s TensorSpec) String() string {
	return fmt.Sprintf("%s %v%s", s.Name, s.DType, tensor.ShapeString(s.Shape))
}

// ProviderReporter is implemented by handlers that run on an execution
// provider (onnx): ActiveProvider names the one in use after any fallback
// ("cpu", "cuda", "tensorrt").
type ProviderReporter interface {
	ActiveProvider() string
}

// ModelHandler is one loaded model. Infer takes a batch: every input tensor
// has the batch size as its leading dim, and so does every output. Infer
// must be safe to call from several goroutines. Infer must not keep its
// inputs after it returns: the engine reuses their memory for later
// batches (an output that is an input, or a view of one, is detected and
// left alone).
type ModelHandler interface {
	// Name and Version identify the model in every prediction it makes.
	Name() string
	Version() string
	Inputs() []TensorSpec
	Outputs() []TensorSpec
	Infer(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error)
	// Close releases the model; it is safe to call twice.
	Close() error
}
