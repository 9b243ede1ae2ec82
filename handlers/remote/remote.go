// Package remote runs models served elsewhere through the Open Inference
// Protocol (KServe v2) REST API, which Triton, MLServer, TorchServe,
// KServe and Seldon speak, so that such models join the model graph like
// local ones.
//
// Load reads the model's metadata (GET /v2/models/{name}) into
// TensorSpecs; Infer checks a batch against them and POSTs it to
// /v2/models/{name}/infer as JSON, or with the binary tensor data
// extension when Options.Binary is set. Each attempt has a timeout;
// failed attempts (429, 502, 503, 504, connection errors, timeouts) are
// retried with exponential backoff and jitter, honouring Retry-After;
// and when the server is overloaded, adaptive client-side throttling
// (see ThrottleOptions) refuses part of the requests locally so that the
// server can recover.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// ErrThrottled is wrapped by the error of an Infer call whose last
// attempt was refused locally by adaptive throttling (see
// ThrottleOptions): the server has been refusing most requests lately.
// The batch is fine; the engine should retry it later, not dead-letter
// it.
var ErrThrottled = fmt.Errorf("refused locally by adaptive throttling: the server is overloaded (%w)", handlers.ErrUnavailable)

// Options configure a remote model. The zero value of every field except
// URL and Model means "use the default" given in its comment.
type Options struct {
	// URL is the server's base URL, e.g. "http://triton:8000"; the v2
	// paths are appended to it. Required.
	URL string
	// Model is the model's name on the server. Required.
	Model string
	// ModelVersion pins the server-side version: requests go to
	// /v2/models/{Model}/versions/{ModelVersion}/... Default "": the
	// server picks (its version policy, usually the latest).
	ModelVersion string
	// Name identifies the model in predictions and logs. Default: Model.
	Name string
	// Version is what Version reports and what predictions are stamped
	// with. Default: ModelVersion, else the highest version the metadata
	// lists, else "unknown"; and, without Version set, InferVersion
	// reports the model_version of each reply when the server sends one.
	Version string
	// Timeout bounds one attempt: connecting, sending and reading the
	// whole reply. Default 10s. The context given to Infer bounds all
	// attempts and waits together.
	Timeout time.Duration
	// MaxAttempts is how many times one batch is sent at most. Default 4;
	// 1 means no retries.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the wait before retry n (n = 1,
	// 2, ...): uniform in [0, min(BackoffMax, BackoffBase*2^(n-1))] ("full
	// jitter", so that clients that failed together do not retry
	// together), or the server's Retry-After when that is longer. Defaults
	// 50ms and 2s.
	BackoffBase, BackoffMax time.Duration
	// MaxRetryAfter is the longest Retry-After the handler waits for; a
	// longer one (or one beyond the context's deadline) ends the call at
	// once with the server's error. Default 30s.
	MaxRetryAfter time.Duration
	// Throttle configures adaptive client-side throttling; on by default.
	Throttle ThrottleOptions
	// Concurrency caps the requests in flight at once; further Infer calls
	// wait (as long as their context allows). Default 0: no cap (the
	// engine's batcher bounds them).
	Concurrency int
	// Binary sends and asks for tensor data with the binary tensor data
	// extension (Triton, KServe's Python server; not MLServer, which
	// answers 422) instead of JSON arrays:
	// smaller, faster, and able to carry NaN and infinities. Default
	// false: JSON, which every server speaks.
	Binary bool
	// Headers are added to every request (e.g. Authorization; Host sets
	// the request's host, as KServe's ingress routes on it).
	Headers map[string]string
	// Client sends the requests. Default: a client whose transport keeps
	// up to 256 idle connections per host (net/http's default of 2 makes
	// concurrent batches reconnect all the time).
	Client *http.Client
	// MaxReplyBytes bounds a reply body. Default 256 MiB.
	MaxReplyBytes int64
	// Logger receives load-time information and retry warnings. Default
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Model == "" {
		return o, errors.New("remote: Options.Model is empty: no model to call")
	}
	if o.Name == "" {
		o.Name = o.Model
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("remote: model %s: URL %q is not an http:// or https:// base URL", o.Name, o.URL)
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 4
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = 50 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 2 * time.Second
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	if o.MaxReplyBytes == 0 {
		o.MaxReplyBytes = 256 << 20
	}
	switch {
	case o.Timeout < 0:
		return o, fmt.Errorf("remote: model %s: Timeout is %v; want a positive duration (0 means 10s)", o.Name, o.Timeout)
	case o.MaxAttempts < 0:
		return o, fmt.Errorf("remote: model %s: MaxAttempts is %d; want 1 or more (0 means 4)", o.Name, o.MaxAttempts)
	case o.BackoffBase < 0 || o.BackoffMax < 0 || o.MaxRetryAfter < 0:
		return o, fmt.Errorf("remote: model %s: negative backoff setting", o.Name)
	case o.Concurrency < 0:
		return o, fmt.Errorf("remote: model %s: Concurrency is %d; want 0 (no cap) or more", o.Name, o.Concurrency)
	case o.MaxReplyBytes < 0:
		return o, fmt.Errorf("remote: model %s: MaxReplyBytes is %d", o.Name, o.MaxReplyBytes)
	case !o.Throttle.Disabled && o.Throttle.K != 0 && o.Throttle.K < 1:
		return o, fmt.Errorf("remote: model %s: Throttle.K is %v; want 1 or more (0 means 2)", o.Name, o.Throttle.K)
	case o.Throttle.Padding < 0 || o.Throttle.Window < 0:
		return o, fmt.Errorf("remote: model %s: negative Throttle setting", o.Name)
	}
	if o.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		tr.MaxIdleConns = 256
		o.Client = &http.Client{Transport: tr}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Handler is one model on a server. It implements handlers.ModelHandler
// and handlers.VersionInferer and is safe for concurrent use.
type Handler struct {
	opts            Options
	base            string // URL up to and including the model (and version)
	version         string
	platform        string
	inputs, outputs []handlers.TensorSpec
	throttle        *throttle
	sem             chan struct{} // nil without Options.Concurrency
	ids             atomic.Uint64

	stats struct {
		attempts, throttled, retries atomic.Int64
	}

	mu       sync.Mutex
	closed   bool
	inflight int
	drained  *sync.Cond    // signalled when inflight drops to 0 after Close
	done     chan struct{} // closed by Close: waits for retries stop
}

var (
	_ handlers.ModelHandler   = (*Handler)(nil)
	_ handlers.VersionInferer = (*Handler)(nil)
)

// Load reads the model's metadata from the server and returns a handler
// for it. It fails when the server cannot be reached (after the same
// retries as Infer), does not know the model, or describes a tensor of a
// datatype kinfer has no dtype for.
func Load(ctx context.Context, opts Options) (*Handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		opts:     opts,
		base:     opts.URL + "/v2/models/" + url.PathEscape(opts.Model),
		throttle: newThrottle(opts.Throttle),
		done:     make(chan struct{}),
	}
	if opts.ModelVersion != "" {
		h.base += "/versions/" + url.PathEscape(opts.ModelVersion)
	}
	h.drained = sync.NewCond(&h.mu)
	if opts.Concurrency > 0 {
		h.sem = make(chan struct{}, opts.Concurrency)
	}
	start := time.Now()
	body, _, err := h.do(ctx, "metadata", http.MethodGet, h.base, nil, -1)
	if err != nil {
		return nil, err
	}
	var md metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, h.errorf("metadata", "decoding GET %s: %w", h.base, err)
	}
	if h.inputs, err = specsOf("input", md.Inputs); err != nil {
		return nil, h.errorf("metadata", "%w", err)
	}
	if h.outputs, err = specsOf("output", md.Outputs); err != nil {
		return nil, h.errorf("metadata", "%w", err)
	}
	h.platform = md.Platform
	h.version = opts.Version
	if h.version == "" {
		h.version = opts.ModelVersion
	}
	if h.version == "" && len(md.Versions) > 0 {
		h.version = slices.MaxFunc(md.Versions, handlers.CompareVersions)
	}
	if h.version == "" {
		h.version = "unknown"
	}
	opts.Logger.Info("remote model ready",
		"model", opts.Name, "url", h.base, "version", h.version, "platform", md.Platform,
		"inputs", handlers.SpecsString(h.inputs), "outputs", handlers.SpecsString(h.outputs),
		"binary", opts.Binary, "load_seconds", time.Since(start).Seconds())
	return h, nil
}

