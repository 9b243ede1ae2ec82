package transform

import (
	"fmt"
	"math"
	"slices"
)

// float64Eps is numpy's finfo(float64).eps (2^-52).
const float64Eps = 0x1p-52

// ---------------------------------------------------------------- shared

// elementwiseWidth fits an elementwise stage's input to the fitted width:
// a scalar default is broadcast, any other length mismatch follows the
// field's policy. width < 0 means not known yet (the first row in fit).
func (b *base) elementwiseWidth(j int, in numbers, fromDefault bool, width int) (numbers, error) {
	if !b.p.cfg.Elementwise || width < 0 || len(in.vals) == width {
		return in, nil
	}
	if !fromDefault {
		bv := bad(ReasonShape, "%d values, the stage was fitted on arrays of %d", len(in.vals), width)
		if use, err := b.fail(j, bv); !use {
			return numbers{}, err
		}
		d := &b.p.policies[j].def
		in = numbers{vals: d.nums, form: formScalar}
		if d.list {
			in.form = formList
		}
	}
	if len(in.vals) == width {
		return in, nil
	}
	if len(in.vals) == 1 {
		vals := make([]float64, width)
		for k := range vals {
			vals[k] = in.vals[0]
		}
		return numbers{vals: vals, form: formList}, nil
	}
	return numbers{}, b.rowError(j, bad(ReasonShape, "the default value has %d elements, the stage was fitted on arrays of %d", len(in.vals), width))
}

// writeFloats writes f applied to every value (k is the position) in the
// input's form.
func (b *base) writeFloats(row map[string]any, j int, in numbers, f func(x float64, k int) float64) {
	o := b.p.cfg.Outputs[j]
	if in.form == formScalar && b.p.dtype == 0 {
		row[o] = f(in.vals[0], 0)
		return
	}
	out := make([]float64, len(in.vals))
	for k, x := range in.vals {
		out[k] = f(x, k)
	}
	row[o] = floatOutput(in.form, in.shape, out, b.p.dtype)
}

// readAll reads every field of a fitting stage before any is observed, so
// that a row failing on its second field leaves the first unobserved.
func (b *base) readAll(row map[string]any, scratch [][1]float64, widths []int) ([]numbers, error) {
	ins := make([]numbers, len(b.p.cfg.Fields))
	for j := range ins {
		in, fromDefault, err := b.numbers(row, j, &scratch[j])
		if err != nil {
			return nil, err
		}
		w := -1
		if widths != nil {
			w = widths[j]
		}
		if ins[j], err = b.elementwiseWidth(j, in, fromDefault, w); err != nil {
			return nil, err
		}
	}
	return ins, nil
}

// ---------------------------------------------------------------- z-score

// MomentsArtifact is scale_to_z_score's artifact: per field, the count,
// mean and population variance, exactly as scikit-learn's StandardScaler
// reports them (mean_, var_, scale_).
type MomentsArtifact struct {
	Fields []Moments `json:"fields"`
}

// Moments are one field's statistics. The slices have one element, or one
// per array position for an elementwise stage.
type Moments struct {
	Field string `json:"field"`
	// Count is the number of values (elementwise: of rows) observed.
	Count int64 `json:"count"`
	// Mean and Var are the mean and the population variance (ddof 0).
	Mean []float64 `json:"mean"`
	Var  []float64 `json:"var"`
	// Scale is sqrt(Var), or 1 where the field is constant (Var within
	// rounding error of 0, by scikit-learn's test).
	Scale []float64 `json:"scale"`
}

