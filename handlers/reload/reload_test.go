package reload_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/kinfer/kinfer/handlers/reload"
	"github.com/kinfer/kinfer/tensor"
)

func quietLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// events records OnReload events.
type events struct {
	mu  sync.Mutex
	evs []reload.Event
}

func (e *events) add(ev reload.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) last(t *testing.T) reload.Event {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.evs) == 0 {
		t.Fatal("no OnReload event")
	}
	return e.evs[len(e.evs)-1]
}

func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.evs)
}

// manual returns options that never poll by themselves and load what
// they see at once: the test calls Poll.
func manual(t testing.TB, path string, fs *fakes, ev *events) reload.Options {
	return reload.Options{
		Path: path, Load: fs.load, FileName: "model.txt",
		Interval: -1, Settle: -1,
		OnReload: ev.add,
		Logger:   quietLogger(t),
	}
}

func newReloader(t testing.TB, opts reload.Options) *reload.Reloader {
	t.Helper()
	r, err := reload.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func row(width int) map[string]*tensor.Tensor {
	x := tensor.New(tensor.Float32, []int64{1, int64(width)})
	for i := range width {
		x.Data.([]float32)[i] = float32(i + 1)
	}
	return map[string]*tensor.Tensor{"x": x}
}

// served checks that r serves version v, and that a batch it runs comes
// from that version.
func served(t *testing.T, r *reload.Reloader, v string) {
	t.Helper()
	if got := r.Version(); got != v {
		t.Fatalf("Version() = %q; want %q", got, v)
	}
	out, got, err := r.InferVersion(context.Background(), row(4))
	if err != nil {
		t.Fatal(err)
	}
	if got != v {
		t.Fatalf("InferVersion version = %q; want %q", got, v)
	}
	if y := out["y"].Data.([]float32)[1]; fmt.Sprint(y/2) != v {
		t.Fatalf("y[1] = %v: not version %s's result (2*%s)", y, v, v)
	}
}

func poll(t *testing.T, r *reload.Reloader) error {
	t.Helper()
	return r.Poll(context.Background())
}

func TestFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.txt")
	writeModel(t, path, "version: 1")
	fs, ev := &fakes{}, &events{}
	r := newReloader(t, manual(t, path, fs, ev))
	served(t, r, "1")

	if err := poll(t, r); err != nil || ev.count() != 0 {
		t.Fatalf("nothing changed: Poll = %v, %d events", err, ev.count())
	}

	writeModel(t, path, "version: 2")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "2")
	if e := ev.last(t); e.Err != nil || e.Version != "2" || e.Previous != "1" || e.Path != path {
		t.Errorf("event %+v", e)
	}
	waitFor(t, func() bool { return slices.Equal(fs.open(), []string{"2"}) }, "version 1 to be closed")

	// The same bytes again (touched, or copied over): no reload.
	now := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	if err := poll(t, r); err != nil || ev.count() != 1 || len(fs.loaded) != 2 {
		t.Fatalf("touched file: Poll = %v, %d events, %d loads", err, ev.count(), len(fs.loaded))
	}

	// A file that does not load is refused, once, and 2 keeps serving.
	writeModel(t, path, "version: 3", "load: fail")
	err := poll(t, r)
	if err == nil || !strings.Contains(err.Error(), "this model does not load") {
		t.Fatalf("Poll = %v", err)
	}
	served(t, r, "2")
	if e := ev.last(t); e.Err == nil || e.Previous != "2" {
		t.Errorf("event %+v", e)
	}
	if err := poll(t, r); err != nil || ev.count() != 2 {
		t.Fatalf("a refused file was tried again: Poll = %v, %d events", err, ev.count())
	}
	if st := r.Stats(); st.Reloads != 1 || st.Refused != 1 || st.Version != "2" || st.LastRefusal == nil {
		t.Errorf("stats %+v", st)
	}

	// Different inputs: refused, and the loaded candidate is closed.
	writeModel(t, path, "version: 4", "width: 5")
	err = poll(t, r)
	if err == nil || !strings.Contains(err.Error(), "inputs are [x float32[?,5]]; want [x float32[?,4]]") {
		t.Fatalf("Poll = %v", err)
	}
	if e := ev.last(t); e.Version != "4" {
		t.Errorf("refusal event names version %q; want 4", e.Version)
	}
	served(t, r, "2")
	if open := fs.open(); !slices.Equal(open, []string{"2"}) {
		t.Errorf("open models %v; the refused candidate must be closed", open)
	}

	// A good file after the bad ones is accepted.
	writeModel(t, path, "version: 5")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "5")

	// The file disappears: a warning, and 5 keeps serving.
	os.Remove(path)
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "5")
}

