package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spec is what the engine knows about one model from pipeline.yaml: which
// model, where it is, and the handler's own options. A Factory reads the
// fields it needs and refuses the ones it cannot honour, so that a typo in
// the config is an error at start-up rather than a silently ignored
// setting.
type Spec struct {
	// Name identifies the model in predictions, metrics and logs.
	// Factories use it as is; when empty they may derive one (the onnx
	// handler takes the file's folder name).
	Name string
	// Version is stamped on predictions. Empty: the handler's default (a
	// content hash for onnx, the server's version for remote).
	Version string
	// Path is the model's file or folder, for handlers that run a model
	// in-process.
	Path string
	// URL is the model server's base URL, for handlers that call one
	// (remote: "http://triton:8000").
	URL string
	// Copies is how many batches the handler may run at once (onnx:
	// sessions; remote: concurrent requests). 0: the handler's default.
	Copies int
	// IntraOpThreads, Provider and DeviceID are for handlers that run on
	// local hardware (onnx); see onnx.Options. Zero values mean the
	// defaults. Handlers that cannot honour a non-zero value refuse it.
	IntraOpThreads int
	Provider       string
	DeviceID       int
	// Options are the handler's own settings, as pipeline.yaml's
	// model.options gives them. Read them with Opts, which also reports
	// the keys the handler did not read.
	Options map[string]string
	// Logger receives the handler's logs. Nil: slog.Default().
	Logger *slog.Logger
}

// Factory opens a model described by spec. It must return a ready handler
// or an error, never both, and never a nil handler without an error.
type Factory func(ctx context.Context, spec Spec) (ModelHandler, error)

// ErrUnknownKind is returned (wrapped) by Open for a kind no Factory was
// registered under.
var ErrUnknownKind = errors.New("unknown model kind")

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a handler kind available to Open, like database/sql's
// Register: call it from an init function of the package that implements
// the handler, and blank-import that package where the handler is wanted
// (handlers/onnx registers "onnx", handlers/remote registers "remote").
// It panics when kind is empty, f is nil, or kind is already registered:
// two handlers claiming one name is a programming error.
func Register(kind string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if kind == "" || strings.TrimSpace(kind) != kind {
		panic(fmt.Sprintf("handlers: Register with invalid kind %q", kind))
	}
	if f == nil {
		panic("handlers: Register of kind " + kind + " with a nil Factory")
	}
	if _, dup := registry[kind]; dup {
		panic("handlers: Register called twice for kind " + kind)
	}
	registry[kind] = f
}

// Open opens a model with the Factory registered under kind. Errors name
// the kind and the model; an unknown kind's error wraps ErrUnknownKind and
// lists the registered kinds.
func Open(ctx context.Context, kind string, spec Spec) (ModelHandler, error) {
	registryMu.RLock()
	f, ok := registry[kind]
	registryMu.RUnlock()
	if !ok {
		known := Kinds()
		hint := "none are registered: blank-import the handler packages, e.g. _ \"github.com/kinfer/kinfer/handlers/onnx\""
		if len(known) > 0 {
			hint = "registered: " + strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("handlers: model %s: %w %q (%s)", spec.Name, ErrUnknownKind, kind, hint)
	}
	if spec.Logger == nil {
		spec.Logger = slog.Default()
	}
	h, err := f(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("handlers: opening %s model %s: %w", kind, spec.Name, err)
	}
	if h == nil {
		return nil, fmt.Errorf("handlers: opening %s model %s: the factory returned no handler and no error", kind, spec.Name)
	}
	return h, nil
}

// Kinds returns the registered kinds, sorted.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Opts returns a reader for spec.Options. Each getter returns the option's
// value, or def when the key is absent; a value that does not parse is
// remembered and reported by Err, together with every key no getter asked
// for (an unknown option, most likely a typo).
func (s Spec) Opts() *Opts {
	return &Opts{model: s.Name, m: s.Options, used: map[string]bool{}}
}

// Opts reads a Spec's Options; see Spec.Opts.
type Opts struct {
	model string
	m     map[string]string
	used  map[string]bool
	errs  []error
}

func (o *Opts) get(key string) (string, bool) {
	o.used[key] = true
	v, ok := o.m[key]
	return strings.TrimSpace(v), ok
}

func (o *Opts) fail(key, v, want string) {
	o.errs = append(o.errs, fmt.Errorf("option %s: %q is not %s", key, v, want))
}

// String returns the option key, or def.
func (o *Opts) String(key, def string) string {
	if v, ok := o.get(key); ok {
		return v
	}
	return def
}

// Int returns the option key as an integer, or def.
func (o *Opts) Int(key string, def int) int {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		o.fail(key, v, "an integer")
		return def
	}
	return n
}

// Float returns the option key as a number, or def.
func (o *Opts) Float(key string, def float64) float64 {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		o.fail(key, v, "a number")
		return def
	}
	return f
}

// Bool returns the option key as a boolean (true/false, 1/0, yes/no), or
// def.
func (o *Opts) Bool(key string, def bool) bool {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	o.fail(key, v, "a boolean (true or false)")
	return def
}

// Duration returns the option key as a Go duration ("250ms", "2s"), or
// def.
func (o *Opts) Duration(key string, def time.Duration) time.Duration {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		o.fail(key, v, "a duration such as 500ms or 2s")
		return def
	}
	return d
}

// Prefixed returns the options whose keys start with prefix, with the
// prefix cut off ("header.Authorization" -> "Authorization" for prefix
// "header."), or nil when there are none.
func (o *Opts) Prefixed(prefix string) map[string]string {
	var out map[string]string
	for k, v := range o.m {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			o.used[k] = true
			if out == nil {
				out = map[string]string{}
			}
			out[rest] = v
		}
	}
	return out
}

// Err reports the values that did not parse and the keys nobody read, or
// nil.
func (o *Opts) Err() error {
	var msgs []string
	for _, err := range o.errs {
		msgs = append(msgs, err.Error())
	}
	for _, k := range slices.Sorted(maps.Keys(o.m)) {
		if !o.used[k] {
			msgs = append(msgs, "unknown option "+k)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("model %s: %s", o.model, strings.Join(msgs, "; "))
}
