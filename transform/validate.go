package transform

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// Input kinds: what a record field read by a stage must hold (see
// [InputSpec]).
const (
	// InputNumber: int, long, float or double, or an array of them.
	InputNumber = "number"
	// InputInteger: int or long, or an array of them.
	InputInteger = "integer"
	// InputString: string (or int/long, read as decimal text), or an array
	// of them.
	InputString = "string"
	// InputText: string.
	InputText = "text"
)

// InputSpec is a record field that a stage reads, for checking against the
// Avro schema at start-up.
type InputSpec struct {
	// Field is the record field (a dotted path for nested records).
	Field string
	// Kind is one of the Input constants.
	Kind string
	// Stage is the index of the reading stage.
	Stage int
}

// Output kinds (see [OutputSpec]).
const (
	// OutputFloat: a native float64 (scalar input) or []any of float64
	// (array input), the form schema.Mapper reads.
	OutputFloat = "float"
	// OutputInt: a native int64 or []any of int64.
	OutputInt = "int"
	// OutputStrings: a []string of tokens, for later text stages.
	OutputStrings = "strings"
	// OutputTensor: a *tensor.Tensor with the per-row shape (no batch dim).
	OutputTensor = "tensor"
)

// OutputSpec is one value a pipeline writes into each row.
type OutputSpec struct {
	// Name is the row key the value is written under.
	Name string
	// Stage is the index of the writing stage.
	Stage int
	// Kind is one of the Output constants.
	Kind string
	// DType is the tensor's dtype (OutputTensor only).
	DType tensor.DType
	// Shape is the tensor's per-row shape (OutputTensor only); -1 marks a
	// dim that depends on the row (array length, token count) or, before
	// artifacts are bound, on the fitted vocabulary.
	Shape []int64
}

// inClass is what a stage reads.
type inClass uint8

const (
	inNumeric inClass = iota // numbers
	inInteger                // integer ids
	inStrings                // strings (tokens), integers read as decimal
	inText                   // one string
)

func (c inClass) inputKind() string {
	return [...]string{InputNumber, InputInteger, InputString, InputText}[c]
}

// valueKind is what flows out of a stage.
type valueKind uint8

const (
	vNumber valueKind = iota
	vInteger
	vStrings
	vVector
)

func (k valueKind) describe() string {
	return [...]string{"numbers", "integer ids", "token lists", "vectors"}[k]
}

func (c inClass) accepts(k valueKind) bool {
	switch c {
	case inNumeric:
		return k == vNumber || k == vInteger
	case inInteger:
		return k == vInteger
	case inStrings:
		return k == vStrings || k == vInteger
	}
	return false
}

type stageInfo struct {
	options []string // type-specific options (yaml names)
	in      inClass
	out     valueKind
	fitted  bool
	dtypes  []tensor.DType // allowed dtypes; nil: no dtype option
	native  bool           // an empty dtype means a native output
}

var (
	floatTensor = []tensor.DType{tensor.Float32, tensor.Float64}
	intTensor   = []tensor.DType{tensor.Int64, tensor.Int32}
	vecTensor   = []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32, tensor.Int64}
	vocabOpts   = []string{"top_k", "frequency_threshold", "min_df", "order", "max_tokens"}
)

