package transform

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

func numRows(vals ...any) []map[string]any {
	rows := make([]map[string]any, len(vals))
	for i, v := range vals {
		rows[i] = map[string]any{"x": v}
	}
	return rows
}

func TestPolicies(t *testing.T) {
	cfg := Config{
		Policy: PolicyDeadLetter,
		Fields: map[string]FieldPolicy{
			"d": {Policy: PolicyDefault, Default: 10},
			"e": {Policy: PolicyError},
		},
		Stages: []StageConfig{{Type: TypeScaleTo01, Fields: []string{"d", "e", "x"}}},
	}
	p, _ := fitBind(t, mustNew(t, cfg), []map[string]any{
		{"d": 0.0, "e": 0.0, "x": 0.0},
		{"d": 20.0, "e": 4.0, "x": 2.0},
	})
	ok := map[string]any{"d": 5.0, "e": 1.0, "x": 1.0}
	if out := apply(t, p, ok); out["d"] != 0.25 || out["e"] != 0.25 || out["x"] != 0.5 {
		t.Fatalf("scaled %v", out)
	}
	cases := []struct {
		name   string
		row    map[string]any
		reason string
		dead   bool
		field  string
	}{
		{"default for missing", map[string]any{"e": 1.0, "x": 1.0}, "", false, ""},
		{"default for null", map[string]any{"d": nil, "e": 1.0, "x": 1.0}, "", false, ""},
		{"default for wrong type", map[string]any{"d": "ten", "e": 1.0, "x": 1.0}, "", false, ""},
		{"default for NaN", map[string]any{"d": math.NaN(), "e": 1.0, "x": 1.0}, "", false, ""},
		{"dead letter missing", map[string]any{"d": 1.0, "e": 1.0}, ReasonMissingField, true, "x"},
		{"dead letter Inf", map[string]any{"d": 1.0, "e": 1.0, "x": math.Inf(1)}, ReasonInvalidValue, true, "x"},
		{"dead letter string", map[string]any{"d": 1.0, "e": 1.0, "x": "1"}, ReasonWrongType, true, "x"},
		{"dead letter array element", map[string]any{"d": 1.0, "e": 1.0, "x": []any{1.0, "2"}}, ReasonWrongType, true, "x"},
		{"error null", map[string]any{"d": 1.0, "e": nil, "x": 1.0}, ReasonMissingField, false, "e"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := c.row
			err := p.Apply(row)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if row["d"] != 0.5 { // the default 10 scaled
					t.Errorf("d = %v, want the default 10 scaled to 0.5", row["d"])
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Apply: %v, want *Error", err)
			}
			if e.Reason != c.reason || ReasonOf(err) != c.reason || e.Field != c.field || e.Stage != 0 || e.Type != TypeScaleTo01 {
				t.Errorf("error %+v", e)
			}
			if IsDeadLetter(err) != c.dead || e.DeadLetter() != c.dead {
				t.Errorf("dead letter %v, want %v", IsDeadLetter(err), c.dead)
			}
		})
	}
	if ReasonOf(nil) != "" || ReasonOf(errors.New("x")) != "error" || IsDeadLetter(ErrNotFitted) {
		t.Error("ReasonOf / IsDeadLetter on other errors")
	}
}

