package batch

import (
	"fmt"
	"slices"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

// Batch is a group of rows with one shape key, stacked and ready to infer.
type Batch struct {
	// Key is the shape signature shared by the rows: per input, sorted by
	// name, "name:dtype[dims]" joined by "|", with a padded axis shown as its
	// bucket, or "?" when padding to the longest row; for example
	// "attention_mask:int64[32]|input_ids:int64[32]".
	Key string
	// Refs are the rows' Item.Ref, in the order the rows were added.
	Refs []any
	// Inputs are the stacked (and padded) tensors with a leading batch dim,
	// plus the generated mask when Config.MaskInput is set.
	Inputs map[string]*tensor.Tensor
	// Enqueued is when each row was added, for queue-wait metrics.
	Enqueued []time.Time
	// PaddedElems of TotalElems elements of the stacked inputs (not
	// counting the mask) are padding: the padding ratio metric.
	PaddedElems, TotalElems int
	// TruncatedRows is how many rows were cut to the largest bucket.
	TruncatedRows int

	pads []padInfo      // one per padded input, sorted by name
	mask string         // the generated mask's name in Inputs, or ""
	trim map[string]int // Config.TrimAxis, shared and read-only
	// pooled are the Inputs' buffers that came from the buffer pool.
	pooled []any
}

// Release hands the batch's stacked inputs back to the buffer pool, for
// later batches to fill. Call it once the model is done with the batch
// and nothing reads its Inputs any more: not the model (a handler must not
// keep its inputs after Infer returns) and not the rows Split made, unless
// none of them shares the inputs' memory (a model that returns an input as
// an output). rows are those rows (nil entries are skipped); when one of
// them does share, Release leaves the buffers to the garbage collector.
// Inputs is nil afterwards. Sub-batches are views: release only the batch
// the batcher made, once.
func (b *Batch) Release(rows []map[string]*tensor.Tensor) {
	pooled := b.pooled
	b.pooled, b.Inputs = nil, nil
	for _, row := range rows {
		for _, t := range row {
			if t != nil && sharesAny(t.Data, pooled) {
				return
			}
		}
	}
	for _, d := range pooled {
		release(d)
	}
}

// padInfo is what Split needs to trim one padded input's axis.
type padInfo struct {
	name   string
	axis   int     // per-row axis
	length int64   // padded length in this batch
	lens   []int64 // per row: the real length
}

// Len is the number of rows in the batch.
func (b *Batch) Len() int { return len(b.Refs) }

// Split un-batches model outputs into one map per row, in row order. Every
// output must have the batch size as its leading dim.
//
// An output listed in Config.TrimAxis is trimmed at that per-row axis, to
// the real lengths of the padded input whose padded length the axis has
// (or never, for -1). Any other output whose per-row shape has, at a padded
// input's PadSpec.Axis, exactly that input's padded length is taken to
// carry the padded axis, and each row is trimmed back to its real length
// there. If several padded inputs match such an output at different axes
// or with different real lengths, and trimming would change a row, Split
// returns an error rather than guess: set TrimAxis for that output.
//
// Untrimmed rows, and rows trimmed on their outermost blocks, are views of
// the output's backing array: do not modify them while another row's
// tensors are in use.
func (b *Batch) Split(outputs map[string]*tensor.Tensor) ([]map[string]*tensor.Tensor, error) {
	rows := make([]map[string]*tensor.Tensor, b.Len())
	if err := b.split(outputs, rows); err != nil {
		return nil, err
	}
	return rows, nil
}

// split is Split into rows, which has b.Len() entries. On error some rows
// may be filled: the caller discards them.
func (b *Batch) split(outputs map[string]*tensor.Tensor, rows []map[string]*tensor.Tensor) error {
	n := len(rows)
	for r := range rows {
		rows[r] = make(map[string]*tensor.Tensor, len(outputs))
	}
	for name, t := range outputs {
		if !wellFormed(t) {
			return fmt.Errorf("batch: splitting output %q: %s", name, tensorProblem(t))
		}
		if len(t.Shape) == 0 || t.Shape[0] != int64(n) {
			return fmt.Errorf("batch: splitting output %q of shape %s: want leading dim %d (the batch size)",
				name, tensor.ShapeString(t.Shape), n)
		}
		rowShape := append([]int64(nil), t.Shape[1:]...)
		pd, axis, err := b.padFor(name, rowShape)
		if err != nil {
			return err
		}
		// One allocation per output for the rows' tensors (and, below, for
		// the trimmed rows' shapes and copies) rather than one per row.
		ts := make([]tensor.Tensor, n)
		switch d := t.Data.(type) {
		case []float32:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []float64:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []int32:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []int64:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []uint8:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []int8:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		case []bool:
			splitRows(d, t.DType, rowShape, pd, axis, ts)
		}
		for r := range rows {
			rows[r][name] = &ts[r]
		}
	}
	return nil
}

// splitRows fills ts with the rows of data, an output of per-row shape
// rowShape: views of data, except that rows shorter than pd's padded
// length are cut at axis to their real length (still views when the cut
// keeps a row's outermost blocks, else copies).
func splitRows[E any](data []E, dt tensor.DType, rowShape []int64, pd *padInfo, axis int, ts []tensor.Tensor) {
	per := tensor.NumElements(rowShape)
	var g geom
	var shapes []int64 // the trimmed rows' shapes, rank entries each
	var copies []E     // the trimmed rows' data when it has to be copied
	if pd != nil {
		g = geomOf(rowShape, axis)
		trimmed, kept := 0, 0
		for _, l := range pd.lens {
			if l != pd.length {
				trimmed++
				kept += g.outer * int(l) * g.inner
			}
		}
		shapes = make([]int64, 0, trimmed*len(rowShape))
		if g.outer > 1 {
			copies = make([]E, 0, kept)
		}
	}
	for r := range ts {
		lo := r * per
		if pd == nil || pd.lens[r] == pd.length {
			ts[r] = tensor.Tensor{DType: dt, Shape: rowShape, Data: data[lo : lo+per : lo+per]}
			continue
		}
		keep := int(pd.lens[r])
		i := len(shapes)
		shapes = append(shapes, rowShape...)
		shape := shapes[i:len(shapes):len(shapes)]
		shape[axis] = int64(keep)
		if g.outer == 1 {
			hi := lo + keep*g.inner
			ts[r] = tensor.Tensor{DType: dt, Shape: shape, Data: data[lo:hi:hi]}
			continue
		}
		j := len(copies)
		block, k := g.length*g.inner, keep*g.inner
		for o := range g.outer {
			copies = append(copies, data[lo+o*block:lo+o*block+k]...)
		}
		ts[r] = tensor.Tensor{DType: dt, Shape: shape, Data: copies[j:len(copies):len(copies)]}
	}
}

// padFor picks the padded input whose lengths an output with this per-row
// shape is trimmed to, and the output's axis to trim; nil when none.
func (b *Batch) padFor(name string, rowShape []int64) (*padInfo, int, error) {
	if len(b.pads) == 0 {
		return nil, 0, nil
	}
	if axis, ok := b.trim[name]; ok {
		if axis < 0 {
			return nil, 0, nil
		}
		if axis >= len(rowShape) {
			return nil, 0, fmt.Errorf("batch: splitting output %q of per-row shape %s: TrimAxis %d is past its rank",
				name, tensor.ShapeString(rowShape), axis)
		}
		for i := range b.pads {
			if b.pads[i].length == rowShape[axis] {
				return &b.pads[i], axis, nil
			}
		}
		return nil, 0, fmt.Errorf("batch: splitting output %q of per-row shape %s: TrimAxis %d has size %d, no padded input has that padded length",
			name, tensor.ShapeString(rowShape), axis, rowShape[axis])
	}
	var pick *padInfo
	for i := range b.pads {
		pd := &b.pads[i]
		if pd.axis >= len(rowShape) || rowShape[pd.axis] != pd.length || !pd.short() {
			continue
		}
		if pick == nil {
			pick = pd
			continue
		}
		if pick.axis != pd.axis || !slices.Equal(pick.lens, pd.lens) {
			return nil, 0, fmt.Errorf("batch: splitting output %q of per-row shape %s: it could carry the padded axis of %q (axis %d) or of %q (axis %d); set Config.TrimAxis[%q]",
				name, tensor.ShapeString(rowShape), pick.name, pick.axis, pd.name, pd.axis, name)
		}
	}
	if pick == nil {
		return nil, 0, nil
	}
	return pick, pick.axis, nil
}

// short reports whether any row is shorter than the padded length.
func (pd *padInfo) short() bool {
	for _, l := range pd.lens {
		if l != pd.length {
			return true
		}
	}
	return false
}

// slice is the sub-batch of rows [lo, hi): views of b's tensors, mask
// included, with the same key and padded lengths.
func (b *Batch) slice(lo, hi int) *Batch {
	sub := &Batch{
		Key:      b.Key,
		Refs:     b.Refs[lo:hi:hi],
		Enqueued: b.Enqueued[lo:hi:hi],
		Inputs:   make(map[string]*tensor.Tensor, len(b.Inputs)),
		mask:     b.mask,
		trim:     b.trim,
	}
	n := b.Len()
	for name, t := range b.Inputs {
		per := 0
		if n > 0 {
			per = t.Len() / n
		}
		shape := append([]int64(nil), t.Shape...)
		shape[0] = int64(hi - lo)
		sub.Inputs[name] = &tensor.Tensor{DType: t.DType, Shape: shape, Data: tensor.SliceData(t.Data, lo*per, hi*per)}
		if name != b.mask {
			sub.TotalElems += (hi - lo) * per
		}
	}
	if len(b.pads) > 0 {
		sub.pads = make([]padInfo, len(b.pads))
		for i, pd := range b.pads {
			pd.lens = pd.lens[lo:hi:hi]
			sub.pads[i] = pd
			g := geomOf(sub.Inputs[pd.name].Shape[1:], pd.axis)
			for _, l := range pd.lens {
				sub.PaddedElems += g.per - g.outer*int(l)*g.inner
			}
		}
	}
	return sub
}