// Name returns Options.Name.
func (h *Handler) Name() string { return h.opts.Name }

// Version returns Options.Version or its default; see there.
func (h *Handler) Version() string { return h.version }

// Platform is what the server says runs the model ("onnxruntime_onnx",
// "pytorch_libtorch", ...), for logs.
func (h *Handler) Platform() string { return h.platform }

// Inputs describes the model's inputs as the server's metadata does.
func (h *Handler) Inputs() []handlers.TensorSpec { return handlers.CloneSpecs(h.inputs) }

// Outputs describes the model's outputs as the server's metadata does.
func (h *Handler) Outputs() []handlers.TensorSpec { return handlers.CloneSpecs(h.outputs) }

// Stats are counters since Load, for metrics.
type Stats struct {
	// Attempts is how many requests were sent (or tried to be).
	Attempts int64
	// Retries is how many of those were retries of a failed attempt.
	Retries int64
	// Throttled is how many attempts adaptive throttling refused locally.
	Throttled int64
	// ThrottleProbability is the chance that the next attempt is refused
	// locally.
	ThrottleProbability float64
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	return Stats{
		Attempts:            h.stats.attempts.Load(),
		Retries:             h.stats.retries.Load(),
		Throttled:           h.stats.throttled.Load(),
		ThrottleProbability: h.throttle.Probability(),
	}
}

