package reload_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/handlers/reload"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/tensor"
)

func fixtureModel(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "testdata", "models", name, "model.onnx")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing (testdata/models/make_models.py makes it): %v", err)
	}
	return p
}

// retrained is testdata/models/fraud with nudged weights
// (testdata/make_fixtures.py): same inputs and outputs, other scores.
const retrained = "testdata/fraud_retrained.onnx"

// publish copies src over dst by writing beside it and renaming.
func publish(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeBytes(t, dst, b)
}

func writeBytes(t testing.TB, dst string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		t.Fatal(err)
	}
}

// onnxLoader loads candidates with ONNX Runtime and remembers them.
type onnxLoader struct {
	t      testing.TB
	mu     sync.Mutex
	loaded []*onnx.Handler
}

func (l *onnxLoader) load(ctx context.Context, c reload.Candidate) (handlers.ModelHandler, error) {
	h, err := onnx.Load(ctx, onnx.Options{Name: "fraud", Path: c.Path, Version: c.Version, Logger: quietLogger(l.t)})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.loaded = append(l.loaded, h)
	l.mu.Unlock()
	return h, nil
}

func fraudBatch(t testing.TB) map[string]*tensor.Tensor {
	h, err := onnx.Load(context.Background(), onnx.Options{Path: fixtureModel(t, "fraud"), Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fx, err := handlertest.LoadFixture(filepath.Join(filepath.Dir(fixtureModel(t, "fraud")), "expected.json"), h.Inputs(), h.Outputs())
	if err != nil {
		t.Fatal(err)
	}
	var rows []*tensor.Tensor
	for _, r := range fx.Inputs[:32] {
		rows = append(rows, r["features"])
	}
	x, err := tensor.Stack(rows)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*tensor.Tensor{"features": x}
}

// TestONNXReload walks a model file through the updates a deployment
// sees: the fraud model serving; a corrupt file (refused); a model with
// other inputs, fnn (refused); a retrained fraud model (accepted), swapped
// in while batches run.
func TestONNXReload(t *testing.T) {
	orttest.Require(t)
	path := filepath.Join(t.TempDir(), "model.onnx")
	publish(t, fixtureModel(t, "fraud"), path)
	l := &onnxLoader{t: t}
	ev := &events{}
	r := newReloader(t, reload.Options{
		Path: path, Load: l.load, Interval: -1, Settle: -1,
		OnReload: ev.add, Logger: quietLogger(t),
	})
	in := fraudBatch(t)
	v1 := r.Version()
	if len(v1) != 12 || v1 != sum(t, path)[:12] {
		t.Fatalf("Version() = %q; want the file's sha256 prefix", v1)
	}
	before, err := r.Infer(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}

	// Corrupt: half of the file.
	b, _ := os.ReadFile(fixtureModel(t, "fraud"))
	writeBytes(t, path, b[:len(b)/2])
	err = poll(t, r)
	if err == nil || !strings.Contains(err.Error(), "loading:") {
		t.Fatalf("corrupt file: Poll = %v", err)
	}
	t.Logf("corrupt file refused: %v", err)
	if r.Version() != v1 {
		t.Fatalf("serving %s after a corrupt file; want %s", r.Version(), v1)
	}

	// Another model: other inputs.
	publish(t, fixtureModel(t, "fnn"), path)
	err = poll(t, r)
	if err == nil || !strings.Contains(err.Error(), "inputs are [input float32[?,784]]; want [features float32[?,8]]") {
		t.Fatalf("fnn: Poll = %v", err)
	}
	t.Logf("fnn refused: %v", err)
	if got := ev.last(t).Version; got != sum(t, path)[:12] {
		t.Errorf("refusal event version %q; want the candidate's sha256 prefix", got)
	}
	if len(l.loaded) != 2 {
		t.Fatalf("%d models loaded; want the first and fnn", len(l.loaded))
	}
	if _, err := l.loaded[1].Infer(context.Background(), nil); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("the refused fnn model was not closed: %v", err)
	}

	// The retrained model, swapped in while 4 goroutines run batches.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	results := map[string][]float32{}
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				out, v, err := r.InferVersion(context.Background(), in)
				if err != nil {
					t.Errorf("Infer during the swap: %v", err)
					return
				}
				p := out["probabilities"].Data.([]float32)
				mu.Lock()
				seen[v]++
				if prev, ok := results[v]; ok && !slices.Equal(prev, p) {
					t.Errorf("version %s gave two different results for one batch", v)
				}
				results[v] = p
				mu.Unlock()
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	publish(t, retrained, path)
	start := time.Now()
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	swapped := time.Since(start)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[r.Version()] >= 20
	}, "calls on the retrained model")
	stop.Store(true)
	wg.Wait()

	v2 := r.Version()
	if v2 == v1 || v2 != sum(t, path)[:12] {
		t.Fatalf("after the retrained model: Version() = %q (was %q)", v2, v1)
	}
	t.Logf("retrained model serving %v after Poll began (load and checks %v); calls per version during the swap: %v",
		swapped.Round(time.Microsecond), ev.last(t).LoadTime.Round(time.Microsecond), seen)
	if len(seen) != 2 || seen[v1] == 0 || seen[v2] == 0 {
		t.Errorf("versions seen during the swap: %v; want both %s and %s", seen, v1, v2)
	}
	if slices.Equal(results[v1], results[v2]) {
		t.Error("the retrained model gives the same probabilities: the swap did not happen")
	}
	if !slices.Equal(results[v1], before["probabilities"].Data.([]float32)) {
		t.Error("version 1's results changed during the swap")
	}
	waitFor(t, func() bool {
		_, err := l.loaded[0].Infer(context.Background(), in)
		return errors.Is(err, onnx.ErrClosed)
	}, "the replaced model to be closed")
	if st := r.Stats(); st.Reloads != 1 || st.Refused != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestONNXDir serves a directory of versions with Opener and the "onnx"
// kind: version names come from the directories.
func TestONNXDir(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	publish(t, fixtureModel(t, "fraud"), filepath.Join(dir, "1", "model.onnx"))
	r := newReloader(t, reload.Options{
		Path:     dir,
		Load:     reload.Opener(onnx.Kind, handlers.Spec{Name: "fraud", Copies: 2, Logger: quietLogger(t)}),
		Interval: -1, Settle: -1, Logger: quietLogger(t),
	})
	if r.Version() != "1" || r.Name() != "fraud" {
		t.Fatalf("name %q version %q", r.Name(), r.Version())
	}
	publish(t, retrained, filepath.Join(dir, "2", "model.onnx"))
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	if _, v, err := r.InferVersion(context.Background(), fraudBatch(t)); err != nil || v != "2" {
		t.Fatalf("InferVersion: version %q, %v", v, err)
	}
}

// TestONNXConformance: a Reloader serving an ONNX model is a handler like
// any other, and matches the reference framework's outputs.
func TestONNXConformance(t *testing.T) {
	orttest.Require(t)
	dir := filepath.Dir(fixtureModel(t, "fraud"))
	l := &onnxLoader{t: t}
	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
		return newReloader(t, reload.Options{Path: filepath.Join(dir, "model.onnx"), Load: l.load, Interval: time.Hour, Logger: quietLogger(t)})
	}, handlertest.Features{Fixture: filepath.Join(dir, "expected.json"), DynamicBatch: true})
}
