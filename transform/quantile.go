package transform

import (
	"math"
	"slices"
)

// quantileSketch finds quantiles of a stream of float64s in bounded memory.
//
// Up to exactLimit values it keeps them all and answers exactly, with
// numpy's definitions (inverted_cdf, linear). Past that it moves them into a
// Greenwald–Khanna summary ("Space-Efficient Online Computation of Quantile
// Summaries", SIGMOD 2001) with the buffered inserts and greedy compression
// of Spark's QuantileSummaries: new values collect in a buffer of
// ceil(1/(2ε)) values, which is sorted and merged into the summary when
// full, and then adjacent tuples merge while the merged tuple keeps
// g + Δ <= floor(2εn). Every tuple (v, g, Δ) bounds the rank of v to
// [rmin, rmin+Δ] with rmin the sum of g up to it, and g + Δ <= max(1, 2εn)
// for every tuple, so some tuple is within εn of any target rank: a
// returned quantile's rank is within ε·n of the requested one (tested in
// quantile_test.go against exact ranks on sorted, reversed, random and
// heavily repeated streams).
//
// Memory: 8 bytes per value up to exactLimit; then the buffer plus the
// summary, whose size GK bound by (11/(2ε))·log2(2εn) tuples of 24 bytes
// (the test checks that bound on adversarial orders; in practice it stays
// near 1/ε·log2(εn)/2). With ε = 0.001 and n = 10^9 that is at most about
// 1.4 MB per field.
type quantileSketch struct {
	eps        float64
	exactLimit int

	exact  []float64 // all values, while n <= exactLimit
	sorted bool

	sketching bool
	buf       []float64
	tuples    []gkTuple
	spare     []gkTuple
	merged    int64 // values in tuples

	n        int64
	min, max float64
}

type gkTuple struct {
	v     float64
	g     int64 // rmin(v) - rmin(previous)
	delta int64 // rmax(v) - rmin(v)
}

func newQuantileSketch(eps float64, exactLimit int) *quantileSketch {
	return &quantileSketch{eps: eps, exactLimit: exactLimit, min: math.Inf(1), max: math.Inf(-1)}
}

// bufferCap is how many values collect before a merge.
func (s *quantileSketch) bufferCap() int {
	return int(math.Ceil(1 / (2 * s.eps)))
}

func (s *quantileSketch) add(v float64) {
	s.n++
	s.min = math.Min(s.min, v)
	s.max = math.Max(s.max, v)
	if !s.sketching {
		s.exact = append(s.exact, v)
		s.sorted = false
		if len(s.exact) > s.exactLimit {
			s.sketching = true
			s.buf = s.exact
			s.exact = nil
			s.flush()
		}
		return
	}
	s.buf = append(s.buf, v)
	if len(s.buf) >= s.bufferCap() {
		s.flush()
	}
}

// isExact reports whether answers are exact.
func (s *quantileSketch) isExact() bool { return !s.sketching }

// flush merges the buffer into the summary and compresses it.
func (s *quantileSketch) flush() {
	if len(s.buf) == 0 {
		return
	}
	slices.Sort(s.buf)
	old := s.tuples
	out := s.spare[:0]
	j := 0
	for _, v := range s.buf {
		for j < len(old) && old[j].v <= v {
			out = append(out, old[j])
			j++
		}
		// A value below every old tuple or above all of them has an exact
		// rank among the values so far; one between two old tuples has a
		// rank no higher than its successor's rmax.
		var delta int64
		if j > 0 && j < len(old) {
			delta = old[j].g + old[j].delta - 1
		}
		out = append(out, gkTuple{v: v, g: 1, delta: delta})
	}
	out = append(out, old[j:]...)
	s.merged += int64(len(s.buf))
	s.buf = s.buf[:0]
	s.spare = old
	s.tuples = out
	s.compress()
	// The first merge after leaving exact mode takes all exactLimit values
	// at once; do not keep arrays sized for it.
	if cap(s.buf) > 2*s.bufferCap() {
		s.buf = nil
	}
	if limit := 4*len(s.tuples) + 64; cap(s.tuples) > limit {
		s.tuples = append(make([]gkTuple, 0, 2*len(s.tuples)), s.tuples...)
		s.spare = nil
	} else if cap(s.spare) > limit {
		s.spare = nil
	}
}

