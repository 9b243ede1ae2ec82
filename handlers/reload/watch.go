package reload

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kinfer/kinfer/handlers"
)

// fingerprint identifies what is on disk for one version without reading
// it: a change of any field is a new candidate.
type fingerprint struct {
	path    string
	version string // "" in file mode
	size    int64
	modTime time.Time
}

func (fp fingerprint) candidate() Candidate { return Candidate{Path: fp.path, Version: fp.version} }

// maxRefused bounds the memory of refused fingerprints; when full it is
// forgotten, and a refused candidate still present is refused again once.
const maxRefused = 256

// find returns the fingerprint of what should serve now: the file, or
// the highest complete version in the directory.
func (r *Reloader) find() (fingerprint, error) {
	if !r.dirMode {
		return stat(r.opts.Path, "")
	}
	entries, err := os.ReadDir(r.opts.Path)
	if err != nil {
		return fingerprint{}, err
	}
	ext := filepath.Ext(r.opts.FileName)
	var best fingerprint
	found := false
	for _, e := range entries {
		name := e.Name()
		if ignored(name) {
			continue
		}
		full := filepath.Join(r.opts.Path, name)
		fi, err := os.Stat(full) // follows symlinks, unlike e.Info
		if err != nil {
			continue
		}
		var version, path string
		switch {
		case fi.IsDir():
			version, path = name, filepath.Join(full, r.opts.FileName)
		case ext != "" && strings.HasSuffix(name, ext):
			version, path = strings.TrimSuffix(name, ext), full
		default:
			continue
		}
		if !isVersion(version) || (found && handlers.CompareVersions(version, best.version) <= 0) {
			continue
		}
		fp, err := stat(path, version)
		if err != nil {
			continue // a version directory still being filled
		}
		best, found = fp, true
	}
	if !found {
		return fingerprint{}, fmt.Errorf("%s holds no model version (want entries like 1/%s or 2%s)", r.opts.Path, r.opts.FileName, ext)
	}
	return best, nil
}

func stat(path, version string) (fingerprint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fingerprint{}, err
	}
	if !fi.Mode().IsRegular() {
		return fingerprint{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fingerprint{path: path, version: version, size: fi.Size(), modTime: fi.ModTime()}, nil
}

func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".partial")
}

// isVersion says whether name is a version name: a digit first, or "v"
// and a digit.
func isVersion(name string) bool {
	if len(name) > 1 && (name[0] == 'v' || name[0] == 'V') {
		name = name[1:]
	}
	return name != "" && '0' <= name[0] && name[0] <= '9'
}

// Poll looks at the path now and, when a new version is there and has
// settled, loads, checks and swaps it in. It returns the refusal when the
// candidate was refused, else nil (nothing new, still settling, or
// swapped in). The watcher calls it every Interval; call it yourself to
// reload on demand (a SIGHUP, an admin endpoint, a test).
func (r *Reloader) Poll(ctx context.Context) error {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if r.closed.Load() {
		return nil
	}
	fp, err := r.find()
	if err != nil {
		if msg := err.Error(); msg != r.lastProblem {
			r.lastProblem = msg
			r.opts.Logger.Warn("model path has nothing to load; the current model keeps serving",
				"model", r.Name(), "version", r.Version(), "path", r.opts.Path, "error", err)
		}
		return nil
	}
	r.lastProblem = ""
	if fp == r.curFP {
		r.pending = fingerprint{}
		return nil
	}
	if _, refused := r.refused[fp]; refused {
		return nil
	}
	if r.opts.Settle > 0 {
		if fp != r.pending {
			r.pending, r.pendingAt = fp, time.Now()
			return nil
		}
		// Polls come every Interval, give or take scheduling: allow a
		// quarter of it, so that the default Settle (= Interval) means
		// "unchanged on the next poll", not on the one after.
		slack := max(r.opts.Interval/4, 0)
		if time.Since(r.pendingAt)+slack < r.opts.Settle {
			return nil
		}
	}
	r.pending = fingerprint{}
	return r.try(ctx, fp)
}

// try loads, checks and swaps in the candidate fp. pollMu is held.
func (r *Reloader) try(ctx context.Context, fp fingerprint) error {
	cur := r.cur.Load()
	start := time.Now()
	m, err := r.load(ctx, fp, cur)
	if errors.Is(err, errUnchanged) {
		// The same bytes under a new timestamp (touched, or copied again).
		r.curFP = fp
		return nil
	}
	ev := Event{Path: fp.path, Previous: cur.version, Err: err, LoadTime: time.Since(start)}
	if err != nil {
		ev.Version = fp.version
		var ve *versionedError
		if errors.As(err, &ve) {
			ev.Version = ve.version
		}
		if ctx.Err() != nil {
			return nil // Close interrupted the load: not the candidate's fault
		}
		if len(r.refused) >= maxRefused {
			clear(r.refused)
		}
		r.refused[fp] = err
		r.statsMu.Lock()
		r.stats.Refused++
		r.stats.LastRefusal = err
		r.statsMu.Unlock()
		r.opts.Logger.Warn("model reload refused; the current model keeps serving",
			"model", cur.h.Name(), "serving", cur.version, "candidate", ev.Version, "path", fp.path, "error", err)
		if r.opts.OnReload != nil {
			r.opts.OnReload(ev)
		}
		return err
	}
	ev.Version = m.version
	old := r.cur.Swap(m)
	r.curFP = fp
	r.statsMu.Lock()
	r.stats.Reloads++
	r.stats.Version, r.stats.Path = m.version, m.path
	r.statsMu.Unlock()
	r.retireAsync(old, nil)
	r.opts.Logger.Info("model reloaded",
		"model", m.h.Name(), "from", old.version, "to", m.version, "path", m.path, "sha256", m.sha,
		"load_seconds", ev.LoadTime.Seconds())
	if r.opts.OnReload != nil {
		r.opts.OnReload(ev)
	}
	return nil
}

