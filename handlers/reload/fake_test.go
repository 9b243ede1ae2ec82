package reload_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/reload"
	"github.com/kinfer/kinfer/tensor"
)

// A fake model file is a few "key: value" lines:
//
//	version: 3    the model's version, and its scale: y = 3x
//	width: 4      x and y are float32[?,width] (default 4)
//	load: fail    the loader refuses the file
//	probe: fail   Infer fails on a batch of exactly 7 rows (the probe size)
//	work: 1ms     each Infer takes this long
//
// Versions are numbers so that a result tells which model made it.
func writeModel(t testing.TB, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write beside and rename, as a publisher should, so that a poll never
	// sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fakes loads fake models and keeps them all, to check they get closed.
type fakes struct {
	mu     sync.Mutex
	loaded []*fake
}

func (fs *fakes) load(ctx context.Context, c reload.Candidate) (handlers.ModelHandler, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &fake{width: 4, path: c.Path}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			m.version = v
			if m.scale, err = strconv.ParseFloat(v, 32); err != nil {
				return nil, fmt.Errorf("version %q is not a number", v)
			}
		case "width":
			w, _ := strconv.Atoi(v)
			m.width = int64(w)
		case "load":
			return nil, errors.New("this model does not load")
		case "probe":
			m.failProbe = true
		case "work":
			m.work, _ = time.ParseDuration(v)
		}
	}
	if m.version == "" {
		return nil, errors.New("no version line: not a model file")
	}
	fs.mu.Lock()
	fs.loaded = append(fs.loaded, m)
	fs.mu.Unlock()
	return m, nil
}

// open returns the models loaded and not yet closed.
func (fs *fakes) open() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var open []string
	for _, m := range fs.loaded {
		if !m.closed.Load() {
			open = append(open, m.version)
		}
	}
	return open
}

type fake struct {
	version   string
	scale     float64
	width     int64
	path      string
	failProbe bool
	work      time.Duration
	running   atomic.Int64
	closed    atomic.Bool
	// usedAfterClose is set when Infer ran while (or after) the model was
	// closed: the reloader closed a model with calls still on it.
	usedAfterClose atomic.Bool
}

func (m *fake) Name() string    { return "fake" }
func (m *fake) Version() string { return m.version }
func (m *fake) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, m.width}}}
}
func (m *fake) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, m.width}}}
}

func (m *fake) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.running.Add(1)
	defer m.running.Add(-1)
	if m.closed.Load() {
		m.usedAfterClose.Store(true)
		return nil, fmt.Errorf("fake %s: %w", m.version, handlers.ErrClosed)
	}
	n, err := handlers.CheckInputs(m.Inputs(), in)
	if err != nil {
		return nil, err
	}
	if m.failProbe && n == 7 {
		return nil, errors.New("NaN in the output")
	}
	if m.work > 0 {
		time.Sleep(m.work)
	}
	x := in["x"].Data.([]float32)
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(m.scale) * v
	}
	if m.closed.Load() {
		m.usedAfterClose.Store(true)
		return nil, fmt.Errorf("fake %s: closed during Infer", m.version)
	}
	return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: []int64{int64(n), m.width}, Data: y}}, nil
}

func (m *fake) Close() error {
	if m.running.Load() > 0 {
		m.usedAfterClose.Store(true)
	}
	m.closed.Store(true)
	return nil
}