// Infer sends one batch and returns the outputs; see InferVersion.
func (h *Handler) Infer(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	out, _, err := h.InferVersion(ctx, inputs)
	return out, err
}

// InferVersion sends one batch and returns the outputs and the model
// version that produced them: the reply's model_version, unless
// Options.Version is set or the server sends none, in which case
// Version().
//
// The batch is checked against the metadata first: errors for a batch
// that does not fit wrap handlers.ErrInvalidInput and send nothing. The
// reply is checked against the metadata too, after two allowances for
// servers written in Python: an output with one trailing dim of 1 more
// than declared (MLServer's [N,1] for a 1-D [-1]) is reshaped to the
// declared rank, and null in float data (JSON has no NaN) is NaN. Other
// errors name the model, the URL and what the server said, and wrap a
// *StatusError for a reply other than 200, ErrThrottled when throttling
// refused the last attempt, ctx.Err() when ctx ended the call, and
// handlers.ErrClosed after Close.
func (h *Handler) InferVersion(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", h.errorf("infer", "%w", err)
	}
	if err := h.enter(); err != nil {
		return nil, "", err
	}
	defer h.leave()
	batch, err := handlers.CheckInputs(h.inputs, inputs)
	if err != nil {
		return nil, "", h.errorf("infer", "%w", err)
	}
	// The body is not pooled: net/http may still be reading a request body
	// after Do returns (a server that answers before reading it all).
	id := strconv.FormatUint(h.ids.Add(1), 10)
	body, jsonLen, err := encodeRequest(nil, id, h.inputs, h.outputs, inputs, h.opts.Binary)
	if err != nil {
		return nil, "", h.errorf("infer", "encoding the request: %w: %w", handlers.ErrInvalidInput, err)
	}
	if !h.opts.Binary {
		jsonLen = -1
	}
	reply, replyJSONLen, err := h.do(ctx, "infer", http.MethodPost, h.base+"/infer", body, jsonLen)
	if err != nil {
		var se *StatusError
		if h.opts.Binary && errors.As(err, &se) && (se.StatusCode == http.StatusUnsupportedMediaType || se.StatusCode == http.StatusUnprocessableEntity) {
			// MLServer, for one, answers 422 to a body it cannot parse.
			err = fmt.Errorf("%w (the server may not speak the binary tensor data extension; MLServer does not: set binary to false)", err)
		}
		return nil, "", err
	}
	r, out, err := decodeReply(reply, replyJSONLen)
	if err != nil {
		return nil, "", h.errorf("infer", "reply from %s/infer: %w", h.base, err)
	}
	for name := range out {
		if !slices.ContainsFunc(h.outputs, func(s handlers.TensorSpec) bool { return s.Name == name }) {
			delete(out, name) // not asked for; servers may send more
		}
	}
	dropTrailingOne(h.outputs, out)
	if err := handlers.CheckOutputs(h.outputs, out, batch); err != nil {
		return nil, "", h.errorf("infer", "reply from %s/infer does not match the model's metadata: %w", h.base, err)
	}
	version := h.version
	if h.opts.Version == "" && r.ModelVersion != "" {
		version = r.ModelVersion
	}
	return out, version, nil
}

