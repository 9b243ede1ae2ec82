package remote_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// goModel is a pure-Go model for the fake server: it runs a real
// computation, so that the tests check values, not just plumbing.
type goModel struct {
	name    string
	version string
	inputs  []handlers.TensorSpec
	outputs []handlers.TensorSpec
	run     func(in map[string]*tensor.Tensor, n int) map[string]*tensor.Tensor
	closed  atomic.Bool
}

func (m *goModel) Name() string                   { return m.name }
func (m *goModel) Version() string                { return m.version }
func (m *goModel) Inputs() []handlers.TensorSpec  { return handlers.CloneSpecs(m.inputs) }
func (m *goModel) Outputs() []handlers.TensorSpec { return handlers.CloneSpecs(m.outputs) }
func (m *goModel) Close() error                   { m.closed.Store(true); return nil }

func (m *goModel) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.closed.Load() {
		return nil, handlers.ErrClosed
	}
	n, err := handlers.CheckInputs(m.inputs, in)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.name, err)
	}
	return m.run(in, n), nil
}

func spec(name string, dt tensor.DType, shape ...int64) handlers.TensorSpec {
	return handlers.TensorSpec{Name: name, DType: dt, Shape: shape}
}

// affine is y = 2x + 1 on x float32[?,4]: testdata/models/doubler.
func affine() *goModel {
	return &goModel{
		name: "doubler", version: "1",
		inputs:  []handlers.TensorSpec{spec("x", tensor.Float32, -1, 4)},
		outputs: []handlers.TensorSpec{spec("y", tensor.Float32, -1, 4)},
		run: func(in map[string]*tensor.Tensor, n int) map[string]*tensor.Tensor {
			x := in["x"].Data.([]float32)
			y := make([]float32, len(x))
			for i, v := range x {
				y[i] = 2*v + 1
			}
			return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: []int64{int64(n), 4}, Data: y}}
		},
	}
}

// classifierWeights are a fixed 3-feature, 3-class linear model.
var classifierWeights = [3][3]float64{{1, -2, 0.5}, {-1, 1, 1}, {0.3, 0.3, -1.5}}

// classifier is a softmax linear classifier on features float32[?,3],
// returning label int64[?] and probabilities float32[?,3].
func classifier() *goModel {
	return &goModel{
		name: "classifier", version: "7",
		inputs:  []handlers.TensorSpec{spec("features", tensor.Float32, -1, 3)},
		outputs: []handlers.TensorSpec{spec("label", tensor.Int64, -1), spec("probabilities", tensor.Float32, -1, 3)},
		run: func(in map[string]*tensor.Tensor, n int) map[string]*tensor.Tensor {
			x := in["features"].Data.([]float32)
			labels := make([]int64, n)
			probs := make([]float32, 3*n)
			for r := range n {
				var z [3]float64
				best := 0
				for c := range 3 {
					for f := range 3 {
						z[c] += classifierWeights[c][f] * float64(x[3*r+f])
					}
					if z[c] > z[best] {
						best = c
					}
				}
				var sum float64
				for c := range 3 {
					sum += math.Exp(z[c] - z[best])
				}
				for c := range 3 {
					probs[3*r+c] = float32(math.Exp(z[c]-z[best]) / sum)
				}
				labels[r] = int64(best)
			}
			return map[string]*tensor.Tensor{
				"label":         {DType: tensor.Int64, Shape: []int64{int64(n)}, Data: labels},
				"probabilities": {DType: tensor.Float32, Shape: []int64{int64(n), 3}, Data: probs},
			}
		},
	}
}

// allTypes has one input of every dtype and returns each transformed
// (numbers + 1, booleans negated) as out_<name>, so that every datatype
// makes the round trip in both directions.
func allTypes() *goModel {
	ins := []handlers.TensorSpec{
		spec("f32", tensor.Float32, -1, 2),
		spec("f64", tensor.Float64, -1, 3),
		spec("i32", tensor.Int32, -1),
		spec("i64", tensor.Int64, -1, 2, 2),
		spec("u8", tensor.Uint8, -1, 5),
		spec("i8", tensor.Int8, -1, 1),
		spec("flag", tensor.Bool, -1, 2),
	}
	var outs []handlers.TensorSpec
	for _, s := range ins {
		outs = append(outs, spec("out_"+s.Name, s.DType, s.Shape...))
	}
	return &goModel{
		name: "alltypes", version: "2024-06-01",
		inputs: ins, outputs: outs,
		run: func(in map[string]*tensor.Tensor, n int) map[string]*tensor.Tensor {
			out := map[string]*tensor.Tensor{}
			for name, t := range in {
				o := &tensor.Tensor{DType: t.DType, Shape: t.Shape}
				switch d := t.Data.(type) {
				case []float32:
					o.Data = mapSlice(d, func(v float32) float32 { return v + 1 })
				case []float64:
					o.Data = mapSlice(d, func(v float64) float64 { return v + 1 })
				case []int32:
					o.Data = mapSlice(d, func(v int32) int32 { return v + 1 })
				case []int64:
					o.Data = mapSlice(d, func(v int64) int64 { return v + 1 })
				case []uint8:
					o.Data = mapSlice(d, func(v uint8) uint8 { return v + 1 })
				case []int8:
					o.Data = mapSlice(d, func(v int8) int8 { return v + 1 })
				case []bool:
					o.Data = mapSlice(d, func(v bool) bool { return !v })
				}
				out["out_"+strings.TrimSpace(name)] = o
			}
			return out
		},
	}
}

func mapSlice[E any](s []E, f func(E) E) []E {
	out := make([]E, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}