var stageInfos = map[string]stageInfo{
	TypeSplit:           {options: []string{"pattern", "lowercase", "min_token_length"}, in: inText, out: vStrings},
	TypeNgrams:          {options: []string{"ngram_range", "separator"}, in: inStrings, out: vStrings},
	TypeScaleToZScore:   {options: []string{"elementwise"}, in: inNumeric, out: vNumber, fitted: true, dtypes: floatTensor, native: true},
	TypeScaleTo01:       {options: []string{"elementwise", "clip"}, in: inNumeric, out: vNumber, fitted: true, dtypes: floatTensor, native: true},
	TypeScaleByMinMax:   {options: []string{"elementwise", "clip", "output_min", "output_max"}, in: inNumeric, out: vNumber, fitted: true, dtypes: floatTensor, native: true},
	TypeScaleToGaussian: {options: []string{"num_quantiles", "epsilon", "exact_limit"}, in: inNumeric, out: vNumber, fitted: true, dtypes: floatTensor, native: true},
	TypeBucketize:       {options: []string{"num_buckets", "epsilon", "exact_limit"}, in: inNumeric, out: vInteger, fitted: true, dtypes: intTensor, native: true},
	TypeApplyBuckets:    {options: []string{"boundaries"}, in: inNumeric, out: vInteger, dtypes: intTensor, native: true},
	TypeVocabulary:      {options: append(slices.Clone(vocabOpts), "num_oov_buckets", "default_value"), in: inStrings, out: vInteger, fitted: true, dtypes: intTensor, native: true},
	TypeHashStrings:     {options: []string{"hash_buckets"}, in: inStrings, out: vInteger, dtypes: intTensor, native: true},
	TypeOneHot:          {options: []string{"depth"}, in: inInteger, out: vVector, dtypes: vecTensor},
	TypeBagOfWords:      {options: append(slices.Clone(vocabOpts), "num_oov_buckets", "hash_buckets", "alternate_sign", "binary", "norm"), in: inStrings, out: vVector, fitted: true, dtypes: vecTensor},
	TypeTFIDF:           {options: append(slices.Clone(vocabOpts), "norm", "smooth_idf", "sublinear_tf"), in: inStrings, out: vVector, fitted: true, dtypes: floatTensor},
	TypeTokenize:        {options: []string{"tokenizer_file", "max_length", "padding", "pad_token", "add_special_tokens", "mask_output", "type_ids_output"}, in: inText, out: vVector, dtypes: intTensor},
}

// stageTypes lists the types in documentation order, for messages.
var stageTypes = []string{
	TypeScaleToZScore, TypeScaleTo01, TypeScaleByMinMax, TypeScaleToGaussian,
	TypeBucketize, TypeApplyBuckets, TypeVocabulary, TypeHashStrings, TypeOneHot,
	TypeSplit, TypeNgrams, TypeBagOfWords, TypeTFIDF, TypeTokenize,
}

// commonOptions are valid on every stage type.
var commonOptions = []string{"type", "fields", "outputs", "dtype"}

// cardinalityTypes emit integer ids below a number known after fitting, so
// one_hot can take its depth from them.
var cardinalityTypes = []string{TypeBucketize, TypeApplyBuckets, TypeVocabulary, TypeHashStrings}

// plan is a validated, normalised Config.
type plan struct {
	policy string
	stages []stagePlan
	inputs []InputSpec
}

type stagePlan struct {
	idx      int
	cfg      StageConfig // defaults filled in
	info     stageInfo
	dtype    tensor.DType // tensor dtype, or tensor.Invalid for a native output
	sources  []int        // per field: the stage that made it, or -1 for the record
	level    int          // the fit pass whose data it reads; see Fitter
	policies []fieldPolicy
	fitted   bool // needs an artifact
}

// fieldPolicy is a FieldPolicy ready to use.
type fieldPolicy struct {
	policy string
	def    defaultValue
	spec   *FieldPolicy // normalised, for the fingerprint; nil for stage outputs
}

// defaultValue is a parsed PolicyDefault value.
type defaultValue struct {
	list bool
	nums []float64
	ints []int64
	strs []string
	raw  any // normalised form for the fingerprint
}

// Validate checks the config and reports every problem found, each naming
// the stage (transform.stages[i], 0-based) or field and what was expected.
// It does not open files; [New] also loads tokenizer files.
func (c *Config) Validate() error {
	_, err := compile(c)
	return err
}