// compress merges each tuple into its right neighbour while the result
// keeps g+Δ within floor(2εn); the first and last tuples (the minimum and
// maximum) always stay.
func (s *quantileSketch) compress() {
	t := s.tuples
	if len(t) < 3 {
		return
	}
	limit := int64(2 * s.eps * float64(s.merged))
	w := len(t) - 1
	for i := len(t) - 2; i >= 1; i-- {
		if t[i].g+t[w].g+t[w].delta <= limit {
			t[w].g += t[i].g
			continue
		}
		w--
		t[w] = t[i]
	}
	w--
	t[w] = t[0]
	n := copy(t, t[w:])
	s.tuples = t[:n]
}

// size is the number of values and tuples held, for the memory test.
func (s *quantileSketch) size() int {
	return len(s.exact) + len(s.buf) + len(s.tuples)
}

// atRank returns a value whose rank (1-based, in sorted order) is r, or,
// when sketching, within εn of r.
func (s *quantileSketch) atRank(r int64) float64 {
	r = min(max(r, 1), s.n)
	if r == 1 {
		return s.min
	}
	if r == s.n {
		return s.max
	}
	if !s.sketching {
		s.sortExact()
		return s.exact[r-1]
	}
	s.flush()
	best, bestErr := s.tuples[0].v, int64(math.MaxInt64)
	var rmin int64
	for _, t := range s.tuples {
		rmin += t.g
		rmax := rmin + t.delta
		e := max(r-rmin, rmax-r)
		if e < bestErr {
			best, bestErr = t.v, e
		}
		if rmin > r {
			break
		}
	}
	return best
}

func (s *quantileSketch) sortExact() {
	if !s.sorted {
		slices.Sort(s.exact)
		s.sorted = true
	}
}

// invertedCDF is numpy.percentile(x, 100*q, method="inverted_cdf") for q
// computed as numpy does from a percentile level (see percentileQ): the
// value at index ceil(n*q)-1, with numpy's floating-point steps.
func (s *quantileSketch) invertedCDF(q float64) float64 {
	index := float64(float64(s.n)*q) - 1
	prev := math.Floor(index)
	i := prev + 1
	if index-prev == 0 {
		i = prev
	}
	if i < 0 {
		i = 0
	}
	return s.atRank(int64(i) + 1)
}

// linear is numpy.percentile(x, 100*q) (method "linear"): interpolation
// between the values at floor and floor+1 of (n-1)*q, with numpy's lerp.
func (s *quantileSketch) linear(q float64) float64 {
	virtual := float64(float64(s.n-1) * q)
	if virtual >= float64(s.n-1) {
		return s.max
	}
	if virtual < 0 {
		return s.min
	}
	prev := math.Floor(virtual)
	a := s.atRank(int64(prev) + 1)
	b := s.atRank(int64(prev) + 2)
	return lerp(a, b, virtual-prev)
}

// lerp is numpy's _lerp: monotone, and exact at t = 0 and t = 1.
func lerp(a, b, t float64) float64 {
	d := b - a
	if t >= 0.5 {
		return b - float64(d*(1-t))
	}
	return a + float64(d*t)
}

// linspace is numpy.linspace(start, stop, num)[i], computed as numpy does.
func linspace(start, stop float64, num, i int) float64 {
	if num > 1 && i == num-1 {
		return stop
	}
	if num <= 1 {
		return start
	}
	step := (stop - start) / float64(num-1)
	return float64(float64(i)*step) + start
}
