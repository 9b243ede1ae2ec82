package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// Pipeline is a validated sequence of stages. Make one with [New]; a
// pipeline whose stages need fitting applies rows only after [Pipeline.Bind]
// or [Pipeline.Load] returned a copy with artifacts. A Pipeline is
// immutable and its Apply is safe for concurrent use.
type Pipeline struct {
	plan   *plan
	stages []Stage
	specs  []json.RawMessage // per stage, the canonical spec
	fps    []string          // per stage, "sha256:" + hex of the spec
	ready  bool
	arts   *Artifacts
}

// Option configures [New].
type Option func(*options)

type options struct {
	baseDir string
}

// WithBaseDir resolves relative paths in the config (tokenizer_file)
// against dir, normally the folder of pipeline.yaml. Default: the working
// directory.
func WithBaseDir(dir string) Option {
	return func(o *options) { o.baseDir = dir }
}

// New validates cfg ([Config.Validate]), loads the files it names and
// builds the stages.
func New(cfg Config, opts ...Option) (*Pipeline, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	pl, err := compile(&cfg)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{plan: pl}
	var errs []error
	for i := range pl.stages {
		sp := &pl.stages[i]
		st, sum, err := newStage(sp, &o)
		if err != nil {
			errs = append(errs, fmt.Errorf("transform.stages[%d] (%s): %w", i, sp.cfg.Type, err))
			continue
		}
		spec := stageSpec{StageConfig: sp.cfg, TokenizerSHA256: sum}
		for j, f := range sp.cfg.Fields {
			if sp.policies[j].spec != nil {
				if spec.Policies == nil {
					spec.Policies = map[string]*FieldPolicy{}
				}
				spec.Policies[f] = sp.policies[j].spec
			}
		}
		raw, err := json.Marshal(spec)
		if err != nil {
			return nil, fmt.Errorf("transform.stages[%d] (%s): encoding spec: %w", i, sp.cfg.Type, err)
		}
		h := sha256.Sum256(raw)
		p.stages = append(p.stages, st)
		p.specs = append(p.specs, raw)
		p.fps = append(p.fps, "sha256:"+hex.EncodeToString(h[:]))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Stages that need no artifact are ready now, unless they wait on one
	// that does (one_hot's depth from a fitted vocabulary).
	p.ready = true
	for i, s := range p.stages {
		if s.Fitted() || p.waitsOnFit(i) {
			p.ready = false
			continue
		}
		b, err := s.bind(nil, p.stages[:i])
		if err != nil {
			return nil, fmt.Errorf("transform.stages[%d] (%s): %w", i, s.Type(), err)
		}
		p.stages[i] = b
	}
	return p, nil
}

// waitsOnFit reports whether stage i reads, directly or not, the output
// of a stage that needs fitting.
func (p *Pipeline) waitsOnFit(i int) bool {
	return p.plan.stages[i].level > 0
}

// stageSpec is what a stage's fingerprint covers: every option except the
// output dtype, the tokenizer file's content instead of its path, and the
// policies of the record fields it reads.
type stageSpec struct {
	StageConfig
	TokenizerSHA256 string                  `json:"tokenizer_sha256,omitempty"`
	Policies        map[string]*FieldPolicy `json:"policies,omitempty"`
}

func newStage(sp *stagePlan, o *options) (Stage, string, error) {
	b := base{p: sp}
	switch sp.cfg.Type {
	case TypeScaleToZScore:
		return &zscoreStage{base: b}, "", nil
	case TypeScaleTo01, TypeScaleByMinMax:
		return &minMaxStage{base: b}, "", nil
	case TypeScaleToGaussian:
		return &gaussianStage{base: b}, "", nil
	case TypeBucketize:
		return &bucketizeStage{base: b}, "", nil
	case TypeApplyBuckets:
		return &applyBucketsStage{base: b}, "", nil
	case TypeVocabulary:
		return &vocabularyStage{base: b}, "", nil
	case TypeHashStrings:
		return &hashStage{base: b}, "", nil
	case TypeOneHot:
		return &oneHotStage{base: b}, "", nil
	case TypeBagOfWords, TypeTFIDF:
		return &vectorStage{base: b}, "", nil
	case TypeSplit:
		return &splitStage{base: b}, "", nil
	case TypeNgrams:
		return &ngramsStage{base: b}, "", nil
	case TypeTokenize:
		path := sp.cfg.TokenizerFile
		if !filepath.IsAbs(path) && o.baseDir != "" {
			path = filepath.Join(o.baseDir, path)
		}
		tk, sum, padID, err := loadTokenizer(path, &sp.cfg)
		if err != nil {
			return nil, "", err
		}
		return &tokenizeStage{base: b, tk: tk, sha256: sum, padID: padID}, sum, nil
	}
	return nil, "", fmt.Errorf("unknown stage type %q", sp.cfg.Type)
}

// Stages returns the stages in order.
func (p *Pipeline) Stages() []Stage { return slices.Clone(p.stages) }

// NeedsFit reports whether some stage needs an artifact from fit.
func (p *Pipeline) NeedsFit() bool {
	for _, s := range p.stages {
		if s.Fitted() {
			return true
		}
	}
	return false
}

// Ready reports whether Apply can run: no stage needs fitting, or
// artifacts are bound.
func (p *Pipeline) Ready() bool { return p.ready }

// Artifacts returns the bound artifacts, or nil.
func (p *Pipeline) Artifacts() *Artifacts { return p.arts }

// Inputs lists the record fields the stages read, with what each stage
// needs them to hold, for validation against the Avro schema.
func (p *Pipeline) Inputs() []InputSpec { return slices.Clone(p.plan.inputs) }

// Outputs lists what Apply writes into each row, in stage order. Vector
// widths that come from fitted vocabularies are -1 until artifacts are
// bound. A native output (OutputFloat, OutputInt) has the form of its input
// (scalar or array); a one_hot tensor is [depth] for a scalar id and
// [n, depth] for an array of n ids.
func (p *Pipeline) Outputs() []OutputSpec {
	var out []OutputSpec
	for i, s := range p.stages {
		sp := &p.plan.stages[i]
		for j, name := range sp.cfg.Outputs {
			o := OutputSpec{Name: name, Stage: i}
			switch sp.info.out {
			case vStrings:
				o.Kind = OutputStrings
			case vNumber, vInteger:
				o.Kind = OutputFloat
				if sp.info.out == vInteger {
					o.Kind = OutputInt
				}
				if sp.dtype != tensor.Invalid {
					o.Kind, o.DType = OutputTensor, sp.dtype
				}
			case vVector:
				o.Kind, o.DType = OutputTensor, sp.dtype
				o.Shape = []int64{p.vectorWidth(s, j)}
			}
			out = append(out, o)
		}
		if sp.cfg.Type == TypeTokenize {
			w := int64(-1)
			if sp.cfg.Padding == "max_length" {
				w = int64(sp.cfg.MaxLength)
			}
			out[len(out)-1].Shape = []int64{w}
			extra := []string{sp.cfg.MaskOutput}
			if sp.cfg.TypeIDsOutput != "" {
				extra = append(extra, sp.cfg.TypeIDsOutput)
			}
			for _, name := range extra {
				out = append(out, OutputSpec{Name: name, Stage: i, Kind: OutputTensor, DType: sp.dtype, Shape: []int64{w}})
			}
		}
	}
	return out
}

// vectorWidth is the width of a vector stage's output j, or -1.
func (p *Pipeline) vectorWidth(s Stage, j int) int64 {
	switch st := s.(type) {
	case *oneHotStage:
		if st.depths != nil {
			return int64(st.depths[j])
		}
		if d := st.p.cfg.Depth; d > 0 {
			return int64(d)
		}
	case *vectorStage:
		if st.hashing() || st.art != nil {
			return int64(st.width(j))
		}
	}
	return -1
}

// Apply transforms one row in place: each stage reads its fields and
// writes its outputs into row, in order. The values Apply reads are not
// modified; outputs replace same-named entries. A row failure is an
// [*Error] ([IsDeadLetter] tells the engine what to do with it); a pipeline
// without its artifacts returns [ErrNotFitted].
func (p *Pipeline) Apply(row map[string]any) error {
	if !p.ready {
		return ErrNotFitted
	}
	for _, s := range p.stages {
		if err := s.Apply(row); err != nil {
			return err
		}
	}
	return nil
}

// Fingerprints returns each stage's fingerprint: "sha256:" and the hex
// digest of the stage's canonical spec (every option except dtype, the
// tokenizer file's sha256 instead of its path, and the policies of the
// record fields it reads). Artifacts fitted for another spec are refused.
func (p *Pipeline) Fingerprints() []string { return slices.Clone(p.fps) }

// Bind returns a copy of the pipeline that applies the artifacts a. It
// refuses artifacts fitted for other stages: a different number of stages,
// another type, or another fingerprint, naming the options that differ.
func (p *Pipeline) Bind(a *Artifacts) (*Pipeline, error) {
	if a == nil {
		return nil, errors.New("transform: bind: no artifacts")
	}
	if err := p.matches(&a.Manifest, "the artifacts"); err != nil {
		return nil, err
	}
	if len(a.Stages) != len(p.stages) {
		return nil, fmt.Errorf("transform: bind: %d stage artifacts for %d stages", len(a.Stages), len(p.stages))
	}
	q := *p
	q.stages = make([]Stage, len(p.stages))
	for i, s := range p.stages {
		art := a.Stages[i]
		if s.Fitted() != (art != nil) {
			if art == nil {
				return nil, fmt.Errorf("transform stage %d (%s): the artifacts hold nothing for a stage that needs fitting", i, s.Type())
			}
			return nil, fmt.Errorf("transform stage %d (%s): the artifacts hold an artifact for a stage that fits nothing", i, s.Type())
		}
		if art != nil {
			if err := art.check(s.plan()); err != nil {
				return nil, fmt.Errorf("transform stage %d (%s): artifact: %w", i, s.Type(), err)
			}
		}
		b, err := s.bind(art, q.stages[:i])
		if err != nil {
			return nil, fmt.Errorf("transform stage %d (%s): %w", i, s.Type(), err)
		}
		q.stages[i] = b
	}
	q.ready = true
	q.arts = a
	return &q, nil
}

// Load reads the artifact directory dir ([ReadArtifacts]: format version,
// checksum, file hashes) and binds it ([Pipeline.Bind]).
func (p *Pipeline) Load(dir string) (*Pipeline, error) {
	a, err := ReadArtifacts(dir)
	if err != nil {
		return nil, err
	}
	q, err := p.Bind(a)
	if err != nil {
		return nil, fmt.Errorf("artifact directory %s: %w", dir, err)
	}
	return q, nil
}

// matches compares a manifest's stages with the pipeline's.
func (p *Pipeline) matches(m *Manifest, what string) error {
	if len(m.Stages) != len(p.stages) {
		return fmt.Errorf("transform: %s were fitted for %d stages, the pipeline has %d: run kinfer fit again", what, len(m.Stages), len(p.stages))
	}
	for i, ms := range m.Stages {
		sp := &p.plan.stages[i]
		switch {
		case ms.Index != i:
			return fmt.Errorf("transform: %s list stage %d at position %d", what, ms.Index, i)
		case ms.Type != sp.cfg.Type:
			return fmt.Errorf("transform stage %d: %s were fitted for a %s stage, the pipeline has %s: run kinfer fit again", i, what, ms.Type, sp.cfg.Type)
		case ms.Fingerprint != p.fps[i]:
			return fmt.Errorf("transform stage %d (%s on %q): %s were fitted with other options (%s): run kinfer fit again",
				i, sp.cfg.Type, sp.cfg.Fields, what, specDiff(ms.Spec, p.specs[i]))
		}
	}
	return nil
}

// specDiff names the options that differ between two specs.
func specDiff(fitted, now json.RawMessage) string {
	var a, b map[string]any
	if json.Unmarshal(fitted, &a) != nil || json.Unmarshal(now, &b) != nil {
		return "the fitted spec is unreadable"
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	var diffs []string
	show := func(m map[string]any, k string) string {
		v, ok := m[k]
		if !ok {
			return "unset"
		}
		s, _ := json.Marshal(v)
		return string(s)
	}
	for _, k := range names {
		if x, y := show(a, k), show(b, k); x != y {
			diffs = append(diffs, fmt.Sprintf("%s: fitted %s, configured %s", k, x, y))
		}
	}
	if len(diffs) == 0 {
		return "same options, different encoding"
	}
	return strings.Join(diffs, "; ")
}
