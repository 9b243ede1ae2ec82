// Package transform is kinfer's MLTransform: preprocessing stages that are
// fitted once on a bounded pass over data and then applied, identically,
// to every record in streaming and in replay.
//
// It knows nothing about Kafka, Avro codecs or models. The engine decodes a
// record, calls [Pipeline.Apply] on its native form, and reads the outputs
// back from the same row: native values for schema's field mapper, or
// *tensor.Tensor values that feed a model input directly.
//
// # Life cycle
//
//	p, err := transform.New(cfg, transform.WithBaseDir(configDir)) // validate, load tokenizer files
//	arts, err := p.Fit(ctx, source)                               // kinfer fit: bounded pass(es)
//	err = transform.WriteArtifacts(dir, arts)                     // versioned, checksummed directory
//	p, err = p.Load(dir)                                          // kinfer run / replay: verify and bind
//	err = p.Apply(row)                                            // per record, concurrently
//
// A pipeline whose stages fit nothing (apply_buckets, hash_strings,
// one_hot with a depth, split, ngrams, tokenize, feature-hashing
// bag_of_words) applies right after New. Otherwise Apply returns
// [ErrNotFitted] until artifacts are bound.
//
// # Rows
//
// A row is map[string]any: goavro's native form of a record (nil, bool,
// int32, int64, float32, float64, string, []byte, []any, map[string]any;
// nullable unions as {"type": value}, which are unwrapped) plus what
// earlier stages wrote. A field name may be a dotted path into nested
// records. Apply writes each stage's outputs into the same row, replacing
// an entry of the same name (by default outputs are named after their
// fields, so a transformed value replaces its input, as MLTransform does),
// and never modifies the values it reads.
//
// What stages write:
//
//   - Scaling stages: float64 for a scalar input and []any of float64 for
//     an array, the forms schema.Mapper reads; with dtype, a tensor of shape
//     [] or [n]. A tensor input gives a tensor of the input's shape
//     (float32 unless dtype says float64).
//   - bucketize, apply_buckets, compute_and_apply_vocabulary, hash_strings:
//     int64 or []any of int64; with dtype (int32, int64) a tensor.
//   - split, ngrams: []string.
//   - one_hot: a tensor [depth] per id ([n, depth] for n ids); an id
//     outside [0, depth) gives an all-zero row. bag_of_words and tfidf: a
//     tensor [width]. Default dtype float32.
//   - tokenize: int64 tensors (int32 with dtype) for the ids, the attention
//     mask and optionally the token type ids, [length] per row, or
//     [max_length] with padding "max_length" (pad id, mask 0).
//
// [Pipeline.Inputs] lists the record fields read and what they must hold;
// [Pipeline.Outputs] what is written, with tensor dtypes and shapes.
//
// # Stages
//
// Every stage works on each of its fields independently, with its own
// fitted state.
//
//   - scale_to_z_score: (x - mean) / std with the population std, or
//     x - mean for a constant field (scikit-learn's StandardScaler; the
//     same constant test). Fit: Welford's update, O(1) memory per field
//     (O(width) elementwise).
//   - scale_to_0_1, scale_by_min_max: x*scale + offset mapping [min, max]
//     to [0, 1] or [output_min, output_max], optionally clipped
//     (MinMaxScaler, same arithmetic; a range under 10 eps counts as 1).
//     Fit: exact min and max.
//   - scale_to_gaussian: the rank of x among num_quantiles fitted
//     quantiles, mapped through the normal quantile function
//     (QuantileTransformer with output_distribution="normal", not TFT's
//     Tukey h-k method): the mean of forward and backward interpolation,
//     bounds pinned to 0 and 1 within 1e-7, clipped to about +-5.2.
//   - bucketize: the index of x among boundaries at the 1/k, ..., (k-1)/k
//     quantiles (KBinsDiscretizer, strategy "quantile", quantile_method
//     "inverted_cdf"); equal boundaries collapse, so a field may get fewer
//     buckets (scikit-learn drops bins narrower than 1e-8 instead: the
//     same on data without such near-ties). A constant field has one.
//   - apply_buckets: the number of given boundaries <= x.
//   - compute_and_apply_vocabulary: the id of a string (integers count as
//     their decimal text) in a vocabulary fitted by frequency (ties by
//     token) or alphabetically, after frequency_threshold (total count),
//     min_df (rows) and top_k; out-of-vocabulary strings get
//     V + hash mod num_oov_buckets, or default_value (-1).
//   - hash_strings: scikit-learn's feature-hashing index, |MurmurHash3_32|
//     mod hash_buckets.
//   - one_hot: ids to one-hot vectors; depth from the producing stage when
//     not given.
//   - split: tokens of a text: runs of letters, digits and '_' of at least
//     2 runes (scikit-learn's default analyzer), or whitespace fields;
//     lowercased first by default (strings.ToLower, which differs from
//     Python's str.lower on a few characters such as a final sigma).
//   - ngrams: n-grams from min to max n joined by a separator, in
//     scikit-learn's order.
//   - bag_of_words: token counts over a fitted vocabulary (CountVectorizer)
//     or hashed into hash_buckets (HashingVectorizer, with alternate_sign),
//     optionally binary and l1/l2-normalised.
//   - tfidf: tf * idf with idf = ln((1+n)/(1+df)) + 1 (smooth_idf) or
//     ln(n/df) + 1, optional sublinear tf, l2-normalised by default
//     (TfidfVectorizer); out-of-vocabulary tokens are ignored.
//   - tokenize: a Hugging Face tokenizer.json (WordPiece, BPE) through
//     github.com/sugarme/tokenizer, with special tokens, truncation to
//     max_length and optional padding.
//
// # Fitting and memory bounds
//
// Fit reads the data once (once per level when a fitted stage reads
// another fitted stage's output; see [Fitter]) and sees each row as
// streaming would: after the earlier stages, with defaults substituted,
// and not at all if a policy dead-letters it anywhere. Memory per field:
//
//   - moments and ranges: O(1), exact;
//   - quantiles (bucketize, scale_to_gaussian): every value (8 bytes)
//     while there are at most exact_limit (default 100000), which gives
//     numpy's exact quantiles; past that a Greenwald–Khanna summary whose
//     answers have ranks within epsilon·n of the target (default epsilon
//     0.001), holding at most (11/(2·epsilon))·log2(2·epsilon·n) tuples of
//     24 bytes plus 1/(2·epsilon) buffered values (tested on adversarial
//     orders; about 20-100 KB at n = 10^6 in practice);
//   - vocabularies: exact counts for up to max_tokens distinct tokens
//     (default 2^20); past that a Misra–Gries style prune keeps at most
//     max_tokens entries and each count is low by at most
//     2·N/(max_tokens+2) (N token occurrences), so every token more
//     frequent than that is kept; the artifact then says exact: false.
//
// # Artifacts
//
// [WriteArtifacts] writes a directory: one indented JSON file per fitted
// stage and manifest.json with the format version, each stage's type,
// fields, spec and fingerprint, each file's sha256, and a checksum over it
// all (its first 12 hex digits are the artifact version). The same fit of
// the same data writes the same bytes. [ReadArtifacts] verifies the
// checksum and the files; [Pipeline.Bind] refuses artifacts whose stages
// differ from the pipeline's in number, type or fingerprint (every option
// but dtype, the tokenizer file's sha256, and the policies of the fields
// read), naming the options that differ.
//
// # Missing and invalid values
//
// A field that is absent or null, has a value of the wrong type, holds NaN
// or +-Inf, or (elementwise) an array of another length follows its
// policy ([FieldPolicy], default dead_letter): "default" substitutes the
// configured value, "dead_letter" fails the row with an [*Error] carrying
// the stage, the field and a Reason for the dead-letter headers, and
// "error" fails it with an [*Error] that tells the engine to stop
// ([IsDeadLetter] tells which). Fit applies the same policies.
package transform
