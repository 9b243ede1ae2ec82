// Package reload serves a model that can be replaced while it runs. New
// loads a model from a path and watches the path; when a new version
// appears it is loaded and checked beside the serving one, and only a
// version that passes every check replaces it, in one atomic swap.
// Batches already running finish on the old model, which is closed once
// they have drained. A version that fails a check is refused with a
// warning and an OnReload event, and the old model keeps serving: a bad
// model update never replaces a good model.
//
// # What is watched
//
// Path is either one model file, replaced in place:
//
//	models/fraud.onnx
//
// or a directory of versions, one per entry, as Triton and TensorFlow
// Serving lay them out:
//
//	models/fraud/1/model.onnx
//	models/fraud/2/model.onnx     <- served: the highest version
//	models/fraud/3.onnx           <- a file named by its version also counts
//
// A version's name starts with a digit, or with "v" and a digit ("7",
// "2024-06-01", "1.10.0", "v3"); versions are ordered with
// handlers.CompareVersions, so runs of digits compare as numbers (10 > 9).
// A version directory holds Options.FileName (default model.onnx); a file
// version has FileName's extension. Other entries, and names starting
// with "." or "_" or ending in .tmp or .partial, are ignored, so a
// publisher can stage a version under a hidden name and rename it into
// place. The highest version present is served: publishing 3 moves to 3,
// and deleting 3 moves back to 2. Versions are immutable: a version
// directory whose file changes in place is refused (publish a new
// version instead). In file mode the model's own default version applies
// (for onnx, the first 12 hex digits of the file's SHA-256), so every
// distinct file is a distinct version.
//
// # Checks
//
// A candidate is loaded only once its size and modification time have
// stayed the same for Options.Settle, so a file still being copied is not
// loaded half-written (renaming a finished file into place is better
// still). It must then:
//
//  1. match Options.SHA256 when set, and the sidecar file <model>.sha256
//     (sha256sum's format) when one exists beside it;
//  2. load (the Loader returns no error);
//  3. have the serving model's inputs and outputs, names, dtypes and
//     shapes, unless Options.AllowSignatureChange;
//  4. pass Options.Check, the engine's own check against its config;
//  5. infer Options.Probe without error, when set.
//
// A refused candidate is not tried again until it changes.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Candidate is one model version on disk, as the watcher found it.
type Candidate struct {
	// Path is the model file to load.
	Path string
	// Version is the version's name in a directory of versions ("2" for
	// models/fraud/2/model.onnx), or "" when one file is watched: the
	// loader should then leave the version to the model (onnx: a content
	// hash), so that each new file is a new version.
	Version string
	// SHA256 is the hex SHA-256 of the file at Path, read just before
	// loading.
	SHA256 string
}

// Loader loads one candidate. With the onnx handler:
//
//	func(ctx context.Context, c reload.Candidate) (handlers.ModelHandler, error) {
//		return onnx.Load(ctx, onnx.Options{Name: "fraud", Path: c.Path, Version: c.Version})
//	}
//
// or Opener for any registered kind.
type Loader func(ctx context.Context, c Candidate) (handlers.ModelHandler, error)

// Opener is a Loader that opens candidates with handlers.Open(ctx, kind,
// spec), with spec's Path and Version replaced by the candidate's.
func Opener(kind string, spec handlers.Spec) Loader {
	return func(ctx context.Context, c Candidate) (handlers.ModelHandler, error) {
		s := spec
		s.Path, s.Version = c.Path, c.Version
		return handlers.Open(ctx, kind, s)
	}
}

