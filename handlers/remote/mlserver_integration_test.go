//go:build linux

package remote_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/remote"
	"github.com/kinfer/kinfer/tensor"
)

// The tests here run the remote handler against a real Open Inference
// Protocol server: MLServer 1.7.1 with its scikit-learn runtime, serving
// testdata/mlserver/models (a scikit-learn classifier made by
// testdata/mlserver/make_model.py, and "faulty", a custom runtime that
// refuses or stalls requests when told to). scripts/mlserver.sh installs
// MLServer; make test runs it first.

// envMLServer overrides where the mlserver executable is.
const envMLServer = "KINFER_MLSERVER"

// mlserverStartTimeout bounds MLServer's start-up (about 5 s on an idle
// 2-core machine; much more when the machine is busy).
const mlserverStartTimeout = 120 * time.Second

// mlserverExecutable finds MLServer: $KINFER_MLSERVER, else the venv that
// scripts/mlserver.sh makes. Without it the test is skipped, except under
// CI=true, where it fails: CI must run the tests against the real server.
func mlserverExecutable(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envMLServer); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", envMLServer, p, err)
		}
		return p
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cmp.Or(os.Getenv("KINFER_CACHE"), filepath.Join(root, ".cache")), "mlserver-venv", "bin", "mlserver")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("MLServer is not installed (run `bash scripts/mlserver.sh`, or set %s): %v", envMLServer, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	return p
}

// mlserver is a running MLServer.
type mlserver struct {
	URL string
	log string // its stdout and stderr
}

// startMLServer starts MLServer on free loopback ports, serving a copy of
// testdata/mlserver/models, waits until it and its models are ready, and
// stops it (its whole process group) at the end of the test.
func startMLServer(t *testing.T) *mlserver {
	t.Helper()
	exe := mlserverExecutable(t)
	// The ports are free when picked but not reserved; if MLServer loses
	// one to another process, it exits and we try again.
	var errs []error
	for try := 1; try <= 3; try++ {
		s, err := tryStartMLServer(t, exe)
		if err == nil {
			return s
		}
		errs = append(errs, fmt.Errorf("try %d: %w", try, err))
		var exited *mlserverExited
		if !errors.As(err, &exited) {
			break
		}
	}
	t.Fatalf("starting MLServer (%s): %v", exe, errors.Join(errs...))
	return nil
}

// mlserverExited is the error of a start whose server exited before it
// was ready.
type mlserverExited struct{ err error }

func (e *mlserverExited) Error() string { return fmt.Sprintf("MLServer exited: %v", e.err) }

