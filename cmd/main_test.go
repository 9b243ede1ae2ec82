package kinfercmd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/internal/repo"
	"github.com/kinfer/kinfer/processor"
)

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildKinfer builds the kinfer binary (cmd/kinfer, a main around this
// package) into a temp dir and returns its path.
func buildKinfer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kinfer")
	cmd := exec.Command("go", "build", "-o", bin, "./kinfer")
	cmd.Dir = filepath.Join(repoRoot(t), "cmd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kinfer: %v\n%s", err, out)
	}
	return bin
}

// exampleWith writes the fraud example's pipeline.yaml with one edit, in a
// temp dir, with absolute paths.
func exampleWith(t *testing.T, old, new string) string {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "examples/fraud/pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "../../testdata", filepath.Join(root, "testdata"))
	s = strings.ReplaceAll(s, "input_schema_file: transaction.avsc", "input_schema_file: "+filepath.Join(root, "examples/fraud/transaction.avsc"))
	if old != "" {
		if !strings.Contains(s, old) {
			t.Fatalf("example has no %q", old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// kinfer validate names the file, the field and expected vs found, and
// exits 2, for each way a pipeline can disagree with its schema or model.
func TestValidate(t *testing.T) {
	orttest.Require(t)
	cases := []struct {
		name, old, new string
		code           int
		want           []string
	}{
		{"valid", "", "", 0, []string{"pipeline.yaml: valid", "input  features float32[?,8]", `"name":"fraud_label","type":"long"`, " on cpu\n"}},
		{"dtype differs from the model", "dtype: float32", "dtype: float64", 2, []string{"model.inputs[0].dtype: model input \"features\" expects float32, found float64"}},
		{"tensor the model lacks", "- tensor: features", "- tensor: feats", 2, []string{`model.inputs[0].tensor: model "fraud" has no input "feats" (it has: features float32[?,8])`, "model input features float32[?,8] is not mapped"}},
		{"field of the wrong Avro type", "fields: [amount,", "fields: [transaction_id,", 2, []string{"model.inputs", "transaction_id", "string"}},
		{"field not in the schema", "fields: [amount,", "fields: [amountt,", 2, []string{"model.inputs", "amountt"}},
		{"shape differs from the model", "shape: [8]", "shape: [8, 1]", 2, []string{"model.inputs[0].shape"}},
		{"output the model lacks", "- tensor: probabilities", "- tensor: probs", 2, []string{`model.outputs[1].tensor: model "fraud" has no output "probs"`}},
		{"missing model file", "model.onnx", "nope.onnx", 2, []string{"model.path: loading", "nope.onnx"}},
		// Valid, with advice: 64 rows of 8 float32 need 2KiB.
		{"batch bytes below max_size", "max_size: 64\n", "max_size: 64\n  max_bytes: 1KiB\n", 0, []string{"pipeline.yaml: valid",
			`advice: step "fraud": a row's inputs take 32B, so batch.max_bytes (1KiB) holds 32 rows, fewer than batch.max_size (64): set batch.max_bytes to at least 2KiB`}},
		{"pass-through field not in the schema", "passthrough: [transaction_id, account_id]", "passthrough: [transaction_id, acount_id]", 2, []string{"acount_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := exampleWith(t, tc.old, tc.new)
			var stdout, stderr bytes.Buffer
			code := Run([]string{"validate", "--config", cfg}, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			if tc.code != 0 && !strings.Contains(out, cfg) {
				t.Errorf("error does not name the file %s:\n%s", cfg, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.old == "" && strings.Contains(out, "advice:") {
				t.Errorf("the example as shipped gets advice:\n%s", out)
			}
		})
	}
}

// kinfer validate says where each model runs, and when a GPU provider the
// config asks for is not available on this machine.
func TestValidateProvider(t *testing.T) {
	orttest.Require(t)
	cfg := exampleWith(t, "\n  path: ", "\n  provider: cuda\n  path: ")
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"validate", "--config", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	switch {
	case regexp.MustCompile(`model fraud version \w+ on cuda\n`).MatchString(out):
		t.Logf("this machine runs CUDA")
	case !regexp.MustCompile(`model fraud version \w+ on cpu\n`).MatchString(out) ||
		!strings.Contains(out, "note: model fraud asks for cuda but runs on cpu here (the warning above says why; a GPU build of ONNX Runtime: make ort-gpu)"):
		t.Errorf("validate does not say the model falls back from cuda to cpu:\n%s", out)
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "validate") {
		t.Fatalf("--help: exit %d\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := Run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := Run([]string{"run", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "At-least-once") {
		t.Fatalf("run --help: exit %d\n%s", code, stderr.String())
	}
	if code := Run([]string{"run", "--config", "/nonexistent.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("missing config: exit %d", code)
	}
	stdout.Reset()
	if code := Run([]string{"version"}, &stdout, &stderr); code != 0 || stdout.String() != "kinfer "+Version+"\nmodel kinds: onnx, remote\n" {
		t.Fatalf("version: exit %d\n%s", code, stdout.String())
	}
}

// kinfer demo runs the fraud example end to end on its embedded Kafka and
// Schema Registry, corrupt records included, and shows predictions.
func TestDemo(t *testing.T) {
	orttest.Require(t)
	var stdout, stderr bytes.Buffer
	cfg := filepath.Join(repoRoot(t), "examples/fraud/pipeline.yaml")
	code := Run([]string{"demo", "--config", cfg, "--records", "1000", "--rate", "0", "--bad-every", "100"}, &stdout, &stderr)
	out := stdout.String() + stderr.String()
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"model fraud version ", "done: 1000 records", "990 predicted, 10 dead-lettered", "sample: transaction_id=tx-", " fraud_label=", " probabilities=[", "(model fraud "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// numbers returns an Avro array of numbers as float64s, whichever form
// its decoder gave it: goavro's []any (Avro container files) or package
// schema's typed slices ([]float32, []int64, ...).
func numbers(t testing.TB, v any) []float64 {
	t.Helper()
	var out []float64
	switch a := v.(type) {
	case []float32:
		for _, x := range a {
			out = append(out, float64(x))
		}
	case []float64:
		out = append(out, a...)
	case []int32:
		for _, x := range a {
			out = append(out, float64(x))
		}
	case []int64:
		for _, x := range a {
			out = append(out, float64(x))
		}
	case []any:
		for _, x := range a {
			switch x := x.(type) {
			case float32:
				out = append(out, float64(x))
			case float64:
				out = append(out, x)
			case int32:
				out = append(out, float64(x))
			case int64:
				out = append(out, float64(x))
			default:
				t.Fatalf("array element %v is a %T, not a number", x, x)
			}
		}
	default:
		t.Fatalf("%v is a %T, not an array of numbers", v, v)
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kinfer validate checks every edge of a model graph: the source step and
// output exist and come earlier, and dtype and per-row shape fit.
func TestValidateGraph(t *testing.T) {
	orttest.Require(t)
	root := repoRoot(t)
	dir := t.TempDir()
	sch := filepath.Join(dir, "text.avsc")
	os.WriteFile(sch, []byte(seqSchema), 0o644)
	base := `kafka: {group: g, input_topic: text, output_topic: out}
schema: {input_schema_file: ` + sch + `}
models:
  - name: encoder
    path: MODELS/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    batch: {pad: {input_ids: {axis: 0}}, mask_input: attention_mask}
  - name: classifier
    path: MODELS/CLS/model.onnx
    inputs: [{tensor: INPUT, from: FROM}]
`
	cases := []struct {
		name, cls, input, from string
		code                   int
		want                   string
	}{
		{"valid chain", "textcls", "embedding", "encoder.embedding", 0, "model classifier version"},
		{"unknown output", "textcls", "embedding", "encoder.embeding", 2, `models[1].inputs[0].from: step "encoder" has no output "embeding" (it has: embedding float32[?,64])`},
		{"later step", "textcls", "embedding", "classifier.logits", 2, `models[1].inputs[0].from: expected "<step>.<output>" naming an earlier step, found "classifier.logits"`},
		{"shape mismatch", "fraud", "features", "encoder.embedding", 2, `models[1].inputs[0].from: encoder.embedding has per-row shape [64] but model input "features" takes [8]: dim 0 is 64 vs 8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.NewReplacer("MODELS", filepath.Join(root, "testdata/models"), "CLS", tc.cls, "INPUT", tc.input, "FROM", tc.from).Replace(base)
			p := filepath.Join(t.TempDir(), "pipeline.yaml")
			os.WriteFile(p, []byte(y), 0o644)
			var stdout, stderr bytes.Buffer
			code := Run([]string{"validate", "--config", p}, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d); output lacks %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

// startPipeline loads and builds cfgPath with loader and runs it as a
// consumer-group member in the background. stop cancels the run and fails
// the test if it did not end cleanly; the pipeline closes at cleanup.
func startPipeline(t *testing.T, cfgPath string, loader processor.ModelLoader, opts processor.RunOptions) (*processor.Pipeline, func()) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Build(context.Background(), cfg, loader, processor.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- processor.RunStream(ctx, p, opts) }()
	return p, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