// Options configure New. Path and Load are required; every other zero
// value means the default given in the field's comment.
type Options struct {
	// Path is the model file, or the directory of versions, to serve and
	// watch (see the package comment). Which of the two it is is decided
	// once, by New.
	Path string
	// Load loads a candidate. Required.
	Load Loader
	// FileName is the model file inside a version directory, and gives
	// the extension of file versions. Default "model.onnx".
	FileName string
	// Interval is how often Path is looked at. Default 5s. Negative: never;
	// call Poll to look.
	Interval time.Duration
	// Settle is how long a candidate's size and modification time must
	// stay unchanged before it is loaded (give or take a quarter of
	// Interval, for the polls' own jitter). Default: Interval, so a new
	// file is loaded on the poll after the one that first sees it.
	// Negative: load as soon as seen.
	Settle time.Duration
	// SHA256 pins the model: a file whose hex SHA-256 differs is refused,
	// at start-up and on every reload. Default "": no pin.
	SHA256 string
	// Check is run on the first model and on every candidate, after the
	// built-in checks: the engine passes its check of the model against
	// pipeline.yaml. A candidate it refuses is closed. Default: none.
	Check func(handlers.ModelHandler) error
	// AllowSignatureChange lets a candidate whose inputs or outputs differ
	// from the serving model's replace it, when Check accepts it. Default
	// false: the specs must be equal.
	AllowSignatureChange bool
	// Probe is a batch every candidate must infer without error before it
	// serves (a smoke test; it also warms the model up). Default: none.
	Probe map[string]*tensor.Tensor
	// OnReload is called after every swap and every refusal, from the
	// goroutine that polled; it must not block for long. The engine counts
	// kinfer_model_reloads_total and kinfer_model_reload_refused_total
	// with it. Default: none.
	OnReload func(Event)
	// Logger receives a line per swap (info) and per refusal (warning).
	// Default slog.Default().
	Logger *slog.Logger
}

// Event is one reload attempt's outcome.
type Event struct {
	// Path is the candidate's model file.
	Path string
	// Version is the candidate's version: the loaded model's Version()
	// when it loaded, else its version name, else the first 12 hex digits
	// of its SHA-256.
	Version string
	// Previous is the version serving when the attempt began (and still
	// serving when Err is set).
	Previous string
	// Err is nil when the candidate replaced Previous, or why it was
	// refused.
	Err error
	// LoadTime is the time spent loading and checking the candidate.
	LoadTime time.Duration
}

// Stats say what a Reloader serves and has done.
type Stats struct {
	// Version and Path of the serving model.
	Version, Path string
	// Reloads is how many candidates replaced the serving model since New.
	Reloads int64
	// Refused is how many candidates were refused since New.
	Refused int64
	// LastRefusal is the latest refusal, nil when there was none.
	LastRefusal error
}

// Reloader serves the current version of a watched model. It implements
// handlers.ModelHandler and handlers.VersionInferer and is safe for
// concurrent use.
type Reloader struct {
	opts    Options
	dirMode bool
	cur     atomic.Pointer[model]
	closed  atomic.Bool

	stop      context.CancelFunc
	watcher   sync.WaitGroup // the polling goroutine
	retiring  sync.WaitGroup // goroutines closing retired models
	closeOnce sync.Once
	closeErr  error

	// pollMu serialises polls (the watcher's and Poll's) and guards what
	// follows.
	pollMu      sync.Mutex
	curFP       fingerprint
	pending     fingerprint
	pendingAt   time.Time
	refused     map[fingerprint]error
	lastProblem string // the last "nothing to load" warning, to log it once

	statsMu sync.Mutex
	stats   Stats
}

var (
	_ handlers.ModelHandler   = (*Reloader)(nil)
	_ handlers.VersionInferer = (*Reloader)(nil)
)

// model is one loaded version and the calls running on it.
type model struct {
	h       handlers.ModelHandler
	version string
	sha     string
	path    string

	refs    atomic.Int64
	retired atomic.Bool
	drained chan struct{} // closed once retired and refs is 0
	once    sync.Once
}

func newModel(h handlers.ModelHandler, c Candidate) *model {
	return &model{h: h, version: h.Version(), sha: c.SHA256, path: c.Path, drained: make(chan struct{})}
}

func (m *model) release() {
	if m.refs.Add(-1) == 0 && m.retired.Load() {
		m.once.Do(func() { close(m.drained) })
	}
}

// retire marks m as no longer serving: new calls go elsewhere, and
// drained closes when the last running call ends.
func (m *model) retire() {
	m.retired.Store(true)
	if m.refs.Load() == 0 {
		m.once.Do(func() { close(m.drained) })
	}
}

