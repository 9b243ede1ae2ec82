package processor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

const tfSchema = `{"type": "record", "name": "Pay", "fields": [
  {"name": "id", "type": "string"},
  {"name": "amount", "type": ["null", "double"], "default": null},
  {"name": "risk", "type": ["null", "double"], "default": null},
  {"name": "cat", "type": "string"},
  {"name": "tags", "type": {"type": "array", "items": "string"}}]}`

var tfCodec = func() *goavro.Codec {
	c, err := goavro.NewCodec(tfSchema)
	if err != nil {
		panic(err)
	}
	return c
}()

// tfTransform: z-scores of amount and risk (risk's policy "error"), a
// vocabulary of cat and its one-hot vector, and a split of nothing (tags
// are already tokens) counted into a bag of words.
const tfTransform = `transform:
  fields:
    risk: {policy: error}
  stages:
    - {type: scale_to_z_score, fields: [amount, risk], outputs: [amount_z, risk_z]}
    - {type: compute_and_apply_vocabulary, fields: [cat], outputs: [cat_id]}
    - {type: one_hot, fields: [cat_id], outputs: [cat_onehot]}
    - {type: bag_of_words, fields: [tags], outputs: [tags_bow]}
`

// tfInputs maps native outputs (stacked) and a tensor output (direct).
const tfInputs = `  inputs:
    - tensor: x
      fields: [amount_z, risk_z, cat_id]
      dtype: float32
    - tensor: c
      field: cat_onehot
      dtype: float32
      shape: [2]
`

// echoModel returns its inputs: y = x [-1, 3], z = c [-1, 2].
type echoModel struct{}

func (echoModel) Name() string    { return "echo" }
func (echoModel) Version() string { return "v1" }
func (echoModel) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 3}}, {Name: "c", DType: tensor.Float32, Shape: []int64{-1, 2}}}
}
func (echoModel) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 3}}, {Name: "z", DType: tensor.Float32, Shape: []int64{-1, 2}}}
}
func (echoModel) Close() error { return nil }
func (echoModel) Infer(_ context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	return map[string]*tensor.Tensor{"y": in["x"], "z": in["c"]}, nil
}

func tfRecord(id string, amount, risk any, cat string) map[string]any {
	wrap := func(v any) any {
		if v == nil {
			return nil
		}
		return map[string]any{"double": v}
	}
	return map[string]any{"id": id, "amount": wrap(amount), "risk": wrap(risk), "cat": cat, "tags": []any{"x", cat}}
}

