package transform

import (
	"fmt"
	"slices"
	"testing"
)

type sparseRows [][][2]float64 // per row: [index, value] pairs

type textFixture struct {
	FitDocs    []string   `json:"fit_docs"`
	EvalDocs   []string   `json:"eval_docs"`
	EvalTokens [][]string `json:"eval_tokens"`
	TFIDF      map[string]struct {
		Vocabulary []string   `json:"vocabulary"`
		IDF        []float64  `json:"idf"`
		Apply      sparseRows `json:"apply"`
	} `json:"tfidf_vectorizer"`
	Count struct {
		Vocabulary []string   `json:"vocabulary"`
		Apply      sparseRows `json:"apply"`
	} `json:"count_vectorizer"`
	Hashing map[string]struct {
		NFeatures     int        `json:"n_features"`
		AlternateSign bool       `json:"alternate_sign"`
		Norm          *string    `json:"norm"`
		Apply         sparseRows `json:"apply"`
	} `json:"hashing_vectorizer"`
	Murmur struct {
		Strings []string `json:"strings"`
		Hashes  []int32  `json:"hashes"`
	} `json:"murmurhash3_32"`
	Frequency struct {
		Vocabulary []string `json:"vocabulary"`
		Counts     []int64  `json:"counts"`
		DF         []int64  `json:"document_frequency"`
		Top10      []string `json:"top_k_10_threshold_3"`
	} `json:"frequency_vocabulary"`
}

func loadText(t *testing.T) *textFixture {
	var f textFixture
	readFixture(t, "text.json", &f)
	return &f
}

func docRows(docs []string) []map[string]any {
	rows := make([]map[string]any, len(docs))
	for i, d := range docs {
		rows[i] = map[string]any{"text": d}
	}
	return rows
}

// dense expands a sparse reference row.
func dense(row [][2]float64, width int) []float64 {
	out := make([]float64, width)
	for _, iv := range row {
		out[int(iv[0])] = iv[1]
	}
	return out
}

func compareVectors(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: width %d, want %d", what, len(got), len(want))
	}
	for k := range got {
		if !near(got[k], want[k], tol) {
			t.Errorf("%s: [%d] = %v, reference %v", what, k, got[k], want[k])
			return
		}
	}
}

var splitWords = StageConfig{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"tokens"}}

func TestParitySplit(t *testing.T) {
	f := loadText(t)
	p := mustNew(t, Config{Stages: []StageConfig{splitWords}})
	for i, d := range f.EvalDocs {
		got := apply(t, p, map[string]any{"text": d})["tokens"].([]string)
		if !slices.Equal(got, f.EvalTokens[i]) {
			t.Errorf("doc %d %q: tokens %q, scikit-learn's analyzer %q", i, d, got, f.EvalTokens[i])
		}
	}
}

func TestParityTfidfVectorizer(t *testing.T) {
	f := loadText(t)
	configs := map[string][]StageConfig{
		"default": {splitWords, {Type: TypeTFIDF, Fields: []string{"tokens"}, Outputs: []string{"v"}, Order: "alphabetical", DType: "float64"}},
		"bigrams": {splitWords,
			{Type: TypeNgrams, Fields: []string{"tokens"}, NgramRange: []int{1, 2}},
			{Type: TypeTFIDF, Fields: []string{"tokens"}, Outputs: []string{"v"}, Order: "alphabetical", DType: "float64",
				MinDF: 2, TopK: 148, SublinearTF: true, SmoothIDF: ptr(false), Norm: "l1"}},
		"raw": {splitWords, {Type: TypeTFIDF, Fields: []string{"tokens"}, Outputs: []string{"v"}, Order: "alphabetical", DType: "float64", Norm: "none"}},
	}
	if len(configs) != len(f.TFIDF) {
		t.Fatalf("fixture has %d TfidfVectorizer configs, the test %d", len(f.TFIDF), len(configs))
	}
	for name, stages := range configs {
		t.Run(name, func(t *testing.T) {
			want := f.TFIDF[name]
			p, arts := fitBind(t, mustNew(t, Config{Stages: stages}), docRows(f.FitDocs))
			v := arts.Stages[len(stages)-1].(*VocabularyArtifact).Fields[0]
			if !slices.Equal(v.Vocabulary, want.Vocabulary) {
				t.Fatalf("vocabulary (%d tokens) differs from TfidfVectorizer's (%d)", len(v.Vocabulary), len(want.Vocabulary))
			}
			compareVectors(t, "idf", v.IDF, want.IDF, 1e-12)
			for i, d := range f.EvalDocs {
				got := floats(t, apply(t, p, map[string]any{"text": d})["v"])
				compareVectors(t, fmt.Sprintf("doc %d", i), got, dense(want.Apply[i], len(want.Vocabulary)), 1e-12)
			}
		})
	}
}

func TestParityCountVectorizer(t *testing.T) {
	f := loadText(t)
	stages := []StageConfig{splitWords, {Type: TypeBagOfWords, Fields: []string{"tokens"}, Outputs: []string{"v"}, Order: "alphabetical", DType: "int64"}}
	p, arts := fitBind(t, mustNew(t, Config{Stages: stages}), docRows(f.FitDocs))
	if v := arts.Stages[1].(*VocabularyArtifact).Fields[0]; !slices.Equal(v.Vocabulary, f.Count.Vocabulary) {
		t.Fatalf("vocabulary differs from CountVectorizer's")
	}
	for i, d := range f.EvalDocs {
		got := floats(t, apply(t, p, map[string]any{"text": d})["v"])
		compareVectors(t, fmt.Sprintf("doc %d", i), got, dense(f.Count.Apply[i], len(f.Count.Vocabulary)), 0)
	}
}

