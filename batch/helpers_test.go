package batch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ints64 makes an int64 tensor of the given shape from vals.
func ints64(shape []int64, vals ...int64) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: vals}
}

// seq is an int64 [len(vals)] tensor.
func seq(vals ...int64) *tensor.Tensor { return ints64([]int64{int64(len(vals))}, vals...) }

// filled makes a tensor of dtype dt and shape whose element i is base+i.
func filled(dt tensor.DType, shape []int64, base int) *tensor.Tensor {
	t := tensor.New(dt, shape)
	n := t.Len()
	for i := range n {
		v := base + i
		switch d := t.Data.(type) {
		case []float32:
			d[i] = float32(v)
		case []float64:
			d[i] = float64(v)
		case []int32:
			d[i] = int32(v)
		case []int64:
			d[i] = int64(v)
		case []uint8:
			d[i] = uint8(v)
		case []int8:
			d[i] = int8(v)
		case []bool:
			d[i] = v%2 == 1
		}
	}
	return t
}

func mustNew(t testing.TB, cfg Config) *Batcher {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return b
}

// collector remembers every row added and every batch that left, and
// checks each batch against the rows it holds.
type collector struct {
	t    testing.TB
	b    *Batcher
	cfg  Config // with defaults
	rows []map[string]*tensor.Tensor
	enq  []time.Time
	seen []int // per row: how many batches held it
	out  []*Batch
	left []time.Time // per row: when its batch left
}

func newCollector(t testing.TB, cfg Config) *collector {
	b := mustNew(t, cfg)
	return &collector{t: t, b: b, cfg: b.Config()}
}

// add adds a row; the row's Ref is its index.
func (c *collector) add(now time.Time, inputs map[string]*tensor.Tensor) error {
	c.t.Helper()
	ref := len(c.rows)
	c.rows = append(c.rows, inputs)
	c.enq = append(c.enq, now)
	c.seen = append(c.seen, 0)
	c.left = append(c.left, time.Time{})
	before := c.b.Pending()
	ready, err := c.b.Add(now, Item{Inputs: inputs, Ref: ref})
	if err != nil {
		c.seen[ref] = -1 // rejected: must never show up
		if c.b.Pending() != before || len(ready) != 0 {
			c.t.Fatalf("rejected row changed the batcher: pending %d -> %d, %d batches", before, c.b.Pending(), len(ready))
		}
		return err
	}
	c.take(now, ready)
	return nil
}

func (c *collector) take(now time.Time, bs []*Batch) {
	c.t.Helper()
	for _, bt := range bs {
		c.check(bt)
		for _, ref := range bt.Refs {
			r := ref.(int)
			if c.seen[r] < 0 {
				c.t.Fatalf("rejected row %d came out in batch %s", r, bt.Key)
			}
			c.seen[r]++
			c.left[r] = now
		}
		c.out = append(c.out, bt)
	}
}

// finish flushes and checks that every accepted row left exactly once.
func (c *collector) finish(now time.Time) {
	c.t.Helper()
	c.take(now, c.b.Flush())
	if p := c.b.Pending(); p != 0 {
		c.t.Fatalf("Pending() = %d after Flush", p)
	}
	if _, ok := c.b.NextDeadline(); ok {
		c.t.Fatalf("NextDeadline() reports a deadline after Flush")
	}
	for r, s := range c.seen {
		if s != 1 && s != -1 {
			c.t.Fatalf("row %d left in %d batches, want 1", r, s)
		}
	}
}

// realLen is the length a row keeps along its padded axis.
func realLen(ps PadSpec, t *tensor.Tensor) int64 {
	l := t.Shape[ps.Axis]
	if ps.Truncate && len(ps.Buckets) > 0 {
		l = min(l, ps.Buckets[len(ps.Buckets)-1])
	}
	return l
}

