package remote_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/handlers/remote"
	"github.com/kinfer/kinfer/handlers/remote/remotetest"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/tensor"
)

func quietLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// serve starts a fake KServe v2 server for models, closed at the end of
// the test.
func serve(t testing.TB, models ...handlers.ModelHandler) *remotetest.Server {
	t.Helper()
	s := remotetest.NewServer(models...)
	t.Cleanup(s.Close)
	return s
}

// load connects to model on s with fast retries, closed at the end of
// the test.
func load(t testing.TB, url, model string, adjust func(*remote.Options)) *remote.Handler {
	t.Helper()
	opts := remote.Options{
		URL: url, Model: model,
		Timeout: 5 * time.Second, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: quietLogger(t),
	}
	if adjust != nil {
		adjust(&opts)
	}
	h, err := remote.Load(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func repoFile(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", ".."}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing (testdata/models/make_models.py makes it): %v", err)
	}
	return p
}

func TestConformance(t *testing.T) {
	cases := []struct {
		name     string
		model    func() *goModel
		fixture  string
		adjust   func(*remote.Options)
		features handlertest.Features
	}{
		{name: "doubler", model: affine, fixture: "doubler"},
		{name: "doubler/binary", model: affine, fixture: "doubler", adjust: func(o *remote.Options) { o.Binary = true }},
		{name: "classifier", model: classifier},
		{name: "alltypes", model: allTypes},
		{name: "alltypes/binary", model: allTypes, adjust: func(o *remote.Options) { o.Binary = true }},
		{name: "alltypes/concurrency=2", model: allTypes, adjust: func(o *remote.Options) { o.Concurrency = 2 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.model()
			s := serve(t, m)
			f := c.features
			f.DynamicBatch = true
			if c.fixture != "" {
				f.Fixture = repoFile(t, "testdata", "models", c.fixture, "expected.json")
			}
			handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
				return load(t, s.URL, m.Name(), c.adjust)
			}, f)
		})
	}
}

// TestConformanceONNX serves real ONNX models through the fake server and
// compares the remote handler's results with the reference framework's
// (scikit-learn, numpy) in expected.json.
func TestConformanceONNX(t *testing.T) {
	orttest.Require(t)
	for _, c := range []struct {
		model  string
		ragged bool
		binary bool
	}{{model: "fraud"}, {model: "fraud", binary: true}, {model: "seqpool", ragged: true, binary: true}} {
		t.Run(fmt.Sprintf("%s/binary=%v", c.model, c.binary), func(t *testing.T) {
			path := repoFile(t, "testdata", "models", c.model, "model.onnx")
			m, err := onnx.Load(context.Background(), onnx.Options{Path: path, Logger: quietLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			s := serve(t, m)
			handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
				return load(t, s.URL, m.Name(), func(o *remote.Options) { o.Binary = c.binary })
			}, handlertest.Features{
				Fixture:      repoFile(t, "testdata", "models", c.model, "expected.json"),
				DynamicBatch: true,
				Ragged:       c.ragged,
			})
		})
	}
}

func TestMetadata(t *testing.T) {
	m := allTypes()
	s := serve(t, m)
	h := load(t, s.URL, "alltypes", nil)
	if err := handlers.SameSpecs("inputs", h.Inputs(), m.inputs); err != nil {
		t.Error(err)
	}
	if err := handlers.SameSpecs("outputs", h.Outputs(), m.outputs); err != nil {
		t.Error(err)
	}
	if h.Name() != "alltypes" || h.Version() != "2024-06-01" || h.Platform() != "kinfer_remotetest" {
		t.Errorf("name %q version %q platform %q", h.Name(), h.Version(), h.Platform())
	}
	if err := h.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}

	// A pinned server-side version is used in the URL and reported.
	h = load(t, s.URL, "alltypes", func(o *remote.Options) { o.ModelVersion = "2024-06-01"; o.Name = "types" })
	if h.Name() != "types" || h.Version() != "2024-06-01" {
		t.Errorf("pinned: name %q version %q", h.Name(), h.Version())
	}

	bad := []struct {
		name, metadata, want string
		status               int
	}{
		{"fp16", `{"name":"m","versions":["1"],"inputs":[{"name":"x","datatype":"FP16","shape":[-1,2]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1]}]}`,
			`input "x" has datatype "FP16"`, 200},
		{"bytes output", `{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,2]}],"outputs":[{"name":"y","datatype":"BYTES","shape":[-1]}]}`,
			`output "y" has datatype "BYTES"`, 200},
		{"no outputs", `{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,2]}],"outputs":[]}`,
			"no output", 200},
		{"zero dim", `{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,0]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1]}]}`,
			"dims must be positive", 200},
		{"not json", `<html>`, "decoding", 200},
		{"unknown model", `{"error":"Request for unknown model: 'm' is not found"}`, "HTTP 404 Not Found: Request for unknown model", 404},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				io.WriteString(w, c.metadata)
			}))
			defer srv.Close()
			_, err := remote.Load(context.Background(), remote.Options{URL: srv.URL, Model: "m", Logger: quietLogger(t)})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "model m") {
				t.Fatalf("Load error = %v; want one naming model m and saying %q", err, c.want)
			}
		})
	}
	if _, err := remote.Load(context.Background(), remote.Options{URL: "triton:8000", Model: "m"}); err == nil {
		t.Error("Load accepted a URL without a scheme")
	}
}

