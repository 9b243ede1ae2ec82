package transform

import (
	"context"
	"fmt"
	"testing"
)

// Benchmarks of Apply, per row (ns/op and allocs/op are per row):
//
//	go test -run '^$' -bench . -benchmem ./transform/

func benchRows(n int) []map[string]any {
	cats := []string{"grocery", "travel", "online", "fuel", "restaurant", "atm", "pharmacy"}
	words := []string{"kafka", "stream", "broker", "record", "topic", "partition", "offset", "model", "score", "batch", "the", "a", "of"}
	rows := make([]map[string]any, n)
	for i := range rows {
		text := ""
		for k := range 12 {
			text += words[(i*7+k*k)%len(words)] + " "
		}
		rows[i] = map[string]any{
			"amount":   float64(i%997) * 1.37,
			"age":      int64(18 + i%60),
			"risk":     float64(i%101) / 100,
			"merchant": map[string]any{"string": cats[i%len(cats)]},
			"country":  fmt.Sprint("c", i%40),
			"text":     text,
			"pixels":   pixels(i),
		}
	}
	return rows
}

// pixels is a 28x28 image as the decoder gives it: []float32.
func pixels(i int) []float32 {
	px := make([]float32, 784)
	for k := range px {
		px[k] = float32((i*31+k*7)%256) / 255
	}
	return px
}

func benchPipeline(b *testing.B, cfg Config) (*Pipeline, []map[string]any) {
	rows := benchRows(2000)
	p, err := New(cfg, WithBaseDir(fixtureDir))
	if err != nil {
		b.Fatal(err)
	}
	a, err := p.Fit(context.Background(), rowsSource(rows))
	if err != nil {
		b.Fatal(err)
	}
	if p, err = p.Bind(a); err != nil {
		b.Fatal(err)
	}
	return p, rows
}

func runApply(b *testing.B, p *Pipeline, rows []map[string]any) {
	work := make([]map[string]any, len(rows))
	for i, r := range rows {
		work[i] = make(map[string]any, 16)
		for k, v := range r {
			work[i][k] = v
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := p.Apply(work[i%len(work)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyTabular: a typical fraud-style chain on scalar fields:
// z-score of three numbers, quantile buckets, a vocabulary with one-hot,
// and a hashed categorical; outputs are native values plus two tensors.
func BenchmarkApplyTabular(b *testing.B) {
	p, rows := benchPipeline(b, Config{Stages: []StageConfig{
		{Type: TypeScaleToZScore, Fields: []string{"amount", "age", "risk"}, Outputs: []string{"amount_z", "age_z", "risk_z"}},
		{Type: TypeBucketize, Fields: []string{"amount"}, Outputs: []string{"amount_b"}, NumBuckets: 10},
		{Type: TypeVocabulary, Fields: []string{"merchant"}, Outputs: []string{"merchant_id"}, NumOOVBuckets: 1},
		{Type: TypeOneHot, Fields: []string{"merchant_id"}, Outputs: []string{"merchant_oh"}},
		{Type: TypeHashStrings, Fields: []string{"country"}, Outputs: []string{"country_h"}, HashBuckets: 64, DType: "int64"},
	}})
	runApply(b, p, rows)
}

// BenchmarkApplyScaleOnly is the floor: one z-score of one scalar.
func BenchmarkApplyScaleOnly(b *testing.B) {
	p, rows := benchPipeline(b, Config{Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"amount"}}}})
	runApply(b, p, rows)
}

// BenchmarkApplyPixels: scale_to_0_1 of a 784-float array (elementwise,
// one min and max per pixel).
func BenchmarkApplyPixels(b *testing.B) {
	p, rows := benchPipeline(b, Config{Stages: []StageConfig{{Type: TypeScaleTo01, Fields: []string{"pixels"}, Outputs: []string{"pixels_01"}}}})
	runApply(b, p, rows)
}

// BenchmarkApplyText: split 12 words, bigrams, tf-idf into a dense vector.
func BenchmarkApplyText(b *testing.B) {
	p, rows := benchPipeline(b, Config{Stages: []StageConfig{
		{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"words"}},
		{Type: TypeNgrams, Fields: []string{"words"}, NgramRange: []int{1, 2}},
		{Type: TypeTFIDF, Fields: []string{"words"}, Outputs: []string{"tfidf"}},
	}})
	runApply(b, p, rows)
}

// BenchmarkApplyTokenize: WordPiece, truncated and padded to 32.
func BenchmarkApplyTokenize(b *testing.B) {
	p, rows := benchPipeline(b, Config{Stages: []StageConfig{
		{Type: TypeTokenize, Fields: []string{"text"}, TokenizerFile: "tokenizer/wordpiece.json", MaxLength: 32, Padding: "max_length"},
	}})
	runApply(b, p, rows)
}
