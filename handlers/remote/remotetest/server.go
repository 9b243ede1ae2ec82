// Package remotetest is an in-process Open Inference Protocol (KServe v2)
// REST server for tests: it serves any handlers.ModelHandler over HTTP,
// and can be told to misbehave (fail, refuse for overload with
// Retry-After, answer slowly) so that tests of the remote handler, and of
// an engine using it, see what real model servers do under load.
//
// Its codec is written independently of package remote's, on purpose: a
// mistake in the wire format shows up as a mismatch instead of cancelling
// out.
package remotetest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Server serves models at /v2/models/{name} (and
// /v2/models/{name}/versions/{version}): metadata, ready and infer, plus
// /v2/health/live and /v2/health/ready.
type Server struct {
	// URL is the base URL to give remote.Options.URL.
	URL string
	srv *httptest.Server

	mu     sync.Mutex
	models map[string]handlers.ModelHandler
	fault  fault

	inferRequests atomic.Int64
	refused       atomic.Int64
}

// fault is what the next infer requests get instead of a result.
type fault struct {
	status     int    // 0: answer normally
	retryAfter string // Retry-After header sent with status
	remaining  int    // requests left to fail; -1: until Recover
	delay      time.Duration
}

// NewServer starts a server for models, each under its Name(), with its
// Version() as the one version the metadata lists. Close it when done.
func NewServer(models ...handlers.ModelHandler) *Server {
	s := &Server{models: map[string]handlers.ModelHandler{}}
	for _, m := range models {
		s.models[m.Name()] = m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {})
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, s.metadata)
		mux.HandleFunc("GET "+prefix+"/ready", s.ready)
		mux.HandleFunc("POST "+prefix+"/infer", s.infer)
	}
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down. It does not close the models.
func (s *Server) Close() { s.srv.Close() }

// FailNext makes the next n infer requests fail with status, sending
// Retry-After: retryAfter when it is not empty.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault.status, s.fault.retryAfter, s.fault.remaining = status, retryAfter, n
}

// Overload makes every infer request fail with status (429 or 503, say)
// until Recover.
func (s *Server) Overload(status int, retryAfter string) { s.FailNext(-1, status, retryAfter) }

// Recover ends Overload and FailNext.
func (s *Server) Recover() { s.FailNext(0, 0, "") }

// SetDelay makes every infer request wait d (or until the client hangs
// up) before it is answered.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault.delay = d
}

// InferRequests is how many infer requests reached the server, answered
// or refused.
func (s *Server) InferRequests() int64 { return s.inferRequests.Load() }

// Refused is how many infer requests were refused by FailNext or
// Overload.
func (s *Server) Refused() int64 { return s.refused.Load() }

func (s *Server) model(w http.ResponseWriter, r *http.Request) (handlers.ModelHandler, bool) {
	s.mu.Lock()
	m, ok := s.models[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", r.PathValue("name")))
		return nil, false
	}
	if v := r.PathValue("version"); v != "" && v != m.Version() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q has no version %q", m.Name(), v))
		return nil, false
	}
	return m, true
}

type tensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

var datatypes = map[tensor.DType]string{
	tensor.Float32: "FP32", tensor.Float64: "FP64", tensor.Int32: "INT32", tensor.Int64: "INT64",
	tensor.Uint8: "UINT8", tensor.Int8: "INT8", tensor.Bool: "BOOL",
}

func metas(specs []handlers.TensorSpec) []tensorMeta {
	out := make([]tensorMeta, len(specs))
	for i, sp := range specs {
		out[i] = tensorMeta{Name: sp.Name, Datatype: datatypes[sp.DType], Shape: sp.Shape}
	}
	return out
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r)
	if !ok {
		return
	}
	writeJSON(w, map[string]any{
		"name":     m.Name(),
		"versions": []string{m.Version()},
		"platform": "kinfer_remotetest",
		"inputs":   metas(m.Inputs()),
		"outputs":  metas(m.Outputs()),
	})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	s.model(w, r)
}

type requestTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type request struct {
	ID      string          `json:"id"`
	Inputs  []requestTensor `json:"inputs"`
	Outputs []struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters"`
	} `json:"outputs"`
	Parameters map[string]any `json:"parameters"`
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	s.inferRequests.Add(1)
	s.mu.Lock()
	f := s.fault
	if f.remaining > 0 {
		s.fault.remaining--
	}
	s.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	if f.status != 0 && f.remaining != 0 {
		s.refused.Add(1)
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		writeError(w, f.status, "remotetest: refusing as told")
		return
	}
	m, ok := s.model(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	head, rest := body, []byte(nil)
	if v := r.Header.Get("Inference-Header-Content-Length"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > len(body) {
			writeError(w, http.StatusBadRequest, "bad Inference-Header-Content-Length "+v)
			return
		}
		head, rest = body[:n], body[n:]
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decoding the request: "+err.Error())
		return
	}
	inputs := map[string]*tensor.Tensor{}
	for _, in := range req.Inputs {
		t, err := decodeInput(in, &rest)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("input %q: %v", in.Name, err))
			return
		}
		inputs[in.Name] = t
	}
	out, err := m.Infer(r.Context(), inputs)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, handlers.ErrInvalidInput) {
			status = http.StatusBadRequest
		}
		writeError(w, status, err.Error())
		return
	}
	s.reply(w, m, req, out)
}