func compile(c *Config) (*plan, error) {
	var errs []error
	p := &plan{policy: c.Policy}
	switch c.Policy {
	case "":
		p.policy = PolicyDeadLetter
	case PolicyDeadLetter, PolicyError:
	case PolicyDefault:
		errs = append(errs, fmt.Errorf("transform.policy: %q needs a value: set it per field under transform.fields (policy: default, default: VALUE); want %q or %q here", c.Policy, PolicyDeadLetter, PolicyError))
	default:
		errs = append(errs, fmt.Errorf("transform.policy: unknown policy %q, want %q or %q", c.Policy, PolicyDeadLetter, PolicyError))
	}

	type made struct {
		stage int
		kind  valueKind
	}
	produced := map[string]made{}
	recordReaders := map[string][]inClass{}
	for i := range c.Stages {
		sp, stageErrs := normalizeStage(i, c.Stages[i])
		if len(stageErrs) > 0 {
			errs = append(errs, stageErrs...)
			continue
		}
		prefix := fmt.Sprintf("transform.stages[%d] (%s)", i, sp.cfg.Type)
		sp.sources = make([]int, len(sp.cfg.Fields))
		for j, f := range sp.cfg.Fields {
			m, ok := produced[f]
			if !ok {
				sp.sources[j] = -1
				recordReaders[f] = append(recordReaders[f], sp.info.in)
				p.inputs = append(p.inputs, InputSpec{Field: f, Kind: sp.info.in.inputKind(), Stage: i})
				continue
			}
			sp.sources[j] = m.stage
			src := p.stages[m.stage]
			if !sp.info.in.accepts(m.kind) {
				errs = append(errs, fmt.Errorf("%s: field %q is made by transform.stages[%d] (%s) as %s, but %s reads %s",
					prefix, f, m.stage, src.cfg.Type, m.kind.describe(), sp.cfg.Type, describeIn(sp.info.in)))
				continue
			}
			lv := src.level
			if src.fitted {
				lv++
			}
			sp.level = max(sp.level, lv)
		}
		if sp.cfg.Type == TypeOneHot && sp.cfg.Depth == 0 {
			for j, f := range sp.cfg.Fields {
				if s := sp.sources[j]; s < 0 || !slices.Contains(cardinalityTypes, p.stages[s].cfg.Type) {
					errs = append(errs, fmt.Errorf("%s: depth: required, because field %q is not made by a %s stage whose id count is known",
						prefix, f, strings.Join(cardinalityTypes, ", ")))
				}
			}
		}
		for _, o := range sp.outputNames() {
			produced[o] = made{stage: i, kind: sp.info.out}
		}
		p.stages = append(p.stages, sp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Field policies: only record fields, defaults that fit every reader.
	names := make([]string, 0, len(c.Fields))
	for f := range c.Fields {
		names = append(names, f)
	}
	sort.Strings(names)
	parsed := map[string]fieldPolicy{}
	for _, f := range names {
		fp := c.Fields[f]
		prefix := fmt.Sprintf("transform.fields.%s", f)
		readers, ok := recordReaders[f]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no stage reads this field from the record", prefix))
			continue
		}
		pol := fieldPolicy{policy: fp.Policy}
		switch fp.Policy {
		case PolicyDeadLetter, PolicyError:
			if fp.Default != nil {
				errs = append(errs, fmt.Errorf("%s: default: only used with policy %q, the policy is %q", prefix, PolicyDefault, fp.Policy))
				continue
			}
		case PolicyDefault:
			if fp.Default == nil {
				errs = append(errs, fmt.Errorf("%s: default: required with policy %q", prefix, PolicyDefault))
				continue
			}
			dv, err := parseDefault(fp.Default, readers)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: default: %w", prefix, err))
				continue
			}
			pol.def = dv
		case "":
			errs = append(errs, fmt.Errorf("%s: policy: required, want %q, %q or %q", prefix, PolicyDefault, PolicyDeadLetter, PolicyError))
			continue
		default:
			errs = append(errs, fmt.Errorf("%s: policy: unknown policy %q, want %q, %q or %q", prefix, fp.Policy, PolicyDefault, PolicyDeadLetter, PolicyError))
			continue
		}
		pol.spec = &FieldPolicy{Policy: fp.Policy, Default: pol.def.raw}
		parsed[f] = pol
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i := range p.stages {
		sp := &p.stages[i]
		sp.policies = make([]fieldPolicy, len(sp.cfg.Fields))
		for j, f := range sp.cfg.Fields {
			switch {
			case sp.sources[j] >= 0:
				sp.policies[j] = fieldPolicy{policy: p.policy}
			case parsed[f].policy != "":
				sp.policies[j] = parsed[f]
			default:
				sp.policies[j] = fieldPolicy{policy: p.policy, spec: &FieldPolicy{Policy: p.policy}}
			}
		}
	}
	return p, nil
}

func describeIn(c inClass) string {
	switch c {
	case inNumeric:
		return "numbers"
	case inInteger:
		return "integer ids"
	case inStrings:
		return "strings or token lists"
	}
	return "text from the record"
}

// outputNames lists everything the stage writes.
func (sp *stagePlan) outputNames() []string {
	out := slices.Clone(sp.cfg.Outputs)
	if sp.cfg.Type == TypeTokenize {
		out = append(out, sp.cfg.MaskOutput)
		if sp.cfg.TypeIDsOutput != "" {
			out = append(out, sp.cfg.TypeIDsOutput)
		}
	}
	return out
}

// normalizeStage checks one stage on its own and fills in defaults.
func normalizeStage(i int, in StageConfig) (stagePlan, []error) {
	var errs []error
	typ := in.Type
	if typ == "" {
		typ = "?"
	}
	prefix := fmt.Sprintf("transform.stages[%d] (%s)", i, typ)
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(prefix+": "+format, args...))
	}
	info, ok := stageInfos[in.Type]
	if !ok {
		if in.Type == "" {
			return stagePlan{}, []error{fmt.Errorf("transform.stages[%d]: type: required, want one of %s", i, strings.Join(stageTypes, ", "))}
		}
		return stagePlan{}, []error{fmt.Errorf("transform.stages[%d]: type: unknown stage type %q, want one of %s", i, in.Type, strings.Join(stageTypes, ", "))}
	}
	c := in
	c.Fields = slices.Clone(in.Fields)
	c.Outputs = slices.Clone(in.Outputs)
	c.Boundaries = slices.Clone(in.Boundaries)
	c.NgramRange = slices.Clone(in.NgramRange)

	// Options that do not belong to this type.
	rv := reflect.ValueOf(in)
	rt := rv.Type()
	for k := 0; k < rt.NumField(); k++ {
		name, _, _ := strings.Cut(rt.Field(k).Tag.Get("yaml"), ",")
		if slices.Contains(commonOptions, name) || slices.Contains(info.options, name) || rv.Field(k).IsZero() {
			continue
		}
		fail("option %s does not apply to %s stages (their options: %s)", name, in.Type, strings.Join(info.options, ", "))
	}

	// Fields and outputs.
	if len(c.Fields) == 0 {
		fail("fields: required, at least one field")
	}
	for j, f := range c.Fields {
		if f == "" {
			fail("fields[%d]: empty field name", j)
		} else if slices.Index(c.Fields, f) != j {
			fail("fields: %q is listed twice", f)
		}
	}
	if c.Type == TypeTokenize {
		if len(c.Fields) > 1 {
			fail("fields: tokenize reads exactly one text field, got %d", len(c.Fields))
		}
		switch len(c.Outputs) {
		case 0:
			c.Outputs = []string{DefaultIDsOutput}
		case 1:
		default:
			fail("outputs: tokenize has one id output (name the mask with mask_output), got %d names", len(c.Outputs))
		}
		if c.MaskOutput == "" {
			c.MaskOutput = DefaultMaskOutput
		}
	} else if len(c.Outputs) == 0 {
		c.Outputs = slices.Clone(c.Fields)
	} else if len(c.Outputs) != len(c.Fields) {
		fail("outputs: %d names for %d fields, want one per field", len(c.Outputs), len(c.Fields))
	}
	sp := stagePlan{idx: i, info: info, fitted: info.fitted}
	sp.cfg = c
	seen := map[string]bool{}
	for _, o := range sp.outputNames() {
		if o == "" {
			fail("outputs: empty output name")
		} else if seen[o] {
			fail("outputs: %q is written twice by this stage", o)
		}
		seen[o] = true
	}

	// Output dtype.
	if c.DType != "" {
		dt, err := tensor.ParseDType(c.DType)
		switch {
		case info.dtypes == nil:
			fail("dtype: %s stages write token lists, not tensors", c.Type)
		case err != nil:
			fail("dtype: %v", err)
		case !slices.Contains(info.dtypes, dt):
			fail("dtype: %s, want one of %s", dt, dtypeList(info.dtypes))
		default:
			sp.dtype = dt
		}
	} else if info.dtypes != nil && !info.native {
		sp.dtype = info.dtypes[0]
	}
	if sp.dtype != tensor.Invalid {
		c.DType = sp.dtype.String()
	}

	// Type-specific options and defaults.
	nonNeg := func(name string, v int) {
		if v < 0 {
			fail("%s: must not be negative, got %d", name, v)
		}
	}
	checkSketch := func() {
		if c.Epsilon == 0 {
			c.Epsilon = DefaultEpsilon
		} else if !(c.Epsilon > 0 && c.Epsilon <= 0.1) {
			fail("epsilon: %v, want a rank error in (0, 0.1]", c.Epsilon)
		}
		if c.ExactLimit == 0 {
			c.ExactLimit = DefaultExactLimit
		} else if c.ExactLimit < 0 {
			fail("exact_limit: must be positive, got %d", c.ExactLimit)
		}
	}
	checkVocab := func() {
		nonNeg("top_k", c.TopK)
		nonNeg("frequency_threshold", c.FrequencyThreshold)
		nonNeg("min_df", c.MinDF)
		nonNeg("num_oov_buckets", c.NumOOVBuckets)
		switch c.Order {
		case "":
			c.Order = "frequency"
		case "frequency", "alphabetical":
		default:
			fail("order: %q, want \"frequency\" or \"alphabetical\"", c.Order)
		}
		if c.MaxTokens == 0 {
			c.MaxTokens = DefaultMaxTokens
		} else if c.MaxTokens < 2 {
			fail("max_tokens: %d, want at least 2", c.MaxTokens)
		}
	}
	checkNorm := func(def string) {
		switch c.Norm {
		case "":
			c.Norm = def
		case "none", "l1", "l2":
		default:
			fail("norm: %q, want \"none\", \"l1\" or \"l2\"", c.Norm)
		}
	}
	switch c.Type {
	case TypeScaleByMinMax:
		switch {
		case c.OutputMin == nil || c.OutputMax == nil:
			fail("output_min and output_max: both required")
		case !finite(*c.OutputMin) || !finite(*c.OutputMax) || *c.OutputMin >= *c.OutputMax:
			fail("output_min %v must be below output_max %v, both finite", *c.OutputMin, *c.OutputMax)
		}
	case TypeScaleToGaussian:
		checkSketch()
		if c.NumQuantiles == 0 {
			c.NumQuantiles = DefaultNumQuantiles
		} else if c.NumQuantiles < 2 {
			fail("num_quantiles: %d, want at least 2", c.NumQuantiles)
		}
	case TypeBucketize:
		checkSketch()
		if c.NumBuckets < 2 {
			fail("num_buckets: %d, want at least 2", c.NumBuckets)
		}
	case TypeApplyBuckets:
		if len(c.Boundaries) == 0 {
			fail("boundaries: required, at least one")
		}
		for k, b := range c.Boundaries {
			if !finite(b) {
				fail("boundaries[%d]: %v is not finite", k, b)
			} else if k > 0 && !(b > c.Boundaries[k-1]) {
				fail("boundaries[%d]: %v is not above boundaries[%d] %v; boundaries must be strictly ascending", k, b, k-1, c.Boundaries[k-1])
			}
		}
	case TypeVocabulary:
		checkVocab()
		if c.DefaultValue == nil {
			v := int64(DefaultVocabularyDefaultValue)
			c.DefaultValue = &v
		}
	case TypeHashStrings:
		if c.HashBuckets < 1 {
			fail("hash_buckets: %d, want at least 1", c.HashBuckets)
		}
	case TypeOneHot:
		nonNeg("depth", c.Depth)
	case TypeBagOfWords:
		checkNorm("none")
		if c.HashBuckets != 0 {
			nonNeg("hash_buckets", c.HashBuckets)
			sp.fitted = false
			for _, o := range append(slices.Clone(vocabOpts), "num_oov_buckets") {
				if !reflect.ValueOf(in).FieldByIndex(fieldIndex(o)).IsZero() {
					fail("%s: a vocabulary option, but hash_buckets selects feature hashing", o)
				}
			}
		} else {
			if c.AlternateSign {
				fail("alternate_sign: only with hash_buckets")
			}
			checkVocab()
		}
		if (sp.dtype == tensor.Int32 || sp.dtype == tensor.Int64) && c.Norm != "none" {
			fail("dtype %s cannot hold %s-normalised values, use float32 or float64", sp.dtype, c.Norm)
		}
	case TypeTFIDF:
		checkVocab()
		checkNorm("l2")
		if c.SmoothIDF == nil {
			t := true
			c.SmoothIDF = &t
		}
	case TypeNgrams:
		if len(c.NgramRange) != 2 {
			fail("ngram_range: want [min, max], got %v", c.NgramRange)
		} else if c.NgramRange[0] < 1 || c.NgramRange[1] < c.NgramRange[0] {
			fail("ngram_range: %v, want 1 <= min <= max", c.NgramRange)
		}
		if c.Separator == nil {
			s := " "
			c.Separator = &s
		}
	case TypeSplit:
		switch c.Pattern {
		case "":
			c.Pattern = "words"
		case "words", "whitespace":
		default:
			fail("pattern: %q, want \"words\" or \"whitespace\"", c.Pattern)
		}
		if c.Lowercase == nil {
			t := true
			c.Lowercase = &t
		}
		nonNeg("min_token_length", c.MinTokenLength)
		if c.MinTokenLength == 0 {
			c.MinTokenLength = 1
			if c.Pattern == "words" {
				c.MinTokenLength = 2
			}
		}
	case TypeTokenize:
		if c.TokenizerFile == "" {
			fail("tokenizer_file: required")
		}
		nonNeg("max_length", c.MaxLength)
		switch c.Padding {
		case "":
			c.Padding = "none"
		case "none":
		case "max_length":
			if c.MaxLength == 0 {
				fail("padding: \"max_length\" needs max_length")
			}
		default:
			fail("padding: %q, want \"none\" or \"max_length\"", c.Padding)
		}
		if c.AddSpecialTokens == nil {
			t := true
			c.AddSpecialTokens = &t
		}
	}
	sp.cfg = c
	return sp, errs
}

