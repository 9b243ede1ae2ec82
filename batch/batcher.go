// Package batch groups rows of named tensors into batches a model can run.
//
// Rows are keyed by their shape signature (input names, dtypes and per-row
// shapes, with padded axes replaced by their bucket), so rows of different
// shapes never meet in one stack: "stack expects each tensor to be equal
// size" cannot happen here. Inputs with a PadSpec are padded to a bucket
// (or to the longest row of the batch), and a mask input can be generated.
// Batch.Split un-batches model outputs, trimming padding off again, and
// Isolate finds poison rows in a failing batch by bisection.
//
// A Batcher has no goroutines and no timers: the engine drives it with its
// own clock through Add, Due and Flush, which keeps it deterministic.
package batch

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

// Item is one row handed to the batcher.
type Item struct {
	// Inputs are the row's tensors, without a batch dim. The batcher keeps
	// references to them until the row leaves in a Batch (it copies them
	// then, once, into the stacked tensors); do not modify them before.
	Inputs map[string]*tensor.Tensor
	// Ref is opaque to the batcher and returned in Batch.Refs.
	Ref any
}

// Batcher is a shape-keyed micro-batcher. It is not safe for concurrent
// use: one goroutine (the engine's batching stage) owns it.
type Batcher struct {
	cfg  Config
	pads map[string]*PadSpec

	open       map[string]*bucket // shape key -> batch being filled
	head, tail *bucket            // open buckets, oldest row first
	pending    int
	free       []*bucket

	// Scratch reused by every Add so that the hot path does not allocate.
	key []byte
	cur []rowInput
}

// maxFree bounds the recycled bucket structs kept for reuse.
const maxFree = 64

// rowInput is one input of the row being added.
type rowInput struct {
	name  string
	t     *tensor.Tensor
	pad   *PadSpec // nil: not padded
	n     int64    // length along pad.Axis, after truncation
	p     int64    // padded length (bucket); -1: the longest row of the batch
	trunc bool
}

// inputLayout is one input of a shape key.
type inputLayout struct {
	name  string
	dtype tensor.DType
	shape []int64 // per-row shape; at the padded axis the bucket, or -1 for the longest row
	pad   *PadSpec
	slot  int // index among the key's padded inputs; -1 when not padded
}

// bucket is the open batch of one shape key.
type bucket struct {
	key  string
	ins  []inputLayout // sorted by name
	nPad int

	// Per-row bytes after padding: fixed + sum(slotUnit[s] * maxLen[s]).
	// slotUnit is nonzero only for inputs padded to the longest row.
	fixed    int
	slotUnit []int
	maxLen   []int64

	n         int
	rows      []*tensor.Tensor // n*len(ins), row-major
	lens      []int64          // n*nPad, row-major: true lengths of padded inputs
	refs      []any
	enq       []time.Time
	truncated int

	oldest     time.Time
	prev, next *bucket
}

// New validates cfg, applies its defaults and returns an empty Batcher.
func New(cfg Config) (*Batcher, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	b := &Batcher{cfg: c, open: make(map[string]*bucket)}
	if len(c.Pad) > 0 {
		b.pads = make(map[string]*PadSpec, len(c.Pad))
		for name, ps := range c.Pad {
			b.pads[name] = &ps
		}
	}
	return b, nil
}

// Config returns the batcher's configuration with defaults applied.
func (b *Batcher) Config() Config { return b.cfg }

// Add puts a row into the batch of its shape key and returns the batches
// that became ready because of it: the row's batch once it is full by
// MaxSize or MaxBytes, and, when padding to the longest row, the previous
// batch of the key if the new row would have pushed it over MaxBytes.
// A row that cannot be batched is not added and Add returns a *RowError.
// now is the engine's clock; it is the row's enqueue time.
func (b *Batcher) Add(now time.Time, it Item) ([]*Batch, error) {
	// b.cur must not keep the caller's tensors alive after Add returns.
	defer clear(b.cur)
	if err := b.prepare(it.Inputs); err != nil {
		return nil, err
	}
	bk := b.open[string(b.key)]
	if bk == nil {
		bk = b.newBucket()
	}
	var ready []*Batch
	if bk.n > 0 && (bk.n+1)*bk.rowBytesWith(b.cur) > b.cfg.MaxBytes {
		// Only reachable when padding to the longest row: the new row
		// grows every row of the batch.
		ready = append(ready, b.take(bk))
	}
	b.push(bk, now, it.Ref)
	if bk.n >= b.cfg.MaxSize || (bk.n+1)*bk.rowBytes() > b.cfg.MaxBytes {
		ready = append(ready, b.take(bk))
		b.retire(bk)
	}
	return ready, nil
}