func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		return o, errors.New("reload: Options.Path is empty: nothing to serve")
	}
	if o.Load == nil {
		return o, fmt.Errorf("reload: %s: Options.Load is nil", o.Path)
	}
	if o.FileName == "" {
		o.FileName = "model.onnx"
	}
	if strings.ContainsRune(o.FileName, filepath.Separator) {
		return o, fmt.Errorf("reload: FileName %q must be a file name, not a path", o.FileName)
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = max(o.Interval, 0)
	}
	o.SHA256 = strings.ToLower(strings.TrimSpace(o.SHA256))
	if o.SHA256 != "" && !isHexSHA256(o.SHA256) {
		return o, fmt.Errorf("reload: %s: SHA256 %q is not 64 hex digits", o.Path, o.SHA256)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// New loads the model at opts.Path (the highest version, for a
// directory), checks it (SHA256 pin and sidecar, Check, Probe) and, when
// opts.Interval is positive, starts watching the path. ctx bounds the
// first load only; the watcher runs until Close.
func New(ctx context.Context, opts Options) (*Reloader, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	r := &Reloader{opts: opts, dirMode: fi.IsDir(), refused: map[fingerprint]error{}}
	fp, err := r.find()
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	start := time.Now()
	m, err := r.load(ctx, fp, nil)
	if err != nil {
		return nil, fmt.Errorf("reload: %s: %w", fp.path, err)
	}
	r.cur.Store(m)
	r.curFP = fp
	r.stats.Version, r.stats.Path = m.version, m.path
	opts.Logger.Info("model loaded, watching for new versions",
		"model", m.h.Name(), "version", m.version, "path", m.path, "sha256", m.sha,
		"watch", opts.Path, "interval", opts.Interval, "load_seconds", time.Since(start).Seconds())
	wctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	if opts.Interval > 0 {
		r.watcher.Go(func() { r.watch(wctx) })
	}
	return r, nil
}

func (r *Reloader) watch(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Poll(ctx)
		}
	}
}

// acquire returns the serving model with a reference held; release it.
func (r *Reloader) acquire() (*model, error) {
	for {
		m := r.cur.Load()
		m.refs.Add(1)
		if !m.retired.Load() {
			return m, nil
		}
		m.release()
		if r.closed.Load() {
			return nil, fmt.Errorf("reload: model %s: %w", m.h.Name(), handlers.ErrClosed)
		}
		// A swap stored the next model before retiring this one: go again.
	}
}

// Name is the serving model's name.
func (r *Reloader) Name() string { return r.cur.Load().h.Name() }

// Version is the serving model's version. A batch's result may come from
// the previous or the next version when a swap happens meanwhile; use
// InferVersion to know which.
func (r *Reloader) Version() string { return r.cur.Load().version }

// Inputs are the serving model's inputs.
func (r *Reloader) Inputs() []handlers.TensorSpec { return r.cur.Load().h.Inputs() }

// Outputs are the serving model's outputs.
func (r *Reloader) Outputs() []handlers.TensorSpec { return r.cur.Load().h.Outputs() }

// Infer runs a batch on the serving model.
func (r *Reloader) Infer(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	out, _, err := r.InferVersion(ctx, inputs)
	return out, err
}

// InferVersion runs a batch on the serving model and returns the version
// of the model that ran it, which is what predictions must be stamped
// with: the whole batch runs on one model, and a swap during the call
// neither interrupts it nor changes the version reported for it.
func (r *Reloader) InferVersion(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, string, error) {
	m, err := r.acquire()
	if err != nil {
		return nil, "", err
	}
	defer m.release()
	return handlers.InferVersion(ctx, m.h, inputs)
}

// Stats returns what the Reloader serves and has done.
func (r *Reloader) Stats() Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}

// ActiveProvider is the serving model's execution provider, or "" when
// its handler does not report one (see handlers.ProviderReporter).
func (r *Reloader) ActiveProvider() string {
	if pr, ok := r.cur.Load().h.(handlers.ProviderReporter); ok {
		return pr.ActiveProvider()
	}
	return ""
}

// Close stops watching, waits for running calls to finish, and closes
// the serving model and any retired one still draining. Later Infer
// calls return an error wrapping handlers.ErrClosed. It is safe to call
// more than once; later calls return the first call's result.
func (r *Reloader) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		r.watcher.Wait()
		r.pollMu.Lock() // a Poll in progress finishes first
		r.closed.Store(true)
		r.pollMu.Unlock()
		m := r.cur.Load()
		r.retireAsync(m, func(err error) { r.closeErr = err })
		r.retiring.Wait()
	})
	return r.closeErr
}

// retireAsync retires m and closes it once its calls have drained.
func (r *Reloader) retireAsync(m *model, done func(error)) {
	m.retire()
	r.retiring.Go(func() {
		<-m.drained
		err := m.h.Close()
		if err != nil {
			r.opts.Logger.Warn("closing a replaced model", "model", m.h.Name(), "version", m.version, "error", err)
		}
		if done != nil {
			done(err)
		}
	})
}
