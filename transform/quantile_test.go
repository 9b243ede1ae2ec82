package transform

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// streams are value orders that stress a quantile summary.
func streams(n int) map[string][]float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][]float64{}
	sorted := make([]float64, n)
	for i := range sorted {
		sorted[i] = float64(i)
	}
	out["sorted"] = sorted
	rev := slices.Clone(sorted)
	slices.Reverse(rev)
	out["reversed"] = rev
	random := make([]float64, n)
	for i := range random {
		random[i] = rng.NormFloat64()
	}
	out["random"] = random
	zig := make([]float64, n)
	for i := range zig {
		if i%2 == 0 {
			zig[i] = float64(i)
		} else {
			zig[i] = float64(-i)
		}
	}
	out["zigzag"] = zig
	few := make([]float64, n)
	for i := range few {
		few[i] = float64(rng.IntN(7)) // heavy repeats
	}
	out["repeated"] = few
	skew := make([]float64, n)
	for i := range skew {
		skew[i] = math.Exp(rng.NormFloat64() * 3)
	}
	out["lognormal"] = skew
	return out
}

// rankRange is the 1-based ranks v takes in sorted.
func rankRange(sorted []float64, v float64) (lo, hi int64) {
	lo = int64(sort.SearchFloat64s(sorted, v)) + 1
	hi = int64(sort.Search(len(sorted), func(k int) bool { return sorted[k] > v }))
	return lo, hi
}

// TestQuantileSketchErrorBound checks the documented guarantee: every
// answer's rank is within epsilon*n of the requested rank, whatever the
// order of the stream.
func TestQuantileSketchErrorBound(t *testing.T) {
	const n = 200_000
	for _, eps := range []float64{0.01, 0.001} {
		for name, xs := range streams(n) {
			t.Run(fmt.Sprintf("eps=%v/%s", eps, name), func(t *testing.T) {
				sk := newQuantileSketch(eps, 1000)
				for _, x := range xs {
					sk.add(x)
				}
				if sk.isExact() {
					t.Fatal("sketch should have left exact mode")
				}
				sorted := slices.Clone(xs)
				slices.Sort(sorted)
				bound := eps * n
				worst := 0.0
				for q := 0; q <= 1000; q++ {
					r := int64(math.Ceil(float64(q) / 1000 * n))
					r = max(r, 1)
					v := sk.atRank(r)
					lo, hi := rankRange(sorted, v)
					d := math.Max(0, math.Max(float64(lo-r), float64(r-hi)))
					worst = math.Max(worst, d)
					if d > bound {
						t.Fatalf("rank %d: answer %v has ranks [%d, %d], off by %v > %v", r, v, lo, hi, d, bound)
					}
				}
				if sk.atRank(1) != sorted[0] || sk.atRank(n) != sorted[n-1] {
					t.Errorf("min/max not exact")
				}
				t.Logf("worst rank error %v of bound %v; %d tuples", worst, bound, len(sk.tuples))
			})
		}
	}
}

// TestQuantileSketchMemoryBound checks the documented memory bound: at most
// (11/(2ε))·log2(2εn) tuples plus a buffer of ceil(1/(2ε)) values.
func TestQuantileSketchMemoryBound(t *testing.T) {
	const n = 1_000_000
	eps := 0.001
	for name, xs := range streams(n) {
		sk := newQuantileSketch(eps, 100_000) // the default: one big first merge
		peak := 0
		for i, x := range xs {
			sk.add(x)
			if i%997 == 0 {
				peak = max(peak, len(sk.tuples))
			}
		}
		peak = max(peak, len(sk.tuples))
		bound := int(11/(2*eps)*math.Log2(2*eps*n)) + 2
		if peak > bound {
			t.Errorf("%s: %d tuples, bound %d", name, peak, bound)
		}
		if len(sk.buf) > sk.bufferCap() || cap(sk.buf) > 2*sk.bufferCap() || cap(sk.tuples)+cap(sk.spare) > 2*(4*bound+64) {
			t.Errorf("%s: buffer %d (cap %d) > %d, tuple capacity %d+%d", name, len(sk.buf), cap(sk.buf), sk.bufferCap(), cap(sk.tuples), cap(sk.spare))
		}
		t.Logf("%s: peak %d tuples (%d KB), bound %d", name, peak, peak*24/1024, bound)
	}
}

// TestQuantileSketchExact checks numpy's definitions in exact mode.
func TestQuantileSketchExact(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 3, 9, 7}
	sk := newQuantileSketch(0.01, 100)
	for _, x := range xs {
		sk.add(x)
	}
	// sorted: 1 2 3 3 4 5 7 9 (n=8). inverted_cdf takes index
	// ceil(n*q)-1; linear interpolates at (n-1)*q.
	cases := []struct {
		q              float64
		inverted, line float64
	}{
		{0, 1, 1},
		{0.125, 1, 1.875}, // n*q-1 = 0 exactly; (n-1)q = 0.875
		{0.25, 2, 2.75},
		{0.3, 3, 3},
		{0.5, 3, 3.5},
		{0.9, 9, 7.6},
		{1, 9, 9},
	}
	for _, c := range cases {
		if got := sk.invertedCDF(c.q); got != c.inverted {
			t.Errorf("invertedCDF(%v) = %v, want %v", c.q, got, c.inverted)
		}
		if got := sk.linear(c.q); math.Abs(got-c.line) > 1e-12 {
			t.Errorf("linear(%v) = %v, want %v", c.q, got, c.line)
		}
	}
}
