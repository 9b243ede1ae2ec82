// Package onnx runs ONNX models with ONNX Runtime (through cgo and
// github.com/yalue/onnxruntime_go) on the CPU, CUDA or TensorRT execution
// providers.
//
// The ONNX Runtime shared library is loaded at run time, not linked: see
// LibraryPath for where it is looked for, and scripts/fetch-ort.sh (`make
// ort`) for how to get it.
//
// A Handler owns Options.Copies sessions of one model. Infer borrows a free
// session for the length of one batch, so at most Copies batches run at
// once and the rest wait, each for as long as its context allows.
package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// ErrClosed is returned by Infer once Close has been called.
var ErrClosed = errors.New("onnx: handler is closed")

// ErrInvalidInput is wrapped by the errors Infer returns when the inputs do
// not match the model (a missing, unknown, mistyped or misshapen tensor).
// Retrying such a batch cannot succeed.
// It is handlers.ErrInvalidInput, so callers can check either.
var ErrInvalidInput = handlers.ErrInvalidInput

// Handler is one loaded ONNX model. It implements handlers.ModelHandler and
// is safe for concurrent use.
type Handler struct {
	name, version, sha string
	provider           string
	inputs, outputs    []handlers.TensorSpec
	inputIndex         map[string]int
	copies             int

	// pool holds the sessions not running a batch right now.
	pool      chan *ort.DynamicAdvancedSession
	done      chan struct{} // closed when Close starts
	closeOnce sync.Once
	closeErr  error
}

var _ handlers.ModelHandler = (*Handler)(nil)