func TestDirReload(t *testing.T) {
	dir := t.TempDir()
	ver := func(v string) string { return filepath.Join(dir, v, "model.txt") }
	writeModel(t, ver("1"), "version: 1")
	writeModel(t, ver("2"), "version: 2")
	fs, ev := &fakes{}, &events{}
	r := newReloader(t, manual(t, dir, fs, ev))
	served(t, r, "2") // the highest at start-up

	writeModel(t, ver("10"), "version: 10")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "10") // 10 > 2: numbers compare as numbers

	// Entries that are not versions are ignored.
	writeModel(t, filepath.Join(dir, "archive", "model.txt"), "version: 99")
	writeModel(t, filepath.Join(dir, ".staging", "model.txt"), "version: 98")
	writeModel(t, filepath.Join(dir, "_old", "model.txt"), "version: 97")
	writeModel(t, filepath.Join(dir, "96.txt.tmp"), "version: 96")
	writeModel(t, filepath.Join(dir, "README.md"), "version: 95")
	os.MkdirAll(filepath.Join(dir, "20"), 0o755) // a version still being copied: no model file yet
	if err := poll(t, r); err != nil || ev.count() != 1 {
		t.Fatalf("Poll = %v, %d events", err, ev.count())
	}
	served(t, r, "10")

	// A file named by its version counts too.
	writeModel(t, filepath.Join(dir, "11.txt"), "version: 11")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "11")

	// Removing the newest version rolls back to the one below it.
	os.Remove(filepath.Join(dir, "11.txt"))
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "10")

	// Versions are immutable: changing 10 in place is refused.
	writeModel(t, ver("10"), "version: 12")
	err := poll(t, r)
	if err == nil || !strings.Contains(err.Error(), "version 10 changed in place") {
		t.Fatalf("Poll = %v", err)
	}
	served(t, r, "10")

	// The version copied into 20/ completes.
	writeModel(t, ver("20"), "version: 20")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "20")
	if st := r.Stats(); st.Reloads != 4 || st.Refused != 1 || st.Path != ver("20") {
		t.Errorf("stats %+v", st)
	}

	// An empty directory is an error at start-up.
	if _, err := reload.New(context.Background(), manual(t, t.TempDir(), fs, ev)); err == nil || !strings.Contains(err.Error(), "holds no model version") {
		t.Errorf("New on an empty directory: %v", err)
	}
}

// TestDirVersionNameReachesLoader: the version directory's name is the
// Candidate's Version, so the loader can stamp it.
func TestDirVersionNameReachesLoader(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, filepath.Join(dir, "v7", "model.txt"), "version: 7")
	var got reload.Candidate
	fs := &fakes{}
	opts := manual(t, dir, fs, &events{})
	opts.Load = func(ctx context.Context, c reload.Candidate) (handlers.ModelHandler, error) {
		got = c
		return fs.load(ctx, c)
	}
	newReloader(t, opts)
	sum := sha256.Sum256([]byte("version: 7\n"))
	if got.Version != "v7" || got.Path != filepath.Join(dir, "v7", "model.txt") || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("candidate %+v", got)
	}
}

