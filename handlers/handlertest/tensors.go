package handlertest

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// makeBatch stacks rows into a batch. With ragged set, rows whose shapes
// differ are first padded to the largest shape, with the input's pad value
// (0 unless padValues names it).
func makeBatch(rows []map[string]*tensor.Tensor, ragged bool, padValues map[string]float64) (map[string]*tensor.Tensor, error) {
	batch := map[string]*tensor.Tensor{}
	for name := range rows[0] {
		ts := make([]*tensor.Tensor, len(rows))
		for i, r := range rows {
			ts[i] = r[name]
		}
		if ragged {
			target, err := maxShape(ts)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", name, err)
			}
			for i, t := range ts {
				if !slices.Equal(t.Shape, target) {
					ts[i] = reshapeCorner(t, target, padValues[name])
				}
			}
		}
		b, err := tensor.Stack(ts)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", name, err)
		}
		batch[name] = b
	}
	return batch, nil
}

func maxShape(ts []*tensor.Tensor) ([]int64, error) {
	target := slices.Clone(ts[0].Shape)
	for _, t := range ts[1:] {
		if len(t.Shape) != len(target) {
			return nil, fmt.Errorf("rows of rank %d and %d cannot be padded to one shape", len(target), len(t.Shape))
		}
		for i, d := range t.Shape {
			target[i] = max(target[i], d)
		}
	}
	return target, nil
}

// reshapeCorner copies t into a new tensor of shape, aligned at index 0 on
// every axis: it pads (filling with fill) where shape is larger and crops
// where it is smaller. Ranks must match.
func reshapeCorner(t *tensor.Tensor, shape []int64, fill float64) *tensor.Tensor {
	out := tensor.New(t.DType, shape)
	if fill != 0 {
		for i := range out.Len() {
			setFloat(out, i, fill)
		}
	}
	common := make([]int64, len(shape))
	for i := range shape {
		common[i] = min(shape[i], t.Shape[i])
	}
	n := tensor.NumElements(common)
	idx := make([]int64, len(common))
	for k := 0; k < n; k++ {
		// idx is the multi-index of the k-th element of the common block.
		src, dst := 0, 0
		for a := range common {
			src = src*int(t.Shape[a]) + int(idx[a])
			dst = dst*int(shape[a]) + int(idx[a])
		}
		copyElem(out, dst, t, src)
		for a := len(idx) - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < common[a] {
				break
			}
			idx[a] = 0
		}
	}
	return out
}

func setFloat(t *tensor.Tensor, i int, v float64) {
	switch d := t.Data.(type) {
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = v
	case []int32:
		d[i] = int32(v)
	case []int64:
		d[i] = int64(v)
	case []uint8:
		d[i] = uint8(v)
	case []int8:
		d[i] = int8(v)
	case []bool:
		d[i] = v != 0
	}
}

func copyElem(dst *tensor.Tensor, i int, src *tensor.Tensor, j int) {
	switch d := dst.Data.(type) {
	case []float32:
		d[i] = src.Data.([]float32)[j]
	case []float64:
		d[i] = src.Data.([]float64)[j]
	case []int32:
		d[i] = src.Data.([]int32)[j]
	case []int64:
		d[i] = src.Data.([]int64)[j]
	case []uint8:
		d[i] = src.Data.([]uint8)[j]
	case []int8:
		d[i] = src.Data.([]int8)[j]
	case []bool:
		d[i] = src.Data.([]bool)[j]
	}
}

// convert returns t's values as a tensor of dt.
func convert(t *tensor.Tensor, dt tensor.DType) *tensor.Tensor {
	out := tensor.New(dt, t.Shape)
	for i := range t.Len() {
		setFloat(out, i, t.Float64At(i))
	}
	return out
}

// clone deep-copies a map of tensors.
func cloneTensors(m map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	out := make(map[string]*tensor.Tensor, len(m))
	for k, t := range m {
		if t == nil {
			out[k] = nil
			continue
		}
		out[k] = convert(t, t.DType)
	}
	return out
}

func isFloat(dt tensor.DType) bool { return dt == tensor.Float32 || dt == tensor.Float64 }

// compare checks got against want: same shape, integers and bools equal,
// floats within tol*(1+|want|) (absolute near zero, relative for large
// values). It reports the first few differences.
func compare(got, want *tensor.Tensor, tol float64) error {
	if got == nil {
		return fmt.Errorf("missing")
	}
	if err := got.Validate(); err != nil {
		return fmt.Errorf("invalid tensor: %w", err)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %s, want %s", tensor.ShapeString(got.Shape), tensor.ShapeString(want.Shape))
	}
	exact := !isFloat(got.DType) || !isFloat(want.DType)
	var diffs []string
	bad, worst := 0, 0.0
	for i := range got.Len() {
		g, w := got.Float64At(i), want.Float64At(i)
		d := math.Abs(g - w)
		ok := g == w
		if !exact {
			ok = d <= tol*(1+math.Abs(w))
		}
		if !ok || math.IsNaN(g) != math.IsNaN(w) {
			bad++
			worst = max(worst, d)
			if len(diffs) < 3 {
				diffs = append(diffs, fmt.Sprintf("[%d] got %v want %v", i, g, w))
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d elements differ (max |diff| %.3g, tolerance %g): %s",
			bad, got.Len(), worst, tol, strings.Join(diffs, ", "))
	}
	return nil
}