// TestWireFormat pins the JSON the handler sends and the replies it reads
// to the protocol's text, independently of remotetest.
func TestWireFormat(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"name":"m","versions":["1","3","20"],"platform":"onnxruntime_onnx",
				"inputs":[{"name":"x","datatype":"FP32","shape":[-1,2]},{"name":"ok","datatype":"BOOL","shape":[-1]}],
				"outputs":[{"name":"y","datatype":"INT64","shape":[-1,2]},{"name":"p","datatype":"FP64","shape":[-1]}]}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		got.Store(string(body))
		// Triton's layout, but with nested data for y and 0/1 booleans
		// elsewhere, which some servers send.
		io.WriteString(w, `{"model_name":"m","model_version":"3","outputs":[
			{"name":"y","datatype":"INT64","shape":[2,2],"data":[[1,2],[3,4]]},
			{"name":"p","datatype":"FP64","shape":[2],"data":[0.25,1e-3]},
			{"name":"extra","datatype":"FP32","shape":[1],"data":[9]}]}`)
	}))
	defer srv.Close()
	h := load(t, srv.URL, "m", nil)
	if h.Version() != "20" {
		t.Errorf("Version() = %q; want the highest listed, 20", h.Version())
	}
	in := map[string]*tensor.Tensor{
		"x":  {DType: tensor.Float32, Shape: []int64{2, 2}, Data: []float32{0.1, -2, 3.5e10, 0}},
		"ok": {DType: tensor.Bool, Shape: []int64{2}, Data: []bool{true, false}},
	}
	out, version, err := h.InferVersion(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[0.1,-2,3.5e+10,0]},` +
		`{"name":"ok","shape":[2],"datatype":"BOOL","data":[true,false]}],"outputs":[{"name":"y"},{"name":"p"}]}`
	if got.Load() != want {
		t.Errorf("request body\n got %s\nwant %s", got.Load(), want)
	}
	if version != "3" {
		t.Errorf("InferVersion version = %q; want the reply's model_version 3", version)
	}
	if y := out["y"]; !slices.Equal(y.Data.([]int64), []int64{1, 2, 3, 4}) || !slices.Equal(y.Shape, []int64{2, 2}) {
		t.Errorf("y = %v %v", y.Shape, y.Data)
	}
	if p := out["p"]; !slices.Equal(p.Data.([]float64), []float64{0.25, 1e-3}) {
		t.Errorf("p = %v", p.Data)
	}
	if _, ok := out["extra"]; ok {
		t.Error("an output nobody asked for was passed on")
	}

	// JSON cannot carry NaN: a clear, non-retryable input error.
	in["x"].Data.([]float32)[0] = float32(nanValue())
	_, err = h.Infer(context.Background(), in)
	if !errors.Is(err, handlers.ErrInvalidInput) || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN input: error %v; want ErrInvalidInput mentioning NaN", err)
	}
}

func nanValue() float64 { var z float64; return z / z }

// TestBadReplies checks that a reply that does not match the metadata is
// an error naming the problem, never a panic or wrong data.
func TestBadReplies(t *testing.T) {
	replies := []struct{ name, body, want string }{
		{"missing output", `{"outputs":[]}`, `output "y" missing`},
		{"wrong dtype", `{"outputs":[{"name":"y","datatype":"FP64","shape":[1,4],"data":[1,2,3,4]}]}`, "is float64"},
		{"wrong batch", `{"outputs":[{"name":"y","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8]}]}`, "batch of 1"},
		{"short data", `{"outputs":[{"name":"y","datatype":"FP32","shape":[1,4],"data":[1,2,3]}]}`, "needs 4 elements"},
		{"strings", `{"outputs":[{"name":"y","datatype":"FP32","shape":[1,4],"data":["a","b","c","d"]}]}`, "cannot unmarshal"},
		{"truncated", `{"outputs":[{"name":"y"`, "decoding the reply"},
	}
	for _, c := range replies {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					io.WriteString(w, `{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]}`)
					return
				}
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			h := load(t, srv.URL, "m", nil)
			_, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"x": tensor.New(tensor.Float32, []int64{1, 4})})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one saying %q", err, c.want)
			}
		})
	}
}

