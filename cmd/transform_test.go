package kinfercmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/transform"
)

// tfFixture is testdata/transform/pipeline/fixture.json (made by
// testdata/transform/make_pipeline_fixture.py): a fit slice and a stream
// slice of payments, and the same transforms done in Python with the fit
// slice's statistics, then the model's predictions (scikit-learn's
// predict_proba) for every row.
type tfFixture struct {
	Fit       []map[string]any `json:"fit"`
	Stream    []map[string]any `json:"stream"`
	Reference struct {
		Fit struct {
			Rows         int64            `json:"rows"`
			DeadLettered int64            `json:"dead_lettered"`
			Reasons      map[string]int64 `json:"dead_letter_reasons"`
			Passes       int              `json:"passes"`
		} `json:"fit"`
		ZScore struct {
			Mean []float64 `json:"mean"`
			Std  []float64 `json:"std"`
		} `json:"z_score"`
		AmountZBoundaries []float64 `json:"amount_z_boundaries"`
		AgeBoundaries     []float64 `json:"age_boundaries"`
		Vocabulary        []string  `json:"vocabulary"`
		VocabularyCounts  []int64   `json:"vocabulary_counts"`
		Rows              []struct {
			ID            string    `json:"transaction_id"`
			DeadLetter    string    `json:"dead_letter"`
			Probabilities []float64 `json:"probabilities"`
		} `json:"rows"`
	} `json:"reference"`
}

// tfTolerance is how close kinfer's predictions must be to scikit-learn's
// (float64) on the Python-transformed features: the model runs in float32.
const tfTolerance = 1e-5

func loadTFFixture(t *testing.T) (*tfFixture, string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "testdata/transform/pipeline")
	b, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f tfFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f, dir
}

// avroNative is a fixture row in goavro's native form.
func avroNative(r map[string]any) map[string]any {
	n := map[string]any{"transaction_id": r["transaction_id"], "age": int32(r["age"].(float64)), "category": r["category"]}
	for _, f := range []string{"amount", "risk"} {
		if v := r[f]; v != nil {
			n[f] = map[string]any{"double": v}
		} else {
			n[f] = nil
		}
	}
	return n
}

// tfPipelineConfig writes pipeline.yaml for the fixture's model with its
// transform section; artifacts ("" for none) is transform_artifacts.
func tfPipelineConfig(t *testing.T, fix *tfFixture, dir string, brokers []string, tp topics, artifacts string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "transform.json"))
	if err != nil {
		t.Fatal(err)
	}
	var flow bytes.Buffer
	if err := json.Compact(&flow, raw); err != nil {
		t.Fatal(err)
	}
	broker := "127.0.0.1:1"
	if len(brokers) > 0 {
		broker = brokers[0]
	}
	yaml := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s-group
  input_topic: %s
  output_topic: %s
  dead_letter_topic: %s
  session_timeout: 6s
schema:
  input_schema_file: %s
model:
  name: payments
  path: %s
  inputs:
    - {tensor: numeric, fields: [amount_z, risk_z, amount_bucket], dtype: float32}
    - {tensor: age, field: age_onehot, dtype: float32, shape: [%d]}
    - {tensor: category, field: category_onehot, dtype: float32, shape: [%d]}
  outputs:
    - {tensor: probabilities}
batch:
  max_size: 32
  max_delay: 2ms
output:
  passthrough: [transaction_id]
processing:
  commit_interval: 200ms
  drain_timeout: 20s
metrics:
  disabled: true
