package transform

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// VocabularyArtifact is the artifact of compute_and_apply_vocabulary,
// bag_of_words (without hash_buckets) and tfidf: per field, the kept
// tokens in id order with their counts.
type VocabularyArtifact struct {
	Fields []Vocabulary `json:"fields"`
}

// Vocabulary is one field's fitted vocabulary: token i has id i.
type Vocabulary struct {
	Field string `json:"field"`
	// Documents is the number of rows observed; Tokens the number of
	// token occurrences.
	Documents int64 `json:"documents"`
	Tokens    int64 `json:"tokens"`
	// Exact reports that the counts are exact; false once more than
	// max_tokens distinct tokens were seen (see the package doc).
	Exact bool `json:"exact"`
	// Vocabulary holds the kept tokens; Counts and DocumentFrequency their
	// total occurrences and the number of rows holding them.
	Vocabulary        []string `json:"vocabulary"`
	Counts            []int64  `json:"counts"`
	DocumentFrequency []int64  `json:"document_frequency"`
	// IDF is tfidf's inverse document frequency per token.
	IDF []float64 `json:"idf,omitempty"`
}

func (a *VocabularyArtifact) check(sp *stagePlan) error {
	names := make([]string, len(a.Fields))
	for i, f := range a.Fields {
		names[i] = f.Field
		n := len(f.Vocabulary)
		if len(f.Counts) != n || len(f.DocumentFrequency) != n {
			return fmt.Errorf("field %q: %d tokens, %d counts, %d document frequencies", f.Field, n, len(f.Counts), len(f.DocumentFrequency))
		}
		if sp.cfg.Type == TypeTFIDF {
			if len(f.IDF) != n {
				return fmt.Errorf("field %q: %d idf values for %d tokens", f.Field, len(f.IDF), n)
			}
			if err := allFinite("idf", f.IDF); err != nil {
				return fmt.Errorf("field %q: %w", f.Field, err)
			}
		} else if f.IDF != nil {
			return fmt.Errorf("field %q: idf values in a %s artifact", f.Field, sp.cfg.Type)
		}
		if sp.cfg.Type != TypeVocabulary && n == 0 && sp.cfg.NumOOVBuckets == 0 {
			return fmt.Errorf("field %q: empty vocabulary", f.Field)
		}
		seen := make(map[string]bool, n)
		for k, t := range f.Vocabulary {
			if seen[t] {
				return fmt.Errorf("field %q: token %q appears twice", f.Field, t)
			}
			seen[t] = true
			if f.Counts[k] < 0 || f.DocumentFrequency[k] < 0 {
				return fmt.Errorf("field %q: token %q has a negative count", f.Field, t)
			}
		}
	}
	return checkFields(sp, names)
}

// ---------------------------------------------------------------- counting

type tokenCount struct {
	count, df int64
	lastDoc   int64 // the document that last counted toward df
}

// vocabCounter counts tokens and document frequencies of one field,
// exactly up to max distinct tokens. Past that it prunes like the
// Misra–Gries frequent-items algorithm: the counts of the max/2+1 most
// frequent tokens' smallest value d is subtracted from every count (and
// document frequency) and tokens left at zero are dropped, which keeps at
// most max/2 tokens. Each prune removes at least d·(max/2+1) occurrences,
// so a count is too low by at most 2·N/(max+2) in total (N = occurrences
// seen), and every token occurring more often than that survives. Memory:
// at most max entries (each a map entry and 24 bytes).
type vocabCounter struct {
	counts map[string]*tokenCount
	docs   int64
	tokens int64
	limit  int
	pruned bool
}

func newVocabCounter(limit int) *vocabCounter {
	return &vocabCounter{counts: map[string]*tokenCount{}, limit: limit}
}

func (v *vocabCounter) addDoc(tokens []string) {
	v.docs++
	for _, t := range tokens {
		c := v.counts[t]
		if c == nil {
			if len(v.counts) >= v.limit {
				v.prune()
			}
			c = &tokenCount{}
			v.counts[strings.Clone(t)] = c
		}
		c.count++
		v.tokens++
		if c.lastDoc != v.docs {
			c.df++
			c.lastDoc = v.docs
		}
	}
}

func (v *vocabCounter) prune() {
	v.pruned = true
	all := make([]int64, 0, len(v.counts))
	for _, c := range v.counts {
		all = append(all, c.count)
	}
	slices.SortFunc(all, func(a, b int64) int { return cmp.Compare(b, a) })
	k := min(v.limit/2+1, len(all))
	d := all[k-1]
	for t, c := range v.counts {
		c.count -= d
		c.df = max(c.df-d, 0)
		if c.count <= 0 {
			delete(v.counts, t)
		}
	}
}