func oneRow() map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}}}
}

func checkRow(t *testing.T, out map[string]*tensor.Tensor) {
	t.Helper()
	if y := out["y"].Data.([]float32); !slices.Equal(y, []float32{3, 5, 7, 9}) {
		t.Fatalf("y = %v; want 2x+1 = [3 5 7 9]", y)
	}
}

func noThrottle(o *remote.Options) { o.Throttle.Disabled = true }

func TestRetriesTransientFailures(t *testing.T) {
	for _, status := range []int{429, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			s := serve(t, affine())
			h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 5; noThrottle(o) })
			s.FailNext(3, status, "")
			out, err := h.Infer(context.Background(), oneRow())
			if err != nil {
				t.Fatalf("3 failures then success with 5 attempts: %v", err)
			}
			checkRow(t, out)
			if n := s.InferRequests(); n != 4 {
				t.Errorf("server saw %d requests; want 4", n)
			}
			if st := h.Stats(); st.Retries != 3 || st.Attempts != 5 { // 1 metadata + 4 infer
				t.Errorf("stats %+v; want 3 retries, 5 attempts", st)
			}
		})
	}
}

func TestGivesUp(t *testing.T) {
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 3; noThrottle(o) })
	s.Overload(http.StatusServiceUnavailable, "")
	_, err := h.Infer(context.Background(), oneRow())
	var se *remote.StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || !se.Temporary() {
		t.Fatalf("error %v; want a *StatusError 503", err)
	}
	for _, want := range []string{"model doubler", "giving up after 3 attempts", "HTTP 503 Service Unavailable", "remotetest: refusing as told", "/v2/models/doubler/infer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := s.InferRequests(); n != 3 {
		t.Errorf("server saw %d requests; want 3", n)
	}

	// Errors that retrying cannot fix are not retried.
	for _, status := range []int{400, 404, 500, 501} {
		before := s.InferRequests()
		s.FailNext(1, status, "")
		_, err := h.Infer(context.Background(), oneRow())
		if !errors.As(err, &se) || se.StatusCode != status || se.Temporary() {
			t.Errorf("status %d: error %v", status, err)
		}
		if n := s.InferRequests() - before; n != 1 {
			t.Errorf("status %d was sent %d times; want once, no retries", status, n)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 2; noThrottle(o); o.MaxRetryAfter = 5 * time.Second })

	s.FailNext(1, http.StatusTooManyRequests, "1")
	start := time.Now()
	out, err := h.Infer(context.Background(), oneRow())
	if err != nil {
		t.Fatal(err)
	}
	checkRow(t, out)
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v; the server asked for Retry-After: 1 (second)", d)
	}

	// Longer than MaxRetryAfter: give up at once.
	s.FailNext(1, http.StatusServiceUnavailable, "120")
	start = time.Now()
	_, err = h.Infer(context.Background(), oneRow())
	if err == nil || !strings.Contains(err.Error(), "asks to wait 2m0s") || time.Since(start) > time.Second {
		t.Errorf("Retry-After 120 with MaxRetryAfter 5s: error %v after %v; want an immediate error", err, time.Since(start))
	}

	// Beyond the caller's deadline: give up at once, with the server's error.
	s.FailNext(1, http.StatusServiceUnavailable, "3")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	_, err = h.Infer(ctx, oneRow())
	if err == nil || !strings.Contains(err.Error(), "would pass the deadline") || time.Since(start) > 500*time.Millisecond {
		t.Errorf("Retry-After past the deadline: error %v after %v", err, time.Since(start))
	}
}

func TestParseRetryAfterDate(t *testing.T) {
	// The HTTP-date form, through a server that sends one.
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 1 })
	s.FailNext(1, http.StatusServiceUnavailable, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	_, err := h.Infer(context.Background(), oneRow())
	var se *remote.StatusError
	if !errors.As(err, &se) || se.RetryAfter < 59*time.Minute || se.RetryAfter > time.Hour {
		t.Fatalf("error %v; want RetryAfter about 1h", err)
	}
}

