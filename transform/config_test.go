package transform

import (
	"strings"
	"testing"
)

func TestValidateMessages(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // each must appear in the error
	}{
		{"unknown type", Config{Stages: []StageConfig{{Type: "scale", Fields: []string{"a"}}}},
			[]string{`transform.stages[0]: type: unknown stage type "scale", want one of scale_to_z_score`}},
		{"no type", Config{Stages: []StageConfig{{Fields: []string{"a"}}}},
			[]string{"transform.stages[0]: type: required"}},
		{"no fields", Config{Stages: []StageConfig{{Type: TypeScaleToZScore}}},
			[]string{"transform.stages[0] (scale_to_z_score): fields: required"}},
		{"option of another type", Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: []string{"a"}, NumBuckets: 4, TopK: 3}}},
			[]string{"transform.stages[0] (bucketize): option top_k does not apply to bucketize stages (their options: num_buckets, epsilon, exact_limit)"}},
		{"num_buckets", Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: []string{"a"}, NumBuckets: 1}}},
			[]string{"transform.stages[0] (bucketize): num_buckets: 1, want at least 2"}},
		{"epsilon", Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: []string{"a"}, NumBuckets: 3, Epsilon: 0.5}}},
			[]string{"epsilon: 0.5, want a rank error in (0, 0.1]"}},
		{"boundaries", Config{Stages: []StageConfig{{Type: TypeApplyBuckets, Fields: []string{"a"}, Boundaries: []float64{1, 1}}}},
			[]string{"transform.stages[0] (apply_buckets): boundaries[1]: 1 is not above boundaries[0] 1"}},
		{"min max range", Config{Stages: []StageConfig{{Type: TypeScaleByMinMax, Fields: []string{"a"}}}},
			[]string{"transform.stages[0] (scale_by_min_max): output_min and output_max: both required"}},
		{"outputs count", Config{Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a", "b"}, Outputs: []string{"x"}}}},
			[]string{"outputs: 1 names for 2 fields, want one per field"}},
		{"duplicate field", Config{Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a", "a"}, Outputs: []string{"x", "y"}}}},
			[]string{`fields: "a" is listed twice`}},
		{"dtype", Config{Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a"}, DType: "int64"}}},
			[]string{"transform.stages[0] (scale_to_z_score): dtype: int64, want one of float32, float64"}},
		{"dtype on split", Config{Stages: []StageConfig{{Type: TypeSplit, Fields: []string{"a"}, DType: "int64"}}},
			[]string{"dtype: split stages write token lists, not tensors"}},
		{"kinds", Config{Stages: []StageConfig{
			{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"toks"}},
			{Type: TypeScaleToZScore, Fields: []string{"toks"}},
		}}, []string{`transform.stages[1] (scale_to_z_score): field "toks" is made by transform.stages[0] (split) as token lists, but scale_to_z_score reads numbers`}},
		{"one_hot depth", Config{Stages: []StageConfig{{Type: TypeOneHot, Fields: []string{"id"}}}},
			[]string{`transform.stages[0] (one_hot): depth: required, because field "id" is not made by a bucketize, apply_buckets, compute_and_apply_vocabulary, hash_strings stage`}},
		{"tokenize", Config{Stages: []StageConfig{{Type: TypeTokenize, Fields: []string{"a", "b"}, Padding: "max_length"}}},
			[]string{"fields: tokenize reads exactly one text field, got 2", "tokenizer_file: required", `padding: "max_length" needs max_length`}},
		{"ngram_range", Config{Stages: []StageConfig{{Type: TypeNgrams, Fields: []string{"t"}, NgramRange: []int{2, 1}}}},
			[]string{"ngram_range: [2 1], want 1 <= min <= max"}},
		{"hashing with vocabulary options", Config{Stages: []StageConfig{{Type: TypeBagOfWords, Fields: []string{"t"}, HashBuckets: 8, TopK: 3}}},
			[]string{"top_k: a vocabulary option, but hash_buckets selects feature hashing"}},
		{"top policy default", Config{Policy: PolicyDefault},
			[]string{`transform.policy: "default" needs a value`}},
		{"field policy without default", Config{
			Fields: map[string]FieldPolicy{"a": {Policy: PolicyDefault}},
			Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a"}}},
		}, []string{"transform.fields.a: default: required with policy \"default\""}},
		{"default of the wrong type", Config{
			Fields: map[string]FieldPolicy{"a": {Policy: PolicyDefault, Default: "zero"}},
			Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a"}}},
		}, []string{`transform.fields.a: default: "zero" is not a number, and a numeric stage reads the field`}},
		{"policy for a field no stage reads", Config{
			Fields: map[string]FieldPolicy{"b": {Policy: PolicyError}},
			Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"a"}}},
		}, []string{"transform.fields.b: no stage reads this field from the record"}},
		{"policy for a stage output", Config{
			Fields: map[string]FieldPolicy{"toks": {Policy: PolicyError}},
			Stages: []StageConfig{{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"toks"}}, {Type: TypeHashStrings, Fields: []string{"toks"}, HashBuckets: 4}},
		}, []string{"transform.fields.toks: no stage reads this field from the record"}},
		{"several problems at once", Config{Stages: []StageConfig{
			{Type: TypeBucketize, Fields: []string{"a"}},
			{Type: TypeHashStrings, Fields: []string{"b"}},
		}}, []string{"transform.stages[0] (bucketize): num_buckets", "transform.stages[1] (hash_strings): hash_buckets: 0, want at least 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", c.cfg)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nlacks\n  %s", err, w)
				}
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	p := mustNew(t, Config{Stages: []StageConfig{
		{Type: TypeSplit, Fields: []string{"text"}},
		{Type: TypeTFIDF, Fields: []string{"text"}},
		{Type: TypeBucketize, Fields: []string{"x"}, NumBuckets: 4},
	}})
	st := p.Stages()
	split, tfidf, buck := st[0].Config(), st[1].Config(), st[2].Config()
	if split.Pattern != "words" || !*split.Lowercase || split.MinTokenLength != 2 || split.Outputs[0] != "text" {
		t.Errorf("split defaults: %+v", split)
	}
	if tfidf.Norm != "l2" || !*tfidf.SmoothIDF || tfidf.Order != "frequency" || tfidf.MaxTokens != DefaultMaxTokens || tfidf.DType != "float32" {
		t.Errorf("tfidf defaults: %+v", tfidf)
	}
	if buck.Epsilon != DefaultEpsilon || buck.ExactLimit != DefaultExactLimit || buck.DType != "" {
		t.Errorf("bucketize defaults: %+v", buck)
	}
	if got := p.Inputs(); len(got) != 2 || got[0] != (InputSpec{Field: "text", Kind: InputText, Stage: 0}) || got[1] != (InputSpec{Field: "x", Kind: InputNumber, Stage: 2}) {
		t.Errorf("inputs %+v", got)
	}
	if (&Config{}).Validate() != nil {
		t.Error("the empty config should be valid")
	}
}

func TestDecodeConfig(t *testing.T) {
	yml := `
policy: dead_letter
fields:
  amount: {policy: default, default: 0}
  comment: {policy: error}
stages:
  - type: scale_to_z_score
    fields: [amount]
    outputs: [amount_z]
  - type: bucketize
    fields: [amount]
    num_buckets: 8
    dtype: int64
  - type: split
    fields: [comment]
    outputs: [words]
  - type: tfidf
    fields: [words]
    top_k: 1000
    min_df: 2
`
	c, err := DecodeConfig(strings.NewReader(yml))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Stages) != 4 || c.Stages[1].NumBuckets != 8 || c.Fields["amount"].Default != 0 || c.Stages[3].MinDF != 2 {
		t.Errorf("decoded %+v", c)
	}
	if _, err := DecodeConfig(strings.NewReader("stages:\n  - type: split\n    fields: [a]\n    bukets: 3\n")); err == nil || !strings.Contains(err.Error(), "bukets") {
		t.Errorf("unknown key: %v", err)
	}
}
