package batch

import (
	"github.com/kinfer/kinfer/tensor"
)

// stack copies bk's rows, once each, into freshly sized batch tensors,
// padding where the layout says so, and adds the mask.
func (bk *bucket) stack(maskInput string, trim map[string]int) *Batch {
	n, k := bk.n, len(bk.ins)
	out := &Batch{
		Key:           bk.key,
		Refs:          bk.refs,
		Enqueued:      bk.enq,
		Inputs:        make(map[string]*tensor.Tensor, k+1),
		TruncatedRows: bk.truncated,
		mask:          maskInput,
		trim:          trim,
	}
	var lens []int64
	if bk.nPad > 0 {
		// Slot-major, so that a sub-batch can slice each slot's lengths.
		lens = make([]int64, n*bk.nPad)
		for r := range n {
			for s := range bk.nPad {
				lens[s*n+r] = bk.lens[r*bk.nPad+s]
			}
		}
		out.pads = make([]padInfo, bk.nPad)
	}
	for i := range bk.ins {
		lay := &bk.ins[i]
		shape := make([]int64, len(lay.shape)+1)
		shape[0] = int64(n)
		copy(shape[1:], lay.shape)
		var g geom
		var rowLens []int64
		if lay.slot >= 0 {
			ax := lay.pad.Axis
			p := lay.shape[ax]
			if p < 0 {
				p = bk.maxLen[lay.slot]
			}
			shape[1+ax] = p
			g = geomOf(shape[1:], ax)
			rowLens = lens[lay.slot*n : (lay.slot+1)*n]
			out.pads[lay.slot] = padInfo{name: lay.name, axis: ax, length: p, lens: rowLens}
			kept := 0
			for _, l := range rowLens {
				kept += g.outer * int(l) * g.inner
			}
			out.PaddedElems += n*g.per - kept
		} else {
			g.per = tensor.NumElements(lay.shape)
		}
		out.TotalElems += n * g.per
		data, pooled := stackInput(lay, bk.rows, k, i, n, g, rowLens)
		if pooled {
			out.pooled = append(out.pooled, data)
		}
		out.Inputs[lay.name] = &tensor.Tensor{DType: lay.dtype, Shape: shape, Data: data}
	}
	if maskInput != "" {
		pd := &out.pads[0]
		length := int(pd.length)
		mask, pooled := poolI64.get(n * length)
		for r, l := range pd.lens {
			row := mask[r*length : (r+1)*length]
			for j := range row {
				if j < int(l) {
					row[j] = 1
				} else {
					row[j] = 0
				}
			}
		}
		if pooled {
			out.pooled = append(out.pooled, mask)
		}
		out.Inputs[maskInput] = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(n), pd.length}, Data: mask}
	}
	return out
}

// geom is the layout of one row around its padded axis: outer blocks of
// length (padded) times inner elements.
type geom struct {
	outer, inner, length, per int
}

func geomOf(rowShape []int64, axis int) geom {
	g := geom{outer: 1, inner: 1, length: int(rowShape[axis])}
	for _, d := range rowShape[:axis] {
		g.outer *= int(d)
	}
	for _, d := range rowShape[axis+1:] {
		g.inner *= int(d)
	}
	g.per = g.outer * g.length * g.inner
	return g
}

func stackInput(lay *inputLayout, rows []*tensor.Tensor, k, i, n int, g geom, lens []int64) (any, bool) {
	var v float64
	var axis int
	if lay.pad != nil {
		v, axis = lay.pad.Value, lay.pad.Axis
	}
	switch lay.dtype {
	case tensor.Float32:
		return stackRows(rows, k, i, n, g, axis, lens, float32(v))
	case tensor.Float64:
		return stackRows(rows, k, i, n, g, axis, lens, v)
	case tensor.Int32:
		return stackRows(rows, k, i, n, g, axis, lens, int32(v))
	case tensor.Int64:
		return stackRows(rows, k, i, n, g, axis, lens, int64(v))
	case tensor.Uint8:
		return stackRows(rows, k, i, n, g, axis, lens, uint8(v))
	case tensor.Int8:
		return stackRows(rows, k, i, n, g, axis, lens, int8(v))
	case tensor.Bool:
		return stackRows(rows, k, i, n, g, axis, lens, v != 0)
	}
	panic("batch: stacking an input of invalid dtype " + lay.dtype.String()) // prepare rejects these
}

// stackRows copies input i of each row (rows is row-major, k inputs a row)
// into one slice, from the buffer pool when it is large (pooled reports
// that). With lens nil the input is not padded and every row has g.per
// elements; otherwise row r keeps lens[r] of the g.length positions of the
// padded axis and the rest is pad. Every element is written: a pooled
// buffer holds an earlier batch's data.
func stackRows[E any](rows []*tensor.Tensor, k, i, n int, g geom, axis int, lens []int64, pad E) ([]E, bool) {
	dst, pooled := poolOf[E]().get(n * g.per)
	if lens == nil {
		for r := range n {
			copy(dst[r*g.per:(r+1)*g.per], rows[r*k+i].Data.([]E))
		}
		return dst, pooled
	}
	block := g.length * g.inner
	for r := range n {
		t := rows[r*k+i]
		src := t.Data.([]E)
		srcBlock := int(t.Shape[axis]) * g.inner // > block's real part when truncated
		keep := int(lens[r]) * g.inner
		row := dst[r*g.per : (r+1)*g.per]
		for o := range g.outer {
			d := row[o*block : (o+1)*block]
			copy(d, src[o*srcBlock:o*srcBlock+keep])
			for j := keep; j < block; j++ {
				d[j] = pad
			}
		}
	}
	return dst, pooled
}
