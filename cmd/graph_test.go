package kinfercmd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// chainFixture is textenc's expected.json: rows, numpy's embeddings, and
// textcls's outputs on them (the chained case).
type chainFixture struct {
	Inputs struct {
		InputIDs [][]int64 `json:"input_ids"`
	} `json:"inputs"`
	Chained struct {
		Outputs struct {
			Logits        [][]float64 `json:"logits"`
			Probabilities [][]float64 `json:"probabilities"`
		} `json:"outputs"`
	} `json:"chained"`
}

// runGraphPipeline streams the textenc fixture rows through a pipeline
// whose model section is modelsYAML, on kfake, and returns the decoded
// predictions by id.
func runGraphPipeline(t *testing.T, modelsYAML string, n int) (map[int64]map[string]any, *chainFixture) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "text", "labels", "text.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	return runGraphOn(t, cluster.ListenAddrs(), topics{in: "text", out: "labels", dlq: "text.dlq"}, modelsYAML, n)
}

// runGraphOn is runGraphPipeline on the given brokers and topics.
func runGraphOn(t *testing.T, brokers []string, tp topics, modelsYAML string, n int) (map[int64]map[string]any, *chainFixture) {
	t.Helper()
	orttest.Require(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata/models/textenc/expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fix chainFixture
	if err := json.Unmarshal(b, &fix); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sch := filepath.Join(dir, "text.avsc")
	os.WriteFile(sch, []byte(seqSchema), 0o644)
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	models := strings.ReplaceAll(modelsYAML, "MODELS", filepath.Join(repoRoot(t), "testdata/models"))
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`kafka: {brokers: [%q], group: %s-g, input_topic: %s, output_topic: %s, dead_letter_topic: %s}
schema: {input_schema_file: %s}
%s
batch: {max_size: 16, max_delay: 2ms}
output: {passthrough: [id]}
metrics: {disabled: true}
`, brokers[0], tp.in, tp.in, tp.out, tp.dlq, sch, models)), 0o644)

	enc, _ := schema.NewEncoder(seqSchema)
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer prod.Close()
	for i := range n {
		ids := fix.Inputs.InputIDs[i%len(fix.Inputs.InputIDs)]
		v, err := enc.Encode(map[string]any{"id": int64(i), "tokens": toAny(ids)})
		if err != nil {
			t.Fatal(err)
		}
		prod.Produce(context.Background(), &kgo.Record{Topic: tp.in, Key: []byte("user-" + strconv.Itoa(i)), Value: v}, nil)
	}
	if err := prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, stop := startPipeline(t, cfgPath, modelLoader(quietLogger(), nil), processor.RunOptions{})
	dec, _ := schema.NewFileDecoder(p.Codec.OutputSchema)
	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(tp.out, tp.dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	got := map[int64]map[string]any{}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	for len(got) < n {
		fs := cons.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("%d of %d predictions", len(got), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != tp.out {
				msg, _ := processor.HeaderValue(r, processor.HeaderError)
				t.Fatalf("dead letter %s: %s", processor.ReasonOfRecord(r), msg)
			}
			rec, err := dec.Decode(context.Background(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			got[rec.Native["id"].(int64)] = rec.Native
		})
	}
	stop()
	return got, &fix
}

// A text encoder chained into a classifier, with declared post-processing:
// every row's probabilities equal numpy's for the chained models (within
// 1e-5), argmax names the right label, top_k is ordered, and the
// prediction names both models.
func TestGraphChainTextEncoderClassifier(t *testing.T) {
	const n = 400
	got, fix := runGraphPipeline(t, chainYAML, n)
	checkChain(t, got, fix, "classifier")
}

// Integration, real broker: the encoder -> classifier chain with the
// classifier step an A/B split between two variants. Predictions equal
// numpy's chained outputs; each key sees the variant its hash picks.
func TestIntegrationGraphChainWithABSplit(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const n = 2000
	yaml := strings.Replace(chainYAML, "    path: MODELS/textcls/model.onnx\n", `    variants:
      - {name: cls_a, path: MODELS/textcls/model.onnx, weight: 1}
      - {name: cls_b, path: MODELS/textcls/model.onnx, version: b, weight: 1}
`, 1)
	got, fix := runGraphOn(t, brokers, newTopics(t, brokers), yaml, n)
	checkChain(t, got, fix, "")
	counts := map[any]int{}
	for id, rec := range got {
		want := "cls_a"
		if processor.Bucket([]byte("user-"+strconv.Itoa(int(id)))) >= 0.5 {
			want = "cls_b"
		}
		if rec["model_name"] != want {
			t.Fatalf("id %d served by %v, its key hashes to %s", id, rec["model_name"], want)
		}
		counts[want]++
	}
	t.Logf("A/B: %v", counts)
}

const chainYAML = `models:
  - name: encoder
    path: MODELS/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    outputs: []
    batch:
      pad: {input_ids: {axis: 0, buckets: [16, 32, 64, 128, 256]}}
      mask_input: attention_mask
  - name: classifier
    path: MODELS/textcls/model.onnx
    inputs: [{tensor: embedding, from: encoder.embedding}]
    outputs: [{tensor: probabilities, field: probabilities}]
    post:
      - {op: argmax, tensor: probabilities, field: label, labels: [sports, politics, tech, arts]}
      - {op: top_k, tensor: logits, field: top2, k: 2, labels: [sports, politics, tech, arts]}
      - {op: softmax, tensor: logits, field: softmax}`

// checkChain compares chained predictions with numpy's; lastModel, when
// set, is the model_name every prediction must carry.
func checkChain(t *testing.T, got map[int64]map[string]any, fix *chainFixture, lastModel string) {
	t.Helper()
	labels := []string{"sports", "politics", "tech", "arts"}
	var worst float64
	for id, rec := range got {
		row := int(id) % len(fix.Inputs.InputIDs)
		want := fix.Chained.Outputs.Probabilities[row]
		probs, soft := numbers(t, rec["probabilities"]), numbers(t, rec["softmax"])
		best := 0
		for j, w := range want {
			worst = max(worst, math.Abs(probs[j]-w), math.Abs(soft[j]-w))
			if w > want[best] {
				best = j
			}
		}
		if rec["label"] != labels[best] {
			t.Fatalf("id %d: label %v, want %s", id, rec["label"], labels[best])
		}
		top := rec["top2"].([]any)
		if len(top) != 2 || top[0].(map[string]any)["label"] != labels[best] || top[0].(map[string]any)["score"].(float32) < top[1].(map[string]any)["score"].(float32) {
			t.Fatalf("id %d: top2 %v", id, top)
		}
		models := rec["models"].([]any)
		if len(models) != 2 || models[0].(map[string]any)["name"] != "encoder" || models[1].(map[string]any)["step"] != "classifier" || (lastModel != "" && rec["model_name"] != lastModel) {
			t.Fatalf("id %d: models %v, model_name %v", id, models, rec["model_name"])
		}
	}
	if worst > 1e-5 {
		t.Fatalf("max difference from numpy's chained outputs: %g", worst)
	}
	t.Logf("%d rows through encoder -> classifier; max difference from numpy %.2g", len(got), worst)
}

// An A/B split between two classifier variants: each key always gets the
// same variant, about the configured share of keys goes to each, and the
// prediction names the variant.
func TestGraphABVariants(t *testing.T) {
	const n = 600
	got, _ := runGraphPipeline(t, `models:
  - name: encoder
    path: MODELS/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    outputs: []
    batch:
      pad: {input_ids: {axis: 0, buckets: [32, 64, 128, 256]}}
      mask_input: attention_mask
  - name: classifier
    variants:
      - {name: cls_a, path: MODELS/textcls/model.onnx, weight: 3}
      - {name: cls_b, path: MODELS/textcls/model.onnx, version: b, weight: 1}
    inputs: [{tensor: embedding, from: encoder.embedding}]
    outputs: [{tensor: logits}]`, n)
	counts := map[any]int{}
	for id, rec := range got {
		want := "cls_a"
		if processor.Bucket([]byte("user-"+strconv.Itoa(int(id)))) >= 0.75 {
			want = "cls_b"
		}
		if rec["model_name"] != want {
			t.Fatalf("id %d: served by %v, its key hashes to %s", id, rec["model_name"], want)
		}
		counts[rec["model_name"]]++
	}
	if frac := float64(counts["cls_b"]) / n; frac < 0.17 || frac > 0.33 {
		t.Fatalf("cls_b served %.2f of keys, want about 0.25 (%v)", frac, counts)
	}
	t.Logf("A/B counts %v", counts)
}

// A model per key: the lang field picks the classifier from a folder per
// language, keys without a folder use the default model, at most two are
// loaded at once, and every prediction names the model that made it.
func TestGraphPerKeyModels(t *testing.T) {
	orttest.Require(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cls, _ := os.ReadFile(filepath.Join(root, "testdata/models/textcls/model.onnx"))
	for _, lang := range []string{"en", "de", "es"} {
		os.MkdirAll(filepath.Join(dir, "cls", lang), 0o755)
		os.WriteFile(filepath.Join(dir, "cls", lang, "model.onnx"), cls, 0o644)
	}
	const langSchema = `{"type": "record", "name": "Doc", "fields": [
  {"name": "id", "type": "long"}, {"name": "lang", "type": "string"},
  {"name": "tokens", "type": {"type": "array", "items": "long"}}]}`
	os.WriteFile(filepath.Join(dir, "doc.avsc"), []byte(langSchema), 0o644)
	b, _ := os.ReadFile(filepath.Join(root, "testdata/models/textenc/expected.json"))
	var fix chainFixture
	json.Unmarshal(b, &fix)

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "docs", "out", "docs.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`kafka: {brokers: [%q], group: g, input_topic: docs, output_topic: out, dead_letter_topic: docs.dlq}
schema: {input_schema_file: doc.avsc}
models:
  - name: encoder
    path: %s/testdata/models/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    outputs: []
    batch: {pad: {input_ids: {axis: 0, buckets: [64, 128, 256]}}, mask_input: attention_mask}
  - name: classifier
    per_key: {field: lang, path: "cls/{key}/model.onnx", default_path: %s/testdata/models/textcls/model.onnx, max_loaded: 2}
    inputs: [{tensor: embedding, from: encoder.embedding}]
    outputs: [{tensor: probabilities}]
batch: {max_size: 8, max_delay: 2ms}
output: {passthrough: [id, lang]}
metrics: {disabled: true}
`, brokers[0], root, root)), 0o644)
	langs := []string{"en", "de", "es", "fr", "en", "ja"}
	enc, _ := schema.NewEncoder(langSchema)
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer prod.Close()
	const n = 240
	for i := range n {
		v, _ := enc.Encode(map[string]any{"id": int64(i), "lang": langs[i%len(langs)], "tokens": toAny(fix.Inputs.InputIDs[i%len(fix.Inputs.InputIDs)])})
		prod.Produce(context.Background(), &kgo.Record{Topic: "docs", Value: v}, nil)
	}
	prod.Flush(context.Background())
	p, stop := startPipeline(t, cfgPath, modelLoader(quietLogger(), nil), processor.RunOptions{})
	dec, _ := schema.NewFileDecoder(p.Codec.OutputSchema)
	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out", "docs.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	seen := 0
	var worst float64
	for seen < n {
		fs := cons.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("%d of %d outputs", seen, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if r.Topic != "out" {
				msg, _ := processor.HeaderValue(r, processor.HeaderError)
				t.Fatalf("dead letter: %s", msg)
			}
			rec, _ := dec.Decode(context.Background(), r.Value)
			id, lang := rec.Native["id"].(int64), rec.Native["lang"].(string)
			want := "classifier/" + lang
			if lang == "fr" || lang == "ja" {
				want = "classifier/default"
			}
			if rec.Native["model_name"] != want {
				t.Fatalf("id %d (%s) served by %v, want %s", id, lang, rec.Native["model_name"], want)
			}
			probs := numbers(t, rec.Native["classifier_probabilities"])
			for j, w := range fix.Chained.Outputs.Probabilities[int(id)%len(fix.Inputs.InputIDs)] {
				worst = max(worst, math.Abs(probs[j]-w))
			}
		})
	}
	stop()
	if worst > 1e-5 {
		t.Fatalf("max difference %g", worst)
	}
	if pk := p.Steps[1].Models.(*processor.PerKeyModels); pk.Loaded() > 2 {
		t.Fatalf("%d per-key models loaded, cap 2", pk.Loaded())
	}
}

// Fan-out (an ensemble): two steps read the same field; each step's
// outputs land in the prediction under its own name, both equal to numpy's.
func TestGraphFanOut(t *testing.T) {
	const n = 200
	got, _ := runGraphPipeline(t, `models:
  - name: enc_a
    path: MODELS/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    batch: {pad: {input_ids: {axis: 0, buckets: [64, 128, 256]}}, mask_input: attention_mask}
  - name: enc_b
    path: MODELS/textenc/model.onnx
    version: second
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    batch: {pad: {input_ids: {axis: 0}}, mask_input: attention_mask}`, n)
	b, _ := os.ReadFile(filepath.Join(repoRoot(t), "testdata/models/textenc/expected.json"))
	var fix struct {
		Inputs struct {
			InputIDs [][]int64 `json:"input_ids"`
		} `json:"inputs"`
		Outputs struct {
			Embedding [][]float64 `json:"embedding"`
		} `json:"outputs"`
	}
	json.Unmarshal(b, &fix)
	var worst float64
	for id, rec := range got {
		want := fix.Outputs.Embedding[int(id)%len(fix.Inputs.InputIDs)]
		for _, field := range []string{"enc_a_embedding", "enc_b_embedding"} {
			emb := numbers(t, rec[field])
			for j, w := range want {
				worst = max(worst, math.Abs(emb[j]-w))
			}
		}
		if ms := rec["models"].([]any); ms[1].(map[string]any)["version"] != "second" {
			t.Fatalf("id %d: models %v", id, ms)
		}
	}
	if worst > 1e-5 {
		t.Fatalf("max difference from numpy %g", worst)
	}
}