// Load reads the model at opts.Path, checks that ONNX Runtime can run it and
// that every input and output is a tensor of a supported element type, and
// creates opts.Copies sessions on the requested execution provider, falling
// back to the CPU with a warning when a GPU provider is unavailable.
//
// Session creation cannot be interrupted; ctx is checked between copies.
func Load(ctx context.Context, opts Options) (*Handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Init(); err != nil {
		return nil, err
	}
	start := time.Now()
	wrapErr := func(format string, args ...any) error {
		return fmt.Errorf("onnx: loading model %s from %s: "+format, append([]any{opts.Name, opts.Path}, args...)...)
	}
	sum, err := fileSHA256(opts.Path)
	if err != nil {
		return nil, wrapErr("%w", err)
	}
	if opts.Version == "" {
		opts.Version = sum[:12]
	}
	inputs, outputs, err := describe(opts.Path)
	if err != nil {
		return nil, wrapErr("%w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrapErr("%w", err)
	}
	sessions, provider, err := newSessions(ctx, opts, specNames(inputs), specNames(outputs))
	if err != nil {
		return nil, wrapErr("%w", err)
	}
	h := &Handler{
		name:       opts.Name,
		version:    opts.Version,
		sha:        sum,
		provider:   provider,
		inputs:     inputs,
		outputs:    outputs,
		inputIndex: make(map[string]int, len(inputs)),
		copies:     len(sessions),
		pool:       make(chan *ort.DynamicAdvancedSession, len(sessions)),
		done:       make(chan struct{}),
	}
	for i, s := range inputs {
		h.inputIndex[s.Name] = i
	}
	for _, s := range sessions {
		h.pool <- s
	}
	opts.Logger.Info("onnx model loaded",
		"model", h.name, "version", h.version, "path", opts.Path,
		"provider", provider, "copies", h.copies,
		"intra_op_threads", opts.IntraOpThreads, "inter_op_threads", opts.InterOpThreads,
		"inputs", specStrings(inputs), "outputs", specStrings(outputs),
		"onnxruntime", ort.GetVersion(),
		"load_seconds", time.Since(start).Seconds())
	return h, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// describe reads the model's inputs and outputs through a throwaway CPU
// session with graph optimizations off, which is the cheapest session ONNX
// Runtime can build. It is also where a corrupt file is first caught.
func describe(path string) (inputs, outputs []handlers.TensorSpec, err error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, err
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, nil, err
	}
	if err := so.SetIntraOpNumThreads(1); err != nil {
		return nil, nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, so)
	if err != nil {
		return nil, nil, fmt.Errorf("not a model ONNX Runtime can load: %w", err)
	}
	if len(ins) == 0 || len(outs) == 0 {
		return nil, nil, fmt.Errorf("model has %d inputs and %d outputs; want at least one of each", len(ins), len(outs))
	}
	for _, info := range ins {
		s, err := specOf("input", info)
		if err != nil {
			return nil, nil, err
		}
		inputs = append(inputs, s)
	}
	for _, info := range outs {
		s, err := specOf("output", info)
		if err != nil {
			return nil, nil, err
		}
		outputs = append(outputs, s)
	}
	return inputs, outputs, nil
}

// newSessions creates opts.Copies sessions, trying the providers in
// fallback order. A provider counts as unavailable when ONNX Runtime
// refuses to create its options, to register it, or to build the first
// session with it; anything after that is a real error.
func newSessions(ctx context.Context, opts Options, inNames, outNames []string) ([]*ort.DynamicAdvancedSession, string, error) {
	chain := []string{ProviderCPU}
	switch opts.Provider {
	case ProviderCUDA:
		chain = []string{ProviderCUDA, ProviderCPU}
	case ProviderTensorRT:
		chain = []string{ProviderTensorRT, ProviderCUDA, ProviderCPU}
	}
	if opts.Provider == ProviderCPU && len(opts.ProviderOptions) > 0 {
		opts.Logger.Warn("onnx: ProviderOptions are ignored on the cpu provider", "model", opts.Name)
	}
	for _, provider := range chain {
		so, err := sessionOptions(opts, provider)
		if err != nil {
			var unavailable *unavailableError
			if errors.As(err, &unavailable) && provider != ProviderCPU {
				opts.Logger.Warn("onnx: execution provider unavailable, falling back",
					"model", opts.Name, "provider", provider, "error", unavailable.err)
				continue
			}
			return nil, "", err
		}
		sessions, err := createCopies(ctx, opts, so, inNames, outNames, provider != ProviderCPU)
		so.Destroy()
		if err != nil {
			var unavailable *unavailableError
			if errors.As(err, &unavailable) {
				opts.Logger.Warn("onnx: execution provider unavailable, falling back",
					"model", opts.Name, "provider", provider, "error", unavailable.err)
				continue
			}
			return nil, "", err
		}
		if provider != opts.Provider {
			opts.Logger.Warn("onnx: model runs on a fallback execution provider",
				"model", opts.Name, "requested", opts.Provider, "active", provider)
		}
		return sessions, provider, nil
	}
	// Not reached: the chain ends with cpu, whose failures return above.
	return nil, "", fmt.Errorf("no execution provider available")
}

// unavailableError marks a failure that means "this provider cannot run
// here", as opposed to a bad model or bad options.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

func createCopies(ctx context.Context, opts Options, so *ort.SessionOptions, inNames, outNames []string, firstMayBeUnavailable bool) ([]*ort.DynamicAdvancedSession, error) {
	var sessions []*ort.DynamicAdvancedSession
	destroyAll := func() {
		for _, s := range sessions {
			s.Destroy()
		}
	}
	for i := range opts.Copies {
		if err := ctx.Err(); err != nil {
			destroyAll()
			return nil, err
		}
		s, err := ort.NewDynamicAdvancedSession(opts.Path, inNames, outNames, so)
		if err != nil {
			destroyAll()
			if i == 0 && firstMayBeUnavailable {
				return nil, &unavailableError{err}
			}
			return nil, fmt.Errorf("creating session %d of %d: %w", i+1, opts.Copies, err)
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

// sessionOptions builds the options for one provider attempt. Errors from
// creating or registering a GPU provider are unavailableErrors; ONNX
// Runtime rejecting ProviderOptions is not.
func sessionOptions(opts Options, provider string) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := configure(so, opts, provider); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func configure(so *ort.SessionOptions, opts Options, provider string) error {
	if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
		return fmt.Errorf("setting intra-op threads to %d: %w", opts.IntraOpThreads, err)
	}
	if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
		return fmt.Errorf("setting inter-op threads to %d: %w", opts.InterOpThreads, err)
	}
	spinning := false
	for key, value := range opts.SessionConfig {
		if err := so.AddSessionConfigEntry(key, value); err != nil {
			return fmt.Errorf("session config %s=%q: %w", key, value, err)
		}
		spinning = spinning || key == ConfigAllowSpinning
	}
	if !spinning {
		if err := so.AddSessionConfigEntry(ConfigAllowSpinning, "0"); err != nil {
			return fmt.Errorf("session config %s=0: %w", ConfigAllowSpinning, err)
		}
	}
	// Only the requested provider gets the user's options: TensorRT's keys
	// mean nothing to CUDA.
	userOpts := func(p string) map[string]string {
		if p == opts.Provider {
			return opts.ProviderOptions
		}
		return nil
	}
	device := strconv.Itoa(opts.DeviceID)
	switch provider {
	case ProviderTensorRT:
		trt, err := newProvider(ort.NewTensorRTProviderOptions, "TensorRT", device, userOpts(ProviderTensorRT))
		if err != nil {
			return err
		}
		defer trt.Destroy()
		cuda, err := newProvider(ort.NewCUDAProviderOptions, "CUDA", device, userOpts(ProviderCUDA))
		if err != nil {
			return err
		}
		defer cuda.Destroy()
		if err := so.AppendExecutionProviderTensorRT(trt); err != nil {
			return &unavailableError{fmt.Errorf("registering the TensorRT provider: %w", err)}
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return &unavailableError{fmt.Errorf("registering the CUDA provider: %w", err)}
		}
	case ProviderCUDA:
		cuda, err := newProvider(ort.NewCUDAProviderOptions, "CUDA", device, userOpts(ProviderCUDA))
		if err != nil {
			return err
		}
		defer cuda.Destroy()
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return &unavailableError{fmt.Errorf("registering the CUDA provider: %w", err)}
		}
	}
	return nil
}

// providerOptions is what ort.CUDAProviderOptions and
// ort.TensorRTProviderOptions have in common.
type providerOptions interface {
	Update(map[string]string) error
	Destroy() error
}

// newProvider creates a GPU provider's options. ONNX Runtime loads the
// provider's shared library on the first Update, so setting device_id (a
// key every version accepts) tells whether the provider exists at all; a
// failure there is an unavailableError. ONNX Runtime rejecting the user's
// options afterwards is a configuration error, reported as such.
func newProvider[P providerOptions](create func() (P, error), what, device string, user map[string]string) (P, error) {
	po, err := create()
	if err != nil {
		return po, &unavailableError{fmt.Errorf("creating %s provider options: %w", what, err)}
	}
	if err := po.Update(map[string]string{"device_id": device}); err != nil {
		po.Destroy()
		return po, &unavailableError{fmt.Errorf("setting up the %s provider on device %s: %w", what, device, err)}
	}
	if err := po.Update(user); err != nil {
		po.Destroy()
		return po, fmt.Errorf("%s provider options %v: %w", what, user, err)
	}
	return po, nil
}

func specNames(specs []handlers.TensorSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

func specStrings(specs []handlers.TensorSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.String()
	}
	return out
}

func cloneSpecs(specs []handlers.TensorSpec) []handlers.TensorSpec {
	out := make([]handlers.TensorSpec, len(specs))
	for i, s := range specs {
		out[i] = handlers.TensorSpec{Name: s.Name, DType: s.DType, Shape: slices.Clone(s.Shape)}
	}
	return out
}

// Name returns Options.Name or its default.
func (h *Handler) Name() string { return h.name }

// Version returns Options.Version, or the first 12 hex digits of the model
// file's SHA-256.
func (h *Handler) Version() string { return h.version }

// SHA256 is the hex SHA-256 of the model file as it was read at Load.
func (h *Handler) SHA256() string { return h.sha }

// ActiveProvider is the execution provider the sessions were built with:
// "cpu", "cuda" or "tensorrt". It differs from Options.Provider after a
// fallback. With a GPU provider, ONNX Runtime may still place single nodes
// it cannot run there on the CPU.
func (h *Handler) ActiveProvider() string { return h.provider }

// Copies is the number of sessions, the most batches that run at once.
func (h *Handler) Copies() int { return h.copies }

// Inputs describes the model's inputs in the model's order.
func (h *Handler) Inputs() []handlers.TensorSpec { return cloneSpecs(h.inputs) }

// Outputs describes the model's outputs in the model's order.
func (h *Handler) Outputs() []handlers.TensorSpec { return cloneSpecs(h.outputs) }

// Infer runs one batch. inputs must hold exactly the model's inputs, each
// with the model's dtype and rank, the model's fixed dims, and the same
// leading (batch) dim. The input data is handed to ONNX Runtime without
// copying, so it must not change until Infer returns. Every output is a
// fresh tensor the caller owns.
//
// Infer waits for a free session until ctx is done; a run already under way
// is asked to stop when ctx is done. It returns ErrClosed after Close, and
// errors wrapping ErrInvalidInput for inputs that do not fit the model.
func (h *Handler) Infer(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onnx: model %s: %w", h.name, err)
	}
	select {
	case <-h.done:
		return nil, ErrClosed
	default:
	}
	batch, err := handlers.CheckInputs(h.inputs, inputs)
	if err != nil {
		return nil, fmt.Errorf("onnx: model %s: %w", h.name, err)
	}
	ins := make([]ort.Value, len(h.inputs))
	defer destroyValues(ins)
	for i, spec := range h.inputs {
		v, err := toORT(inputs[spec.Name])
		if err != nil {
			return nil, fmt.Errorf("onnx: model %s: input %q: %w", h.name, spec.Name, err)
		}
		ins[i] = v
	}
	s, err := h.acquire(ctx)
	if err != nil {
		return nil, err
	}
	outs := make([]ort.Value, len(h.outputs))
	err = run(ctx, s, ins, outs)
	h.pool <- s
	defer destroyValues(outs)
	if err != nil {
		return nil, fmt.Errorf("onnx: model %s: running a batch of %d: %w", h.name, batch, err)
	}
	result := make(map[string]*tensor.Tensor, len(outs))
	for i, spec := range h.outputs {
		t, err := fromORT(outs[i])
		if err != nil {
			return nil, fmt.Errorf("onnx: model %s: output %q: %w", h.name, spec.Name, err)
		}
		if t.DType != spec.DType || len(t.Shape) != len(spec.Shape) || len(t.Shape) == 0 || t.Shape[0] != int64(batch) {
			return nil, fmt.Errorf("onnx: model %s: output %q is %v%s for a batch of %d; the model declares %v%s, and every output's leading dim must be the batch size",
				h.name, spec.Name, t.DType, tensor.ShapeString(t.Shape), batch, spec.DType, tensor.ShapeString(spec.Shape))
		}
		result[spec.Name] = t
	}
	return result, nil
}