func TestFitSkipsDeadLetteredRowsWhole(t *testing.T) {
	// Stage 0 could fit "a" of the bad row, but stage 1 dead-letters it on
	// "b": in streaming the row never reaches the model, so fit must not
	// count it anywhere.
	cfg := Config{Stages: []StageConfig{
		{Type: TypeScaleTo01, Fields: []string{"a"}},
		{Type: TypeScaleTo01, Fields: []string{"b"}},
	}}
	rows := []map[string]any{
		{"a": 0.0, "b": 0.0},
		{"a": 1000.0, "b": "bad"},
		{"a": 10.0, "b": 1.0},
	}
	p := mustNew(t, cfg)
	a, err := p.Fit(context.Background(), rowsSource(rows))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Stages[0].(*MinMaxArtifact).Fields[0]; got.Max[0] != 10 || got.Count != 2 {
		t.Errorf("stage 0 saw the dead-lettered row: %+v", got)
	}
	st := a.Manifest.Fit
	if st.Rows != 3 || st.DeadLettered != 1 || st.Reasons[ReasonWrongType] != 1 || st.Passes != 1 {
		t.Errorf("stats %+v", st)
	}
	// Under policy error the fit stops with the row's error.
	cfg.Policy = PolicyError
	_, err = mustNew(t, cfg).Fit(context.Background(), rowsSource(rows))
	var e *Error
	if !errors.As(err, &e) || e.Field != "b" || e.DeadLetter() {
		t.Errorf("fit under policy error: %v", err)
	}
}

func TestFitNothingObserved(t *testing.T) {
	_, err := mustNew(t, Config{Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"x"}}}}).Fit(context.Background(), rowsSource(nil))
	if err == nil || !errorsContains(err, `field "x": no values observed`) {
		t.Errorf("fit on no rows: %v", err)
	}
}

func errorsContains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

func contains(a, b string) bool { return strings.Contains(a, b) }

func TestMultiPassFit(t *testing.T) {
	// bucketize reads what scale_to_z_score writes: fitted on z-scores,
	// which needs a second pass.
	cfg := Config{Stages: []StageConfig{
		{Type: TypeScaleToZScore, Fields: []string{"x"}, Outputs: []string{"z"}},
		{Type: TypeBucketize, Fields: []string{"z"}, Outputs: []string{"b"}, NumBuckets: 4},
		{Type: TypeOneHot, Fields: []string{"b"}, Outputs: []string{"oh"}},
	}}
	var rows []map[string]any
	for i := range 100 {
		rows = append(rows, map[string]any{"x": float64(i * i)})
	}
	p := mustNew(t, cfg)
	f := p.NewFitter()
	if f.Passes() != 2 {
		t.Fatalf("passes %d, want 2", f.Passes())
	}
	if p.Ready() {
		t.Fatal("ready before fit")
	}
	if err := p.Apply(map[string]any{"x": 1.0}); !errors.Is(err, ErrNotFitted) {
		t.Fatalf("Apply before fit: %v", err)
	}
	q, a := fitBind(t, p, rows)
	if a.Manifest.Fit.Passes != 2 {
		t.Errorf("manifest passes %d", a.Manifest.Fit.Passes)
	}
	// The boundaries are the quartiles of the z-scores.
	m := a.Stages[0].(*MomentsArtifact).Fields[0]
	var zs []float64
	for _, r := range rows {
		zs = append(zs, (r["x"].(float64)-m.Mean[0])/m.Scale[0])
	}
	sk := newQuantileSketch(0.001, 1000)
	for _, z := range zs {
		sk.add(z)
	}
	want := []float64{sk.invertedCDF(0.25), sk.invertedCDF(0.5), sk.invertedCDF(0.75)}
	if got := a.Stages[1].(*BucketsArtifact).Fields[0].Boundaries; !slices.Equal(got, want) {
		t.Errorf("boundaries %v, want the z-score quartiles %v", got, want)
	}
	out := apply(t, q, map[string]any{"x": 99.0 * 99})
	if out["b"] != int64(3) || !slices.Equal(floats(t, out["oh"]), []float64{0, 0, 0, 1}) {
		t.Errorf("top value: bucket %v, one-hot %v", out["b"], out["oh"])
	}
	if outs := q.Outputs(); outs[2].Shape[0] != 4 || outs[2].DType != tensor.Float32 {
		t.Errorf("one_hot output %+v", outs[2])
	}
}