// Ready asks the server whether the model is ready
// (GET /v2/models/{name}/ready), once, without retries: for /readyz.
func (h *Handler) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/ready", nil)
	if err != nil {
		return h.errorf("ready", "%w", err)
	}
	h.setHeaders(req)
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		return h.errorf("ready", "GET %s/ready: %w", h.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return h.errorf("ready", "%w", newStatusError(req, resp, body))
	}
	return nil
}

// Close stops retries and waits for requests in flight to finish; later
// Infer calls return handlers.ErrClosed. It is safe to call more than
// once.
func (h *Handler) Close() error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	for h.inflight > 0 {
		h.drained.Wait()
	}
	h.mu.Unlock()
	h.opts.Client.CloseIdleConnections()
	return nil
}

func (h *Handler) enter() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return h.errorf("infer", "%w", handlers.ErrClosed)
	}
	h.inflight++
	return nil
}

func (h *Handler) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	if h.inflight == 0 && h.closed {
		h.drained.Broadcast()
	}
}

func (h *Handler) setHeaders(req *http.Request) {
	for k, v := range h.opts.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			// net/http sends req.Host and ignores a Host header; KServe
			// behind an ingress routes on it.
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
}

func (h *Handler) errorf(op, format string, args ...any) error {
	return fmt.Errorf("remote: model %s: %s: "+format, append([]any{h.opts.Name, op}, args...)...)
}

// do sends a request with retries, backoff and throttling, and returns
// the body of a 200 reply and its binary extension header (-1 without).
// jsonLen >= 0 sends body with the binary extension header.
func (h *Handler) do(ctx context.Context, op, method, u string, body []byte, jsonLen int) ([]byte, int, error) {
	start := time.Now()
	var last error
	var retryAfter time.Duration
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			wait := h.backoff(attempt - 1)
			if retryAfter > h.opts.MaxRetryAfter {
				return nil, 0, h.errorf(op, "giving up after %d attempts (%v): the server asks to wait %v, more than %v (MaxRetryAfter): %w",
					attempt-1, time.Since(start).Round(time.Millisecond), retryAfter, h.opts.MaxRetryAfter, last)
			}
			wait = max(wait, retryAfter)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return nil, 0, h.errorf(op, "giving up after %d attempts (%v): the next retry (in %v) would pass the deadline: %w",
					attempt-1, time.Since(start).Round(time.Millisecond), wait.Round(time.Millisecond), last)
			}
			if err := h.sleep(ctx, wait); err != nil {
				return nil, 0, h.errorf(op, "waiting to retry after %d attempts: %w (last error: %v)", attempt-1, err, last)
			}
			h.stats.retries.Add(1)
		}
		h.stats.attempts.Add(1)
		if !h.throttle.allow() {
			h.stats.throttled.Add(1)
			last, retryAfter = ErrThrottled, 0
		} else {
			reply, replyJSONLen, err := h.attempt(ctx, method, u, body, jsonLen)
			if err == nil {
				h.throttle.done(true)
				return reply, replyJSONLen, nil
			}
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about the server.
				return nil, 0, h.errorf(op, "%s %s: %w", method, u, err)
			}
			var se *StatusError
			isStatus := errors.As(err, &se)
			if isStatus && !se.Temporary() {
				h.throttle.done(true) // the server did the work of answering
				return nil, 0, h.errorf(op, "%w", err)
			}
			h.throttle.done(false)
			last, retryAfter = err, 0
			if isStatus {
				retryAfter = se.RetryAfter
			}
		}
		if attempt >= h.opts.MaxAttempts {
			return nil, 0, h.errorf(op, "giving up after %d attempts (%v): %w",
				attempt, time.Since(start).Round(time.Millisecond), last)
		}
		h.opts.Logger.Debug("remote: attempt failed, retrying", "model", h.opts.Name, "op", op, "attempt", attempt, "error", last)
	}
}