func tryStartMLServer(t *testing.T, exe string) (*mlserver, error) {
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.CopyFS(models, os.DirFS(filepath.Join("..", "..", "testdata", "mlserver", "models"))); err != nil {
		return nil, err
	}
	httpPort, grpcPort := freePort(t), freePort(t)
	settings := map[string]any{
		"host":      "127.0.0.1",
		"http_port": httpPort,
		"grpc_port": grpcPort, // MLServer 1.7.1 always serves gRPC too
		// No metrics server (it would need a third port), and models run
		// in the server's own process: no worker pool to start, 2 cores
		// left to the tests.
		"metrics_endpoint": nil,
		"parallel_workers": 0,
		"debug":            false,
		"metrics_dir":      filepath.Join(dir, "metrics"),
		"environments_dir": filepath.Join(dir, "envs"),
	}
	js, err := json.Marshal(settings)
	if err != nil {
		return nil, err
	}
	// `mlserver start DIR` reads DIR/settings.json and loads every
	// DIR/**/model-settings.json.
	if err := os.WriteFile(filepath.Join(models, "settings.json"), js, 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "mlserver.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	cmd := exec.Command(exe, "start", models)
	cmd.Dir = dir // MLServer reads .env from its working directory
	for _, kv := range os.Environ() {
		// MLSERVER_* and MLSERVER_MODEL_* variables override settings.
		if !strings.HasPrefix(kv, "MLSERVER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that stopping it stops anything it
	// started; and killed with the test binary, should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	s := &mlserver{URL: "http://127.0.0.1:" + strconv.Itoa(httpPort), log: logPath}

	deadline := time.After(mlserverStartTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ready := false; !ready; {
		select {
		case err := <-exited:
			return nil, &mlserverExited{fmt.Errorf("%v; log:\n%s", err, tail(logPath, 30))}
		case <-deadline:
			stop()
			return nil, fmt.Errorf("not ready after %v; log:\n%s", mlserverStartTimeout, tail(logPath, 30))
		case <-tick.C:
			ready = httpOK(s.URL+"/v2/health/ready") &&
				httpOK(s.URL+"/v2/models/classifier/ready") && httpOK(s.URL+"/v2/models/faulty/ready")
		}
	}
	t.Logf("MLServer ready at %s after %v", s.URL, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("MLServer log (last lines):\n%s", tail(logPath, 40))
		}
	})
	return s, nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpOK(u string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

var classifierFixture = filepath.Join("..", "..", "testdata", "mlserver", "models", "classifier", "expected.json")

// TestIntegrationMLServer runs the remote handler against one MLServer
// started for it.
func TestIntegrationMLServer(t *testing.T) {
	s := startMLServer(t)
	t.Run("Metadata", func(t *testing.T) { testMLServerMetadata(t, s) })
	t.Run("Predictions", func(t *testing.T) { testMLServerPredictions(t, s) })
	t.Run("Conformance", func(t *testing.T) {
		handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
			return load(t, s.URL, "classifier", nil)
		}, handlertest.Features{Fixture: classifierFixture, DynamicBatch: true})
	})
	t.Run("NaN", func(t *testing.T) {
		// MLServer writes NaN as null; the handler must read NaN back, not 0.
		h := load(t, s.URL, "faulty", nil)
		in := faultyRows(nonces.Add(1), 3, 0, 0, 0)
		in["x"].Data.([]float32)[4*1+3] = -1 // row 1 of y: NaN
		out, err := h.Infer(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		answeredAfter(t, in, out)
	})
	t.Run("Overload", func(t *testing.T) { testMLServerOverload(t, s) })
	t.Run("Errors", func(t *testing.T) { testMLServerErrors(t, s) })
	t.Run("Throttling", func(t *testing.T) { testMLServerThrottling(t, s) })
	t.Run("Timeout", func(t *testing.T) { testMLServerTimeout(t, s) })
}

func testMLServerMetadata(t *testing.T, s *mlserver) {
	h := load(t, s.URL, "classifier", nil)
	want := struct{ inputs, outputs []handlers.TensorSpec }{
		[]handlers.TensorSpec{{Name: "features", DType: tensor.Float32, Shape: []int64{-1, 4}}},
		[]handlers.TensorSpec{
			{Name: "predict", DType: tensor.Int64, Shape: []int64{-1}},
			{Name: "predict_proba", DType: tensor.Float32, Shape: []int64{-1, 3}},
		},
	}
	if err := handlers.SameSpecs("inputs", h.Inputs(), want.inputs); err != nil {
		t.Error(err)
	}
	if err := handlers.SameSpecs("outputs", h.Outputs(), want.outputs); err != nil {
		t.Error(err)
	}
	if h.Name() != "classifier" || h.Version() != "1" || h.Platform() != "scikit-learn" {
		t.Errorf("name %q version %q platform %q; want classifier, 1 (model-settings.json's versions) and scikit-learn",
			h.Name(), h.Version(), h.Platform())
	}
	if err := h.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}

	// A pinned version goes into the URLs.
	h = load(t, s.URL, "classifier", func(o *remote.Options) { o.ModelVersion = "1"; o.Name = "clf" })
	if h.Name() != "clf" || h.Version() != "1" {
		t.Errorf("pinned: name %q version %q", h.Name(), h.Version())
	}
	if err := h.Ready(context.Background()); err != nil {
		t.Errorf("pinned: Ready: %v", err)
	}
	out, version, err := h.InferVersion(context.Background(), mustStack(t, fixtureRows(t, h)[:2]))
	if err != nil || version != "1" || out["predict"] == nil {
		t.Errorf("pinned: InferVersion = %v, %q, %v", out, version, err)
	}

	// What MLServer says about models it does not have.
	for _, c := range []struct {
		model, version, want string
	}{
		{"nosuch", "", "HTTP 404 Not Found: Model nosuch not found"},
		{"classifier", "7", "HTTP 404 Not Found: Model classifier with version 7 not found"},
	} {
		_, err := remote.Load(context.Background(), remote.Options{
			URL: s.URL, Model: c.model, ModelVersion: c.version, MaxAttempts: 1, Logger: quietLogger(t),
		})
		var se *remote.StatusError
		if !errors.As(err, &se) || se.Temporary() || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%s, version %q) = %v; want a permanent error saying %q", c.model, c.version, err, c.want)
		}
	}

	// Through the registry, as pipeline.yaml opens it.
	m, err := handlers.Open(context.Background(), remote.Kind, handlers.Spec{
		Name: "scorer", URL: s.URL,
		Options: map[string]string{"model": "classifier", "timeout": "5s", "max_attempts": "2"},
		Logger:  quietLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Name() != "scorer" || m.Version() != "1" {
		t.Errorf("Open: name %q version %q", m.Name(), m.Version())
	}
}

// fixture reads the classifier's rows and scikit-learn's outputs.
func fixture(t *testing.T, h handlers.ModelHandler) *handlertest.Fixture {
	t.Helper()
	fx, err := handlertest.LoadFixture(classifierFixture, h.Inputs(), h.Outputs())
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

func fixtureRows(t *testing.T, h handlers.ModelHandler) []map[string]*tensor.Tensor {
	return fixture(t, h).Inputs
}

// mustStack makes one batch of rows.
func mustStack(t *testing.T, rows []map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	t.Helper()
	b := map[string]*tensor.Tensor{}
	for name := range rows[0] {
		ts := make([]*tensor.Tensor, len(rows))
		for i, r := range rows {
			ts[i] = r[name]
		}
		x, err := tensor.Stack(ts)
		if err != nil {
			t.Fatal(err)
		}
		b[name] = x
	}
	return b
}

// testMLServerPredictions compares MLServer's answers, through the
// handler, with scikit-learn's own predictions for the same rows.
func testMLServerPredictions(t *testing.T, s *mlserver) {
	h := load(t, s.URL, "classifier", nil)
	fx := fixture(t, h)
	n := len(fx.Inputs)
	start := time.Now()
	out, err := h.Infer(context.Background(), mustStack(t, fx.Inputs))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	labels, proba := out["predict"], out["predict_proba"]
	if labels == nil || proba == nil {
		t.Fatalf("outputs %v; want predict and predict_proba", out)
	}
	if want := []int64{int64(n)}; !slices.Equal(labels.Shape, want) {
		t.Errorf("predict shape %v; want %v", labels.Shape, want)
	}
	if want := []int64{int64(n), 3}; !slices.Equal(proba.Shape, want) {
		t.Errorf("predict_proba shape %v; want %v", proba.Shape, want)
	}
	var maxDiff float64
	mismatched := 0
	for i := range n {
		if got, want := labels.Data.([]int64)[i], fx.Outputs[i]["predict"].Data.([]int64)[0]; got != want {
			mismatched++
			t.Errorf("row %d: label %d; scikit-learn says %d", i, got, want)
		}
		for j, want := range fx.Outputs[i]["predict_proba"].Data.([]float32) {
			got := proba.Data.([]float32)[3*i+j]
			maxDiff = max(maxDiff, math.Abs(float64(got)-float64(want)))
		}
	}
	if maxDiff > 1e-5 {
		t.Errorf("predict_proba differs from scikit-learn's by up to %g; want at most 1e-5", maxDiff)
	}
	t.Logf("%d rows in one request (%v): %d labels differ, predict_proba max |diff| %g", n, took.Round(time.Millisecond), mismatched, maxDiff)

	// The binary tensor data extension is Triton's and KServe's; MLServer's
	// REST server does not read it, and says so with a 4xx that is not
	// retried.
	bin := load(t, s.URL, "classifier", func(o *remote.Options) { o.Binary = true })
	_, err = bin.Infer(context.Background(), mustStack(t, fx.Inputs[:1]))
	var se *remote.StatusError
	if !errors.As(err, &se) || se.StatusCode/100 != 4 || handlers.IsTransient(err) {
		t.Errorf("binary against MLServer: %v; want a permanent 4xx", err)
	} else {
		t.Logf("binary against MLServer: %v", err)
	}
	if st := bin.Stats(); st.Retries != 0 {
		t.Errorf("binary: %d retries of a 4xx", st.Retries)
	}
}

// nonces tell the faulty model's requests apart across the client's
// retries (see testdata/mlserver/models/faulty/faulty.py).
var nonces atomic.Int64

// faultyRows is a request to the faulty model: refuse its first refuse
// attempts with status (0: 503; negative refuse: every attempt), then
// answer after delay.
func faultyRows(nonce int64, rows int, refuse float32, status int, delay time.Duration) map[string]*tensor.Tensor {
	x := make([]float32, 0, 4*rows)
	for range rows {
		x = append(x, float32(nonce), refuse, float32(status), float32(delay.Seconds()))
	}
	return map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{int64(rows), 4}, Data: x}}
}

// answeredAfter returns the attempt the faulty model answered, and checks
// that it echoed the request (NaN in rows with a negative delay).
func answeredAfter(t *testing.T, in, out map[string]*tensor.Tensor) int64 {
	t.Helper()
	y, attempts := out["y"], out["attempts"]
	if y == nil || attempts == nil {
		t.Fatalf("outputs %v; want y and attempts", out)
	}
	if !slices.Equal(y.Shape, in["x"].Shape) {
		t.Fatalf("y has shape %v; want the input's %v", y.Shape, in["x"].Shape)
	}
	x := in["x"].Data.([]float32)
	got := y.Data.([]float32)
	for i, want := range x {
		if x[i/4*4+3] < 0 {
			if !math.IsNaN(float64(got[i])) {
				t.Fatalf("y[%d] = %v; want NaN (MLServer writes it as null)", i, got[i])
			}
		} else if got[i] != want {
			t.Fatalf("y[%d] = %v; want the input's %v", i, got[i], want)
		}
	}
	return attempts.Data.([]int64)[0]
}

// testMLServerOverload: the server refuses the first attempts of a request
// with 503 or 429; the handler retries with backoff and gets the answer,
// or gives up after MaxAttempts with a transient error.
func testMLServerOverload(t *testing.T, s *mlserver) {
	for _, status := range []int{503, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := load(t, s.URL, "faulty", func(o *remote.Options) {
				o.MaxAttempts = 4
				o.BackoffBase, o.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
				noThrottle(o)
			})
			in := faultyRows(nonces.Add(1), 3, 2, status, 0)
			out, err := h.Infer(context.Background(), in)
			if err != nil {
				t.Fatalf("2 refusals then an answer, with 4 attempts: %v", err)
			}
			if n := answeredAfter(t, in, out); n != 3 {
				t.Errorf("answered attempt %d; want 3", n)
			}
			if st := h.Stats(); st.Retries != 2 || st.Attempts != 4 { // 1 metadata + 3 infer
				t.Errorf("stats %+v; want 2 retries, 4 attempts", st)
			}
			t.Logf("%d twice, then answered: stats %+v", status, h.Stats())

			// More refusals than attempts: a transient error naming the
			// server's status and message, after exactly MaxAttempts.
			nonce := nonces.Add(1)
			_, err = h.Infer(context.Background(), faultyRows(nonce, 1, 10, status, 0))
			var se *remote.StatusError
			if !errors.As(err, &se) || se.StatusCode != status || !handlers.IsTransient(err) {
				t.Fatalf("error %v; want a transient *StatusError %d", err, status)
			}
			for _, want := range []string{"model faulty", "giving up after 4 attempts", "faulty: refusing attempt 4 of request", "/v2/models/faulty/infer"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			// The server saw 4 attempts of that request: the next is its 5th.
			in = faultyRows(nonce, 1, 4, status, 0)
			if out, err := h.Infer(context.Background(), in); err != nil {
				t.Error(err)
			} else if n := answeredAfter(t, in, out); n != 5 {
				t.Errorf("the server had seen %d attempts; want 4", n-1)
			}
		})
	}
}