transform: %s
`, broker, tp.in, tp.in, tp.out, tp.dlq, filepath.Join(dir, "input.avsc"), filepath.Join(dir, "model.onnx"),
		len(fix.Reference.AgeBoundaries)+1, len(fix.Reference.Vocabulary)+1, flow.String())
	if artifacts != "" {
		yaml += "transform_artifacts: " + artifacts + "\n"
	}
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeAvroFile writes rows as an Avro container file of the fixture's
// input schema.
func writeAvroFile(t *testing.T, dir, path string, rows []map[string]any) {
	t.Helper()
	sch, err := os.ReadFile(filepath.Join(dir, "input.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schema.NewEncoder(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := schema.NewOCFWriter(f, string(sch), "null", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		b, err := enc.Encode(avroNative(r))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// kinfer runs the CLI in this process and returns the exit code, stdout
// and stderr.
func kinfer(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// checkFitAgainstPython compares the artifacts with the statistics Python
// computed on the same fit slice: the manifest's counts exactly, means and
// variances within 1e-12 relative, quantile boundaries (exact quantiles:
// 394 values, far under exact_limit) and the vocabulary exactly (the
// z-score boundaries within 1e-12: they are z-scores of fit rows, computed
// with each side's own mean and std).
func checkFitAgainstPython(t *testing.T, fix *tfFixture, dir string) *transform.Artifacts {
	t.Helper()
	a, err := transform.ReadArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := fix.Reference
	st := a.Manifest.Fit
	if st.Rows != ref.Fit.Rows || st.DeadLettered != ref.Fit.DeadLettered || fmt.Sprint(st.Reasons) != fmt.Sprint(ref.Fit.Reasons) || st.Passes != ref.Fit.Passes {
		t.Fatalf("fit stats %+v, Python says %+v", st, ref.Fit)
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Fatalf("%s: %v, Python says %v", what, got, want)
		}
	}
	z := a.Stages[0].(*transform.MomentsArtifact)
	for i, f := range z.Fields {
		near(f.Field+" mean", f.Mean[0], ref.ZScore.Mean[i])
		near(f.Field+" variance", f.Var[0], ref.ZScore.Std[i]*ref.ZScore.Std[i])
	}
	zb := a.Stages[1].(*transform.BucketsArtifact).Fields[0].Boundaries
	if len(zb) != len(ref.AmountZBoundaries) {
		t.Fatalf("amount_z boundaries %v, Python says %v", zb, ref.AmountZBoundaries)
	}
	for i := range zb {
		near("amount_z boundary", zb[i], ref.AmountZBoundaries[i])
	}
	if ab := a.Stages[2].(*transform.BucketsArtifact).Fields[0].Boundaries; fmt.Sprint(ab) != fmt.Sprint(ref.AgeBoundaries) {
		t.Fatalf("age boundaries %v, Python says %v", ab, ref.AgeBoundaries)
	}
	v := a.Stages[4].(*transform.VocabularyArtifact).Fields[0]
	if fmt.Sprint(v.Vocabulary, v.Counts) != fmt.Sprint(ref.Vocabulary, ref.VocabularyCounts) {
		t.Fatalf("vocabulary %v %v, Python says %v %v", v.Vocabulary, v.Counts, ref.Vocabulary, ref.VocabularyCounts)
	}
	return a
}

// comparePredictions checks one output per reference row: the
// probabilities within tfTolerance of Python's, the transform version
// stamped, and the rows Python dead-letters dead-lettered with
// missing_field. preds are keyed by transaction id; dead maps transaction
// ids to reasons. It returns the largest difference.
func comparePredictions(t *testing.T, fix *tfFixture, ids []string, preds map[string]map[string]any, dead map[string]string, version string) float64 {
	t.Helper()
	worst := 0.0
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, ref := range fix.Reference.Rows {
		if !want[ref.ID] {
			continue
		}
		n++
		if ref.DeadLetter != "" {
			if dead[ref.ID] != ref.DeadLetter {
				t.Fatalf("%s: dead letter reason %q, want %q (prediction: %v)", ref.ID, dead[ref.ID], ref.DeadLetter, preds[ref.ID])
			}
			continue
		}
		p, ok := preds[ref.ID]
		if !ok {
			t.Fatalf("%s: no prediction (dead letter: %q)", ref.ID, dead[ref.ID])
		}
		got := numbers(t, p["probabilities"])
		for j, w := range ref.Probabilities {
			d := math.Abs(got[j] - w)
			worst = max(worst, d)
			if d > tfTolerance {
				t.Fatalf("%s: probability %d is %v, Python says %v (difference %.3g)", ref.ID, j, got[j], w, d)
			}
		}
		if p[processor.FieldTransformVersion] != version || p["model_name"] != "payments" {
			t.Fatalf("%s: transform_version %v (artifacts %s), model %v", ref.ID, p[processor.FieldTransformVersion], version, p["model_name"])
		}
	}
	if n != len(ids) || len(preds)+len(dead) != len(ids) {
		t.Fatalf("%d reference rows for %d ids; %d predictions and %d dead letters", n, len(ids), len(preds), len(dead))
	}
	return worst
}

func rowIDs(rows []map[string]any) []string {
	var ids []string
	for _, r := range rows {
		ids = append(ids, r["transaction_id"].(string))
	}
	return ids
}

var fitRate = regexp.MustCompile(`fit complete: (\d+) rows in (\S+) \((\d+) rows/s\)`)

// kinfer fit on Avro files of the fit slice, then kinfer replay of the
// stream slice from files to files, with no broker: the artifacts equal
// Python's statistics and every prediction equals Python's transforms
// followed by the model within 1e-5; rows without an amount are
// dead-lettered with missing_field in both.
func TestFitFilesThenReplayMatchesPython(t *testing.T) {
	orttest.Require(t)
	fix, dir := loadTFFixture(t)
	tmp := t.TempDir()
	fitFile, streamFile := filepath.Join(tmp, "fit.avro"), filepath.Join(tmp, "stream.avro")
	writeAvroFile(t, dir, fitFile, fix.Fit)
	writeAvroFile(t, dir, streamFile, fix.Stream)
	arts := filepath.Join(tmp, "arts-v1")
	cfgPath := tfPipelineConfig(t, fix, dir, nil, topics{in: "payments", out: "predictions", dlq: "payments.dlq"}, arts)

	code, out, errOut := kinfer("fit", "--config", cfgPath, "--input-files", fitFile, "--out", arts)
	if code != 0 {
		t.Fatalf("fit exited %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"rows:           400", "fitted on:      394", "dead-lettered:  6 (missing_field 6)", "passes:         2", "stage 1 bucketize [\"amount_z\"]: stage-01-bucketize.json", "stage 3 one_hot [\"age_bucket\"]: nothing to fit"} {
		if !strings.Contains(out, want) {
			t.Fatalf("fit summary lacks %q:\n%s", want, out)
		}
	}
	a := checkFitAgainstPython(t, fix, arts)
	if !strings.Contains(out, "version:        "+a.Manifest.Version) {
		t.Fatalf("fit summary does not name version %s:\n%s", a.Manifest.Version, out)
	}
	if m := fitRate.FindStringSubmatch(out); m != nil {
		t.Logf("fit: %s rows in %s (%s rows/s, 2 passes over a file)", m[1], m[2], m[3])
	}
	// The same fit again writes the same bytes (another directory).
	again := filepath.Join(tmp, "arts-again")
	if code, out, errOut := kinfer("fit", "--config", cfgPath, "--input-files", fitFile, "--out", again); code != 0 {
		t.Fatalf("second fit exited %d: %s%s", code, out, errOut)
	}
	for _, f := range []string{"manifest.json", "stage-00-scale_to_z_score.json", "stage-01-bucketize.json", "stage-02-bucketize.json", "stage-04-compute_and_apply_vocabulary.json"} {
		x, _ := os.ReadFile(filepath.Join(arts, f))
		y, _ := os.ReadFile(filepath.Join(again, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("%s differs between two fits of the same data", f)
		}
	}
	// Never overwrite.
	if code, _, errOut := kinfer("fit", "--config", cfgPath, "--input-files", fitFile, "--out", arts); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("fit into an existing directory: exit %d: %s", code, errOut)
	}

	if code, out, errOut := kinfer("validate", "--config", cfgPath); code != 0 || !strings.Contains(out, "transform: 6 stages, version "+a.Manifest.Version) {
		t.Fatalf("validate exited %d:\n%s%s", code, out, errOut)
	}

	outDir := filepath.Join(tmp, "out")
	if code, out, errOut := kinfer("replay", "--config", cfgPath, "--input-files", streamFile, "--output-files", outDir, "--progress", "none", "--log-level", "warn"); code != 0 {
		t.Fatalf("replay exited %d:\n%s%s", code, out, errOut)
	}
	preds, dead := readReplayFiles(t, outDir)
	worst := comparePredictions(t, fix, rowIDs(fix.Stream), preds, dead, a.Manifest.Version)
	t.Logf("%d stream rows: %d predicted, %d dead-lettered; largest difference from Python %.3g (tolerance %g)", len(fix.Stream), len(preds), len(dead), worst, tfTolerance)
}

// readReplayFiles reads predictions (by transaction id) and dead letters
// (transaction id -> reason) from a replay's output directory.
func readReplayFiles(t *testing.T, dir string) (map[string]map[string]any, map[string]string) {
	t.Helper()
	preds, dead := map[string]map[string]any{}, map[string]string{}
	names, _ := filepath.Glob(filepath.Join(dir, "*.avro"))
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		r, err := goavro.NewOCFReader(f)
		if err != nil {
			t.Fatal(err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			m := v.(map[string]any)
			if strings.HasPrefix(filepath.Base(n), "part-") {
				preds[m["transaction_id"].(string)] = m
				continue
			}
			var in map[string]any
			js := m["value_json"].(map[string]any)["string"].(string)
			if err := json.Unmarshal([]byte(js), &in); err != nil {
				t.Fatal(err)
			}
			dead[in["transaction_id"].(string)] = m["reason"].(string)
		}
		f.Close()
	}
	return preds, dead
}

// kinfer fit --help explains the command; a missing --out or a config
// without a transform is a usage/config error.
func TestFitHelpAndUsage(t *testing.T) {
	code, _, help := kinfer("fit", "--help")
	if code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{"Usage: kinfer fit", "bounded pass", "transform_artifacts", "-out string", "-input-files string", "-from string", "dead-letters", "same data gives the same artifacts"} {
		if !strings.Contains(help, want) {
			t.Errorf("fit --help lacks %q:\n%s", want, help)
		}
	}
	if _, out, _ := kinfer("--help"); !strings.Contains(out, "fit       fit the transform stages") {
		t.Errorf("kinfer --help does not list fit:\n%s", out)
	}
	if code, _, errOut := kinfer("fit", "--config", "x.yaml"); code != 2 || !strings.Contains(errOut, "--out: required") {
		t.Fatalf("fit without --out: exit %d: %s", code, errOut)
	}
	cfg := exampleWith(t, "", "")
	if code, _, errOut := kinfer("fit", "--config", cfg, "--out", filepath.Join(t.TempDir(), "a")); code != 2 || !strings.Contains(errOut, "transform.stages: required") {
		t.Fatalf("fit without a transform: exit %d: %s", code, errOut)
	}
}

// validate, run and replay refuse artifacts that are missing, damaged or
// fitted for other stages, with exit status 2 and a message naming the
// directory and the stage; they start nothing.
func TestValidateTransformArtifacts(t *testing.T) {
	orttest.Require(t)
	fix, dir := loadTFFixture(t)
	tmp := t.TempDir()
	fitFile := filepath.Join(tmp, "fit.avro")
	writeAvroFile(t, dir, fitFile, fix.Fit)
	arts := filepath.Join(tmp, "arts")
	tp := topics{in: "payments", out: "predictions", dlq: "payments.dlq"}
	noArts := tfPipelineConfig(t, fix, dir, nil, tp, "")
	if code, out, errOut := kinfer("fit", "--config", noArts, "--input-files", fitFile, "--out", arts); code != 0 {
		t.Fatalf("fit exited %d: %s%s", code, out, errOut)
	}
	// Options differ: 4 buckets of amount_z instead of 3.
	other := strings.Replace(noArts, ".yaml", "-other.yaml", 1)
	raw, _ := os.ReadFile(noArts)
	os.WriteFile(other, bytes.Replace(raw, []byte(`"num_buckets":3`), []byte(`"num_buckets":4`), 1), 0o644)
	// A damaged copy.
	damaged := filepath.Join(tmp, "damaged")
	os.MkdirAll(damaged, 0o755)
	for _, f := range []string{"manifest.json", "stage-00-scale_to_z_score.json", "stage-01-bucketize.json", "stage-02-bucketize.json", "stage-04-compute_and_apply_vocabulary.json"} {
		b, err := os.ReadFile(filepath.Join(arts, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "stage-02-bucketize.json" {
			b = bytes.Replace(b, []byte("47"), []byte("48"), 1)
		}
		os.WriteFile(filepath.Join(damaged, f), b, 0o644)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"none", []string{"--config", noArts}, []string{"transform_artifacts: required", "kinfer fit"}},
		{"missing", []string{"--config", noArts, "--transform-artifacts", filepath.Join(tmp, "nope")}, []string{"transform_artifacts: artifact directory " + filepath.Join(tmp, "nope") + " does not exist"}},
		{"other stages", []string{"--config", other, "--transform-artifacts", arts}, []string{"transform_artifacts: artifact directory " + arts, "transform stage 1 (bucketize on [\"amount_z\"])", "num_buckets: fitted 3, configured 4", "run kinfer fit again"}},
		{"damaged", []string{"--config", noArts, "--transform-artifacts", damaged}, []string{"artifact directory " + damaged, "stage 2", "the file was changed after fit"}},
	} {
		for _, cmd := range []string{"validate", "run", "replay"} {
			args := append([]string{cmd}, tc.args...)
			if cmd == "replay" {
				args = append(args, "--input-files", fitFile, "--output-files", filepath.Join(tmp, "out-"+tc.name), "--progress", "none")
			}
			code, _, errOut := kinfer(args...)
			if code != 2 {
				t.Fatalf("%s %s: exit %d, want 2: %s", cmd, tc.name, code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Fatalf("%s %s: %q does not say %q", cmd, tc.name, errOut, w)
				}
			}
		}
	}
	if code, out, errOut := kinfer("validate", "--config", noArts, "--transform-artifacts", arts); code != 0 {
		t.Fatalf("validate with good artifacts: exit %d: %s%s", code, out, errOut)
	}
}

// Integration, real broker: the fit slice is produced to the input topic
// and `kinfer fit` computes the artifacts from that topic slice (two
// passes: a bucketize of a z-score); then the stream slice is produced and
// `kinfer run` streams every record through the transform and the ONNX
// model. Every prediction equals the fixture's reference (the same
// transforms done in Python with the fit slice's statistics, then the
// model) within 1e-5, and the rows Python dead-letters are in the
// dead-letter topic with reason missing_field.
func TestIntegrationTransformFitThenStream(t *testing.T) {
	orttest.Require(t)
	brokers := kafkatest.Brokers(t)
	fix, dir := loadTFFixture(t)
	tp := newTopics(t, brokers)
	arts := filepath.Join(t.TempDir(), "arts")
	cfgPath := tfPipelineConfig(t, fix, dir, brokers, tp, arts)
	sch, err := os.ReadFile(filepath.Join(dir, "input.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schema.NewEncoder(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	next := map[int32]int64{}
	produce := func(rows []map[string]any, offset int) {
		t.Helper()
		for i, r := range rows {
			b, err := enc.Encode(avroNative(r))
			if err != nil {
				t.Fatal(err)
			}
			p := int32((offset + i) % partitions)
			next[p]++
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: tp.in, Partition: p, Key: []byte(r["transaction_id"].(string)), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(fix.Fit, 0)
	var slice []string
	for p := range int32(partitions) {
		slice = append(slice, fmt.Sprintf("%d:%d", p, next[p]))
	}
	start := time.Now()
	code, out, errOut := kinfer("fit", "--config", cfgPath, "--from", "earliest", "--to", strings.Join(slice, ","), "--out", arts)
	if code != 0 {
		t.Fatalf("fit exited %d: %s%s", code, out, errOut)
	}
	t.Logf("kinfer fit on topic slice %s: %v including client start-up\n%s", strings.Join(slice, ","), time.Since(start).Round(time.Millisecond), out)
	a := checkFitAgainstPython(t, fix, arts)

	produce(fix.Stream, len(fix.Fit))
	n := len(fix.Fit) + len(fix.Stream)
	start = time.Now()
	stop := runInProcess(t, cfgPath)
	outs := readOutputs(t, brokers, tp, n, 2*time.Minute)
	elapsed := time.Since(start)
	stop()
	dec := outputDecoder(t, cfgPath, nil)
	in, err := schema.NewFileDecoder(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	preds, dead := map[string]map[string]any{}, map[string]string{}
	for pos, recs := range outs.byInput {
		if len(recs) != 1 {
			t.Fatalf("input %s has %d outputs", pos, len(recs))
		}
		r := recs[0]
		if r.Topic == tp.dlq {
			v, err := in.Decode(context.Background(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			dead[v.Native["transaction_id"].(string)] = processor.ReasonOfRecord(r)
			continue
		}
		v, err := dec.Decode(context.Background(), r.Value)
		if err != nil {
			t.Fatal(err)
		}
		preds[v.Native["transaction_id"].(string)] = v.Native
	}
	ids := append(rowIDs(fix.Fit), rowIDs(fix.Stream)...)
	worst := comparePredictions(t, fix, ids, preds, dead, a.Manifest.Version)
	t.Logf("kinfer run: %d records (%d predicted, %d dead-lettered) in %v including start-up; largest difference from Python %.3g (tolerance %g)",
		n, len(preds), len(dead), elapsed.Round(time.Millisecond), worst, tfTolerance)
	if want := strconv.Itoa(len(dead)); len(dead) != 10 {
		t.Fatalf("%s dead letters, the fixture has 10 rows without an amount", want)
	}
}