// Due returns the batches whose oldest row has waited at least MaxDelay at
// now, oldest first.
func (b *Batcher) Due(now time.Time) []*Batch {
	var out []*Batch
	for bk := b.head; bk != nil && !now.Before(bk.oldest.Add(b.cfg.MaxDelay)); bk = b.head {
		out = append(out, b.take(bk))
		b.retire(bk)
	}
	return out
}

// NextDeadline is when the next batch becomes due; false when no row is
// pending.
func (b *Batcher) NextDeadline() (time.Time, bool) {
	if b.head == nil {
		return time.Time{}, false
	}
	return b.head.oldest.Add(b.cfg.MaxDelay), true
}

// Flush returns every pending row, as batches, oldest first (for shutdown
// and the end of a replay).
func (b *Batcher) Flush() []*Batch {
	var out []*Batch
	for bk := b.head; bk != nil; bk = b.head {
		out = append(out, b.take(bk))
		b.retire(bk)
	}
	return out
}

// Pending is the number of rows added and not yet returned in a batch.
func (b *Batcher) Pending() int { return b.pending }

// prepare validates the row, fills b.cur (sorted by name) and builds its
// shape key in b.key.
func (b *Batcher) prepare(inputs map[string]*tensor.Tensor) error {
	if len(inputs) == 0 {
		return &RowError{Reason: ReasonBadShape, Detail: "row has no inputs"}
	}
	b.cur = b.cur[:0]
	for name, t := range inputs {
		b.cur = append(b.cur, rowInput{name: name, t: t})
	}
	if len(b.cur) > 1 {
		slices.SortFunc(b.cur, func(x, y rowInput) int { return cmp.Compare(x.name, y.name) })
	}
	b.key = b.key[:0]
	maskLen := int64(-1)
	for i := range b.cur {
		ri := &b.cur[i]
		if ri.name == b.cfg.MaskInput && ri.name != "" {
			return &RowError{Reason: ReasonBadShape, Input: ri.name, Detail: "the row carries the input the batcher generates as its mask"}
		}
		if !wellFormed(ri.t) {
			return badTensor(ri.name, ri.t)
		}
		if ps := b.pads[ri.name]; ps != nil {
			if ps.Axis >= len(ri.t.Shape) {
				return &RowError{Reason: ReasonBadShape, Input: ri.name,
					Detail: fmt.Sprintf("shape %s has no axis %d to pad", tensor.ShapeString(ri.t.Shape), ps.Axis)}
			}
			l := ri.t.Shape[ps.Axis]
			ri.pad, ri.n, ri.p = ps, l, -1
			if len(ps.Buckets) > 0 {
				j, _ := slices.BinarySearch(ps.Buckets, l)
				if j == len(ps.Buckets) {
					if !ps.Truncate {
						return &RowError{Reason: ReasonRowTooLong, Input: ri.name,
							Detail: fmt.Sprintf("length %d at axis %d is over the largest bucket %d", l, ps.Axis, ps.Buckets[j-1])}
					}
					j--
					ri.n, ri.trunc = ps.Buckets[j], true
				}
				ri.p = ps.Buckets[j]
			}
			if b.cfg.MaskInput != "" {
				if maskLen >= 0 && ri.n != maskLen {
					return &RowError{Reason: ReasonBadShape, Input: ri.name,
						Detail: fmt.Sprintf("length %d differs from %d of another padded input, so one mask cannot cover both", ri.n, maskLen)}
				}
				maskLen = ri.n
			}
		}
		if i > 0 {
			b.key = append(b.key, '|')
		}
		b.key = appendKey(b.key, ri)
	}
	if b.cfg.MaskInput != "" && maskLen < 0 {
		return &RowError{Reason: ReasonBadShape, Detail: "no padded input to take the mask " + strconv.Quote(b.cfg.MaskInput) + " from"}
	}
	return nil
}