func TestVocabularyOneHotAndOOV(t *testing.T) {
	docs := []map[string]any{
		{"c": "red"}, {"c": "red"}, {"c": "blue"}, {"c": "green"}, {"c": "red"}, {"c": "blue"},
	}
	for _, oov := range []int{0, 2} {
		t.Run(fmt.Sprintf("oov=%d", oov), func(t *testing.T) {
			cfg := Config{Stages: []StageConfig{
				{Type: TypeVocabulary, Fields: []string{"c"}, Outputs: []string{"id"}, NumOOVBuckets: oov},
				{Type: TypeOneHot, Fields: []string{"id"}, Outputs: []string{"oh"}},
			}}
			p := mustNew(t, cfg)
			if w := p.Outputs()[1].Shape; w[0] != -1 {
				t.Errorf("width before fit %v, want -1", w)
			}
			q, a := fitBind(t, p, docs)
			v := a.Stages[0].(*VocabularyArtifact).Fields[0]
			if !slices.Equal(v.Vocabulary, []string{"red", "blue", "green"}) || !slices.Equal(v.Counts, []int64{3, 2, 1}) {
				t.Errorf("vocabulary %v counts %v", v.Vocabulary, v.Counts)
			}
			if w := q.Outputs()[1].Shape[0]; w != int64(3+oov) {
				t.Errorf("one_hot width %d, want %d", w, 3+oov)
			}
			out := apply(t, q, map[string]any{"c": "blue"})
			if out["id"] != int64(1) || !slices.Equal(floats(t, out["oh"])[:3], []float64{0, 1, 0}) {
				t.Errorf("blue: %v %v", out["id"], out["oh"])
			}
			out = apply(t, q, map[string]any{"c": "mauve"})
			id := out["id"].(int64)
			oh := floats(t, out["oh"])
			if oov == 0 {
				if id != -1 || slices.Max(oh) != 0 {
					t.Errorf("OOV without buckets: id %d, one-hot %v", id, oh)
				}
			} else {
				idx, _ := hashIndex("mauve", oov)
				if id != int64(3+idx) || oh[id] != 1 {
					t.Errorf("OOV bucket: id %d, want %d; one-hot %v", id, 3+idx, oh)
				}
			}
			// An array of tokens gives an array of ids and [n, depth].
			out = apply(t, q, map[string]any{"c": []any{"green", "red"}})
			if ids := out["id"].([]int64); ids[0] != 2 || ids[1] != 0 {
				t.Errorf("ids %v", ids)
			}
			if sh := out["oh"].(*tensor.Tensor).Shape; !slices.Equal(sh, []int64{2, int64(3 + oov)}) {
				t.Errorf("one-hot shape %v", sh)
			}
		})
	}
}