// attempt sends one request under the per-attempt timeout.
func (h *Handler) attempt(ctx context.Context, method, u string, body []byte, jsonLen int) ([]byte, int, error) {
	if h.sem != nil {
		select {
		case h.sem <- struct{}{}:
			defer func() { <-h.sem }()
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting for one of %d request slots: %w", cap(h.sem), ctx.Err())
		}
	}
	actx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	h.setHeaders(req)
	if body != nil {
		if jsonLen >= 0 {
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set(headerLength, strconv.Itoa(jsonLen))
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		return nil, 0, h.attemptErr(ctx, actx, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.MaxReplyBytes+1))
	if err != nil {
		return nil, 0, h.attemptErr(ctx, actx, fmt.Errorf("reading the reply: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, newStatusError(req, resp, reply)
	}
	if int64(len(reply)) > h.opts.MaxReplyBytes {
		return nil, 0, fmt.Errorf("reply larger than %d bytes (MaxReplyBytes)", h.opts.MaxReplyBytes)
	}
	replyJSONLen := -1
	if v := resp.Header.Get(headerLength); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, 0, fmt.Errorf("reply header %s: %q is not a length", headerLength, v)
		}
		replyJSONLen = n
	}
	return reply, replyJSONLen, nil
}

// attemptErr says that an attempt timed out when its own deadline, not
// the caller's context, ended it.
func (h *Handler) attemptErr(ctx, actx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("attempt timed out after %v (Timeout): %w", h.opts.Timeout, context.DeadlineExceeded)
	}
	return err
}

// backoff is the full-jitter wait before retry n.
func (h *Handler) backoff(n int) time.Duration {
	ceil := h.opts.BackoffBase
	for i := 1; i < n && ceil < h.opts.BackoffMax; i++ {
		ceil *= 2
	}
	ceil = min(ceil, h.opts.BackoffMax)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

func (h *Handler) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return handlers.ErrClosed
	}
}

// StatusError is a reply other than 200 OK. It is wrapped in the error of
// the call that got it.
type StatusError struct {
	// Method and URL of the request.
	Method, URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's explanation: the "error" field of a JSON
	// body (the protocol's error format), else the start of the body.
	Message string
	// RetryAfter is the server's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (Retry-After %v)", e.RetryAfter)
	}
	return msg
}

// Temporary says whether the status means "try again later": 429, 502,
// 503 and 504, which Infer retries and which count as overload for
// throttling.
func (e *StatusError) Temporary() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// maxMessage bounds StatusError.Message.
const maxMessage = 512

func newStatusError(req *http.Request, resp *http.Response, body []byte) *StatusError {
	e := &StatusError{Method: req.Method, URL: req.URL.String(), StatusCode: resp.StatusCode}
	if e.Message = errorMessage(body); e.Message == "" {
		e.Message = strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
	}
	if len(e.Message) > maxMessage {
		e.Message = e.Message[:maxMessage] + "..."
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// errorMessage reads the explanation in an error body: the protocol's
// {"error": "..."}, or the {"detail": ...} of servers built on FastAPI
// (MLServer, KServe's Python server) for requests they could not parse,
// where detail is a string or a list of {"loc": [...], "msg": "..."}.
// "" when the body is neither.
func errorMessage(body []byte) string {
	var j struct {
		Error  string          `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &j) != nil {
		return ""
	}
	if j.Error != "" {
		return j.Error
	}
	var detail string
	if json.Unmarshal(j.Detail, &detail) == nil {
		return detail
	}
	var items []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(j.Detail, &items) != nil {
		return ""
	}
	var msgs []string
	for _, it := range items {
		if it.Msg == "" {
			continue
		}
		loc := make([]string, len(it.Loc))
		for i, l := range it.Loc {
			loc[i] = fmt.Sprint(l)
		}
		if len(loc) > 0 {
			msgs = append(msgs, strings.Join(loc, ".")+": "+it.Msg)
		} else {
			msgs = append(msgs, it.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}