// appendKey writes one input of a shape key: name:dtype[d0,d1], "?" at an
// axis padded to the longest row. Names that could make two keys collide
// are quoted.
func appendKey(dst []byte, ri *rowInput) []byte {
	if needsQuote(ri.name) {
		dst = strconv.AppendQuote(dst, ri.name)
	} else {
		dst = append(dst, ri.name...)
	}
	dst = append(dst, ':')
	dst = append(dst, ri.t.DType.String()...)
	dst = append(dst, '[')
	for ax, d := range ri.t.Shape {
		if ax > 0 {
			dst = append(dst, ',')
		}
		if ri.pad != nil && ax == ri.pad.Axis {
			if ri.p < 0 {
				dst = append(dst, '?')
				continue
			}
			d = ri.p
		}
		dst = strconv.AppendInt(dst, d, 10)
	}
	return append(dst, ']')
}

// needsQuote reports names that could make keys ambiguous; a byte loop,
// as strings.ContainsAny costs more on this path.
func needsQuote(name string) bool {
	if name == "" {
		return true
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '|', '[', ']', ':', '"':
			return true
		}
	}
	return false
}

// wellFormed is a cheap tensor.Validate for the hot path.
func wellFormed(t *tensor.Tensor) bool {
	if t == nil {
		return false
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return false
		}
		n *= int(d)
	}
	var l int
	switch d := t.Data.(type) {
	case []float32:
		l = ifDType(t.DType == tensor.Float32, len(d))
	case []float64:
		l = ifDType(t.DType == tensor.Float64, len(d))
	case []int32:
		l = ifDType(t.DType == tensor.Int32, len(d))
	case []int64:
		l = ifDType(t.DType == tensor.Int64, len(d))
	case []uint8:
		l = ifDType(t.DType == tensor.Uint8, len(d))
	case []int8:
		l = ifDType(t.DType == tensor.Int8, len(d))
	case []bool:
		l = ifDType(t.DType == tensor.Bool, len(d))
	default:
		return false
	}
	return l == n
}

func ifDType(ok bool, n int) int {
	if ok {
		return n
	}
	return -1
}

func badTensor(name string, t *tensor.Tensor) error {
	return &RowError{Reason: ReasonBadShape, Input: name, Detail: tensorProblem(t)}
}

// tensorProblem says why wellFormed rejected t.
func tensorProblem(t *tensor.Tensor) string {
	if t == nil {
		return "nil tensor"
	}
	if err := t.Validate(); err != nil {
		return err.Error()
	}
	return "inconsistent tensor"
}

// newBucket opens the bucket for the key in b.key, laid out after b.cur.
func (b *Batcher) newBucket() *bucket {
	var bk *bucket
	if n := len(b.free); n > 0 {
		bk, b.free = b.free[n-1], b.free[:n-1]
	} else {
		bk = new(bucket)
	}
	bk.key = string(b.key)
	bk.ins = bk.ins[:0]
	bk.nPad, bk.fixed = 0, 0
	bk.slotUnit, bk.maxLen = bk.slotUnit[:0], bk.maxLen[:0]
	for i := range b.cur {
		ri := &b.cur[i]
		j := len(bk.ins)
		bk.ins = slices.Grow(bk.ins, 1)[:j+1]
		lay := &bk.ins[j]
		lay.name, lay.dtype, lay.pad, lay.slot = ri.name, ri.t.DType, ri.pad, -1
		lay.shape = append(lay.shape[:0], ri.t.Shape...)
		size := ri.t.DType.Size()
		if ri.pad == nil {
			bk.fixed += size * tensor.NumElements(lay.shape)
			continue
		}
		lay.slot = bk.nPad
		bk.nPad++
		lay.shape[ri.pad.Axis] = 1
		unit := size * tensor.NumElements(lay.shape)
		lay.shape[ri.pad.Axis] = ri.p
		if b.cfg.MaskInput != "" && lay.slot == 0 {
			unit += tensor.Int64.Size() // the mask follows the first padded input
		}
		if ri.p >= 0 {
			bk.fixed += unit * int(ri.p)
			unit = 0
		}
		bk.slotUnit = append(bk.slotUnit, unit)
		bk.maxLen = append(bk.maxLen, 0)
	}
	b.open[bk.key] = bk
	return bk
}