func TestValueForms(t *testing.T) {
	cfg := Config{Stages: []StageConfig{
		{Type: TypeScaleTo01, Fields: []string{"x"}, Outputs: []string{"native"}},
		{Type: TypeScaleTo01, Fields: []string{"x"}, Outputs: []string{"t32"}, DType: "float32"},
		{Type: TypeApplyBuckets, Fields: []string{"x"}, Outputs: []string{"b"}, Boundaries: []float64{5}, DType: "int32"},
	}}
	p, _ := fitBind(t, mustNew(t, cfg), numRows(0.0, int64(10), int32(5), float32(2)))
	for _, c := range []struct {
		in     any
		native any
		shape  []int64
		t32    []float64
		b      []float64
	}{
		{5.0, 0.5, []int64{}, []float64{0.5}, []float64{1}},
		{int64(10), 1.0, []int64{}, []float64{1}, []float64{1}},
		{map[string]any{"double": 2.5}, 0.25, []int64{}, []float64{0.25}, []float64{0}}, // a union value
		{[]any{0.0, int32(10)}, []any{0.0, 1.0}, []int64{2}, []float64{0, 1}, []float64{0, 1}},
		{[]float64{}, []any{}, []int64{0}, []float64{}, []float64{}},
		{&tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 2}, Data: []int64{0, 20}}, nil, []int64{1, 2}, []float64{0, 2}, []float64{0, 1}},
	} {
		out := apply(t, p, map[string]any{"x": c.in})
		if c.native != nil && fmt.Sprint(out["native"]) != fmt.Sprint(c.native) {
			t.Errorf("%v: native %v, want %v", c.in, out["native"], c.native)
		}
		t32 := out["t32"].(*tensor.Tensor)
		if t32.DType != tensor.Float32 || !slices.Equal(t32.Shape, c.shape) || !slices.Equal(floats(t, t32), c.t32) {
			t.Errorf("%v: float32 tensor %+v", c.in, t32)
		}
		b := out["b"].(*tensor.Tensor)
		if b.DType != tensor.Int32 || !slices.Equal(b.Shape, c.shape) || !slices.Equal(floats(t, b), c.b) {
			t.Errorf("%v: bucket tensor %+v", c.in, b)
		}
	}
	// Nested records, with a nullable record wrapped by its name.
	nested := mustNew(t, Config{Stages: []StageConfig{{Type: TypeApplyBuckets, Fields: []string{"pay.amount"}, Outputs: []string{"b"}, Boundaries: []float64{1}}}})
	for _, row := range []map[string]any{
		{"pay": map[string]any{"amount": 3.0}},
		{"pay": map[string]any{"ns.Payment": map[string]any{"amount": map[string]any{"double": 3.0}}}},
	} {
		if got := apply(t, nested, row)["b"]; got != int64(1) {
			t.Errorf("nested %v: %v", row, got)
		}
	}
	if err := nested.Apply(map[string]any{"pay": nil}); ReasonOf(err) != ReasonMissingField {
		t.Errorf("null parent: %v", err)
	}
}

func TestElementwiseShape(t *testing.T) {
	cfg := Config{
		Fields: map[string]FieldPolicy{"v": {Policy: PolicyDefault, Default: 0}},
		Stages: []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"v", "w"}, Elementwise: true}},
	}
	p, a := fitBind(t, mustNew(t, cfg), []map[string]any{
		{"v": []any{1.0, 10.0}, "w": []any{1.0}},
		{"v": []any{3.0, 30.0}, "w": []any{3.0}},
		{"v": []any{3.0}, "w": []any{5.0}}, // wrong length: the default 0 is broadcast to [0, 0]
	})
	m := a.Stages[0].(*MomentsArtifact).Fields
	if !near(m[0].Mean[0], 4/3.0, 1e-15) || !near(m[0].Mean[1], 40/3.0, 1e-15) || m[1].Mean[0] != 3 {
		t.Errorf("means %v %v", m[0].Mean, m[1].Mean)
	}
	err := p.Apply(map[string]any{"v": []any{1.0, 2.0}, "w": []any{1.0, 2.0}})
	if ReasonOf(err) != ReasonShape || !IsDeadLetter(err) {
		t.Errorf("length mismatch: %v", err)
	}
}