func TestTimeout(t *testing.T) {
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) {
		o.Timeout = 50 * time.Millisecond
		o.MaxAttempts = 2
		noThrottle(o)
	})
	s.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := h.Infer(context.Background(), oneRow())
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms") || !strings.Contains(err.Error(), "2 attempts") {
		t.Errorf("error %v; want 2 attempts timed out after 50ms", err)
	}
	if elapsed > time.Second {
		t.Errorf("Infer took %v with a 50ms timeout and 2 attempts", elapsed)
	}

	// The caller's deadline bounds everything, whatever Timeout says.
	h = load(t, s.URL, "doubler", func(o *remote.Options) { o.Timeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = h.Infer(ctx, oneRow())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("with a 100ms context: error %v after %v", err, time.Since(start))
	}
	s.SetDelay(0)
}

// TestConnectionErrors retries requests the server hangs up on.
func TestConnectionErrors(t *testing.T) {
	s := serve(t, affine())
	var hangups atomic.Int64
	hangups.Store(2)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && hangups.Add(-1) >= 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		proxy(t, s.URL).ServeHTTP(w, r)
	}))
	defer front.Close()
	h := load(t, front.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 3; noThrottle(o) })
	out, err := h.Infer(context.Background(), oneRow())
	if err != nil {
		t.Fatalf("two hang-ups then success with 3 attempts: %v", err)
	}
	checkRow(t, out)

	// A server that is gone: the error says where and why.
	front.Close()
	_, err = h.Infer(context.Background(), oneRow())
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts") || !strings.Contains(err.Error(), front.URL) {
		t.Errorf("server gone: error %v", err)
	}
}

// TestThrottling overloads the server for several throttling windows and
// counts the requests that reach it against those the engine attempted:
// once the overload has lasted a window, nearly all are refused locally;
// without throttling, every one hits the server. When the server
// recovers, so does the client.
func TestThrottling(t *testing.T) {
	const window = 300 * time.Millisecond
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) {
		o.MaxAttempts = 1
		o.Throttle.Window = window
	})
	// Healthy: nothing throttled.
	for range 100 {
		if _, err := h.Infer(context.Background(), oneRow()); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.Stats(); st.Throttled != 0 || st.ThrottleProbability != 0 {
		t.Fatalf("healthy server, stats %+v", st)
	}

	// Sustained overload: calls at a steady pace for three windows.
	s.Overload(http.StatusServiceUnavailable, "")
	type call struct {
		at      time.Duration
		reached bool
	}
	var calls []call
	start := time.Now()
	for time.Since(start) < 3*window {
		before := s.InferRequests()
		_, err := h.Infer(context.Background(), oneRow())
		if err == nil {
			t.Fatal("an overloaded server answered")
		}
		reached := s.InferRequests() > before
		if reached == errors.Is(err, remote.ErrThrottled) {
			t.Fatalf("reached the server: %v, error: %v", reached, err)
		}
		calls = append(calls, call{time.Since(start), reached})
		time.Sleep(500 * time.Microsecond)
	}
	var total, reached, lastTotal, lastReached int
	for _, c := range calls {
		total++
		lastWindow := c.at >= 2*window
		if lastWindow {
			lastTotal++
		}
		if c.reached {
			reached++
			if lastWindow {
				lastReached++
			}
		}
	}
	t.Logf("overload for %v: %d calls, %d reached the server; in the last window %d of %d; p=%.2f",
		3*window, total, reached, lastReached, lastTotal, h.Stats().ThrottleProbability)
	if lastTotal < 50 {
		t.Fatalf("only %d calls in the last window: the test machine is too slow to tell", lastTotal)
	}
	if float64(lastReached) > 0.15*float64(lastTotal) {
		t.Errorf("after two windows of overload, %d of %d calls still reached the server; throttling should stop most", lastReached, lastTotal)
	}
	if float64(reached) > 0.5*float64(total) {
		t.Errorf("%d of %d calls reached an overloaded server", reached, total)
	}
	if lastReached == 0 {
		t.Errorf("no call reached the server in the last window; some must, to notice recovery")
	}

	// Recovery: once the server is healthy, within about one window every
	// call goes through again.
	s.Recover()
	start = time.Now()
	streak := 0
	for streak < 50 {
		if time.Since(start) > 5*window {
			t.Fatalf("not recovered after %v (p=%.2f)", time.Since(start), h.Stats().ThrottleProbability)
		}
		if _, err := h.Infer(context.Background(), oneRow()); err != nil {
			streak = 0
			time.Sleep(time.Millisecond)
			continue
		}
		streak++
	}
	t.Logf("recovered: 50 successes in a row after %v", time.Since(start).Round(time.Millisecond))

	// Without throttling, every call hammers the overloaded server.
	h2 := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 1; noThrottle(o) })
	s.Overload(http.StatusServiceUnavailable, "")
	before := s.InferRequests()
	for range 100 {
		h2.Infer(context.Background(), oneRow())
	}
	if n := s.InferRequests() - before; n != 100 {
		t.Errorf("throttling off: %d of 100 calls reached the server", n)
	}
}