func TestSettle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 1")
	fs, ev := &fakes{}, &events{}
	opts := manual(t, path, fs, ev)
	opts.Settle = 100 * time.Millisecond
	r := newReloader(t, opts)

	writeModel(t, path, "version: 2")
	poll(t, r)
	served(t, r, "1") // just seen: not yet
	time.Sleep(60 * time.Millisecond)
	writeModel(t, path, "version: 3", "") // still changing: the clock restarts
	poll(t, r)
	time.Sleep(60 * time.Millisecond)
	poll(t, r)
	served(t, r, "1")
	time.Sleep(60 * time.Millisecond)
	poll(t, r)
	served(t, r, "3")
	if len(fs.loaded) != 2 {
		t.Errorf("%d loads; the unsettled version 2 must never be loaded", len(fs.loaded))
	}
}

func sum(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSHA256(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.txt")
	writeModel(t, path, "version: 1")
	fs, ev := &fakes{}, &events{}

	opts := manual(t, path, fs, ev)
	opts.SHA256 = strings.Repeat("ab", 32)
	if _, err := reload.New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("New with a wrong pin: %v", err)
	}
	opts.SHA256 = "abc"
	if _, err := reload.New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("New with a malformed pin: %v", err)
	}
	opts.SHA256 = strings.ToUpper(sum(t, path))
	r := newReloader(t, opts)
	served(t, r, "1")
	writeModel(t, path, "version: 2")
	if err := poll(t, r); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("a file other than the pinned one: %v", err)
	}
	served(t, r, "1")

	// Sidecar checksum files: a wrong one refuses, a right one accepts.
	dir = t.TempDir()
	path = filepath.Join(dir, "model.txt")
	writeModel(t, path, "version: 1")
	r = newReloader(t, manual(t, path, fs, ev))
	writeModel(t, path+".sha256", strings.Repeat("0", 64)+"  model.txt")
	writeModel(t, path, "version: 2")
	if err := poll(t, r); err == nil || !strings.Contains(err.Error(), "model.txt.sha256, which says 0000") {
		t.Fatalf("wrong sidecar: %v", err)
	}
	served(t, r, "1")
	writeModel(t, path, "version: 3")
	writeModel(t, path+".sha256", sum(t, path)+"  model.txt")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "3")
}

func TestCheckAndProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 1")
	fs, ev := &fakes{}, &events{}
	opts := manual(t, path, fs, ev)
	opts.Check = func(h handlers.ModelHandler) error {
		if h.Version() == "13" {
			return errors.New("unlucky")
		}
		return nil
	}
	opts.Probe = map[string]*tensor.Tensor{"x": tensor.New(tensor.Float32, []int64{7, 4})}
	r := newReloader(t, opts)

	writeModel(t, path, "version: 13")
	if err := poll(t, r); err == nil || err.Error() != "check: unlucky" {
		t.Fatalf("Check refusing: Poll = %v", err)
	}
	writeModel(t, path, "version: 14", "probe: fail")
	if err := poll(t, r); err == nil || !strings.Contains(err.Error(), "probe batch: NaN in the output") {
		t.Fatalf("Probe failing: Poll = %v", err)
	}
	served(t, r, "1")
	if open := fs.open(); !slices.Equal(open, []string{"1"}) {
		t.Errorf("open models %v; refused candidates must be closed", open)
	}
	writeModel(t, path, "version: 15")
	if err := poll(t, r); err != nil {
		t.Fatal(err)
	}
	served(t, r, "15")

	// The first model must pass Check too.
	writeModel(t, path, "version: 13")
	if _, err := reload.New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "unlucky") {
		t.Errorf("New with a model Check refuses: %v", err)
	}
}