// check verifies one batch against its rows: sizes and bytes within limits,
// data copied, padding inside bucket bounds, mask and element counts.
func (c *collector) check(bt *Batch) {
	c.t.Helper()
	n := len(bt.Refs)
	if n == 0 || n > c.cfg.MaxSize {
		c.t.Fatalf("batch %s has %d rows (MaxSize %d)", bt.Key, n, c.cfg.MaxSize)
	}
	if len(bt.Enqueued) != n {
		c.t.Fatalf("batch %s: %d Enqueued for %d rows", bt.Key, len(bt.Enqueued), n)
	}
	bytes := 0
	for _, in := range bt.Inputs {
		bytes += in.Bytes()
		if err := in.Validate(); err != nil {
			c.t.Fatalf("batch %s: invalid stacked tensor: %v", bt.Key, err)
		}
	}
	if bytes > c.cfg.MaxBytes && n > 1 {
		c.t.Fatalf("batch %s: %d rows, %d bytes over MaxBytes %d", bt.Key, n, bytes, c.cfg.MaxBytes)
	}
	first := c.rows[bt.Refs[0].(int)]
	wantInputs := len(first)
	if c.cfg.MaskInput != "" {
		wantInputs++
	}
	if len(bt.Inputs) != wantInputs {
		c.t.Fatalf("batch %s: %d inputs, want %d", bt.Key, len(bt.Inputs), wantInputs)
	}
	total, padded := 0, 0
	var maskLens []int64
	var maskP int64 = -1
	for _, name := range sortedKeys(first) {
		st := bt.Inputs[name]
		if st == nil {
			c.t.Fatalf("batch %s: missing input %q", bt.Key, name)
		}
		if st.Shape[0] != int64(n) {
			c.t.Fatalf("batch %s: input %q leading dim %d, want %d", bt.Key, name, st.Shape[0], n)
		}
		rowShape := st.Shape[1:]
		per := tensor.NumElements(rowShape)
		total += n * per
		ps, isPad := c.cfg.Pad[name]
		var maxL int64
		lens := make([]int64, n)
		for r, ref := range bt.Refs {
			orig := c.rows[ref.(int)][name]
			if bt.Enqueued[r] != c.enq[ref.(int)] {
				c.t.Fatalf("batch %s: row %d Enqueued %v, want %v", bt.Key, r, bt.Enqueued[r], c.enq[ref.(int)])
			}
			if orig == nil || orig.DType != st.DType || len(orig.Shape) != len(rowShape) {
				c.t.Fatalf("batch %s: row %d input %q does not match the batch layout", bt.Key, ref, name)
			}
			if !isPad {
				if !slices.Equal(orig.Shape, rowShape) {
					c.t.Fatalf("batch %s: row %d input %q shape %v in a batch of %v", bt.Key, ref, name, orig.Shape, rowShape)
				}
				for j := range per {
					if orig.Float64At(j) != st.Float64At(r*per+j) {
						c.t.Fatalf("batch %s: row %d input %q element %d differs", bt.Key, ref, name, j)
					}
				}
				continue
			}
			p := rowShape[ps.Axis]
			l := realLen(ps, orig)
			maxL = max(maxL, l)
			if len(ps.Buckets) > 0 {
				j, _ := slices.BinarySearch(ps.Buckets, l)
				if ps.Buckets[j] != p {
					c.t.Fatalf("batch %s: row %d input %q of length %d padded to %d, want its bucket %d", bt.Key, ref, name, l, p, ps.Buckets[j])
				}
			}
			for ax, d := range rowShape {
				if ax != ps.Axis && d != orig.Shape[ax] {
					c.t.Fatalf("batch %s: row %d input %q shape %v in a batch of %v", bt.Key, ref, name, orig.Shape, rowShape)
				}
			}
			g := geomOf(rowShape, ps.Axis)
			srcL := int(orig.Shape[ps.Axis])
			for o := range g.outer {
				for j := range g.length {
					for q := range g.inner {
						got := st.Float64At(r*per + (o*g.length+j)*g.inner + q)
						want := ps.Value
						if j < int(l) {
							want = orig.Float64At((o*srcL+j)*g.inner + q)
						} else {
							padded++
						}
						if st.DType == tensor.Bool {
							want = b2f(want != 0)
						}
						if got != want {
							c.t.Fatalf("batch %s: row %d input %q at [%d,%d,%d] = %v, want %v", bt.Key, ref, name, o, j, q, got, want)
						}
					}
				}
			}
			lens[r] = l
		}
		if isPad && c.cfg.MaskInput != "" {
			p := rowShape[ps.Axis]
			if maskLens == nil {
				maskLens, maskP = lens, p
			} else if maskP != p || !slices.Equal(maskLens, lens) {
				c.t.Fatalf("batch %s: padded inputs disagree on lengths: %v/%d vs %v/%d", bt.Key, maskLens, maskP, lens, p)
			}
		}
		if isPad && len(ps.Buckets) == 0 && rowShape[ps.Axis] != maxL {
			c.t.Fatalf("batch %s: input %q padded to %d, longest row is %d", bt.Key, name, rowShape[ps.Axis], maxL)
		}
	}
	if total != bt.TotalElems || padded != bt.PaddedElems {
		c.t.Fatalf("batch %s: PaddedElems/TotalElems = %d/%d, want %d/%d", bt.Key, bt.PaddedElems, bt.TotalElems, padded, total)
	}
	if c.cfg.MaskInput != "" {
		m := bt.Inputs[c.cfg.MaskInput]
		if m.DType != tensor.Int64 || !slices.Equal(m.Shape, []int64{int64(n), maskP}) {
			c.t.Fatalf("batch %s: mask %v%v, want int64[%d,%d]", bt.Key, m.DType, m.Shape, n, maskP)
		}
		md := m.Data.([]int64)
		for r := range n {
			for j := range int(maskP) {
				want := int64(0)
				if j < int(maskLens[r]) {
					want = 1
				}
				if md[r*int(maskP)+j] != want {
					c.t.Fatalf("batch %s: mask[%d,%d] = %d, want %d", bt.Key, r, j, md[r*int(maskP)+j], want)
				}
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func rowName(r map[string]*tensor.Tensor) string {
	s := ""
	for _, k := range sortedKeys(r) {
		s += fmt.Sprintf("%s:%v%v ", k, r[k].DType, r[k].Shape)
	}
	return s
}
