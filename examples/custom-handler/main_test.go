package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/gen"
	"github.com/kinfer/kinfer/internal/repo"
	"github.com/kinfer/kinfer/tensor"
)

func open(t *testing.T, opts map[string]string) handlers.ModelHandler {
	t.Helper()
	h, err := handlers.Open(context.Background(), Kind, handlers.Spec{Name: "anomaly", Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// The zscore handler passes the conformance suite every handler must.
func TestZScoreConformance(t *testing.T) {
	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
		return open(t, map[string]string{"mean": "0.16, 8, 1.5, -2", "std": "0.12, 8, 1.12, 0.5", "threshold": "2.5"})
	}, handlertest.Features{DynamicBatch: true})
}

// Scores, flags and top features of a few rows, worked out by hand.
func TestZScoreInfer(t *testing.T) {
	h := open(t, map[string]string{"mean": "0, 10", "std": "1, 2"}) // threshold 3 by default
	in := map[string]*tensor.Tensor{"features": {DType: tensor.Float32, Shape: []int64{4, 2}, Data: []float32{
		0.5, 10, // z = 0.5, 0
		1, 20, // z = 1, 5
		-4, 11, // z = 4, 0.5
		0, 4, // z = 0, 3: the threshold itself is an anomaly
	}}}
	out, err := h.Infer(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out["score"].Data, []float32{0.5, 5, 4, 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("score %v, want %v", got, want)
	}
	if got, want := out["anomaly"].Data, []int64{0, 1, 1, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("anomaly %v, want %v", got, want)
	}
	if got, want := out["feature"].Data, []int64{0, 1, 0, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("feature %v, want %v", got, want)
	}

	// A NaN feature is the row's fault: ErrInvalidInput, so that the
	// engine dead-letters that row rather than retrying the batch.
	in["features"].Data = []float32{0, 10, float32(math.NaN()), 10, 0, 10, 0, 10}
	if _, err := h.Infer(context.Background(), in); !errors.Is(err, handlers.ErrInvalidInput) || !strings.Contains(err.Error(), "row 1: feature 0 is NaN") {
		t.Errorf("NaN feature: %v; want ErrInvalidInput naming row 1 feature 0", err)
	}
}

// Every mistake in the model's config is an error at start-up that says
// what is wrong.
func TestZScoreRefusesBadConfig(t *testing.T) {
	ok := map[string]string{"mean": "1,2", "std": "1,1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{"mean": ok["mean"], "std": ok["std"], k: v}
		if v == "" {
			delete(m, k)
		}
		return m
	}
	cases := []struct {
		name string
		spec handlers.Spec
		want string
	}{
		{"no mean", handlers.Spec{Options: with("mean", "")}, "option mean is required"},
		{"no std", handlers.Spec{Options: with("std", "")}, "option std is required"},
		{"not a number", handlers.Spec{Options: with("mean", "1,x")}, `option mean: "x" is not a finite number`},
		{"lengths differ", handlers.Spec{Options: with("std", "1,1,1")}, "mean has 2, std 3"},
		{"zero std", handlers.Spec{Options: with("std", "1,0")}, "option std: feature 1 has 0"},
		{"threshold", handlers.Spec{Options: with("threshold", "-1")}, "option threshold: -1 is not a positive number"},
		{"typo", handlers.Spec{Options: with("treshold", "2")}, "unknown option treshold"},
		{"path", handlers.Spec{Path: "/models/model.onnx", Options: ok}, "no model file or server"},
		{"provider", handlers.Spec{Provider: "cuda", Options: ok}, "kind zscore runs in Go"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = "anomaly"
			h, err := handlers.Open(context.Background(), Kind, tc.spec)
			if err == nil {
				h.Close()
				t.Fatalf("no error; want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "anomaly") {
				t.Fatalf("%v\nwant the model's name and %q", err, tc.want)
			}
		})
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// goBuild builds pkg (relative to the repository root, as the README has
// it) into dir and returns the binary's path.
func goBuild(t *testing.T, root, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// run runs bin with args and returns its exit status and output.
func run(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// The README's build: kinfer-custom knows kind zscore in every subcommand
// and runs the example pipeline end to end; stock kinfer refuses the same
// file, naming the kind and the kinds it has.
func TestCustomBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two kinfer binaries")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	custom := goBuild(t, root, dir, "./examples/custom-handler", "kinfer-custom")
	stock := goBuild(t, root, dir, "./cmd/kinfer", "kinfer")
	cfgPath := filepath.Join(root, "examples/custom-handler/pipeline.yaml")
	var version string

	t.Run("version", func(t *testing.T) {
		if code, out := run(t, custom, "version"); code != 0 || !strings.Contains(out, "model kinds: onnx, remote, zscore") {
			t.Errorf("kinfer-custom version: exit %d\n%s", code, out)
		}
		if code, out := run(t, stock, "version"); code != 0 || !strings.Contains(out, "model kinds: onnx, remote\n") {
			t.Errorf("kinfer version: exit %d\n%s", code, out)
		}
	})

	t.Run("validate", func(t *testing.T) {
		code, out := run(t, custom, "validate", "--config", cfgPath)
		if code != 0 {
			t.Fatalf("kinfer-custom validate: exit %d\n%s", code, out)
		}
		for _, want := range []string{"pipeline.yaml: valid", "input  features float32[?,3]", `"name":"anomaly_score","type":"float"`, `"name":"top_feature","type":"long"`} {
			if !strings.Contains(out, want) {
				t.Errorf("kinfer-custom validate output lacks %q:\n%s", want, out)
			}
		}
		m := regexp.MustCompile(`model anomaly version ([0-9a-f]{12})\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("kinfer-custom validate names no model version:\n%s", out)
		}
		version = m[1]

		code, out = run(t, stock, "validate", "--config", cfgPath)
		if code != 2 {
			t.Errorf("stock kinfer validate: exit %d, want 2 (a config error)\n%s", code, out)
		}
		for _, want := range []string{cfgPath, "model.kind: ", `unknown model kind "zscore"`, "registered: onnx, remote)"} {
			if !strings.Contains(out, want) {
				t.Errorf("stock kinfer validate output lacks %q:\n%s", want, out)
			}
		}
	})

	// A bounded replay over Avro files: every transaction gets its score,
	// computed here from the record's own fields.
	t.Run("replay", func(t *testing.T) {
		if version == "" {
			t.Skip("validate failed")
		}
		in, n := filepath.Join(t.TempDir(), "in"), 3000
		txs := writeTransactions(t, root, in, n)
		out := filepath.Join(t.TempDir(), "out")
		code, log := run(t, custom, "replay", "--config", cfgPath, "--input-files", filepath.Join(in, "*.avro"),
			"--output-files", out, "--progress", "none", "--log-level", "warn")
		if code != 0 {
			t.Fatalf("kinfer-custom replay: exit %d\n%s", code, log)
		}
		h := zscoreOf(t, cfgPath)
		preds, dead := readDir(t, out)
		if len(dead) != 1 || len(preds) != n-1 {
			t.Fatalf("%d predictions and %d dead letters for %d transactions (one with a NaN distance); want %d and 1\n%s",
				len(preds), len(dead), n, n-1, log)
		}
		flagged, far := 0, 0
		for _, p := range preds {
			id := p["transaction_id"].(string)
			tx, ok := txs[id]
			if !ok {
				t.Fatalf("prediction for unknown transaction %q", id)
			}
			delete(txs, id)
			x := []float64{float64(tx["merchant_risk"].(float32)), float64(tx["distance_km"].(float32)), float64(tx["txn_count_1h"].(int32))}
			score, top := 0.0, int64(0)
			for j := range x {
				if z := math.Abs(x[j]-h.mean[j]) / h.std[j]; z > score {
					score, top = z, int64(j)
				}
			}
			var anomaly int64
			if score >= h.threshold {
				anomaly = 1
			}
			got := p["anomaly_score"].(float32)
			if math.Abs(float64(got)-score) > 1e-5*(1+score) || p["anomaly"] != anomaly || p["top_feature"] != top {
				t.Fatalf("%s: score %v anomaly %v top_feature %v; want %v %v %v (features %v)", id, got, p["anomaly"], p["top_feature"], score, anomaly, top, x)
			}
			if p["account_id"] != tx["account_id"] || p["model_name"] != "anomaly" || p["model_version"] != version {
				t.Fatalf("%s: account_id %v, model %v %v; want %v, anomaly %s", id, p["account_id"], p["model_name"], p["model_version"], tx["account_id"], version)
			}
			flagged += int(anomaly)
			if x[1] >= 200 { // the generator's fraud pattern: hundreds of km away
				far++
				if anomaly != 1 {
					t.Errorf("%s: %v km away but not an anomaly (score %v)", id, x[1], got)
				}
			}
		}
		if len(txs) != 1 {
			t.Errorf("transactions without a prediction: %d, want only the one with a NaN distance", len(txs))
		}
		if far == 0 || flagged < far || flagged > far+n/20 {
			t.Errorf("%d anomalies among %d transactions, %d of them far away: the statistics do not fit the data", flagged, n, far)
		}
		t.Logf("%d transactions: %d anomalies (%d far away), 1 dead letter", n, flagged, far)
	})

	// Streaming: kinfer demo on its embedded Kafka and Schema Registry,
	// with generated transactions, corrupt ones included.
	t.Run("demo", func(t *testing.T) {
		code, out := run(t, custom, "demo", "--config", cfgPath, "--records", "2000", "--rate", "0", "--bad-every", "100")
		if code != 0 {
			t.Fatalf("kinfer-custom demo: exit %d\n%s", code, out)
		}
		for _, want := range []string{"model anomaly version " + version, "done: 2000 records", "1980 predicted, 20 dead-lettered", "anomaly_score=", "(model anomaly " + version + ")"} {
			if !strings.Contains(out, want) {
				t.Errorf("kinfer-custom demo output lacks %q:\n%s", want, out)
			}
		}
	})
}

// zscoreOf opens the model that cfgPath describes, for its statistics.
func zscoreOf(t *testing.T, cfgPath string) *zscore {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return open(t, cfg.Model.Options).(*zscore)
}

// writeTransactions writes n generated transactions to two Avro container
// files in dir, the last one with a NaN distance, and returns them by id.
func writeTransactions(t *testing.T, root, dir string, n int) map[string]map[string]any {
	t.Helper()
	sch, err := os.ReadFile(filepath.Join(root, "examples/fraud/transaction.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := gen.NewTransactions(7)
	txs := map[string]map[string]any{}
	files := make([][]any, 2)
	for i := range n {
		_, tx := g.Next()
		if i == n-1 {
			tx["distance_km"] = float32(math.NaN())
		}
		txs[tx["transaction_id"].(string)] = tx
		files[i%2] = append(files[i%2], tx)
	}
	for f, recs := range files {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("tx-%d.avro", f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: fh, Codec: codec})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(recs); err != nil {
			t.Fatal(err)
		}
		if err := fh.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return txs
}

// readDir reads a file-output replay's predictions and dead letters.
func readDir(t *testing.T, dir string) (preds, dead []map[string]any) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var to *[]map[string]any
		switch name := e.Name(); {
		case strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".avro"):
			to = &preds
		case strings.HasPrefix(name, "dead-letters-"):
			to = &dead
		default:
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := goavro.NewOCFReader(f)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			*to = append(*to, v.(map[string]any))
		}
		f.Close()
	}
	return preds, dead
}

// TestOutsideModule builds this example as a module of its own, the way a
// user's repository would hold it: main.go and zscore.go copied into a
// fresh module that requires kinfer (replaced by this checkout; the other
// modules come from the module cache, or the proxy). It fails if the handler API leaks a type from
// one of kinfer's internal packages, which another module cannot import.
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a kinfer binary in a module of its own")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"main.go", "zscore.go"} {
		b, err := os.ReadFile(filepath.Join(root, "examples/custom-handler", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gomod := "module example.com/my-kinfer\n\ngo 1.26\n\nrequire github.com/kinfer/kinfer v0.0.0\n\nreplace github.com/kinfer/kinfer => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "my-kinfer")
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", bin, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v in a module of its own: %v\n%s", args, err, out)
		}
	}
	if code, out := run(t, bin, "version"); code != 0 || !strings.Contains(out, "model kinds: onnx, remote, zscore") {
		t.Errorf("my-kinfer version: exit %d\n%s", code, out)
	}
}
