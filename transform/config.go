package transform

import (
	"bytes"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Stage types, the values of [StageConfig].Type.
const (
	TypeSplit           = "split"
	TypeNgrams          = "ngrams"
	TypeScaleToZScore   = "scale_to_z_score"
	TypeScaleTo01       = "scale_to_0_1"
	TypeScaleByMinMax   = "scale_by_min_max"
	TypeScaleToGaussian = "scale_to_gaussian"
	TypeBucketize       = "bucketize"
	TypeApplyBuckets    = "apply_buckets"
	TypeVocabulary      = "compute_and_apply_vocabulary"
	TypeHashStrings     = "hash_strings"
	TypeOneHot          = "one_hot"
	TypeBagOfWords      = "bag_of_words"
	TypeTFIDF           = "tfidf"
	TypeTokenize        = "tokenize"
)

// Defaults of the stage options, applied by [Config.Validate]'s
// normalisation (see each option's doc).
const (
	// DefaultEpsilon is the rank error bound of the streaming quantile
	// sketch, as a fraction of the number of values: 0.1%.
	DefaultEpsilon = 0.001
	// DefaultExactLimit is how many values per field the quantile stages
	// keep exactly (8 bytes each) before switching to the sketch.
	DefaultExactLimit = 100_000
	// DefaultNumQuantiles is scale_to_gaussian's number of quantiles, as
	// scikit-learn's QuantileTransformer.
	DefaultNumQuantiles = 1000
	// DefaultMaxTokens is how many distinct tokens per field the vocabulary
	// stages count exactly before their counts become approximate.
	DefaultMaxTokens = 1 << 20
	// DefaultVocabularyDefaultValue is the id of an out-of-vocabulary token
	// when there are no OOV buckets.
	DefaultVocabularyDefaultValue = -1
	// DefaultMaskOutput is the name of tokenize's attention mask output.
	DefaultMaskOutput = "attention_mask"
	// DefaultIDsOutput is the name of tokenize's token id output.
	DefaultIDsOutput = "input_ids"
)

// Config is the `transform:` section of pipeline.yaml: the stages applied,
// in order, to every record between decoding and batching, and what to do
// with missing or invalid values.
//
// The zero Config (no stages) is valid and transforms nothing.
type Config struct {
	// Policy applies to every field not listed in Fields: PolicyDeadLetter
	// (default) or PolicyError. A default value needs a per-field entry.
	Policy string `yaml:"policy" json:"policy,omitempty"`
	// Fields overrides the policy per record field. Only fields that some
	// stage reads from the record (not fields made by an earlier stage) may
	// be listed.
	Fields map[string]FieldPolicy `yaml:"fields" json:"fields,omitempty"`
	// Stages run in order; a stage may read the outputs of earlier stages.
	Stages []StageConfig `yaml:"stages" json:"stages,omitempty"`
}

// FieldPolicy says what happens when a field is absent, null, of the wrong
// type or holds NaN/Inf.
type FieldPolicy struct {
	// Policy is PolicyDefault, PolicyDeadLetter or PolicyError.
	Policy string `yaml:"policy" json:"policy"`
	// Default is the value used under PolicyDefault (required then, and
	// not allowed otherwise): a number for numeric stages, a string for
	// text stages, an integer for one_hot, or a list of them.
	Default any `yaml:"default" json:"default,omitempty"`
}

// StageConfig is one stage. Type and Fields are required; every other
// option applies only to the stage types named in its comment, and setting
// it on another type is a validation error.
type StageConfig struct {
	// Type is one of the Type constants.
	Type string `yaml:"type" json:"type"`
	// Fields are the fields the stage reads: record fields (a dotted name
	// is a path into nested records) or outputs of earlier stages. Each
	// field is transformed on its own, with its own fitted artifact.
	Fields []string `yaml:"fields" json:"fields"`
	// Outputs name what the stage writes, one per field. Default: the
	// field names, so the transformed value replaces the input (as
	// MLTransform does). tokenize: one name, default "input_ids".
	Outputs []string `yaml:"outputs" json:"outputs,omitempty"`
	// DType makes the output a *tensor.Tensor of this dtype instead of a
	// native value. Scaling stages: float32 or float64 (default native
	// float64). Integer stages (bucketize, apply_buckets, vocabulary,
	// hash_strings): int32 or int64 (default native int64). one_hot,
	// bag_of_words, tfidf: the vector's dtype, default float32 (tfidf:
	// float32 or float64). tokenize: int64 (default) or int32. Not for
	// split and ngrams, whose outputs are []string.
	DType string `yaml:"dtype" json:"-"`

	// Elementwise fits one statistic per array position instead of one
	// over all of a field's values (scale_to_z_score, scale_to_0_1,
	// scale_by_min_max). Arrays must then have the same length in every
	// row. Default false.
	Elementwise bool `yaml:"elementwise" json:"elementwise,omitempty"`
	// Clip clamps outputs to the output range (scale_to_0_1,
	// scale_by_min_max). Default false: values outside the fitted range
	// map outside the output range, as scikit-learn's MinMaxScaler.
	Clip bool `yaml:"clip" json:"clip,omitempty"`
	// OutputMin and OutputMax are scale_by_min_max's output range
	// (required, OutputMin < OutputMax).
	OutputMin *float64 `yaml:"output_min" json:"output_min,omitempty"`
	OutputMax *float64 `yaml:"output_max" json:"output_max,omitempty"`

	// NumQuantiles is how many quantiles scale_to_gaussian fits (at least
	// 2; default 1000, at most the number of values seen).
	NumQuantiles int `yaml:"num_quantiles" json:"num_quantiles,omitempty"`
	// NumBuckets is bucketize's number of buckets (at least 2, required).
	NumBuckets int `yaml:"num_buckets" json:"num_buckets,omitempty"`
	// Epsilon is the rank error bound of the quantile sketch as a fraction
	// of the values seen, (0, 0.1] (bucketize, scale_to_gaussian; default
	// 0.001). It only matters past ExactLimit values.
	Epsilon float64 `yaml:"epsilon" json:"epsilon,omitempty"`
	// ExactLimit is how many values per field are kept to compute exact
	// quantiles before switching to the sketch (bucketize,
	// scale_to_gaussian; default 100000).
	ExactLimit int `yaml:"exact_limit" json:"exact_limit,omitempty"`
	// Boundaries are apply_buckets' bucket boundaries, strictly ascending
	// and finite (required).
	Boundaries []float64 `yaml:"boundaries" json:"boundaries,omitempty"`

	// TopK keeps the K most frequent tokens (compute_and_apply_vocabulary,
	// bag_of_words, tfidf). Default 0: all.
	TopK int `yaml:"top_k" json:"top_k,omitempty"`
	// FrequencyThreshold drops tokens seen fewer times in total (same
	// stages). Default 0: none dropped.
	FrequencyThreshold int `yaml:"frequency_threshold" json:"frequency_threshold,omitempty"`
	// MinDF drops tokens found in fewer rows (documents) (same stages;
	// scikit-learn's integer min_df). Default 0.
	MinDF int `yaml:"min_df" json:"min_df,omitempty"`
	// Order numbers the vocabulary "frequency" (most frequent first, ties
	// by token, as TFT; the default) or "alphabetical" (as scikit-learn's
	// vectorizers).
	Order string `yaml:"order" json:"order,omitempty"`
	// NumOOVBuckets gives out-of-vocabulary tokens ids V..V+n-1 by hash
	// (compute_and_apply_vocabulary, bag_of_words). Default 0.
	NumOOVBuckets int `yaml:"num_oov_buckets" json:"num_oov_buckets,omitempty"`
	// DefaultValue is the id of an out-of-vocabulary token when
	// NumOOVBuckets is 0 (compute_and_apply_vocabulary; default -1).
	DefaultValue *int64 `yaml:"default_value" json:"default_value,omitempty"`
	// MaxTokens bounds the distinct tokens counted per field
	// (compute_and_apply_vocabulary, bag_of_words, tfidf; default 1<<20).
	// Past it counts become approximate; see the package doc.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens,omitempty"`

	// HashBuckets is the number of hash buckets (hash_strings: required;
	// bag_of_words: feature hashing instead of a fitted vocabulary).
	HashBuckets int `yaml:"hash_buckets" json:"hash_buckets,omitempty"`
	// AlternateSign adds a hashed token as -1 when its hash is negative
	// (bag_of_words with HashBuckets; scikit-learn's HashingVectorizer
	// default). Default false.
	AlternateSign bool `yaml:"alternate_sign" json:"alternate_sign,omitempty"`
	// Binary counts a token at most once per row (bag_of_words).
	Binary bool `yaml:"binary" json:"binary,omitempty"`
	// Norm normalises each output vector: "none", "l1" or "l2"
	// (bag_of_words: default none; tfidf: default l2).
	Norm string `yaml:"norm" json:"norm,omitempty"`
	// SmoothIDF adds one to document counts, as if one extra document held
	// every token (tfidf; default true).
	SmoothIDF *bool `yaml:"smooth_idf" json:"smooth_idf,omitempty"`
	// SublinearTF uses 1+ln(tf) instead of tf (tfidf; default false).
	SublinearTF bool `yaml:"sublinear_tf" json:"sublinear_tf,omitempty"`

	// Depth is one_hot's vector length. Default: the number of ids the
	// producing stage can emit (bucketize, apply_buckets,
	// compute_and_apply_vocabulary, hash_strings); required otherwise.
	Depth int `yaml:"depth" json:"depth,omitempty"`

	// NgramRange is ngrams' [min, max] n (1 <= min <= max; required).
	NgramRange []int `yaml:"ngram_range" json:"ngram_range,omitempty"`
	// Separator joins the tokens of an n-gram (ngrams; default " ").
	Separator *string `yaml:"separator" json:"separator,omitempty"`

	// Pattern is how split finds tokens: "words" (default: runs of
	// letters, digits and underscores, as scikit-learn's token_pattern
	// (?u)\b\w\w+\b) or "whitespace".
	Pattern string `yaml:"pattern" json:"pattern,omitempty"`
	// Lowercase lowercases text before splitting (split; default true).
	Lowercase *bool `yaml:"lowercase" json:"lowercase,omitempty"`
	// MinTokenLength drops shorter tokens, in runes (split; default 2 for
	// "words", 1 for "whitespace").
	MinTokenLength int `yaml:"min_token_length" json:"min_token_length,omitempty"`

	// TokenizerFile is a Hugging Face tokenizer.json (WordPiece or BPE),
	// relative to the config file's folder (tokenize; required).
	TokenizerFile string `yaml:"tokenizer_file" json:"-"`
	// MaxLength truncates each encoding to this many tokens, special
	// tokens included (tokenize; default 0: no truncation).
	MaxLength int `yaml:"max_length" json:"max_length,omitempty"`
	// Padding is "none" (default: each row has its own length; the batcher
	// pads) or "max_length" (pad every row to MaxLength, mask 0).
	Padding string `yaml:"padding" json:"padding,omitempty"`
	// PadToken is the padding token (tokenize with padding max_length).
	// Default: the tokenizer file's padding token, else "[PAD]" or
	// "<pad>", whichever the vocabulary has.
	PadToken string `yaml:"pad_token" json:"pad_token,omitempty"`
	// AddSpecialTokens adds the tokenizer's special tokens ([CLS] ...
	// [SEP], <s> ... </s>) (tokenize; default true).
	AddSpecialTokens *bool `yaml:"add_special_tokens" json:"add_special_tokens,omitempty"`
	// MaskOutput names tokenize's attention mask output (default
	// "attention_mask").
	MaskOutput string `yaml:"mask_output" json:"mask_output,omitempty"`
	// TypeIDsOutput names tokenize's token type id output (default: none).
	TypeIDsOutput string `yaml:"type_ids_output" json:"type_ids_output,omitempty"`
}

// DecodeConfig reads a transform section on its own (the body under
// `transform:`), rejecting unknown keys. pipeline.yaml embeds [Config]
// directly; this is for tools and tests.
func DecodeConfig(r io.Reader) (Config, error) {
	var c Config
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("reading transform config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err != io.EOF {
		return c, fmt.Errorf("decoding transform config: %w", err)
	}
	return c, nil
}
