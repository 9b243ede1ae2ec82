package transform

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// Source replays the fitting data: it calls observe for every row, in
// order, and returns observe's first error. [Pipeline.Fit] calls it once
// per pass.
type Source func(ctx context.Context, observe func(row map[string]any) error) error

// FitStats counts what a fit saw (in its first pass).
type FitStats struct {
	// Rows is the number of rows read.
	Rows int64 `json:"rows"`
	// Passes is the number of passes over the data.
	Passes int `json:"passes"`
	// DeadLettered counts rows skipped because a field's policy
	// dead-letters them; Reasons breaks them down by reason.
	DeadLettered int64            `json:"dead_lettered"`
	Reasons      map[string]int64 `json:"dead_letter_reasons,omitempty"`
}

// Fit computes the pipeline's artifacts from the rows src yields. Rows
// whose fields the policies dead-letter are skipped and counted; a row
// failing under policy error stops the fit with its error. Most pipelines
// need one pass over the data; see [Fitter] for when more are needed.
func (p *Pipeline) Fit(ctx context.Context, src Source) (*Artifacts, error) {
	f := p.NewFitter()
	for f.Pass() < f.Passes() {
		pass := f.Pass()
		err := src(ctx, func(row map[string]any) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f.Observe(row); err != nil && !IsDeadLetter(err) {
				return err
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("transform fit pass %d of %d: %w", pass+1, f.Passes(), err)
		}
		if _, err := f.EndPass(); err != nil {
			return nil, err
		}
	}
	return f.Artifacts()
}

// Fitter fits a pipeline one row at a time, for callers that own the loop
// (the fit command reading a topic range or Avro files).
//
// A stage is fitted on what reaches it in streaming: the row after the
// stages before it. When a fitted stage reads the output of another fitted
// stage (bucketize after scale_to_z_score on the same field), the second
// can only be fitted once the first is, so the data is read once per such
// level: Passes says how many passes are needed (1 unless stages are
// chained that way; 0 when nothing needs fitting). Each pass: Observe
// every row, then EndPass.
//
// A row is observed only if every stage that can run in the pass accepts
// it; a row that a policy dead-letters anywhere is skipped by all stages,
// as it would be in streaming. A Fitter is not safe for concurrent use.
type Fitter struct {
	p      *Pipeline
	pass   int
	passes int
	stages []Stage       // with the stages of earlier passes bound
	accs   []Accumulator // the stages fitted in this pass
	arts   []Artifact
	stats  FitStats
	obs    []any // scratch: per stage, the prepared observation of a row
	err    error
	// skippable marks stages whose outputs no stage reads and that can
	// check a row without computing them (tokenize): fit only needs to
	// know whether they would fail the row.
	skippable []bool
}

// validator checks a row as Apply would, without producing outputs.
type validator interface {
	validate(row map[string]any) error
}

// preparer splits Observe so that a row is observed by every stage or by
// none: prepare reads and checks the row's values, commit accumulates them.
type preparer interface {
	prepare(row map[string]any) (any, error)
	commit(obs any)
}

// NewFitter starts fitting the pipeline.
func (p *Pipeline) NewFitter() *Fitter {
	f := &Fitter{p: p, stages: slices0(p.stages), arts: make([]Artifact, len(p.stages)), obs: make([]any, len(p.stages))}
	for i, s := range p.stages {
		if s.Fitted() {
			f.passes = max(f.passes, p.plan.stages[i].level+1)
		}
	}
	f.stats.Passes = f.passes
	f.skippable = make([]bool, len(p.stages))
	read := map[int]bool{}
	for i := range p.plan.stages {
		for _, src := range p.plan.stages[i].sources {
			read[src] = true
		}
	}
	for i, s := range p.stages {
		_, ok := s.(validator)
		f.skippable[i] = ok && !read[i]
	}
	f.startPass()
	return f
}

func slices0(s []Stage) []Stage { return append([]Stage(nil), s...) }

func (f *Fitter) startPass() {
	f.accs = make([]Accumulator, len(f.stages))
	for i, s := range f.stages {
		if s.Fitted() && f.p.plan.stages[i].level == f.pass {
			f.accs[i] = s.NewAccumulator()
		}
	}
}

// Passes is the number of passes over the data the fit needs.
func (f *Fitter) Passes() int { return f.passes }

// Pass is the current pass, from 0; Pass() == Passes() when done.
func (f *Fitter) Pass() int { return f.pass }

// Stats returns the counts so far.
func (f *Fitter) Stats() FitStats {
	s := f.stats
	s.Reasons = maps.Clone(f.stats.Reasons)
	return s
}

// Observe feeds one row to the stages fitted in the current pass, after
// applying the stages before them. The row itself is not modified. It
// returns an [*Error] for a row that a field's policy rejects: under
// dead_letter the row is skipped and counted ([IsDeadLetter] is true; go
// on), under error the fit must stop.
func (f *Fitter) Observe(row map[string]any) error {
	if f.err != nil {
		return f.err
	}
	if f.pass >= f.passes {
		return errors.New("transform: fit: Observe after the last pass")
	}
	if f.pass == 0 {
		f.stats.Rows++
	}
	work := maps.Clone(row)
	clear(f.obs)
	for i, s := range f.stages {
		level := f.p.plan.stages[i].level
		var err error
		switch {
		case level > f.pass:
			continue // reads what a later pass fits
		case f.skippable[i]:
			err = s.(validator).validate(work)
		case f.accs[i] != nil:
			if pr, ok := f.accs[i].(preparer); ok {
				f.obs[i], err = pr.prepare(work)
			} else {
				err = f.accs[i].Observe(work)
			}
		default:
			err = s.Apply(work)
		}
		if err != nil {
			if IsDeadLetter(err) && f.pass == 0 {
				f.stats.DeadLettered++
				if f.stats.Reasons == nil {
					f.stats.Reasons = map[string]int64{}
				}
				f.stats.Reasons[ReasonOf(err)]++
			}
			return err
		}
	}
	for i, a := range f.accs {
		if pr, ok := a.(preparer); ok {
			pr.commit(f.obs[i])
		}
	}
	return nil
}

// EndPass finishes the stages fitted in this pass and binds their
// artifacts for the next. more reports that another pass is needed.
func (f *Fitter) EndPass() (more bool, err error) {
	if f.err != nil {
		return false, f.err
	}
	if f.pass >= f.passes {
		return false, errors.New("transform: fit: EndPass after the last pass")
	}
	for i, a := range f.accs {
		if a == nil {
			continue
		}
		s := f.stages[i]
		art, err := a.Finish()
		if err == nil {
			err = art.check(s.plan())
		}
		var b Stage
		if err == nil {
			b, err = s.bind(art, f.stages[:i])
		}
		if err != nil {
			f.err = fmt.Errorf("transform fit: stage %d (%s): %w", i, s.Type(), err)
			return false, f.err
		}
		f.stages[i], f.arts[i] = b, art
	}
	f.pass++
	// Stateless stages that waited on this pass (one_hot's depth).
	for i, s := range f.stages {
		if !s.Fitted() && f.p.plan.stages[i].level == f.pass {
			b, err := s.bind(nil, f.stages[:i])
			if err != nil {
				f.err = fmt.Errorf("transform fit: stage %d (%s): %w", i, s.Type(), err)
				return false, f.err
			}
			f.stages[i] = b
		}
	}
	f.startPass()
	return f.pass < f.passes, nil
}

// Artifacts returns the fitted artifacts once every pass has ended.
func (f *Fitter) Artifacts() (*Artifacts, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.pass < f.passes {
		return nil, fmt.Errorf("transform: fit: %d of %d passes done", f.pass, f.passes)
	}
	a := &Artifacts{Manifest: f.p.manifest(f.Stats()), Stages: append([]Artifact(nil), f.arts...)}
	return a, nil
}