// rowBytes is the padded size of one row of the batch as it stands.
func (bk *bucket) rowBytes() int {
	n := bk.fixed
	for s, u := range bk.slotUnit {
		n += u * int(bk.maxLen[s])
	}
	return n
}

// rowBytesWith is rowBytes once the row in cur has joined.
func (bk *bucket) rowBytesWith(cur []rowInput) int {
	n := bk.fixed
	for i := range cur {
		if s := bk.ins[i].slot; s >= 0 && bk.slotUnit[s] != 0 {
			n += bk.slotUnit[s] * int(max(bk.maxLen[s], cur[i].n))
		}
	}
	return n
}

// push appends the row in b.cur to bk.
func (b *Batcher) push(bk *bucket, now time.Time, ref any) {
	if bk.n == 0 {
		rows := b.cfg.MaxSize
		if rb := bk.rowBytesWith(b.cur); rb > 0 {
			rows = max(1, min(rows, b.cfg.MaxBytes/rb))
		}
		bk.refs = make([]any, 0, rows)
		bk.enq = make([]time.Time, 0, rows)
		bk.oldest = now
		b.link(bk)
	} else if now.Before(bk.oldest) {
		// The engine's clock went back; keep the list ordered anyway.
		bk.oldest = now
		b.unlink(bk)
		b.link(bk)
	}
	trunc := false
	for i := range b.cur {
		ri := &b.cur[i]
		bk.rows = append(bk.rows, ri.t)
		if s := bk.ins[i].slot; s >= 0 {
			bk.lens = append(bk.lens, ri.n)
			bk.maxLen[s] = max(bk.maxLen[s], ri.n)
			trunc = trunc || ri.trunc
		}
	}
	if trunc {
		bk.truncated++
	}
	bk.refs = append(bk.refs, ref)
	bk.enq = append(bk.enq, now)
	bk.n++
	b.pending++
}

// link inserts bk into the open list, ordered by oldest row. It scans from
// the tail, so it is O(1) while the engine's clock moves forward.
func (b *Batcher) link(bk *bucket) {
	p := b.tail
	for p != nil && p.oldest.After(bk.oldest) {
		p = p.prev
	}
	bk.prev = p
	if p == nil {
		bk.next, b.head = b.head, bk
	} else {
		bk.next, p.next = p.next, bk
	}
	if bk.next != nil {
		bk.next.prev = bk
	} else {
		b.tail = bk
	}
}

func (b *Batcher) unlink(bk *bucket) {
	if bk.prev != nil {
		bk.prev.next = bk.next
	} else {
		b.head = bk.next
	}
	if bk.next != nil {
		bk.next.prev = bk.prev
	} else {
		b.tail = bk.prev
	}
	bk.prev, bk.next = nil, nil
}

// take stacks bk's rows into a Batch and leaves bk empty, off the open list
// but still in the key map.
func (b *Batcher) take(bk *bucket) *Batch {
	out := bk.stack(b.cfg.MaskInput, b.cfg.TrimAxis)
	b.pending -= bk.n
	b.unlink(bk)
	clear(bk.rows)
	bk.rows, bk.lens = bk.rows[:0], bk.lens[:0]
	bk.refs, bk.enq = nil, nil
	bk.n, bk.truncated = 0, 0
	clear(bk.maxLen)
	return out
}

// retire forgets an empty bucket's key, so keys seen once do not pile up,
// and keeps the struct for reuse.
func (b *Batcher) retire(bk *bucket) {
	delete(b.open, bk.key)
	if len(b.free) < maxFree {
		b.free = append(b.free, bk)
	}
}
