package handlers

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// ErrInvalidInput is wrapped by CheckInputs' errors, and by the errors of
// handlers that use it (remote, reload's wrapped handlers when they do),
// when a batch does not fit the model: a missing, unknown, mistyped or
// misshapen tensor. Retrying such a batch cannot succeed; the engine
// dead-letters its rows. (handlers/onnx has its own onnx.ErrInvalidInput
// with the same meaning.)
var ErrInvalidInput = errors.New("invalid input")

// ErrClosed is returned (possibly wrapped) by Infer on a handler that has
// been closed, by the handlers in this module other than onnx, which
// returns onnx.ErrClosed.
var ErrClosed = errors.New("model handler is closed")

// CheckInputs checks a batch against a model's input specs, the way every
// handler must before running it: exactly the model's inputs, each valid,
// of the spec's dtype and rank, with the spec's fixed dims, holding at
// least one element, and all with the same leading (batch) dim. It
// returns the batch size. Errors wrap ErrInvalidInput.
func CheckInputs(specs []TensorSpec, inputs map[string]*tensor.Tensor) (int, error) {
	batch, err := checkInputs(specs, inputs)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return batch, nil
}

func checkInputs(specs []TensorSpec, inputs map[string]*tensor.Tensor) (int, error) {
	for name := range inputs {
		if !slices.ContainsFunc(specs, func(s TensorSpec) bool { return s.Name == name }) {
			return 0, fmt.Errorf("unknown input %q (the model's inputs are %s)", name, SpecsString(specs))
		}
	}
	batch, batchFrom := -1, ""
	for _, spec := range specs {
		t, ok := inputs[spec.Name]
		if !ok || t == nil {
			return 0, fmt.Errorf("missing input %q (want %v)", spec.Name, spec)
		}
		if !wellFormed(t) {
			if err := t.Validate(); err != nil {
				return 0, fmt.Errorf("input %q: %w", spec.Name, err)
			}
		}
		if t.DType != spec.DType {
			return 0, fmt.Errorf("input %q is %v; the model wants %v", spec.Name, t.DType, spec)
		}
		if len(t.Shape) != len(spec.Shape) {
			return 0, fmt.Errorf("input %q has shape %s (rank %d); the model wants %v (rank %d)",
				spec.Name, tensor.ShapeString(t.Shape), len(t.Shape), spec, len(spec.Shape))
		}
		if len(t.Shape) == 0 {
			return 0, fmt.Errorf("input %q is a scalar; inputs need a leading batch dim", spec.Name)
		}
		for i, d := range spec.Shape {
			if d >= 0 && t.Shape[i] != d {
				return 0, fmt.Errorf("input %q has shape %s; the model wants %v (dim %d must be %d)",
					spec.Name, tensor.ShapeString(t.Shape), spec, i, d)
			}
		}
		if t.Len() == 0 {
			return 0, fmt.Errorf("input %q has shape %s, which holds no elements", spec.Name, tensor.ShapeString(t.Shape))
		}
		if batch < 0 {
			batch, batchFrom = int(t.Shape[0]), spec.Name
		} else if int(t.Shape[0]) != batch {
			return 0, fmt.Errorf("input %q has batch size %d but input %q has %d", spec.Name, t.Shape[0], batchFrom, batch)
		}
	}
	return batch, nil
}

// wellFormed reports true only for tensors whose Validate returns nil (data
// of DType's Go type, no negative dim, as many elements as the shape
// holds). It is what CheckInputs runs on every batch: Validate formats the
// data's type with fmt on each call, which costs more than the rest of the
// check on small batches. t is not nil.
func wellFormed(t *tensor.Tensor) bool {
	var ok bool
	var l int
	switch d := t.Data.(type) {
	case []float32:
		ok, l = t.DType == tensor.Float32, len(d)
	case []float64:
		ok, l = t.DType == tensor.Float64, len(d)
	case []int32:
		ok, l = t.DType == tensor.Int32, len(d)
	case []int64:
		ok, l = t.DType == tensor.Int64, len(d)
	case []uint8:
		ok, l = t.DType == tensor.Uint8, len(d)
	case []int8:
		ok, l = t.DType == tensor.Int8, len(d)
	case []bool:
		ok, l = t.DType == tensor.Bool, len(d)
	}
	if !ok {
		return false
	}
	n := 1 // as tensor.NumElements counts, overflow included
	for _, d := range t.Shape {
		if d < 0 {
			return false
		}
		n *= int(d)
	}
	return l == n
}

// CheckOutputs checks a handler's result for a batch of n rows against its
// output specs: every declared output present and valid, of its dtype and
// rank, with the spec's fixed dims and n as its leading dim, and nothing
// undeclared. Handlers that get outputs from elsewhere (a server, a
// plugin) use it before handing them to the engine.
func CheckOutputs(specs []TensorSpec, outputs map[string]*tensor.Tensor, n int) error {
	for name := range outputs {
		if !slices.ContainsFunc(specs, func(s TensorSpec) bool { return s.Name == name }) {
			return fmt.Errorf("output %q is not among the declared outputs %s", name, SpecsString(specs))
		}
	}
	for _, spec := range specs {
		t, ok := outputs[spec.Name]
		if !ok || t == nil {
			return fmt.Errorf("output %q missing", spec.Name)
		}
		if !wellFormed(t) {
			if err := t.Validate(); err != nil {
				return fmt.Errorf("output %q: %w", spec.Name, err)
			}
		}
		if t.DType != spec.DType || len(t.Shape) != len(spec.Shape) || len(t.Shape) == 0 || t.Shape[0] != int64(n) {
			return fmt.Errorf("output %q is %v%s for a batch of %d; declared %v, with the batch size as leading dim",
				spec.Name, t.DType, tensor.ShapeString(t.Shape), n, spec)
		}
		for i, d := range spec.Shape {
			if i > 0 && d >= 0 && t.Shape[i] != d {
				return fmt.Errorf("output %q has shape %s; declared %v", spec.Name, tensor.ShapeString(t.Shape), spec)
			}
		}
	}
	return nil
}

// SameSpecs reports how two lists of specs differ (names, order, dtypes,
// shapes), or nil when they are equal. what names the lists in the error
// ("inputs", "outputs").
func SameSpecs(what string, got, want []TensorSpec) error {
	equal := slices.EqualFunc(got, want, func(a, b TensorSpec) bool {
		return a.Name == b.Name && a.DType == b.DType && slices.Equal(a.Shape, b.Shape)
	})
	if equal {
		return nil
	}
	return fmt.Errorf("%s are %s; want %s", what, SpecsString(got), SpecsString(want))
}

// CloneSpecs deep-copies specs, so that a handler can hand out its specs
// without callers being able to change them.
func CloneSpecs(specs []TensorSpec) []TensorSpec {
	out := make([]TensorSpec, len(specs))
	for i, s := range specs {
		out[i] = TensorSpec{Name: s.Name, DType: s.DType, Shape: slices.Clone(s.Shape)}
	}
	return out
}

// SpecsString renders specs as "[x float32[?,4], mask int64[?,?]]".
func SpecsString(specs []TensorSpec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
