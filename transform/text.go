package transform

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kinfer/kinfer/tensor"
)

// ---------------------------------------------------------------- split

type splitStage struct {
	base
	stateless
}

func (s *splitStage) bind(Artifact, []Stage) (Stage, error) { return s, nil }

func (s *splitStage) Apply(row map[string]any) error {
	for j := range s.p.cfg.Fields {
		text, err := s.text(row, j)
		if err != nil {
			return err
		}
		row[s.p.cfg.Outputs[j]] = splitText(text, &s.p.cfg)
	}
	return nil
}

// isWordRune is Python's \w for str patterns: letters, numbers, '_'.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// splitText finds tokens: maximal runs of word runes ("words", which is
// what scikit-learn's (?u)\b\w\w+\b finds for min_token_length 2) or
// whitespace-separated fields, at least MinTokenLength runes long.
func splitText(text string, cfg *StageConfig) []string {
	if *cfg.Lowercase {
		text = strings.ToLower(text)
	}
	var out []string
	keep := func(t string) {
		if utf8.RuneCountInString(t) >= cfg.MinTokenLength {
			out = append(out, t)
		}
	}
	if cfg.Pattern == "whitespace" {
		for _, t := range strings.Fields(text) {
			keep(t)
		}
		return nonNil(out)
	}
	start := -1
	for i, r := range text {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			keep(text[start:i])
			start = -1
		}
	}
	if start >= 0 {
		keep(text[start:])
	}
	return nonNil(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---------------------------------------------------------------- ngrams

type ngramsStage struct {
	base
	stateless
}

func (s *ngramsStage) bind(Artifact, []Stage) (Stage, error) { return s, nil }

func (s *ngramsStage) Apply(row map[string]any) error {
	for j := range s.p.cfg.Fields {
		var scratch [1]string
		toks, _, err := s.strings(row, j, &scratch)
		if err != nil {
			return err
		}
		row[s.p.cfg.Outputs[j]] = ngrams(toks, s.p.cfg.NgramRange[0], s.p.cfg.NgramRange[1], *s.p.cfg.Separator)
	}
	return nil
}

// ngrams lists the n-grams of toks for n from lo to hi in scikit-learn's
// order: all n-grams of the smallest n first, each n in token order.
func ngrams(toks []string, lo, hi int, sep string) []string {
	var out []string
	if lo == 1 {
		out = append(out, toks...)
		lo = 2
	}
	for n := lo; n <= hi; n++ {
		for i := 0; i+n <= len(toks); i++ {
			out = append(out, strings.Join(toks[i:i+n], sep))
		}
	}
	return nonNil(out)
}

// ---------------------------------------------------------------- hash_strings

type hashStage struct {
	base
	stateless
}

func (s *hashStage) bind(Artifact, []Stage) (Stage, error) { return s, nil }

func (s *hashStage) cardinality(int) int { return s.p.cfg.HashBuckets }

func (s *hashStage) Apply(row map[string]any) error {
	n := s.p.cfg.HashBuckets
	for j := range s.p.cfg.Fields {
		var scratch [1]string
		toks, scalar, err := s.strings(row, j, &scratch)
		if err != nil {
			return err
		}
		o := s.p.cfg.Outputs[j]
		if scalar && s.p.dtype == tensor.Invalid {
			idx, _ := hashIndex(toks[0], n)
			row[o] = int64(idx)
			continue
		}
		ids := make([]int64, len(toks))
		for k, t := range toks {
			idx, _ := hashIndex(t, n)
			ids[k] = int64(idx)
		}
		f := formList
		if scalar {
			f = formScalar
		}
		row[o] = intOutput(f, nil, ids, s.p.dtype)
	}
	return nil
}

// hashIndex is scikit-learn's feature hashing index of s among n buckets:
// h = MurmurHash3_x86_32(UTF-8 bytes of s, seed 0) as a signed int32,
// index |h| mod n (with |-2^31| taken as 2^31), and negative reports h < 0
// (HashingVectorizer's alternate sign).
func hashIndex(s string, n int) (idx int, negative bool) {
	h := int32(murmur3(s, 0))
	if h == math.MinInt32 {
		return int((2147483647 - int64(n-1)) % int64(n)), true
	}
	a := int64(h)
	if a < 0 {
		a = -a
	}
	return int(a % int64(n)), h < 0
}

// murmur3 is MurmurHash3_x86_32 (Austin Appleby, public domain) over the
// bytes of s.
func murmur3(s string, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(s)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	switch n - i {
	case 3:
		k ^= uint32(s[i+2]) << 16
		fallthrough
	case 2:
		k ^= uint32(s[i+1]) << 8
		fallthrough
	case 1:
		k ^= uint32(s[i])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// ---------------------------------------------------------------- one_hot

// cardinalityStage emits integer ids below a known bound.
type cardinalityStage interface {
	cardinality(j int) int
}

type oneHotStage struct {
	base
	stateless
	depths []int // per field, once bound
}

func (s *oneHotStage) bind(_ Artifact, done []Stage) (Stage, error) {
	c := *s
	c.depths = make([]int, len(s.p.cfg.Fields))
	for j, f := range s.p.cfg.Fields {
		if s.p.cfg.Depth > 0 {
			c.depths[j] = s.p.cfg.Depth
			continue
		}
		src := done[s.p.sources[j]]
		cs, ok := src.(cardinalityStage)
		k := slices.Index(src.plan().cfg.Outputs, f)
		if !ok || k < 0 {
			return nil, fmt.Errorf("field %q: depth: the producing stage %d (%s) has no id count", f, src.Index(), src.Type())
		}
		c.depths[j] = cs.cardinality(k)
	}
	return &c, nil
}

func (s *oneHotStage) Apply(row map[string]any) error {
	if s.depths == nil {
		return ErrNotFitted
	}
	for j := range s.p.cfg.Fields {
		var scratch [1]int64
		in, err := s.integers(row, j, &scratch)
		if err != nil {
			return err
		}
		d := s.depths[j]
		var shape []int64
		switch in.form {
		case formScalar:
			shape = []int64{int64(d)}
		case formList:
			shape = []int64{int64(len(in.vals)), int64(d)}
		default:
			shape = append(slices.Clone(in.shape), int64(d))
		}
		vec := make([]float64, len(in.vals)*d)
		for k, id := range in.vals {
			if id >= 0 && id < int64(d) {
				vec[k*d+int(id)] = 1 // out-of-range ids (OOV -1) stay all zero
			}
		}
		row[s.p.cfg.Outputs[j]] = vectorTensor(s.p.dtype, shape, vec)
	}
	return nil
}