func TestParityHashingVectorizer(t *testing.T) {
	f := loadText(t)
	for name, want := range f.Hashing {
		t.Run(name, func(t *testing.T) {
			norm := "none"
			if want.Norm != nil {
				norm = *want.Norm
			}
			stages := []StageConfig{splitWords, {Type: TypeBagOfWords, Fields: []string{"tokens"}, Outputs: []string{"v"}, DType: "float64",
				HashBuckets: want.NFeatures, AlternateSign: want.AlternateSign, Norm: norm}}
			p := mustNew(t, Config{Stages: stages})
			if p.NeedsFit() || !p.Ready() {
				t.Fatalf("feature hashing needs no fit")
			}
			for i, d := range f.EvalDocs {
				got := floats(t, apply(t, p, map[string]any{"text": d})["v"])
				compareVectors(t, fmt.Sprintf("doc %d", i), got, dense(want.Apply[i], want.NFeatures), 1e-12)
			}
		})
	}
}

func TestParityMurmurHash(t *testing.T) {
	f := loadText(t)
	for i, s := range f.Murmur.Strings {
		if got := int32(murmur3(s, 0)); got != f.Murmur.Hashes[i] {
			t.Errorf("murmur3(%q) = %d, scikit-learn %d", s, got, f.Murmur.Hashes[i])
		}
	}
	// hash_strings is HashingVectorizer's index.
	p := mustNew(t, Config{Stages: []StageConfig{{Type: TypeHashStrings, Fields: []string{"s"}, HashBuckets: 1000}}})
	for i, s := range f.Murmur.Strings {
		h := int64(f.Murmur.Hashes[i])
		if h < 0 {
			h = -h
		}
		if got := apply(t, p, map[string]any{"s": s})["s"].(int64); got != h%1000 {
			t.Errorf("hash_strings(%q) = %d, want %d", s, got, h%1000)
		}
	}
}

func TestParityFrequencyVocabulary(t *testing.T) {
	f := loadText(t)
	vocab := StageConfig{Type: TypeVocabulary, Fields: []string{"tokens"}, Outputs: []string{"ids"}}
	_, arts := fitBind(t, mustNew(t, Config{Stages: []StageConfig{splitWords, vocab}}), docRows(f.FitDocs))
	v := arts.Stages[1].(*VocabularyArtifact).Fields[0]
	if !slices.Equal(v.Vocabulary, f.Frequency.Vocabulary) || !slices.Equal(v.Counts, f.Frequency.Counts) || !slices.Equal(v.DocumentFrequency, f.Frequency.DF) {
		t.Errorf("frequency-ordered vocabulary differs from the reference")
	}
	if !v.Exact || v.Documents != int64(len(f.FitDocs)) {
		t.Errorf("exact %v, documents %d", v.Exact, v.Documents)
	}
	vocab.TopK, vocab.FrequencyThreshold = 10, 3
	_, arts = fitBind(t, mustNew(t, Config{Stages: []StageConfig{splitWords, vocab}}), docRows(f.FitDocs))
	if got := arts.Stages[1].(*VocabularyArtifact).Fields[0].Vocabulary; !slices.Equal(got, f.Frequency.Top10) {
		t.Errorf("top_k 10, frequency_threshold 3: %q, want %q", got, f.Frequency.Top10)
	}
}

// ---------------------------------------------------------------- tokenizers

type tokenizerVariant struct {
	MaxLength int       `json:"max_length"`
	Padding   string    `json:"padding"`
	IDs       [][]int64 `json:"ids"`
	Mask      [][]int64 `json:"attention_mask"`
	TypeIDs   [][]int64 `json:"type_ids"`
}

type tokenizerFixture struct {
	Sentences []string                    `json:"sentences"`
	WordPiece map[string]tokenizerVariant `json:"wordpiece"`
	BPE       map[string]tokenizerVariant `json:"bpe"`
}

func TestParityTokenizer(t *testing.T) {
	var f tokenizerFixture
	readFixture(t, "tokenizer/expected.json", &f)
	for name, variants := range map[string]map[string]tokenizerVariant{"wordpiece": f.WordPiece, "bpe": f.BPE} {
		if len(variants) != 3 {
			t.Fatalf("%s: %d variants in the fixture", name, len(variants))
		}
		for vname, want := range variants {
			t.Run(name+"/"+vname, func(t *testing.T) {
				st := StageConfig{Type: TypeTokenize, Fields: []string{"text"}, TokenizerFile: "tokenizer/" + name + ".json",
					MaxLength: want.MaxLength, Padding: want.Padding, TypeIDsOutput: "token_type_ids"}
				p := mustNew(t, Config{Stages: []StageConfig{st}}, WithBaseDir(fixtureDir))
				for i, s := range f.Sentences {
					out := apply(t, p, map[string]any{"text": s})
					ids, mask, types := ints(t, out["input_ids"]), ints(t, out["attention_mask"]), ints(t, out["token_type_ids"])
					if !slices.Equal(ids, want.IDs[i]) || !slices.Equal(mask, want.Mask[i]) || !slices.Equal(types, want.TypeIDs[i]) {
						t.Errorf("sentence %d %q:\n ids %v\nwant %v\nmask %v\nwant %v\ntypes %v\n want %v", i, s, ids, want.IDs[i], mask, want.Mask[i], types, want.TypeIDs[i])
					}
				}
			})
		}
	}
}

func ints(t *testing.T, v any) []int64 {
	t.Helper()
	fs := floats(t, v)
	out := make([]int64, len(fs))
	for i, x := range fs {
		out[i] = int64(x)
	}
	return out
}