// acquire takes a free session, waiting while all are busy.
func (h *Handler) acquire(ctx context.Context) (*ort.DynamicAdvancedSession, error) {
	select {
	case s := <-h.pool:
		select {
		case <-h.done:
			// Close started while we waited; it is collecting the sessions.
			h.pool <- s
			return nil, ErrClosed
		default:
			return s, nil
		}
	case <-h.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("onnx: model %s: waiting for a free session (%d copies, all busy): %w", h.name, h.copies, ctx.Err())
	}
}

// run runs one batch, terminating the run when ctx is done.
func run(ctx context.Context, s *ort.DynamicAdvancedSession, ins, outs []ort.Value) error {
	if ctx.Done() == nil {
		return s.Run(ins, outs)
	}
	// RunOptions are per call: a terminate flag set late by the AfterFunc
	// must not leak into the next batch on this session.
	ro, err := ort.NewRunOptions()
	if err != nil {
		return err
	}
	defer ro.Destroy()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ro.Terminate()
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // the AfterFunc is using ro; wait before destroying it
		}
	}()
	if err := s.RunWithOptions(ins, outs, ro); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return err
	}
	return nil
}

func destroyValues(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			v.Destroy()
		}
	}
}

// Close waits for running batches to finish and releases the sessions.
// Infer calls that have not started running get ErrClosed. Close is safe to
// call more than once; later calls return the first call's result.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		var errs []error
		for range h.copies {
			s := <-h.pool
			if err := s.Destroy(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			h.closeErr = fmt.Errorf("onnx: closing model %s: %w", h.name, err)
		}
	})
	return h.closeErr
}