// TestWatcher lets the watcher find a new version by itself and measures
// how long that takes.
func TestWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 1")
	fs, ev := &fakes{}, &events{}
	opts := manual(t, path, fs, ev)
	opts.Interval = 10 * time.Millisecond
	opts.Settle = 0 // default: one interval
	r := newReloader(t, opts)
	start := time.Now()
	writeModel(t, path, "version: 2")
	waitFor(t, func() bool { return r.Version() == "2" }, "the watcher to serve version 2")
	t.Logf("version 2 serving %v after it was written (interval 10ms, settle 10ms)", time.Since(start).Round(time.Millisecond))
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentSwaps runs batches from many goroutines while versions
// are swapped in as fast as they load: no call fails, each result comes
// from the version InferVersion names (y = version * x), every version
// named was served, no model is closed while a call runs on it, and
// every replaced model is closed in the end.
func TestConcurrentSwaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 1", "work: 200us")
	fs, ev := &fakes{}, &events{}
	r := newReloader(t, manual(t, path, fs, ev))

	const swaps = 30
	var stop atomic.Bool
	var calls atomic.Int64
	seen := make([]map[string]int, 8)
	var wg sync.WaitGroup
	for g := range seen {
		seen[g] = map[string]int{}
		wg.Go(func() {
			in := row(4)
			for !stop.Load() {
				out, v, err := r.InferVersion(context.Background(), in)
				if err != nil {
					t.Errorf("Infer during swaps: %v", err)
					return
				}
				calls.Add(1)
				seen[g][v]++
				want := fmt.Sprint(out["y"].Data.([]float32)[0])
				if want != v {
					t.Errorf("InferVersion says version %s, but the result (y = %s * x) came from version %s", v, want, want)
					return
				}
			}
		})
	}
	for i := 2; i <= swaps+1; i++ {
		writeModel(t, path, fmt.Sprintf("version: %d", i), "work: 200us")
		if err := poll(t, r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	versions := map[string]int{}
	for _, s := range seen {
		for v, n := range s {
			versions[v] += n
		}
	}
	t.Logf("%d calls across %d swaps; %d versions seen by callers", calls.Load(), swaps, len(versions))
	for v := range versions {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 || n > swaps+1 {
			t.Errorf("a result from version %q, which was never served", v)
		}
	}
	if st := r.Stats(); st.Reloads != swaps {
		t.Errorf("stats %+v; want %d reloads", st, swaps)
	}
	want := []string{fmt.Sprint(swaps + 1)}
	waitFor(t, func() bool { return slices.Equal(fs.open(), want) }, "every replaced model to be closed")
	for _, m := range fs.loaded {
		if m.usedAfterClose.Load() {
			t.Errorf("version %s was closed while a call ran on it", m.version)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if open := fs.open(); len(open) != 0 {
		t.Errorf("after Close, models %v are still open", open)
	}
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 1", "work: 100ms")
	fs := &fakes{}
	opts := manual(t, path, fs, &events{})
	opts.Interval = time.Millisecond // a watcher running, to stop
	r, err := reload.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Infer(context.Background(), row(4))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("a call running during Close: %v; want it to finish", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Close returned after %v, before the running call (100ms) finished", d)
	}
	if _, err := r.Infer(context.Background(), row(4)); !errors.Is(err, handlers.ErrClosed) {
		t.Errorf("Infer after Close: %v", err)
	}
	if r.Version() != "1" || r.Name() != "fake" {
		t.Errorf("after Close: name %q version %q", r.Name(), r.Version())
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if fs.loaded[0].usedAfterClose.Load() || !fs.loaded[0].closed.Load() {
		t.Error("the model was closed under a running call, or not at all")
	}
}

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.txt")
	writeModel(t, path, "version: 2")
	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
		return newReloader(t, manual(t, path, &fakes{}, &events{}))
	}, handlertest.Features{DynamicBatch: true})
}

func TestOptions(t *testing.T) {
	fs := &fakes{}
	for _, c := range []struct {
		opts reload.Options
		want string
	}{
		{reload.Options{Load: fs.load}, "Path is empty"},
		{reload.Options{Path: "x"}, "Load is nil"},
		{reload.Options{Path: filepath.Join(t.TempDir(), "missing.txt"), Load: fs.load}, "no such file"},
		{reload.Options{Path: t.TempDir(), Load: fs.load, FileName: "a/b"}, "not a path"},
	} {
		if _, err := reload.New(context.Background(), c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want an error saying %q", c.opts, err, c.want)
		}
	}
}