// finish selects the vocabulary: tokens with at least threshold
// occurrences and minDF documents, the topK most frequent (ties by token),
// numbered by frequency or alphabetically.
func (v *vocabCounter) finish(field string, cfg *StageConfig) Vocabulary {
	type entry struct {
		tok       string
		count, df int64
	}
	es := make([]entry, 0, len(v.counts))
	for t, c := range v.counts {
		if c.count >= int64(cfg.FrequencyThreshold) && c.df >= int64(cfg.MinDF) {
			es = append(es, entry{t, c.count, c.df})
		}
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return strings.Compare(a.tok, b.tok)
	})
	if cfg.TopK > 0 && len(es) > cfg.TopK {
		es = es[:cfg.TopK]
	}
	if cfg.Order == "alphabetical" {
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.tok, b.tok) })
	}
	out := Vocabulary{Field: field, Documents: v.docs, Tokens: v.tokens, Exact: !v.pruned,
		Vocabulary: make([]string, len(es)), Counts: make([]int64, len(es)), DocumentFrequency: make([]int64, len(es))}
	for i, e := range es {
		out.Vocabulary[i], out.Counts[i], out.DocumentFrequency[i] = e.tok, e.count, e.df
	}
	return out
}

// vocabAcc fits the vocabulary stages.
type vocabAcc struct {
	b       *base
	scratch [][1]string
	vs      []*vocabCounter
	idf     bool
}

func newVocabAcc(b *base, idf bool) *vocabAcc {
	a := &vocabAcc{b: b, scratch: make([][1]string, len(b.p.cfg.Fields)), idf: idf}
	for range b.p.cfg.Fields {
		a.vs = append(a.vs, newVocabCounter(b.p.cfg.MaxTokens))
	}
	return a
}

func (a *vocabAcc) Observe(row map[string]any) error {
	obs, err := a.prepare(row)
	if err == nil {
		a.commit(obs)
	}
	return err
}

func (a *vocabAcc) prepare(row map[string]any) (any, error) {
	toks := make([][]string, len(a.vs))
	for j := range a.vs {
		t, _, err := a.b.strings(row, j, &a.scratch[j])
		if err != nil {
			return nil, err
		}
		toks[j] = t
	}
	return toks, nil
}

func (a *vocabAcc) commit(obs any) {
	for j, t := range obs.([][]string) {
		a.vs[j].addDoc(t)
	}
}

func (a *vocabAcc) Finish() (Artifact, error) {
	cfg := &a.b.p.cfg
	art := &VocabularyArtifact{}
	for j, v := range a.vs {
		f := v.finish(cfg.Fields[j], cfg)
		if v.docs == 0 {
			return nil, a.b.errorf("field %q: no rows observed, nothing to fit", f.Field)
		}
		if cfg.Type != TypeVocabulary && len(f.Vocabulary) == 0 && cfg.NumOOVBuckets == 0 {
			return nil, a.b.errorf("field %q: empty vocabulary: no token has %d occurrences in %d documents (%d tokens seen)",
				f.Field, cfg.FrequencyThreshold, cfg.MinDF, v.tokens)
		}
		if a.idf {
			// scikit-learn's TfidfTransformer: idf = ln(n/df) + 1, with
			// one added to n and to every df when smooth_idf.
			smooth := 0.0
			if *cfg.SmoothIDF {
				smooth = 1
			}
			n := float64(v.docs) + smooth
			f.IDF = make([]float64, len(f.Vocabulary))
			for k, df := range f.DocumentFrequency {
				f.IDF[k] = math.Log(n/(float64(df)+smooth)) + 1
			}
		}
		art.Fields = append(art.Fields, f)
	}
	return art, nil
}

// vocabIndex maps tokens to ids for one field.
type vocabIndex map[string]int64

func newVocabIndex(f *Vocabulary) vocabIndex {
	m := make(vocabIndex, len(f.Vocabulary))
	for i, t := range f.Vocabulary {
		m[t] = int64(i)
	}
	return m
}

// ---------------------------------------------------------------- compute_and_apply_vocabulary

type vocabularyStage struct {
	base
	art   *VocabularyArtifact
	index []vocabIndex
}

func (s *vocabularyStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *vocabularyStage) NewAccumulator() Accumulator { return newVocabAcc(&s.base, false) }

