package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Stage is one compiled stage of a [Pipeline]. Stages are made by [New]
// from a [StageConfig]; the implementations live in this package.
//
// A stage reads its fields from the row and writes its outputs into the
// same row. Apply is safe for concurrent use on different rows.
type Stage interface {
	// Index is the stage's position in the pipeline (0-based).
	Index() int
	// Type is the stage type (one of the Type constants).
	Type() string
	// Config returns the stage's configuration with defaults filled in.
	Config() StageConfig
	// Fitted reports whether the stage needs an artifact from fit.
	Fitted() bool
	// NewAccumulator starts fitting the stage; nil when it needs no fit.
	NewAccumulator() Accumulator
	// Artifact returns the bound artifact, or nil.
	Artifact() Artifact
	// Apply transforms one row in place. A missing or invalid value
	// follows the field's policy: the default is substituted, or Apply
	// returns an [*Error]. A fitted stage without an artifact returns
	// [ErrNotFitted].
	Apply(row map[string]any) error

	plan() *stagePlan
	// bind returns a copy of the stage that applies a. done holds the
	// stages bound before it, for one_hot's depth.
	bind(a Artifact, done []Stage) (Stage, error)
}

// Accumulator fits one stage: Observe every row of the fitting data, then
// Finish. Observe returns an [*Error] for a row whose value is missing or
// invalid under a dead_letter or error policy; such a row was not observed.
// An Accumulator is not safe for concurrent use.
type Accumulator interface {
	Observe(row map[string]any) error
	Finish() (Artifact, error)
}

// Artifact is a stage's fitted state, written as one JSON file of the
// artifact directory. The concrete types are [MomentsArtifact],
// [MinMaxArtifact], [QuantilesArtifact], [BucketsArtifact] and
// [VocabularyArtifact].
type Artifact interface {
	// check verifies that the artifact is well formed for the stage.
	check(sp *stagePlan) error
}

// artifactOf is a fitted stage's Artifact: art, or a nil interface (not
// a nil pointer in one) before the stage is fitted.
func artifactOf[P interface {
	comparable
	Artifact
}](art P) Artifact {
	var unfitted P
	if art == unfitted {
		return nil
	}
	return art
}

// bindAs is the artifact a stage binds, of the stage's own type P.
func bindAs[P Artifact](a Artifact) (P, error) {
	p, ok := a.(P)
	if !ok {
		return p, fmt.Errorf("artifact %T, want %s", a, strings.Replace(fmt.Sprintf("%T", p), "transform.", "", 1))
	}
	return p, nil
}

// base holds what every stage shares: its validated plan.
type base struct {
	p *stagePlan
}

func (b *base) Index() int         { return b.p.idx }
func (b *base) Type() string       { return b.p.cfg.Type }
func (b *base) Fitted() bool       { return b.p.fitted }
func (b *base) plan() *stagePlan   { return b.p }
func (b *base) Artifact() Artifact { return nil }

func (b *base) Config() StageConfig {
	c := b.p.cfg
	c.Fields = slices.Clone(c.Fields)
	c.Outputs = slices.Clone(c.Outputs)
	c.Boundaries = slices.Clone(c.Boundaries)
	c.NgramRange = slices.Clone(c.NgramRange)
	return c
}

// stateless is embedded by stages that fit nothing.
type stateless struct{}

func (stateless) NewAccumulator() Accumulator { return nil }

// errorf builds a stage-level error that is not about a row.
func (b *base) errorf(format string, args ...any) error {
	return fmt.Errorf("transform stage %d (%s): "+format, append([]any{b.p.idx, b.p.cfg.Type}, args...)...)
}

// fail applies field j's policy to a bad value: use reports that the
// default should be used instead; otherwise err is the row's *Error.
func (b *base) fail(j int, bv *badValue) (use bool, err error) {
	pol := b.p.policies[j]
	if pol.policy == PolicyDefault {
		return true, nil
	}
	return false, b.rowError(j, bv)
}

func (b *base) rowError(j int, bv *badValue) error {
	pol := b.p.policies[j].policy
	if pol == PolicyDefault {
		pol = PolicyDeadLetter // the default itself did not fit
	}
	return &Error{Stage: b.p.idx, Type: b.p.cfg.Type, Field: b.p.cfg.Fields[j], Reason: bv.reason, Policy: pol, Err: bv.err}
}

func missingValue(st lookupStatus) *badValue {
	if st == isNull {
		return bad(ReasonMissingField, "value is null")
	}
	return bad(ReasonMissingField, "field is missing")
}

// numbers reads field j as numbers, applying its policy. fromDefault
// reports that the default was used.
func (b *base) numbers(row map[string]any, j int, scratch *[1]float64) (n numbers, fromDefault bool, err error) {
	v, st := lookup(row, b.p.cfg.Fields[j])
	var bv *badValue
	if st != found {
		bv = missingValue(st)
	} else if n, bv = readNumbers(v, scratch); bv == nil {
		return n, false, nil
	}
	if use, err := b.fail(j, bv); !use {
		return numbers{}, false, err
	}
	d := &b.p.policies[j].def
	f := formScalar
	if d.list {
		f = formList
	}
	return numbers{vals: d.nums, form: f}, true, nil
}

// integers reads field j as integers, applying its policy.
func (b *base) integers(row map[string]any, j int, scratch *[1]int64) (integers, error) {
	v, st := lookup(row, b.p.cfg.Fields[j])
	var bv *badValue
	var n integers
	if st != found {
		bv = missingValue(st)
	} else if n, bv = readIntegers(v, scratch); bv == nil {
		return n, nil
	}
	if use, err := b.fail(j, bv); !use {
		return integers{}, err
	}
	d := &b.p.policies[j].def
	f := formScalar
	if d.list {
		f = formList
	}
	return integers{vals: d.ints, form: f}, nil
}

// strings reads field j as strings, applying its policy.
func (b *base) strings(row map[string]any, j int, scratch *[1]string) (vals []string, scalar bool, err error) {
	v, st := lookup(row, b.p.cfg.Fields[j])
	var bv *badValue
	if st != found {
		bv = missingValue(st)
	} else if vals, scalar, bv = readStrings(v, scratch); bv == nil {
		return vals, scalar, nil
	}
	if use, err := b.fail(j, bv); !use {
		return nil, false, err
	}
	d := &b.p.policies[j].def
	return d.strs, !d.list, nil
}

// text reads field j as one string, applying its policy.
func (b *base) text(row map[string]any, j int) (string, error) {
	v, st := lookup(row, b.p.cfg.Fields[j])
	var bv *badValue
	if st != found {
		bv = missingValue(st)
	} else if s, ok := v.(string); ok {
		return s, nil
	} else {
		bv = bad(ReasonWrongType, "a %s value, want a string", typeName(v))
	}
	if use, err := b.fail(j, bv); !use {
		return "", err
	}
	return b.p.policies[j].def.strs[0], nil
}

// decodeInto unmarshals an artifact strictly.
func decodeInto[T any](data []byte) (*T, error) {
	var a T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, err
	}
	return &a, nil
}

// checkFields verifies that an artifact covers the stage's fields in order.
func checkFields(sp *stagePlan, names []string) error {
	if !slices.Equal(names, sp.cfg.Fields) {
		return fmt.Errorf("artifact is for fields %q, the stage reads %q", names, sp.cfg.Fields)
	}
	return nil
}

func allFinite(name string, vs []float64) error {
	for i, v := range vs {
		if !finite(v) {
			return fmt.Errorf("%s[%d] is %v", name, i, v)
		}
	}
	return nil
}