func decodeInput(in requestTensor, rest *[]byte) (*tensor.Tensor, error) {
	var dt tensor.DType
	for d, name := range datatypes {
		if name == in.Datatype {
			dt = d
		}
	}
	if dt == tensor.Invalid {
		return nil, fmt.Errorf("unsupported datatype %q", in.Datatype)
	}
	t := tensor.New(dt, in.Shape)
	n := t.Len()
	if size, ok := in.Parameters["binary_data_size"]; ok {
		num, _ := size.(json.Number)
		k, err := num.Int64()
		if err != nil || k != int64(n*dt.Size()) || k > int64(len(*rest)) {
			return nil, fmt.Errorf("binary_data_size %v does not fit shape %v or the body", size, in.Shape)
		}
		raw := (*rest)[:k]
		*rest = (*rest)[k:]
		for i := range n {
			setFromBytes(t, i, raw)
		}
		return t, nil
	}
	var nestedData any
	dec := json.NewDecoder(bytes.NewReader(in.Data))
	dec.UseNumber()
	if err := dec.Decode(&nestedData); err != nil {
		return nil, err
	}
	var flat []any
	var walk func(v any)
	walk = func(v any) {
		if l, ok := v.([]any); ok {
			for _, x := range l {
				walk(x)
			}
			return
		}
		flat = append(flat, v)
	}
	walk(nestedData)
	if len(flat) != n {
		return nil, fmt.Errorf("shape %v needs %d values, data has %d", in.Shape, n, len(flat))
	}
	for i, v := range flat {
		var f float64
		switch x := v.(type) {
		case bool:
			if x {
				f = 1
			}
		case json.Number:
			var err error
			if f, err = x.Float64(); err != nil {
				return nil, err
			}
			if dt != tensor.Float32 && dt != tensor.Float64 {
				k, err := x.Int64()
				if err != nil {
					return nil, fmt.Errorf("value %d: %s is not an integer", i, x)
				}
				setInt(t, i, k)
				continue
			}
		default:
			return nil, fmt.Errorf("value %d is %T", i, v)
		}
		switch d := t.Data.(type) {
		case []float32:
			d[i] = float32(f)
		case []float64:
			d[i] = f
		case []bool:
			d[i] = f != 0
		}
	}
	return t, nil
}

func setInt(t *tensor.Tensor, i int, k int64) {
	switch d := t.Data.(type) {
	case []int32:
		d[i] = int32(k)
	case []int64:
		d[i] = k
	case []uint8:
		d[i] = uint8(k)
	case []int8:
		d[i] = int8(k)
	case []bool:
		d[i] = k != 0
	}
}

func setFromBytes(t *tensor.Tensor, i int, raw []byte) {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []float32:
		d[i] = math.Float32frombits(le.Uint32(raw[i*4:]))
	case []float64:
		d[i] = math.Float64frombits(le.Uint64(raw[i*8:]))
	case []int32:
		d[i] = int32(le.Uint32(raw[i*4:]))
	case []int64:
		d[i] = int64(le.Uint64(raw[i*8:]))
	case []uint8:
		d[i] = raw[i]
	case []int8:
		d[i] = int8(raw[i])
	case []bool:
		d[i] = raw[i] != 0
	}
}

type replyTensor struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int64        `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

// reply answers with the requested outputs (all when none are named),
// in binary for those the request asks so, else as JSON arrays.
func (s *Server) reply(w http.ResponseWriter, m handlers.ModelHandler, req request, out map[string]*tensor.Tensor) {
	type want struct {
		name   string
		binary bool
	}
	allBinary, _ := req.Parameters["binary_data_output"].(bool)
	var wants []want
	for _, o := range req.Outputs {
		b, _ := o.Parameters["binary_data"].(bool)
		wants = append(wants, want{o.Name, b || allBinary})
	}
	if len(wants) == 0 {
		for _, sp := range m.Outputs() {
			wants = append(wants, want{sp.Name, allBinary})
		}
	}
	var tensors []replyTensor
	var raw []byte
	for _, wt := range wants {
		t, ok := out[wt.name]
		if !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown output %q", wt.name))
			return
		}
		rt := replyTensor{Name: wt.name, Datatype: datatypes[t.DType], Shape: t.Shape}
		if wt.binary {
			before := len(raw)
			for i := range t.Len() {
				raw = appendElem(raw, t, i)
			}
			rt.Parameters = map[string]any{"binary_data_size": len(raw) - before}
		} else {
			rt.Data = jsonData(t)
		}
		tensors = append(tensors, rt)
	}
	head, err := json.Marshal(map[string]any{
		"model_name":    m.Name(),
		"model_version": m.Version(),
		"id":            req.ID,
		"outputs":       tensors,
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if raw != nil {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Inference-Header-Content-Length", strconv.Itoa(len(head)))
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Write(head)
	w.Write(raw)
}

func appendElem(b []byte, t *tensor.Tensor, i int) []byte {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []float32:
		return le.AppendUint32(b, math.Float32bits(d[i]))
	case []float64:
		return le.AppendUint64(b, math.Float64bits(d[i]))
	case []int32:
		return le.AppendUint32(b, uint32(d[i]))
	case []int64:
		return le.AppendUint64(b, uint64(d[i]))
	case []uint8:
		return append(b, d[i])
	case []int8:
		return append(b, byte(d[i]))
	case []bool:
		if d[i] {
			return append(b, 1)
		}
		return append(b, 0)
	}
	return b
}

// jsonData is t's data as a flat JSON-encodable slice (uint8 widened, as
// encoding/json would otherwise write base64).
func jsonData(t *tensor.Tensor) any {
	if d, ok := t.Data.([]uint8); ok {
		w := make([]int, len(d))
		for i, v := range d {
			w[i] = int(v)
		}
		return w
	}
	return t.Data
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