func (a *MomentsArtifact) check(sp *stagePlan) error {
	names := make([]string, len(a.Fields))
	for i, f := range a.Fields {
		names[i] = f.Field
		n := len(f.Mean)
		switch {
		case n == 0 || len(f.Var) != n || len(f.Scale) != n:
			return fmt.Errorf("field %q: mean, var and scale must have the same non-zero length", f.Field)
		case !sp.cfg.Elementwise && n != 1:
			return fmt.Errorf("field %q: %d means for a stage that is not elementwise", f.Field, n)
		case f.Count <= 0:
			return fmt.Errorf("field %q: count %d", f.Field, f.Count)
		}
		for _, e := range []error{allFinite("mean", f.Mean), allFinite("var", f.Var), allFinite("scale", f.Scale)} {
			if e != nil {
				return fmt.Errorf("field %q: %w", f.Field, e)
			}
		}
		for k, s := range f.Scale {
			if !(s > 0) {
				return fmt.Errorf("field %q: scale[%d] is %v, want > 0", f.Field, k, s)
			}
		}
	}
	return checkFields(sp, names)
}

type zscoreStage struct {
	base
	art *MomentsArtifact
}

func (s *zscoreStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *zscoreStage) bind(a Artifact, _ []Stage) (Stage, error) {
	m, err := bindAs[*MomentsArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = m
	return &c, nil
}

func (s *zscoreStage) Apply(row map[string]any) error {
	if s.art == nil {
		return ErrNotFitted
	}
	for j := range s.p.cfg.Fields {
		var scratch [1]float64
		in, fromDefault, err := s.numbers(row, j, &scratch)
		if err != nil {
			return err
		}
		m := &s.art.Fields[j]
		if in, err = s.elementwiseWidth(j, in, fromDefault, len(m.Mean)); err != nil {
			return err
		}
		if len(m.Mean) == 1 {
			mean, scale := m.Mean[0], m.Scale[0]
			s.writeFloats(row, j, in, func(x float64, _ int) float64 { return (x - mean) / scale })
		} else {
			s.writeFloats(row, j, in, func(x float64, k int) float64 { return (x - m.Mean[k]) / m.Scale[k] })
		}
	}
	return nil
}

func (s *zscoreStage) NewAccumulator() Accumulator {
	a := &momentsAcc{s: s, scratch: make([][1]float64, len(s.p.cfg.Fields)), fs: make([]welford, len(s.p.cfg.Fields))}
	if s.p.cfg.Elementwise {
		a.widths = make([]int, len(a.fs))
		for j := range a.widths {
			a.widths[j] = -1
		}
	}
	return a
}

// welford accumulates a count, mean and sum of squared deviations
// (Welford's online algorithm; exact to rounding, O(width) memory).
type welford struct {
	n        int64
	mean, m2 []float64
}

type momentsAcc struct {
	s       *zscoreStage
	scratch [][1]float64
	widths  []int // elementwise: per field, -1 until the first row
	fs      []welford
}

func (a *momentsAcc) Observe(row map[string]any) error {
	obs, err := a.prepare(row)
	if err == nil {
		a.commit(obs)
	}
	return err
}

func (a *momentsAcc) prepare(row map[string]any) (any, error) {
	return a.s.readAll(row, a.scratch, a.widths)
}

func (a *momentsAcc) commit(obs any) {
	for j, in := range obs.([]numbers) {
		w := &a.fs[j]
		if a.widths != nil {
			if a.widths[j] < 0 {
				a.widths[j] = len(in.vals)
				w.mean = make([]float64, len(in.vals))
				w.m2 = make([]float64, len(in.vals))
			}
			w.n++
			n := float64(w.n)
			for k, x := range in.vals {
				d := x - w.mean[k]
				w.mean[k] += d / n
				w.m2[k] += d * (x - w.mean[k])
			}
			continue
		}
		if w.mean == nil {
			w.mean, w.m2 = make([]float64, 1), make([]float64, 1)
		}
		for _, x := range in.vals {
			w.n++
			d := x - w.mean[0]
			w.mean[0] += d / float64(w.n)
			w.m2[0] += d * (x - w.mean[0])
		}
	}
}

func (a *momentsAcc) Finish() (Artifact, error) {
	art := &MomentsArtifact{}
	for j, w := range a.fs {
		f := a.s.p.cfg.Fields[j]
		if w.n == 0 || len(w.mean) == 0 {
			return nil, a.s.errorf("field %q: no values observed, nothing to fit", f)
		}
		m := Moments{Field: f, Count: w.n, Mean: slices.Clone(w.mean)}
		n := float64(w.n)
		for k := range w.mean {
			v := w.m2[k] / n
			m.Var = append(m.Var, v)
			// scikit-learn's _is_constant_feature: a variance within the
			// two-pass algorithm's error bound of 0 means a constant.
			bound := n*float64Eps*v + math.Pow(n*w.mean[k]*float64Eps, 2)
			if v <= bound {
				m.Scale = append(m.Scale, 1)
			} else {
				m.Scale = append(m.Scale, math.Sqrt(v))
			}
		}
		art.Fields = append(art.Fields, m)
	}
	return art, nil
}

// ---------------------------------------------------------------- min-max

// MinMaxArtifact is the artifact of scale_to_0_1 and scale_by_min_max: per
// field, the minimum and maximum seen (scikit-learn's MinMaxScaler
// data_min_ and data_max_).
type MinMaxArtifact struct {
	Fields []MinMax `json:"fields"`
}

// MinMax is one field's range; one element, or one per array position.
type MinMax struct {
	Field string    `json:"field"`
	Count int64     `json:"count"`
	Min   []float64 `json:"min"`
	Max   []float64 `json:"max"`
}

func (a *MinMaxArtifact) check(sp *stagePlan) error {
	names := make([]string, len(a.Fields))
	for i, f := range a.Fields {
		names[i] = f.Field
		n := len(f.Min)
		switch {
		case n == 0 || len(f.Max) != n:
			return fmt.Errorf("field %q: min and max must have the same non-zero length", f.Field)
		case !sp.cfg.Elementwise && n != 1:
			return fmt.Errorf("field %q: %d minimums for a stage that is not elementwise", f.Field, n)
		case f.Count <= 0:
			return fmt.Errorf("field %q: count %d", f.Field, f.Count)
		}
		if err := errors2(allFinite("min", f.Min), allFinite("max", f.Max)); err != nil {
			return fmt.Errorf("field %q: %w", f.Field, err)
		}
		for k := range f.Min {
			if f.Min[k] > f.Max[k] {
				return fmt.Errorf("field %q: min[%d] %v is above max[%d] %v", f.Field, k, f.Min[k], k, f.Max[k])
			}
		}
	}
	return checkFields(sp, names)
}

func errors2(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

type minMaxStage struct {
	base
	art *MinMaxArtifact
	// per field, per position: y = x*scale + offset (scikit-learn's
	// scale_ and min_)
	scale, offset [][]float64
	lo, hi        float64
}

func (s *minMaxStage) outputRange() (float64, float64) {
	if s.p.cfg.Type == TypeScaleTo01 {
		return 0, 1
	}
	return *s.p.cfg.OutputMin, *s.p.cfg.OutputMax
}

func (s *minMaxStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *minMaxStage) bind(a Artifact, _ []Stage) (Stage, error) {
	m, err := bindAs[*MinMaxArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = m
	c.lo, c.hi = s.outputRange()
	c.scale = make([][]float64, len(m.Fields))
	c.offset = make([][]float64, len(m.Fields))
	for j, f := range m.Fields {
		for k := range f.Min {
			// scikit-learn: _handle_zeros_in_scale turns a range below
			// 10*eps into 1; scale_ = (hi-lo)/range; min_ = lo - min*scale_.
			r := f.Max[k] - f.Min[k]
			if r < 10*float64Eps {
				r = 1
			}
			sc := (c.hi - c.lo) / r
			c.scale[j] = append(c.scale[j], sc)
			c.offset[j] = append(c.offset[j], c.lo-float64(f.Min[k]*sc))
		}
	}
	return &c, nil
}

func (s *minMaxStage) Apply(row map[string]any) error {
	if s.art == nil {
		return ErrNotFitted
	}
	clip := s.p.cfg.Clip
	for j := range s.p.cfg.Fields {
		var scratch [1]float64
		in, fromDefault, err := s.numbers(row, j, &scratch)
		if err != nil {
			return err
		}
		sc, off := s.scale[j], s.offset[j]
		if in, err = s.elementwiseWidth(j, in, fromDefault, len(sc)); err != nil {
			return err
		}
		s.writeFloats(row, j, in, func(x float64, k int) float64 {
			if len(sc) == 1 {
				k = 0
			}
			y := float64(x*sc[k]) + off[k]
			if clip {
				y = min(max(y, s.lo), s.hi)
			}
			return y
		})
	}
	return nil
}

func (s *minMaxStage) NewAccumulator() Accumulator {
	a := &minMaxAcc{s: s, scratch: make([][1]float64, len(s.p.cfg.Fields)), fs: make([]MinMax, len(s.p.cfg.Fields))}
	if s.p.cfg.Elementwise {
		a.widths = make([]int, len(a.fs))
		for j := range a.widths {
			a.widths[j] = -1
		}
	}
	return a
}

type minMaxAcc struct {
	s       *minMaxStage
	scratch [][1]float64
	widths  []int
	fs      []MinMax
}

func (a *minMaxAcc) Observe(row map[string]any) error {
	obs, err := a.prepare(row)
	if err == nil {
		a.commit(obs)
	}
	return err
}

func (a *minMaxAcc) prepare(row map[string]any) (any, error) {
	return a.s.readAll(row, a.scratch, a.widths)
}

func (a *minMaxAcc) commit(obs any) {
	for j, in := range obs.([]numbers) {
		f := &a.fs[j]
		if a.widths != nil {
			if a.widths[j] < 0 {
				a.widths[j] = len(in.vals)
				f.Min = slices.Clone(in.vals)
				f.Max = slices.Clone(in.vals)
			}
			f.Count++
			for k, x := range in.vals {
				f.Min[k] = math.Min(f.Min[k], x)
				f.Max[k] = math.Max(f.Max[k], x)
			}
			continue
		}
		for _, x := range in.vals {
			if f.Count == 0 {
				f.Min, f.Max = []float64{x}, []float64{x}
			}
			f.Count++
			f.Min[0] = math.Min(f.Min[0], x)
			f.Max[0] = math.Max(f.Max[0], x)
		}
	}
}

func (a *minMaxAcc) Finish() (Artifact, error) {
	art := &MinMaxArtifact{}
	for j, f := range a.fs {
		f.Field = a.s.p.cfg.Fields[j]
		if f.Count == 0 || len(f.Min) == 0 {
			return nil, a.s.errorf("field %q: no values observed, nothing to fit", f.Field)
		}
		art.Fields = append(art.Fields, f)
	}
	return art, nil
}

// ---------------------------------------------------------------- gaussian

// QuantilesArtifact is scale_to_gaussian's artifact: per field, the
// values at evenly spaced quantiles (scikit-learn's QuantileTransformer
// quantiles_, whose references_ are linspace(0, 1, len(Quantiles))).
type QuantilesArtifact struct {
	Fields []Quantiles `json:"fields"`
}

// Quantiles are one field's fitted quantiles.
type Quantiles struct {
	Field string `json:"field"`
	Count int64  `json:"count"`
	// Exact reports that every value was kept (Count <= exact_limit); else
	// each quantile's rank is within Epsilon*Count of its target.
	Exact     bool      `json:"exact"`
	Epsilon   float64   `json:"epsilon,omitempty"`
	Quantiles []float64 `json:"quantiles"`
}

func (a *QuantilesArtifact) check(sp *stagePlan) error {
	names := make([]string, len(a.Fields))
	for i, f := range a.Fields {
		names[i] = f.Field
		if len(f.Quantiles) == 0 || f.Count <= 0 {
			return fmt.Errorf("field %q: no quantiles", f.Field)
		}
		if err := allFinite("quantiles", f.Quantiles); err != nil {
			return fmt.Errorf("field %q: %w", f.Field, err)
		}
		if !slices.IsSorted(f.Quantiles) {
			return fmt.Errorf("field %q: quantiles are not ascending", f.Field)
		}
	}
	return checkFields(sp, names)
}

type gaussianStage struct {
	base
	art *QuantilesArtifact
	// per field: references, and the reversed negated quantiles and
	// references for the backward interpolation
	refs, negQ, negRefs [][]float64
}

func (s *gaussianStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *gaussianStage) bind(a Artifact, _ []Stage) (Stage, error) {
	q, err := bindAs[*QuantilesArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = q
	for _, f := range q.Fields {
		n := len(f.Quantiles)
		refs := make([]float64, n)
		negQ := make([]float64, n)
		negRefs := make([]float64, n)
		for i := range refs {
			refs[i] = linspace(0, 1, n, i)
		}
		for i := range refs {
			negQ[i] = -f.Quantiles[n-1-i]
			negRefs[i] = -refs[n-1-i]
		}
		c.refs = append(c.refs, refs)
		c.negQ = append(c.negQ, negQ)
		c.negRefs = append(c.negRefs, negRefs)
	}
	return &c, nil
}

// boundsThreshold is scikit-learn's BOUNDS_THRESHOLD.
const boundsThreshold = 1e-7

var (
	gaussClipMin = normPPF(boundsThreshold - float64Eps)
	gaussClipMax = normPPF(1 - (boundsThreshold - float64Eps))
)

func (s *gaussianStage) Apply(row map[string]any) error {
	if s.art == nil {
		return ErrNotFitted
	}
	for j := range s.p.cfg.Fields {
		var scratch [1]float64
		in, _, err := s.numbers(row, j, &scratch)
		if err != nil {
			return err
		}
		q, refs, negQ, negRefs := s.art.Fields[j].Quantiles, s.refs[j], s.negQ[j], s.negRefs[j]
		s.writeFloats(row, j, in, func(x float64, _ int) float64 {
			return gaussianize(x, q, refs, negQ, negRefs)
		})
	}
	return nil
}

// gaussianize is QuantileTransformer(output_distribution="normal")'s
// transform of one value: the mean of a forward and a backward
// interpolation of x's rank (so repeated quantiles map to the middle of
// their range), the bounds pinned to 0 and 1, then the normal quantile
// function, clipped so that the bounds stay finite.
func gaussianize(x float64, q, refs, negQ, negRefs []float64) float64 {
	lower := x-boundsThreshold < q[0]
	upper := x+boundsThreshold > q[len(q)-1]
	p := 0.5 * (interp(x, q, refs) - interp(-x, negQ, negRefs))
	if upper {
		p = 1
	}
	if lower {
		p = 0
	}
	return min(max(normPPF(p), gaussClipMin), gaussClipMax)
}

// interp is numpy.interp for one x: the last j with xp[j] <= x, then linear
// interpolation with numpy's arithmetic and its fallbacks.
func interp(x float64, xp, fp []float64) float64 {
	n := len(xp)
	if x < xp[0] {
		return fp[0]
	}
	if x > xp[n-1] {
		return fp[n-1]
	}
	j := sortSearchLast(xp, x)
	if j == n-1 || xp[j] == x {
		return fp[j]
	}
	slope := (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])
	y := float64(slope*(x-xp[j])) + fp[j]
	if math.IsNaN(y) {
		y = float64(slope*(x-xp[j+1])) + fp[j+1]
		if math.IsNaN(y) && fp[j] == fp[j+1] {
			y = fp[j]
		}
	}
	return y
}

// sortSearchLast returns the last index j with xs[j] <= x (xs ascending,
// xs[0] <= x).
func sortSearchLast(xs []float64, x float64) int {
	lo, hi := 0, len(xs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x >= xs[mid] {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

func (s *gaussianStage) NewAccumulator() Accumulator {
	a := &quantileAcc{b: &s.base, scratch: make([][1]float64, len(s.p.cfg.Fields))}
	for range s.p.cfg.Fields {
		a.sk = append(a.sk, newQuantileSketch(s.p.cfg.Epsilon, s.p.cfg.ExactLimit))
	}
	a.finish = func(j int, sk *quantileSketch) (any, error) {
		nq := int(min(int64(s.p.cfg.NumQuantiles), sk.n))
		f := Quantiles{Field: s.p.cfg.Fields[j], Count: sk.n, Exact: sk.isExact(), Quantiles: make([]float64, nq)}
		if !f.Exact {
			f.Epsilon = s.p.cfg.Epsilon
		}
		for i := range f.Quantiles {
			// QuantileTransformer: references_ = linspace(0, 1, nq), then
			// np.nanpercentile(X, references_*100), which divides by 100.
			level := float64(linspace(0, 1, nq, i) * 100)
			f.Quantiles[i] = sk.linear(level / 100)
		}
		return f, nil
	}
	a.build = func(fs []any) Artifact {
		art := &QuantilesArtifact{}
		for _, f := range fs {
			art.Fields = append(art.Fields, f.(Quantiles))
		}
		return art
	}
	return a
}

// quantileAcc feeds every value of each field to a sketch.
type quantileAcc struct {
	b       *base
	scratch [][1]float64
	sk      []*quantileSketch
	finish  func(j int, sk *quantileSketch) (any, error)
	build   func([]any) Artifact
}

func (a *quantileAcc) Observe(row map[string]any) error {
	obs, err := a.prepare(row)
	if err == nil {
		a.commit(obs)
	}
	return err
}

func (a *quantileAcc) prepare(row map[string]any) (any, error) {
	return a.b.readAll(row, a.scratch, nil)
}

func (a *quantileAcc) commit(obs any) {
	for j, in := range obs.([]numbers) {
		for _, x := range in.vals {
			a.sk[j].add(x)
		}
	}
}

func (a *quantileAcc) Finish() (Artifact, error) {
	fs := make([]any, len(a.sk))
	for j, sk := range a.sk {
		if sk.n == 0 {
			return nil, a.b.errorf("field %q: no values observed, nothing to fit", a.b.p.cfg.Fields[j])
		}
		f, err := a.finish(j, sk)
		if err != nil {
			return nil, err
		}
		fs[j] = f
	}
	return a.build(fs), nil
}

// normPPF is the standard normal quantile function (scipy.stats.norm.ppf)
// by Wichura's algorithm AS241 (PPND16), accurate to about 1e-16:
// -Inf at 0, +Inf at 1.
func normPPF(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0 || p > 1:
		return math.NaN()
	case p == 0:
		return math.Inf(-1)
	case p == 1:
		return math.Inf(1)
	}
	q := p - 0.5
	if math.Abs(q) <= 0.425 {
		r := 0.180625 - q*q
		return q * poly(r, ppndA[:]) / poly(r, ppndB[:])
	}
	r := p
	if q > 0 {
		r = 1 - p
	}
	r = math.Sqrt(-math.Log(r))
	var v float64
	if r <= 5 {
		r -= 1.6
		v = poly(r, ppndC[:]) / poly(r, ppndD[:])
	} else {
		r -= 5
		v = poly(r, ppndE[:]) / poly(r, ppndF[:])
	}
	if q < 0 {
		return -v
	}
	return v
}

// poly evaluates c[0] + c[1]x + ... by Horner's rule.
func poly(x float64, c []float64) float64 {
	v := c[len(c)-1]
	for i := len(c) - 2; i >= 0; i-- {
		v = float64(v*x) + c[i]
	}
	return v
}

// AS241 coefficients, lowest order first.
var (
	ppndA = [8]float64{3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
		4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3}
	ppndB = [8]float64{1, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
		2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4, 5.2264952788528545610e3}
	ppndC = [8]float64{1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
		1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4}
	ppndD = [8]float64{1, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
		1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9}
	ppndE = [8]float64{6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
		2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7}
	ppndF = [8]float64{1, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
		7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15}
)
