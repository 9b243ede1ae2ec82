package transform

import (
	"fmt"
	"math"
	"slices"
)

// BucketsArtifact is bucketize's artifact: per field, the bucket
// boundaries at evenly spaced quantiles.
type BucketsArtifact struct {
	Fields []Buckets `json:"fields"`
}

// Buckets is one field's fitted boundaries. A value x falls in bucket i,
// the number of boundaries <= x, so there are len(Boundaries)+1 buckets.
type Buckets struct {
	Field string `json:"field"`
	Count int64  `json:"count"`
	// Exact reports that every value was kept (Count <= exact_limit); else
	// each boundary's rank is within Epsilon*Count of its target.
	Exact   bool    `json:"exact"`
	Epsilon float64 `json:"epsilon,omitempty"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	// Boundaries are strictly ascending: quantiles that coincide (many
	// repeated values) collapse into one, so a field may get fewer
	// buckets than num_buckets, and a constant field gets one.
	Boundaries []float64 `json:"boundaries"`
}

func (a *BucketsArtifact) check(sp *stagePlan) error {
	names := make([]string, len(a.Fields))
	for i, f := range a.Fields {
		names[i] = f.Field
		if err := errors2(allFinite("boundaries", f.Boundaries), allFinite("min", []float64{f.Min}), allFinite("max", []float64{f.Max})); err != nil {
			return fmt.Errorf("field %q: %w", f.Field, err)
		}
		if f.Count <= 0 || f.Min > f.Max {
			return fmt.Errorf("field %q: count %d, min %v, max %v", f.Field, f.Count, f.Min, f.Max)
		}
		if err := checkAscending(f.Boundaries); err != nil {
			return fmt.Errorf("field %q: %w", f.Field, err)
		}
		if len(f.Boundaries) > sp.cfg.NumBuckets-1 {
			return fmt.Errorf("field %q: %d boundaries for %d buckets", f.Field, len(f.Boundaries), sp.cfg.NumBuckets)
		}
	}
	return checkFields(sp, names)
}

func checkAscending(bs []float64) error {
	for k := 1; k < len(bs); k++ {
		if !(bs[k] > bs[k-1]) {
			return fmt.Errorf("boundaries[%d] %v is not above boundaries[%d] %v", k, bs[k], k-1, bs[k-1])
		}
	}
	return nil
}

// bucketOf is numpy.searchsorted(boundaries, x, side="right"): the number
// of boundaries <= x.
func bucketOf(boundaries []float64, x float64) int64 {
	lo, hi := 0, len(boundaries)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x >= boundaries[mid] {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return int64(lo)
}

// writeInts writes f applied to every value in the input's form.
func (b *base) writeInts(row map[string]any, j int, in numbers, f func(x float64) int64) {
	o := b.p.cfg.Outputs[j]
	if in.form == formScalar && b.p.dtype == 0 {
		row[o] = f(in.vals[0])
		return
	}
	out := make([]int64, len(in.vals))
	for k, x := range in.vals {
		out[k] = f(x)
	}
	row[o] = intOutput(in.form, in.shape, out, b.p.dtype)
}

// ---------------------------------------------------------------- bucketize

type bucketizeStage struct {
	base
	art *BucketsArtifact
}

func (s *bucketizeStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *bucketizeStage) bind(a Artifact, _ []Stage) (Stage, error) {
	b, err := bindAs[*BucketsArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = b
	return &c, nil
}

// cardinality is the number of bucket ids of field j (one_hot's depth).
func (s *bucketizeStage) cardinality(j int) int {
	return len(s.art.Fields[j].Boundaries) + 1
}

func (s *bucketizeStage) Apply(row map[string]any) error {
	if s.art == nil {
		return ErrNotFitted
	}
	for j := range s.p.cfg.Fields {
		var scratch [1]float64
		in, _, err := s.numbers(row, j, &scratch)
		if err != nil {
			return err
		}
		bs := s.art.Fields[j].Boundaries
		s.writeInts(row, j, in, func(x float64) int64 { return bucketOf(bs, x) })
	}
	return nil
}

func (s *bucketizeStage) NewAccumulator() Accumulator {
	a := &quantileAcc{b: &s.base, scratch: make([][1]float64, len(s.p.cfg.Fields))}
	for range s.p.cfg.Fields {
		a.sk = append(a.sk, newQuantileSketch(s.p.cfg.Epsilon, s.p.cfg.ExactLimit))
	}
	k := s.p.cfg.NumBuckets
	a.finish = func(j int, sk *quantileSketch) (any, error) {
		f := Buckets{Field: s.p.cfg.Fields[j], Count: sk.n, Exact: sk.isExact(), Min: sk.min, Max: sk.max}
		if !f.Exact {
			f.Epsilon = s.p.cfg.Epsilon
		}
		f.Boundaries = []float64{}
		if sk.min == sk.max {
			return f, nil // one bucket, as KBinsDiscretizer for a constant feature
		}
		// KBinsDiscretizer(strategy="quantile", quantile_method=
		// "inverted_cdf"): edges at np.percentile(x, linspace(0, 100, k+1)),
		// then an edge equal to the one before it is dropped, and the
		// interior edges are the boundaries.
		edges := make([]float64, k+1)
		for i := range edges {
			level := linspace(0, 100, k+1, i)
			edges[i] = sk.invertedCDF(level / 100)
			if i > 0 {
				edges[i] = math.Max(edges[i], edges[i-1]) // sketch answers need not be monotone
			}
		}
		kept := []float64{edges[0]}
		for i := 1; i <= k; i++ {
			if edges[i]-edges[i-1] > 0 {
				kept = append(kept, edges[i])
			}
		}
		if len(kept) > 2 {
			f.Boundaries = slices.Clone(kept[1 : len(kept)-1])
		}
		return f, nil
	}
	a.build = func(fs []any) Artifact {
		art := &BucketsArtifact{}
		for _, f := range fs {
			art.Fields = append(art.Fields, f.(Buckets))
		}
		return art
	}
	return a
}

// ---------------------------------------------------------------- apply_buckets

type applyBucketsStage struct {
	base
	stateless
}

func (s *applyBucketsStage) bind(Artifact, []Stage) (Stage, error) { return s, nil }

func (s *applyBucketsStage) cardinality(int) int { return len(s.p.cfg.Boundaries) + 1 }

func (s *applyBucketsStage) Apply(row map[string]any) error {
	bs := s.p.cfg.Boundaries
	for j := range s.p.cfg.Fields {
		var scratch [1]float64
		in, _, err := s.numbers(row, j, &scratch)
		if err != nil {
			return err
		}
		s.writeInts(row, j, in, func(x float64) int64 { return bucketOf(bs, x) })
	}
	return nil
}
