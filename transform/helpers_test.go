package transform

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

const fixtureDir = "../testdata/transform"

// readFixture decodes a fixture file made by make_fixtures.py.
func readFixture(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("reading fixture (regenerate with testdata/transform/make_fixtures.py): %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding fixture %s: %v", name, err)
	}
}

func mustNew(t testing.TB, cfg Config, opts ...Option) *Pipeline {
	t.Helper()
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// rowsSource replays rows (copies of them, so a stage cannot leak state
// from one pass into the next).
func rowsSource(rows []map[string]any) Source {
	return func(ctx context.Context, observe func(map[string]any) error) error {
		for _, r := range rows {
			if err := observe(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// fitBind fits p on rows and binds the result.
func fitBind(t testing.TB, p *Pipeline, rows []map[string]any) (*Pipeline, *Artifacts) {
	t.Helper()
	a, err := p.Fit(context.Background(), rowsSource(rows))
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	q, err := p.Bind(a)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return q, a
}

// apply runs p on a copy of row.
func apply(t testing.TB, p *Pipeline, row map[string]any) map[string]any {
	t.Helper()
	out := make(map[string]any, len(row)+4)
	for k, v := range row {
		out[k] = v
	}
	if err := p.Apply(out); err != nil {
		t.Fatalf("Apply(%v): %v", row, err)
	}
	return out
}

// near reports |got-want| <= tol*max(1,|want|).
func near(got, want, tol float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// columnsRows turns a table into rows keyed by column name.
func columnsRows(cols []string, table [][]float64) []map[string]any {
	rows := make([]map[string]any, len(table))
	for i, r := range table {
		m := make(map[string]any, len(cols))
		for j, c := range cols {
			m[c] = r[j]
		}
		rows[i] = m
	}
	return rows
}

// floats reads a tensor's data as float64s.
func floats(t testing.TB, v any) []float64 {
	t.Helper()
	ts, ok := v.(*tensor.Tensor)
	if !ok {
		t.Fatalf("output is %T, want *tensor.Tensor", v)
	}
	if err := ts.Validate(); err != nil {
		t.Fatalf("output tensor: %v", err)
	}
	out := make([]float64, ts.Len())
	for i := range out {
		out[i] = ts.Float64At(i)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