func (s *vocabularyStage) bind(a Artifact, _ []Stage) (Stage, error) {
	v, err := bindAs[*VocabularyArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = v
	c.index = make([]vocabIndex, len(v.Fields))
	for j := range v.Fields {
		c.index[j] = newVocabIndex(&v.Fields[j])
	}
	return &c, nil
}

func (s *vocabularyStage) cardinality(j int) int {
	return len(s.art.Fields[j].Vocabulary) + s.p.cfg.NumOOVBuckets
}

// id maps a token: its vocabulary id, else an OOV bucket after the
// vocabulary, else the default value.
func (s *vocabularyStage) id(j int, t string) int64 {
	if id, ok := s.index[j][t]; ok {
		return id
	}
	if n := s.p.cfg.NumOOVBuckets; n > 0 {
		idx, _ := hashIndex(t, n)
		return int64(len(s.art.Fields[j].Vocabulary)) + int64(idx)
	}
	return *s.p.cfg.DefaultValue
}

func (s *vocabularyStage) Apply(row map[string]any) error {
	if s.art == nil {
		return ErrNotFitted
	}
	for j := range s.p.cfg.Fields {
		var scratch [1]string
		toks, scalar, err := s.strings(row, j, &scratch)
		if err != nil {
			return err
		}
		o := s.p.cfg.Outputs[j]
		if scalar && s.p.dtype == tensor.Invalid {
			row[o] = s.id(j, toks[0])
			continue
		}
		ids := make([]int64, len(toks))
		for k, t := range toks {
			ids[k] = s.id(j, t)
		}
		f := formList
		if scalar {
			f = formScalar
		}
		row[o] = intOutput(f, nil, ids, s.p.dtype)
	}
	return nil
}

// ---------------------------------------------------------------- bag_of_words and tfidf

// vectorStage is bag_of_words (counts) and tfidf.
type vectorStage struct {
	base
	art   *VocabularyArtifact
	index []vocabIndex
}

func (s *vectorStage) hashing() bool { return s.p.cfg.HashBuckets > 0 }

func (s *vectorStage) Artifact() Artifact { return artifactOf(s.art) }

func (s *vectorStage) NewAccumulator() Accumulator {
	if s.hashing() {
		return nil
	}
	return newVocabAcc(&s.base, s.p.cfg.Type == TypeTFIDF)
}

func (s *vectorStage) bind(a Artifact, _ []Stage) (Stage, error) {
	if s.hashing() {
		return s, nil
	}
	v, err := bindAs[*VocabularyArtifact](a)
	if err != nil {
		return nil, err
	}
	c := *s
	c.art = v
	c.index = make([]vocabIndex, len(v.Fields))
	for j := range v.Fields {
		c.index[j] = newVocabIndex(&v.Fields[j])
	}
	return &c, nil
}

// width is the vector length of field j.
func (s *vectorStage) width(j int) int {
	if s.hashing() {
		return s.p.cfg.HashBuckets
	}
	return len(s.art.Fields[j].Vocabulary) + s.p.cfg.NumOOVBuckets
}

func (s *vectorStage) Apply(row map[string]any) error {
	if !s.hashing() && s.art == nil {
		return ErrNotFitted
	}
	cfg := &s.p.cfg
	for j := range cfg.Fields {
		var scratch [1]string
		toks, _, err := s.strings(row, j, &scratch)
		if err != nil {
			return err
		}
		w := s.width(j)
		vec := make([]float64, w)
		for _, t := range toks {
			switch {
			case s.hashing():
				idx, neg := hashIndex(t, w)
				if cfg.AlternateSign && neg {
					vec[idx]--
				} else {
					vec[idx]++
				}
			default:
				if id, ok := s.index[j][t]; ok {
					vec[id]++
				} else if cfg.NumOOVBuckets > 0 {
					idx, _ := hashIndex(t, cfg.NumOOVBuckets)
					vec[len(s.art.Fields[j].Vocabulary)+idx]++
				}
			}
		}
		if cfg.Binary {
			for k, x := range vec {
				if x != 0 {
					vec[k] = 1
				}
			}
		}
		if cfg.Type == TypeTFIDF {
			idf := s.art.Fields[j].IDF
			for k, x := range vec {
				if x == 0 {
					continue
				}
				if cfg.SublinearTF {
					x = math.Log(x) + 1
				}
				vec[k] = x * idf[k]
			}
		}
		normalize(vec, cfg.Norm)
		row[cfg.Outputs[j]] = vectorTensor(s.p.dtype, []int64{int64(w)}, vec)
	}
	return nil
}

// normalize scales vec to unit l1 or l2 norm as scikit-learn's normalize
// does (sums in index order; an all-zero vector stays zero).
func normalize(vec []float64, norm string) {
	var sum float64
	switch norm {
	case "l1":
		for _, x := range vec {
			sum += math.Abs(x)
		}
	case "l2":
		for _, x := range vec {
			sum += float64(x * x)
		}
		sum = math.Sqrt(sum)
	default:
		return
	}
	if sum == 0 {
		return
	}
	for k := range vec {
		vec[k] /= sum
	}
}
