package tensor

import (
	"fmt"
	"slices"
)

// Stack joins same-shaped tensors along a new leading batch axis. Rows of
// different shapes are an error: callers group rows by shape first.
func Stack(ts []*Tensor) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("stack of zero tensors")
	}
	first := ts[0]
	for i, t := range ts[1:] {
		if t.DType != first.DType {
			return nil, fmt.Errorf("stack: tensor %d has dtype %v, tensor 0 has %v", i+1, t.DType, first.DType)
		}
		if !slices.Equal(t.Shape, first.Shape) {
			return nil, fmt.Errorf("stack expects each tensor to be equal size, but got %s at entry 0 and %s at entry %d",
				ShapeString(first.Shape), ShapeString(t.Shape), i+1)
		}
	}
	shape := append([]int64{int64(len(ts))}, first.Shape...)
	per := NumElements(first.Shape)
	out := &Tensor{DType: first.DType, Shape: shape}
	switch first.DType {
	case Float32:
		out.Data = stackTyped[float32](ts, per)
	case Float64:
		out.Data = stackTyped[float64](ts, per)
	case Int32:
		out.Data = stackTyped[int32](ts, per)
	case Int64:
		out.Data = stackTyped[int64](ts, per)
	case Uint8:
		out.Data = stackTyped[uint8](ts, per)
	case Int8:
		out.Data = stackTyped[int8](ts, per)
	case Bool:
		out.Data = stackTyped[bool](ts, per)
	default:
		return nil, fmt.Errorf("stack: invalid dtype %v", first.DType)
	}
	return out, nil
}

func stackTyped[E any](ts []*Tensor, per int) []E {
	dst := make([]E, 0, per*len(ts))
	for _, t := range ts {
		dst = append(dst, t.Data.([]E)...)
	}
	return dst
}

// Unstack splits a tensor along its leading axis into views that share
// its backing array. Callers that keep a row past the batch must not
// mutate it.
func Unstack(t *Tensor) ([]*Tensor, error) {
	if len(t.Shape) == 0 {
		return nil, fmt.Errorf("unstack of a scalar")
	}
	n := int(t.Shape[0])
	rowShape := t.Shape[1:]
	per := NumElements(rowShape)
	if t.Len() != n*per {
		return nil, fmt.Errorf("unstack: shape %s needs %d elements, data has %d", ShapeString(t.Shape), n*per, t.Len())
	}
	out := make([]*Tensor, n)
	for i := range n {
		out[i] = &Tensor{DType: t.DType, Shape: rowShape, Data: SliceData(t.Data, i*per, (i+1)*per)}
	}
	return out, nil
}

// SliceData returns data[lo:hi] for any supported typed slice.
func SliceData(data any, lo, hi int) any {
	switch d := data.(type) {
	case []float32:
		return d[lo:hi:hi]
	case []float64:
		return d[lo:hi:hi]
	case []int32:
		return d[lo:hi:hi]
	case []int64:
		return d[lo:hi:hi]
	case []uint8:
		return d[lo:hi:hi]
	case []int8:
		return d[lo:hi:hi]
	case []bool:
		return d[lo:hi:hi]
	}
	panic(fmt.Sprintf("tensor: unsupported data %T", data))
}
