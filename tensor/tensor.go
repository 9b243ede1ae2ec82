// Package tensor holds the one small type that schema, transform, batch and
// handlers share: a dense tensor of a fixed dtype and shape, stored as a flat
// typed Go slice in row-major order.
package tensor

import (
	"fmt"
	"strings"
)

// DType is the element type of a tensor. The names follow ONNX.
type DType uint8

// Supported element types. Invalid is the zero value so that a forgotten
// dtype is caught by Validate instead of silently meaning float32.
const (
	Invalid DType = iota
	Float32
	Float64
	Int32
	Int64
	Uint8
	Int8
	Bool
)

var dtypeNames = [...]string{"invalid", "float32", "float64", "int32", "int64", "uint8", "int8", "bool"}

var dtypeSizes = [...]int{0, 4, 8, 4, 8, 1, 1, 1}

// String returns the lower-case name used in pipeline.yaml ("float32", ...).
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", d)
}

// Size is the number of bytes one element takes in the raw little-endian
// tensor encoding.
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return dtypeSizes[d]
	}
	return 0
}

// ParseDType maps a pipeline.yaml dtype name to a DType. Common aliases
// ("float", "double", "long", "int") are accepted.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "float32", "float":
		return Float32, nil
	case "float64", "double":
		return Float64, nil
	case "int32", "int":
		return Int32, nil
	case "int64", "long":
		return Int64, nil
	case "uint8":
		return Uint8, nil
	case "int8":
		return Int8, nil
	case "bool", "boolean":
		return Bool, nil
	}
	return Invalid, fmt.Errorf("unknown dtype %q (expected one of float32, float64, int32, int64, uint8, int8, bool)", s)
}

// Tensor is a dense tensor. Data is one of []float32, []float64, []int32,
// []int64, []uint8, []int8 or []bool, matching DType, with exactly
// NumElements(Shape) elements.
type Tensor struct {
	DType DType
	Shape []int64
	Data  any
}

// NumElements is the product of the dims; an empty shape is a scalar (1).
func NumElements(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// New allocates a zero-filled tensor.
func New(dt DType, shape []int64) *Tensor {
	return &Tensor{DType: dt, Shape: append([]int64(nil), shape...), Data: MakeSlice(dt, NumElements(shape))}
}

// MakeSlice allocates a zeroed typed slice of n elements for dt.
func MakeSlice(dt DType, n int) any {
	switch dt {
	case Float32:
		return make([]float32, n)
	case Float64:
		return make([]float64, n)
	case Int32:
		return make([]int32, n)
	case Int64:
		return make([]int64, n)
	case Uint8:
		return make([]uint8, n)
	case Int8:
		return make([]int8, n)
	case Bool:
		return make([]bool, n)
	}
	return nil
}

// Len is the number of elements held in Data.
func (t *Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []uint8:
		return len(d)
	case []int8:
		return len(d)
	case []bool:
		return len(d)
	}
	return -1
}

// Bytes is the size of the tensor's data in bytes.
func (t *Tensor) Bytes() int { return t.Len() * t.DType.Size() }

// Validate checks that Data's Go type matches DType and that its length
// matches Shape.
func (t *Tensor) Validate() error {
	if t == nil {
		return fmt.Errorf("nil tensor")
	}
	want := MakeSlice(t.DType, 0)
	if want == nil {
		return fmt.Errorf("invalid dtype %v", t.DType)
	}
	if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", t.Data) {
		return fmt.Errorf("dtype %v holds %T data", t.DType, t.Data)
	}
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dim %d at axis %d", d, i)
		}
	}
	if n := NumElements(t.Shape); n != t.Len() {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, n, t.Len())
	}
	return nil
}

// ShapeString renders a shape as "[2,3]"; -1 dims (dynamic) render as "?".
func ShapeString(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		if d < 0 {
			b.WriteByte('?')
		} else {
			fmt.Fprintf(&b, "%d", d)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Float64At returns element i converted to float64, for comparisons and
// encoding; booleans are 0 or 1.
func (t *Tensor) Float64At(i int) float64 {
	switch d := t.Data.(type) {
	case []float32:
		return float64(d[i])
	case []float64:
		return d[i]
	case []int32:
		return float64(d[i])
	case []int64:
		return float64(d[i])
	case []uint8:
		return float64(d[i])
	case []int8:
		return float64(d[i])
	case []bool:
		if d[i] {
			return 1
		}
		return 0
	}
	panic(fmt.Sprintf("tensor: unsupported data %T", t.Data))
}