// fieldIndex finds a StageConfig field by its yaml name.
func fieldIndex(yamlName string) []int {
	rt := reflect.TypeFor[StageConfig]()
	for k := 0; k < rt.NumField(); k++ {
		if name, _, _ := strings.Cut(rt.Field(k).Tag.Get("yaml"), ","); name == yamlName {
			return rt.Field(k).Index
		}
	}
	panic("transform: no StageConfig field " + yamlName)
}

func dtypeList(ds []tensor.DType) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// parseDefault checks a default value against every stage that reads the
// field and normalises it: integers to int64, floats to float64.
func parseDefault(v any, readers []inClass) (defaultValue, error) {
	dv := defaultValue{}
	items, isList := asList(v)
	dv.list = isList
	if !isList {
		items = []any{v}
	}
	raw := make([]any, len(items))
	for k, it := range items {
		switch x := it.(type) {
		case int:
			raw[k] = int64(x)
		case int32:
			raw[k] = int64(x)
		case int64:
			raw[k] = x
		case float32:
			raw[k] = float64(x)
		case float64:
			if !finite(x) {
				return dv, fmt.Errorf("%v is not a finite number", x)
			}
			raw[k] = x
		case string:
			raw[k] = x
		default:
			return dv, fmt.Errorf("%v (%T) is not a number, a string or a list of them", it, it)
		}
	}
	for _, c := range readers {
		for _, it := range raw {
			switch c {
			case inNumeric:
				if _, isStr := it.(string); isStr {
					return dv, fmt.Errorf("%q is not a number, and a numeric stage reads the field", it)
				}
			case inInteger:
				if _, isInt := it.(int64); !isInt {
					return dv, fmt.Errorf("%v is not an integer, and one_hot reads the field", it)
				}
			case inStrings:
				if _, isF := it.(float64); isF {
					return dv, fmt.Errorf("%v is not a string, and a text stage reads the field", it)
				}
			case inText:
				if _, isStr := it.(string); !isStr || isList {
					return dv, fmt.Errorf("%v is not one string, and a text stage reads the field", v)
				}
			}
		}
	}
	for _, it := range raw {
		switch x := it.(type) {
		case int64:
			dv.nums = append(dv.nums, float64(x))
			dv.ints = append(dv.ints, x)
			dv.strs = append(dv.strs, strconv.FormatInt(x, 10))
		case float64:
			dv.nums = append(dv.nums, x)
		case string:
			dv.strs = append(dv.strs, x)
		}
	}
	if isList {
		dv.raw = raw
	} else {
		dv.raw = raw[0]
	}
	return dv, nil
}

// asList reports whether v is a list and returns its items.
func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []float64:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = f
		}
		return out, true
	case []int:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = f
		}
		return out, true
	case []int64:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = f
		}
		return out, true
	case []string:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = f
		}
		return out, true
	}
	return nil, false
}
