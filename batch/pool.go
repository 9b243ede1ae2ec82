package batch

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Stacked inputs are the largest allocations on the batched path (64 rows
// of 784 floats is 200 KB): fresh each time, the runtime zeroes them, the
// kernel faults their pages in and the collector runs more often. A batch
// whose model call is over hands them back (Batch.Release) and the next
// batch of a similar size reuses them.

// minPooled is the smallest buffer, in bytes, worth pooling.
const minPooled = 4 << 10

// bufPool holds free buffers of one element type by size class: class c
// has a capacity of exactly 1<<c elements.
type bufPool[E any] struct {
	classes [48]sync.Pool
}

var (
	poolF32  bufPool[float32]
	poolF64  bufPool[float64]
	poolI32  bufPool[int32]
	poolI64  bufPool[int64]
	poolU8   bufPool[uint8]
	poolI8   bufPool[int8]
	poolBool bufPool[bool]
)

// get returns a slice of n elements whose contents are undefined, and
// whether it came from (and may go back to) the pool.
func (p *bufPool[E]) get(n int) ([]E, bool) {
	var zero E
	if n == 0 || n*int(unsafe.Sizeof(zero)) < minPooled {
		return make([]E, n), false
	}
	c := bits.Len(uint(n - 1)) // the smallest class holding n
	if b, ok := p.classes[c].Get().(*[]E); ok {
		return (*b)[:n], true
	}
	return make([]E, n, 1<<c), true
}

// put returns a buffer that get marked as pooled.
func (p *bufPool[E]) put(b []E) {
	c := bits.Len(uint(cap(b))) - 1
	if cap(b) != 1<<c || c >= len(p.classes) {
		return
	}
	b = b[:cap(b)]
	p.classes[c].Put(&b)
}

// release returns a pooled buffer of any element type.
func release(data any) {
	switch d := data.(type) {
	case []float32:
		poolF32.put(d)
	case []float64:
		poolF64.put(d)
	case []int32:
		poolI32.put(d)
	case []int64:
		poolI64.put(d)
	case []uint8:
		poolU8.put(d)
	case []int8:
		poolI8.put(d)
	case []bool:
		poolBool.put(d)
	}
}

// poolOf returns the pool for E.
func poolOf[E any]() *bufPool[E] {
	var p any
	var zero E
	switch any(zero).(type) {
	case float32:
		p = &poolF32
	case float64:
		p = &poolF64
	case int32:
		p = &poolI32
	case int64:
		p = &poolI64
	case uint8:
		p = &poolU8
	case int8:
		p = &poolI8
	case bool:
		p = &poolBool
	}
	return p.(*bufPool[E])
}

// sharesAny reports whether data's backing memory overlaps any of bufs.
func sharesAny(data any, bufs []any) bool {
	lo, hi := span(data)
	if lo == hi {
		return false
	}
	for _, b := range bufs {
		blo, bhi := span(b)
		if lo < bhi && blo < hi {
			return true
		}
	}
	return false
}

// span is the address range of a slice's elements up to its capacity.
func span(data any) (lo, hi uintptr) {
	switch d := data.(type) {
	case []float32:
		return spanOf(d)
	case []float64:
		return spanOf(d)
	case []int32:
		return spanOf(d)
	case []int64:
		return spanOf(d)
	case []uint8:
		return spanOf(d)
	case []int8:
		return spanOf(d)
	case []bool:
		return spanOf(d)
	}
	return 0, 0
}

func spanOf[E any](d []E) (uintptr, uintptr) {
	if cap(d) == 0 {
		return 0, 0
	}
	var zero E
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
	return lo, lo + uintptr(cap(d))*unsafe.Sizeof(zero)
}