// errUnchanged says a candidate holds the serving model's bytes.
var errUnchanged = errors.New("unchanged")

// versionedError carries the version of a candidate that loaded but was
// refused afterwards, for the Event.
type versionedError struct {
	version string
	err     error
}

func (e *versionedError) Error() string { return e.err.Error() }
func (e *versionedError) Unwrap() error { return e.err }

// load reads, loads and checks the candidate fp; cur is the serving model
// (nil for the first load). A refused model is closed before load
// returns.
func (r *Reloader) load(ctx context.Context, fp fingerprint, cur *model) (*model, error) {
	sum, err := fileSHA256(fp.path)
	if err != nil {
		return nil, err
	}
	if cur != nil && sum == cur.sha {
		if !r.dirMode || fp.version == r.curFP.version {
			return nil, errUnchanged
		}
		// A new version name holding the same bytes is still a new
		// version: load it, so that predictions carry its name.
	}
	short := sum[:12]
	if cur != nil && r.dirMode && fp.version == r.curFP.version {
		return nil, &versionedError{fp.version, fmt.Errorf("version %s changed in place (sha256 %s, serving %s); versions are immutable: publish a new version directory", fp.version, short, cur.sha[:12])}
	}
	if r.opts.SHA256 != "" && sum != r.opts.SHA256 {
		return nil, &versionedError{orShort(fp.version, short), fmt.Errorf("sha256 %s does not match the pinned %s", sum, r.opts.SHA256)}
	}
	if err := checkSidecar(fp.path, sum); err != nil {
		return nil, &versionedError{orShort(fp.version, short), err}
	}
	c := Candidate{Path: fp.path, Version: fp.version, SHA256: sum}
	h, err := r.opts.Load(ctx, c)
	if err != nil {
		return nil, &versionedError{orShort(fp.version, short), fmt.Errorf("loading: %w", err)}
	}
	if h == nil {
		return nil, &versionedError{orShort(fp.version, short), errors.New("loading: the loader returned no model and no error")}
	}
	if err := r.check(ctx, h, sum, cur); err != nil {
		if cerr := h.Close(); cerr != nil {
			err = fmt.Errorf("%w (and closing it: %v)", err, cerr)
		}
		return nil, &versionedError{h.Version(), err}
	}
	return newModel(h, c), nil
}

func orShort(version, short string) string {
	if version != "" {
		return version
	}
	return short
}

// check runs the checks after loading; see the package comment.
func (r *Reloader) check(ctx context.Context, h handlers.ModelHandler, sum string, cur *model) error {
	if s, ok := h.(interface{ SHA256() string }); ok && s.SHA256() != "" && s.SHA256() != sum {
		return fmt.Errorf("the file changed while it was loaded (sha256 %s before, %s loaded)", sum[:12], s.SHA256())
	}
	if h.Version() == "" {
		return errors.New("the model reports an empty version")
	}
	if cur != nil && !r.opts.AllowSignatureChange {
		if err := handlers.SameSpecs("inputs", h.Inputs(), cur.h.Inputs()); err != nil {
			return fmt.Errorf("%w (the serving version %s has those)", err, cur.version)
		}
		if err := handlers.SameSpecs("outputs", h.Outputs(), cur.h.Outputs()); err != nil {
			return fmt.Errorf("%w (the serving version %s has those)", err, cur.version)
		}
	}
	if r.opts.Check != nil {
		if err := r.opts.Check(h); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	if r.opts.Probe != nil {
		if _, err := h.Infer(ctx, r.opts.Probe); err != nil {
			return fmt.Errorf("probe batch: %w", err)
		}
	}
	return nil
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

// checkSidecar compares sum with <path>.sha256 when that file exists. Its
// first word is the hex digest (sha256sum writes "<hex>  <name>").
func checkSidecar(path, sum string) error {
	side := path + ".sha256"
	f, err := os.Open(side)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading %s: %w", side, err)
	}
	want := ""
	if fields := strings.Fields(line); len(fields) > 0 {
		want = strings.ToLower(fields[0])
	}
	if !isHexSHA256(want) {
		return fmt.Errorf("%s does not start with a sha256 (64 hex digits)", side)
	}
	if want != sum {
		return fmt.Errorf("sha256 %s does not match %s, which says %s", sum, side, want)
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