// testMLServerErrors: errors that retrying cannot fix are not retried.
func testMLServerErrors(t *testing.T, s *mlserver) {
	h := load(t, s.URL, "faulty", func(o *remote.Options) { o.MaxAttempts = 4 })
	for _, status := range []int{400, 500} {
		nonce := nonces.Add(1)
		_, err := h.Infer(context.Background(), faultyRows(nonce, 1, 1, status, 0))
		var se *remote.StatusError
		if !errors.As(err, &se) || se.StatusCode != status || handlers.IsTransient(err) ||
			!strings.Contains(err.Error(), "faulty: refusing attempt 1") {
			t.Errorf("status %d: error %v; want a permanent *StatusError with the server's message", status, err)
		}
		in := faultyRows(nonce, 1, 1, status, 0)
		if out, err := h.Infer(context.Background(), in); err != nil {
			t.Errorf("status %d: %v", status, err)
		} else if n := answeredAfter(t, in, out); n != 2 {
			t.Errorf("status %d was sent %d times; want once", status, n-1)
		}
	}
	if st := h.Stats(); st.Retries != 0 {
		t.Errorf("%d retries; want none", st.Retries)
	}
}

// testMLServerThrottling: while the server refuses everything, adaptive
// throttling keeps most attempts from reaching it; when it recovers, so
// does the handler.
func testMLServerThrottling(t *testing.T, s *mlserver) {
	const window = 4 * time.Second
	h := load(t, s.URL, "faulty", func(o *remote.Options) {
		o.MaxAttempts = 1
		o.Throttle.Window = window
	})
	// Every overloaded request shares one nonce, so the server's count of
	// them is the number that reached it.
	overload := nonces.Add(1)
	const calls = 100
	throttled := 0
	for range calls {
		_, err := h.Infer(context.Background(), faultyRows(overload, 1, -1, 503, 0))
		if err == nil || !handlers.IsTransient(err) {
			t.Fatalf("overloaded: error %v; want a transient one", err)
		}
		if errors.Is(err, remote.ErrThrottled) {
			throttled++
			if !errors.Is(err, handlers.ErrUnavailable) {
				t.Errorf("throttled: %v does not wrap handlers.ErrUnavailable", err)
			}
		}
	}
	in := faultyRows(overload, 1, 0, 503, 0)
	var reached int64
	for start := time.Now(); ; {
		// The overloaded requests' own nonce, now to be answered: the
		// answer counts the attempts that reached the server.
		out, err := h.Infer(context.Background(), in)
		if err == nil {
			reached = answeredAfter(t, in, out) - 1
			break
		}
		if !errors.Is(err, remote.ErrThrottled) || time.Since(start) > 2*window {
			t.Fatalf("after the overload: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := h.Stats()
	t.Logf("%d overloaded calls: %d reached MLServer, %d refused locally; stats %+v", calls, reached, throttled, st)
	if throttled == 0 || reached+int64(throttled) != calls {
		t.Errorf("%d calls: %d reached the server, %d throttled; want all accounted for, some throttled", calls, reached, throttled)
	}
	if reached > calls/2 {
		t.Errorf("%d of %d overloaded calls reached the server; throttling should have kept most away", reached, calls)
	}

	// Recovered: within a window or so, every request goes through again.
	start := time.Now()
	deadline := start.Add(3 * window)
	before := h.Stats().Throttled
	for ok := 0; ok < 20; {
		_, err := h.Infer(context.Background(), faultyRows(nonces.Add(1), 1, 0, 0, 0))
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, remote.ErrThrottled):
			t.Fatalf("recovering: %v", err)
		case time.Now().After(deadline):
			t.Fatalf("still throttled %v after the server recovered (probability %.2f)", 3*window, h.Stats().ThrottleProbability)
		default:
			ok = 0
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("recovered: 20 answers in a row %v after the overload ended, %d attempts refused locally meanwhile",
		time.Since(start).Round(time.Millisecond), h.Stats().Throttled-before)
}

// testMLServerTimeout: a request slower than Timeout fails within the
// bound with a transient timeout error, and the handler goes on working.
func testMLServerTimeout(t *testing.T, s *mlserver) {
	const timeout = 300 * time.Millisecond
	h := load(t, s.URL, "faulty", func(o *remote.Options) {
		o.Timeout = timeout
		o.MaxAttempts = 2
		o.BackoffBase, o.BackoffMax = 10*time.Millisecond, 10*time.Millisecond
		noThrottle(o)
	})
	start := time.Now()
	_, err := h.Infer(context.Background(), faultyRows(nonces.Add(1), 2, 0, 0, 3*time.Second))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !handlers.IsTransient(err) ||
		!strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "2 attempts") {
		t.Errorf("error %v; want 2 attempts that timed out after 300ms", err)
	}
	// 2 attempts of 300ms and a 10ms backoff; the rest is slack for a
	// busy machine.
	if took < 2*timeout || took > 2*timeout+time.Second {
		t.Errorf("Infer took %v; want about 2 x %v", took, timeout)
	}
	t.Logf("3s request, Timeout %v, 2 attempts: failed after %v: %v", timeout, took.Round(time.Millisecond), err)

	// The handler (and its connections) still work, for fast requests and
	// for slow ones within Timeout.
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		in := faultyRows(nonces.Add(1), 2, 0, 0, delay)
		out, err := h.Infer(context.Background(), in)
		if err != nil {
			t.Fatalf("after the timeout, a request taking %v: %v", delay, err)
		}
		if n := answeredAfter(t, in, out); n != 1 {
			t.Errorf("answered attempt %d; want 1", n)
		}
	}

	// The caller's deadline bounds the call, whatever Timeout says.
	h = load(t, s.URL, "faulty", func(o *remote.Options) { o.Timeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = h.Infer(ctx, faultyRows(nonces.Add(1), 1, 0, 0, 3*time.Second))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("with a 200ms context: error %v after %v", err, time.Since(start))
	}
}