func tfValue(t testing.TB, rec map[string]any) []byte {
	t.Helper()
	b, err := tfCodec.BinaryFromNative(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tfHistory is the fit data: amounts 10, 20, 30 (mean 20, population std
// sqrt(200/3)), risks 1, 2, 3, cats a (twice) and b; one row without an
// amount is dead-lettered by the fit.
var tfHistory = []map[string]any{
	tfRecord("h1", 10.0, 1.0, "a"),
	tfRecord("h2", 20.0, 2.0, "b"),
	tfRecord("h3", 30.0, 3.0, "a"),
	tfRecord("h4", nil, 2.0, "b"),
}

// tfConfig writes pipeline.yaml (and the schema) into dir with the given
// transform section and model inputs.
func tfConfig(t *testing.T, dir, transformYAML, inputs, extra string) *config.Config {
	t.Helper()
	sch := filepath.Join(dir, "in.avsc")
	if err := os.WriteFile(sch, []byte(tfSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`kafka:
  brokers: [127.0.0.1:1]
  group: g
  input_topic: in
  output_topic: out
schema:
  input_schema_file: in.avsc
model:
  name: echo
  path: model.onnx
%s
output:
  passthrough: [id, amount]
metrics:
  disabled: true
%s%s`, inputs, transformYAML, extra)
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func echoLoader(context.Context, config.Model, string) (handlers.ModelHandler, error) {
	return echoModel{}, nil
}

// fitHistory fits cfg's transform on rows and writes the artifacts to dir.
func fitHistory(t *testing.T, cfg *config.Config, rows []map[string]any, dir string) *transform.Artifacts {
	t.Helper()
	tp, err := NewTransform(cfg)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := tp.Fit(t.Context(), func(ctx context.Context, observe func(map[string]any) error) error {
		for _, r := range rows {
			// As the engine sees them: decoded from Avro.
			n, _, err := tfCodec.NativeFromBinary(tfValue(t, r))
			if err != nil {
				return err
			}
			if err := observe(n.(map[string]any)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := transform.WriteArtifacts(dir, arts); err != nil {
		t.Fatal(err)
	}
	return arts
}

// tfPipeline builds the test pipeline with artifacts fitted on tfHistory.
func tfPipeline(t *testing.T) (*Pipeline, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := tfConfig(t, dir, tfTransform, tfInputs, "transform_artifacts: arts\n")
	fitHistory(t, cfg, tfHistory, filepath.Join(dir, "arts"))
	p, err := Build(t.Context(), cfg, echoLoader, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p, dir
}

// The codec applies the transform before mapping: the model input x holds
// the z-scores and the vocabulary id, c the one-hot vector fed directly;
// the prediction carries the record's own fields and the artifact version.
func TestTransformCodecAppliesBeforeMapping(t *testing.T) {
	p, _ := tfPipeline(t)
	c := p.Codec
	rec := tfRecord("s1", 25.0, 1.0, "b")
	d, err := c.Decode(t.Context(), &kgo.Record{Value: tfValue(t, rec)})
	if err != nil {
		t.Fatal(err)
	}
	std := math.Sqrt(200.0 / 3)
	rstd := math.Sqrt(2.0 / 3)
	wantX := []float32{float32((25 - 20) / std), float32((1 - 2) / rstd), 1} // vocabulary: a (2 rows) = 0, b = 1
	if got := d.Inputs["x"].Data.([]float32); fmt.Sprint(got) != fmt.Sprint(wantX) {
		t.Fatalf("x = %v, want %v", got, wantX)
	}
	if got := d.Inputs["c"]; fmt.Sprint(got.Shape, got.Data) != "[2] [0 1]" {
		t.Fatalf("c = %v %v, want one-hot [0 1]", got.Shape, got.Data)
	}
	if len(d.Inputs) != 2 {
		t.Fatalf("inputs %v", d.Inputs)
	}
	// The record stays as received (pass-through reads it).
	if m := d.Meta.(map[string]any); m["amount_z"] != nil || fmt.Sprint(m["amount"]) != "map[double:25]" {
		t.Fatalf("decoded record was modified: %v", m)
	}
	out, err := c.Encode(t.Context(), d, Result{Outputs: []map[string]*tensor.Tensor{{"y": d.Inputs["x"], "z": d.Inputs["c"]}}, Models: []ModelInfo{{Name: "echo", Version: "v1"}}})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := schema.NewFileDecoder(c.OutputSchema)
	if err != nil {
		t.Fatal(err)
	}
	r, err := dec.Decode(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Native[FieldTransformVersion]
	if v != p.Transform.Artifacts().Manifest.Version || len(v.(string)) != 12 {
		t.Fatalf("transform_version %v, artifacts %s", v, p.Transform.Artifacts().Manifest.Version)
	}
	if fmt.Sprint(r.Native["amount"]) != "map[double:25]" || r.Native["id"] != "s1" {
		t.Fatalf("pass-through %v %v", r.Native["id"], r.Native["amount"])
	}
}

// A row a field policy dead-letters fails with the transform's reason
// (missing_field, invalid_value); a field whose policy is "error" fails
// with a StopError; an unseen category gets the all-zero one-hot row.
func TestTransformCodecPolicies(t *testing.T) {
	p, _ := tfPipeline(t)
	c := p.Codec
	for _, tc := range []struct {
		rec    map[string]any
		reason string
		stop   bool
	}{
		{tfRecord("no-amount", nil, 1.0, "a"), "missing_field", false},
		{tfRecord("nan-amount", math.NaN(), 1.0, "a"), "invalid_value", false},
		{tfRecord("inf-amount", math.Inf(1), 1.0, "a"), "invalid_value", false},
		{tfRecord("no-risk", 1.0, nil, "a"), "missing_field", true},
	} {
		_, err := c.Decode(t.Context(), &kgo.Record{Value: tfValue(t, tc.rec)})
		var stop *StopError
		switch {
		case err == nil:
			t.Fatalf("%s: decoded", tc.rec["id"])
		case tc.stop != errors.As(err, &stop):
			t.Fatalf("%s: %v: stop %v, want %v", tc.rec["id"], err, !tc.stop, tc.stop)
		case !tc.stop && ReasonOf(err) != tc.reason:
			t.Fatalf("%s: reason %q (%v), want %q", tc.rec["id"], ReasonOf(err), err, tc.reason)
		case tc.stop && stop.Reason != tc.reason:
			t.Fatalf("%s: stop reason %q, want %q", tc.rec["id"], stop.Reason, tc.reason)
		}
		if !strings.Contains(err.Error(), "transform stage 0 (scale_to_z_score)") {
			t.Fatalf("%s: error %q does not name the stage", tc.rec["id"], err)
		}
	}
	d, err := c.Decode(t.Context(), &kgo.Record{Value: tfValue(t, tfRecord("oov", 20.0, 2.0, "zzz"))})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Inputs["c"].Data.([]float32); fmt.Sprint(got) != "[0 0]" || d.Inputs["x"].Data.([]float32)[2] != -1 {
		t.Fatalf("out-of-vocabulary: c %v x %v", got, d.Inputs["x"].Data)
	}
}

// The engine stops on a StopError instead of dead-lettering the record,
// and dead-letters policy failures with the transform's reason.
func TestTransformEngineStopsOnPolicyError(t *testing.T) {
	p, _ := tfPipeline(t)
	sink := &memSink{}
	eng, err := NewPipelineEngine(p, sink, NewMetrics(nil), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	l := newLane("in", 0)
	for i, rec := range []map[string]any{tfRecord("ok", 20.0, 2.0, "a"), tfRecord("dl", nil, 2.0, "a"), tfRecord("stop", 20.0, nil, "a")} {
		if _, err := eng.Submit(t.Context(), l, &kgo.Record{Topic: "in", Offset: int64(i), Value: tfValue(t, rec)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-eng.Fatal():
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not stop on a field whose policy is error")
	}
	if err := eng.Err(); err == nil || !strings.Contains(err.Error(), "in/0@2") || !strings.Contains(err.Error(), `field "risk"`) {
		t.Fatalf("engine error %v", err)
	}
	l.close()
	eng.Close()
	var reasons []string
	for _, r := range sink.written() {
		if r.Topic == p.Config.Kafka.DeadLetterTopic {
			reasons = append(reasons, ReasonOfRecord(r))
		}
	}
	if fmt.Sprint(reasons) != "[missing_field]" {
		t.Fatalf("dead letters %v, want [missing_field]", reasons)
	}
	if sink.isAcked(2) {
		t.Fatal("the stopping record got an output")
	}
}

// run, replay and validate (Build) refuse to start without the artifacts,
// with damaged ones, or with ones fitted for other stages, naming the
// directory and the stage.
func TestTransformBuildRefusesBadArtifacts(t *testing.T) {
	dir := t.TempDir()
	cfg := tfConfig(t, dir, tfTransform, tfInputs, "")
	arts := filepath.Join(dir, "arts")
	fitHistory(t, cfg, tfHistory, arts)

	check := func(name string, cfg *config.Config, want ...string) {
		t.Helper()
		_, err := Build(t.Context(), cfg, echoLoader, BuildOptions{})
		ce, ok := config.AsError(err)
		if !ok {
			t.Fatalf("%s: %v, want a config error", name, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %q does not say %q", name, err, w)
			}
		}
		if ce.Problems[0].Field != "transform_artifacts" {
			t.Fatalf("%s: field %q", name, ce.Problems[0].Field)
		}
	}
	check("none configured", cfg, "transform_artifacts: required", "transform stages 0 (scale_to_z_score), 1 (compute_and_apply_vocabulary), 3 (bag_of_words) need", "kinfer fit")
	cfg.TransformArtifacts = "missing"
	check("missing", cfg, filepath.Join(dir, "missing")+" does not exist")

	// Other options: a bag of words with binary counts.
	other := tfConfig(t, t.TempDir(), strings.Replace(tfTransform, "outputs: [tags_bow]}", "outputs: [tags_bow], binary: true}", 1), tfInputs, "")
	other.TransformArtifacts = arts
	check("other options", other, "artifact directory "+arts, "transform stage 3 (bag_of_words", "binary: fitted unset, configured true", "run kinfer fit again")
	// Fewer stages.
	fewer := tfConfig(t, t.TempDir(), strings.Replace(tfTransform, "    - {type: bag_of_words, fields: [tags], outputs: [tags_bow]}\n", "", 1), tfInputs, "")
	fewer.TransformArtifacts = arts
	check("fewer stages", fewer, "fitted for 4 stages, the pipeline has 3")

	// A stage file changed after fit.
	f := filepath.Join(arts, "stage-01-compute_and_apply_vocabulary.json")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(strings.Replace(string(b), `"b"`, `"c"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.TransformArtifacts = arts
	check("changed file", cfg, "artifact directory "+arts, "stage 1", "the file was changed after fit")
}

// Mapping problems with transform outputs are config problems naming the
// model input; record fields the stages read are checked against the
// schema.
func TestTransformBuildChecksMappings(t *testing.T) {
	cases := []struct {
		name, transform, inputs, want string
	}{
		{"tensor dtype", tfTransform, strings.Replace(tfInputs, "field: cat_onehot\n      dtype: float32", "field: cat_onehot\n      dtype: int64", 1),
			`model.inputs[1].dtype: transform output "cat_onehot" is a float32 tensor of per-row shape [2]: expected dtype float32, found "int64"`},
		{"tensor shape", tfTransform, strings.Replace(tfInputs, "shape: [2]", "shape: [3]", 1),
			`model.inputs[1].shape: transform output "cat_onehot" is a float32 tensor of per-row shape [2]: expected shape [2], found [3]`},
		{"tensor stacked", tfTransform, strings.Replace(tfInputs, "fields: [amount_z, risk_z, cat_id]", "fields: [amount_z, risk_z, tags_bow]", 1),
			`model.inputs[0].fields: transform output "tags_bow"`},
		{"tokens", "transform:\n  stages:\n    - {type: split, fields: [cat], outputs: [words]}\n", strings.Replace(tfInputs, "fields: [amount_z, risk_z, cat_id]", "fields: [words]", 1),
			`transform output "words" (transform.stages[0]) is a list of tokens`},
		{"unknown field", strings.Replace(tfTransform, "risk", "riskk", 2), tfInputs,
			`transform.stages[0] (scale_to_z_score): field "riskk": not found`},
		{"wrong type", strings.Replace(strings.Replace(tfTransform, "fields: [amount, risk]", "fields: [amount, cat]", 1), "risk: {policy: error}", "cat: {policy: error}", 1), tfInputs,
			`transform.stages[0] (scale_to_z_score): field "cat": Avro type string cannot feed the stage, which reads a number`},
		{"typo in output", tfTransform, strings.Replace(tfInputs, "cat_id]", "cat_idd]", 1), `field "cat_idd": not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tfConfig(t, dir, tc.transform, tc.inputs, "")
			if tp, err := NewTransform(cfg); err == nil && tp.NeedsFit() && !strings.Contains(tc.want, "transform.stages") {
				fitHistory(t, cfg, tfHistory, filepath.Join(dir, "arts"))
				cfg.TransformArtifacts = "arts"
			}
			_, err := Build(t.Context(), cfg, echoLoader, BuildOptions{})
			if _, ok := config.AsError(err); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant a config error saying %q", err, tc.want)
			}
		})
	}
}

// The fit input reads a topic slice partition after partition, the same
// rows on every pass: a two-pass fit (a bucketize of a z-score) on a
// three-partition slice equals the fit on the same rows in memory, and
// undecodable records are counted.
func TestFitInputTopicSlice(t *testing.T) {
	addrs := replayCluster(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var inSlice []map[string]any
	for p := range 3 {
		for i := range 40 {
			rec := tfRecord(fmt.Sprintf("%d-%d", p, i), float64(p*100+i*i%17), float64(i%5), fmt.Sprintf("c%d", i%4))
			v := tfValue(t, rec)
			if i == 13 {
				v = []byte{0xff, 0xff}
			}
			if i >= 5 && i < 35 {
				if i != 13 {
					inSlice = append(inSlice, rec)
				}
			}
			cl.Produce(t.Context(), &kgo.Record{Topic: "in", Partition: int32(p), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	if err := cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	transformYAML := `transform:
  stages:
    - {type: scale_to_z_score, fields: [amount], outputs: [amount_z]}
    - {type: bucketize, fields: [amount_z], outputs: [amount_bucket], num_buckets: 4}
    - {type: compute_and_apply_vocabulary, fields: [cat], outputs: [cat_id]}
`
	dir := t.TempDir()
	cfg := tfConfig(t, dir, transformYAML, tfInputs, "replay:\n  from: \"5\"\n  to: \"35\"\n")
	tp, err := NewTransform(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := OpenFitInput(t.Context(), cfg, tp, FitInputOptions{Brokers: addrs, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Records != 90 || !strings.Contains(in.Name, "topic:in 0:[5,35),1:[5,35),2:[5,35)") {
		t.Fatalf("input %q, %d records", in.Name, in.Records)
	}
	got, err := tp.Fit(t.Context(), in.Source())
	if err != nil {
		t.Fatal(err)
	}
	if n, reasons := in.Undecodable(); n != 3 || reasons["decode_error"] != 3 {
		t.Fatalf("undecodable %d %v", n, reasons)
	}
	if got.Manifest.Fit.Passes != 2 || got.Manifest.Fit.Rows != 87 {
		t.Fatalf("fit stats %+v", got.Manifest.Fit)
	}
	fitHistory(t, cfg, inSlice, filepath.Join(dir, "want"))
	a, b := filepath.Join(dir, "got"), filepath.Join(dir, "want")
	if err := transform.WriteArtifacts(a, got); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "stage-00-scale_to_z_score.json", "stage-01-bucketize.json", "stage-02-compute_and_apply_vocabulary.json"} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		if string(x) != string(y) || len(x) == 0 {
			t.Fatalf("%s differs from the in-memory fit:\n%s\nvs\n%s", f, x, y)
		}
	}
}

// Replay over Avro files: the file codec checks each writer schema against
// the transform and applies it; policy dead letters land in dead-letter
// files with the transform's reason.
func TestTransformReplayFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.avro")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w, err := schema.NewOCFWriter(f, tfSchema, "null", nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []map[string]any{tfRecord("r0", 20.0, 2.0, "a"), tfRecord("r1", nil, 2.0, "a"), tfRecord("r2", 30.0, 3.0, "b")}
	for _, r := range recs {
		if err := w.Append(tfValue(t, r)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out")
	cfg := tfConfig(t, dir, tfTransform, tfInputs, fmt.Sprintf("transform_artifacts: arts\nreplay:\n  input_files: %s\n  output_dir: %s\n", in, out))
	fitHistory(t, cfg, tfHistory, filepath.Join(dir, "arts"))
	p, err := Build(t.Context(), cfg, echoLoader, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	preds, dead, _ := fileOutputs(t, out)
	if !sum.Complete || len(preds) != 2 || len(dead) != 1 || dead[0]["reason"] != "missing_field" {
		t.Fatalf("summary %+v, predictions %v, dead letters %v", sum, preds, dead)
	}
	if y := preds[1]["y"].([]any); y[2] != float32(1) || preds[1][FieldTransformVersion] != p.Transform.Artifacts().Manifest.Version {
		t.Fatalf("prediction %v", preds[1])
	}
}