// TestThrottlingConcurrentOverload: many goroutines against a server that
// refuses everything, as a pipeline with several batches in flight would
// see it.
func TestThrottlingConcurrentOverload(t *testing.T) {
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 3; o.Throttle.Window = time.Second })
	s.Overload(http.StatusTooManyRequests, "")
	var wg sync.WaitGroup
	var attempted atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 50 {
				attempted.Add(1)
				if _, err := h.Infer(context.Background(), oneRow()); err == nil {
					t.Error("an overloaded server answered")
					return
				}
			}
		})
	}
	wg.Wait()
	st := h.Stats()
	reached := s.InferRequests()
	t.Logf("%d calls, %d attempts (%d throttled locally), %d reached the server", attempted.Load(), st.Attempts-1, st.Throttled, reached)
	if reached > (st.Attempts-1)/3 {
		t.Errorf("%d of %d attempts reached the overloaded server", reached, st.Attempts-1)
	}
}

func TestClose(t *testing.T) {
	s := serve(t, affine())
	h := load(t, s.URL, "doubler", func(o *remote.Options) { o.MaxAttempts = 100; noThrottle(o); o.BackoffBase = 50 * time.Millisecond })
	s.Overload(503, "")
	errc := make(chan error)
	go func() {
		_, err := h.Infer(context.Background(), oneRow())
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	h.Close() // stops the retries
	if err := <-errc; !errors.Is(err, handlers.ErrClosed) {
		t.Errorf("Infer retrying during Close: %v; want ErrClosed", err)
	}
	if _, err := h.Infer(context.Background(), oneRow()); !errors.Is(err, handlers.ErrClosed) {
		t.Errorf("Infer after Close: %v", err)
	}
}

func TestOpen(t *testing.T) {
	var token atomic.Value
	s := serve(t, affine())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token.Store(r.Header.Get("Authorization"))
		proxy(t, s.URL).ServeHTTP(w, r)
	}))
	defer front.Close()
	spec := handlers.Spec{
		Name: "doubler", URL: front.URL,
		Options: map[string]string{"timeout": "2s", "max_attempts": "2", "binary": "true", "header.Authorization": "Bearer abc"},
		Logger:  quietLogger(t),
	}
	h, err := handlers.Open(context.Background(), remote.Kind, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	out, err := h.Infer(context.Background(), oneRow())
	if err != nil {
		t.Fatal(err)
	}
	checkRow(t, out)
	if token.Load() != "Bearer abc" {
		t.Errorf("Authorization header %q", token.Load())
	}
	if !slices.Contains(handlers.Kinds(), "remote") || !slices.Contains(handlers.Kinds(), "onnx") {
		t.Errorf("Kinds() = %v", handlers.Kinds())
	}

	for _, c := range []struct {
		spec handlers.Spec
		want string
	}{
		{handlers.Spec{Name: "m", URL: s.URL, Options: map[string]string{"timout": "1s"}}, "unknown option timout"},
		{handlers.Spec{Name: "m", URL: s.URL, Options: map[string]string{"timeout": "soon"}}, `option timeout: "soon" is not a duration`},
		{handlers.Spec{Name: "m"}, "no url"},
		{handlers.Spec{Name: "m", URL: s.URL, Path: "model.onnx"}, "use kind onnx"},
		{handlers.Spec{Name: "m", URL: s.URL, Provider: "cuda"}, "the server decides"},
		{handlers.Spec{Name: "nosuch", URL: s.URL}, "HTTP 404"},
	} {
		h, err := handlers.Open(context.Background(), remote.Kind, c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, %v; want an error saying %q", c.spec, h, err, c.want)
		}
	}
}

func TestStatusErrorMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]}`)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, strings.Repeat("not json ", 200))
	}))
	defer srv.Close()
	h := load(t, srv.URL, "m", nil)
	_, err := h.Infer(context.Background(), map[string]*tensor.Tensor{"x": tensor.New(tensor.Float32, []int64{1, 4})})
	var se *remote.StatusError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Message, "not json") || len(se.Message) > 600 {
		t.Fatalf("error %v", err)
	}
}

// TestHostHeader: header.Host reaches the server as the request's Host
// (KServe's ingress routes on it), which a plain header would not.
func TestHostHeader(t *testing.T) {
	s := serve(t, affine())
	var hosts sync.Map
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Method, r.Host)
		proxy(t, s.URL).ServeHTTP(w, r)
	}))
	defer front.Close()
	h := load(t, front.URL, "doubler", func(o *remote.Options) {
		o.Headers = map[string]string{"host": "doubler.models.example.com"}
	})
	if _, err := h.Infer(context.Background(), oneRow()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if got, _ := hosts.Load(m); got != "doubler.models.example.com" {
			t.Errorf("%s: Host %v; want doubler.models.example.com", m, got)
		}
	}
}

// TestMLServerReplies pins what the handler makes of MLServer's ways, as
// MLServer 1.7.1 answered (TestIntegrationMLServer checks them against
// the real server): 1-D outputs come back with a trailing dim of 1, NaN
// comes back as null, and requests it cannot parse get FastAPI's
// {"detail": [...]}.
func TestMLServerReplies(t *testing.T) {
	var reply atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"name":"classifier","versions":["1"],"platform":"scikit-learn",
				"inputs":[{"name":"features","datatype":"FP32","shape":[-1,4]}],
				"outputs":[{"name":"predict","datatype":"INT64","shape":[-1]},{"name":"predict_proba","datatype":"FP32","shape":[-1,3]}],
				"parameters":{}}`)
			return
		}
		rep := reply.Load().([2]string)
		w.Header().Set("Content-Type", "application/json")
		status, _ := strconv.Atoi(rep[0])
		w.WriteHeader(status)
		io.WriteString(w, rep[1])
	}))
	defer srv.Close()
	h := load(t, srv.URL, "classifier", nil)
	two := map[string]*tensor.Tensor{"features": tensor.New(tensor.Float32, []int64{2, 4})}

	reply.Store([2]string{"200", `{"model_name":"classifier","model_version":"1","id":"1","parameters":{},"outputs":[
		{"name":"predict","shape":[2,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[0,1]},
		{"name":"predict_proba","shape":[2,3],"datatype":"FP32","parameters":{"content_type":"np"},
		 "data":[0.8423750996589661,null,0.032215528190135956,0.00004276092295185663,0.9999572038650513,2.311614455408062e-9]}]}`})
	out, err := h.Infer(context.Background(), two)
	if err != nil {
		t.Fatal(err)
	}
	if p := out["predict"]; !slices.Equal(p.Shape, []int64{2}) || !slices.Equal(p.Data.([]int64), []int64{0, 1}) {
		t.Errorf("predict = %v %v; want [0 1] of shape [2], as declared", p.Shape, p.Data)
	}
	proba := out["predict_proba"].Data.([]float32)
	if proba[0] != 0.8423750996589661 || !math.IsNaN(float64(proba[1])) || proba[5] != 2.311614455408062e-9 {
		t.Errorf("predict_proba = %v; want null read as NaN, numbers exact", proba)
	}

	for _, c := range []struct{ name, status, body, want string }{
		{"null label", "200", `{"outputs":[{"name":"predict","shape":[2],"datatype":"INT64","data":[0,null]},
			{"name":"predict_proba","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}`, "element 1 is null, which int64 data cannot hold"},
		{"trailing dim not 1", "200", `{"outputs":[{"name":"predict","shape":[1,2],"datatype":"INT64","data":[0,1]},
			{"name":"predict_proba","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}`, `output "predict"`},
		{"fastapi detail", "422", `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary","input":"..."}]}`,
			"HTTP 422 Unprocessable Entity: body: Input should be a valid dictionary"},
		{"fastapi detail string", "404", `{"detail":"Not Found"}`, "HTTP 404 Not Found: Not Found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reply.Store([2]string{c.status, c.body})
			_, err := h.Infer(context.Background(), two)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one saying %q", err, c.want)
			}
		})
	}
}

// proxy forwards requests to target.
func proxy(t testing.TB, target string) *httputil.ReverseProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}