func TestConcurrentApply(t *testing.T) {
	cfg := Config{Stages: []StageConfig{
		{Type: TypeScaleToGaussian, Fields: []string{"x"}, NumQuantiles: 10},
		{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"words"}},
		{Type: TypeTFIDF, Fields: []string{"words"}, Outputs: []string{"tfidf"}},
		{Type: TypeTokenize, Fields: []string{"text"}, TokenizerFile: "tokenizer/wordpiece.json", MaxLength: 12, Padding: "max_length"},
	}}
	var rows []map[string]any
	for i := range 50 {
		rows = append(rows, map[string]any{"x": float64(i), "text": fmt.Sprintf("the broker stores record %d of topic %d", i, i%7)})
	}
	p, _ := fitBind(t, mustNew(t, cfg, WithBaseDir(fixtureDir)), rows)
	want := make([]map[string]any, len(rows))
	for i, r := range rows {
		want[i] = apply(t, p, r)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 200 {
				i := (g*31 + k) % len(rows)
				out := apply(t, p, rows[i])
				if !reflect.DeepEqual(out, want[i]) {
					errs <- fmt.Errorf("row %d differs under concurrency", i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestVocabularyPruneBound checks the documented bound past max_tokens:
// counts are low by at most 2N/(max_tokens+2), and every token more
// frequent than that is kept.
func TestVocabularyPruneBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	zipf := rand.NewZipf(rng, 1.2, 1, 50_000)
	const maxTokens = 200
	v := newVocabCounter(maxTokens)
	truth := map[string]int64{}
	var n int64
	for range 5000 {
		doc := make([]string, 20)
		for k := range doc {
			doc[k] = fmt.Sprint("t", zipf.Uint64())
			truth[doc[k]]++
			n++
		}
		v.addDoc(doc)
	}
	if !v.pruned || len(v.counts) > maxTokens {
		t.Fatalf("pruned %v, %d entries", v.pruned, len(v.counts))
	}
	bound := 2 * float64(n) / (maxTokens + 2)
	for tok, c := range truth {
		got, ok := v.counts[tok]
		switch {
		case ok && (got.count > c || float64(c-got.count) > bound):
			t.Errorf("%s: count %d, true %d, bound %v", tok, got.count, c, bound)
		case !ok && float64(c) > bound:
			t.Errorf("%s: dropped with %d occurrences > bound %v", tok, c, bound)
		}
	}
	f := v.finish("f", &StageConfig{Order: "frequency"})
	if f.Exact {
		t.Error("a pruned vocabulary must say it is not exact")
	}
}

func TestTokenizerErrors(t *testing.T) {
	st := StageConfig{Type: TypeTokenize, Fields: []string{"text"}, TokenizerFile: "missing.json"}
	if _, err := New(Config{Stages: []StageConfig{st}}, WithBaseDir(fixtureDir)); err == nil || !contains(err.Error(), "transform.stages[0] (tokenize): tokenizer_file:") {
		t.Errorf("missing file: %v", err)
	}
	st.TokenizerFile = "numeric.json" // JSON, not a tokenizer
	if _, err := New(Config{Stages: []StageConfig{st}}, WithBaseDir(fixtureDir)); err == nil {
		t.Error("numeric.json accepted as a tokenizer")
	}
	st.TokenizerFile, st.MaxLength, st.Padding, st.PadToken = "tokenizer/bpe.json", 8, "max_length", "[NOPE]"
	if _, err := New(Config{Stages: []StageConfig{st}}, WithBaseDir(fixtureDir)); err == nil || !contains(err.Error(), "no pad token") {
		t.Errorf("missing pad token: %v", err)
	}
	st.PadToken = ""
	p := mustNew(t, Config{Stages: []StageConfig{st}}, WithBaseDir(fixtureDir))
	if err := p.Apply(map[string]any{"text": 3.0}); ReasonOf(err) != ReasonWrongType {
		t.Errorf("number as text: %v", err)
	}
}

func TestFitChecksTokenizeInput(t *testing.T) {
	// Fit does not need token ids, but a row whose text tokenize would
	// reject is still dead-lettered, so the scaler does not see it.
	cfg := Config{Stages: []StageConfig{
		{Type: TypeScaleTo01, Fields: []string{"x"}},
		{Type: TypeTokenize, Fields: []string{"text"}, TokenizerFile: "tokenizer/bpe.json"},
	}}
	p := mustNew(t, cfg, WithBaseDir(fixtureDir))
	a, err := p.Fit(context.Background(), rowsSource([]map[string]any{
		{"x": 1.0, "text": "hello"}, {"x": 100.0, "text": 7}, {"x": 3.0, "text": "world"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if mm := a.Stages[0].(*MinMaxArtifact).Fields[0]; mm.Max[0] != 3 || a.Manifest.Fit.DeadLettered != 1 {
		t.Errorf("max %v, dead-lettered %d", mm.Max[0], a.Manifest.Fit.DeadLettered)
	}
}
