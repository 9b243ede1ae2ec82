// Package handlertest is the conformance suite every handlers.ModelHandler
// must pass. A handler's own tests call Run with a constructor and a
// Features value that says what the handler and its model can do:
//
//	handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
//		h, err := onnx.Load(ctx, onnx.Options{Path: "testdata/models/fraud/model.onnx"})
//		if err != nil {
//			t.Fatal(err)
//		}
//		return h
//	}, handlertest.Features{Fixture: "testdata/models/fraud/expected.json", DynamicBatch: true})
//
// The suite checks what the engine relies on: the handler describes itself;
// a row's result does not depend on which batch it rides in or how big that
// batch is; results match a reference framework's; concurrent calls do not
// mix rows up; bad inputs are errors, never panics; Close is idempotent and
// final. Handlers that implement handlers.VersionInferer must also report
// through it the version and outputs Version and Infer do.
package handlertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Features describes the handler and model under test. The zero value runs
// the suite on made-up inputs with the default batch sizes.
type Features struct {
	// Fixture is the path of an expected.json (see testdata/models/README.md)
	// whose rows are fed to the handler and whose outputs, if any, the
	// handler's must match. Empty: rows are made up from the input specs
	// (see SyntheticFixture) and only self-consistency is checked.
	Fixture string
	// DynamicBatch says the model takes any batch size: every input and
	// output spec must have a dynamic (-1) leading dim. When false, batches
	// are only of the size the first input's leading dim fixes (or 1 when it
	// is dynamic too).
	DynamicBatch bool
	// Tolerance for float outputs: got matches want when
	// |got-want| <= Tolerance*(1+|want|). Default 1e-5. Integer and bool
	// outputs must be equal.
	Tolerance float64
	// Ragged says rows differ in shape along dynamic non-batch dims
	// (sequences of different lengths). Batches of such rows are padded to
	// their longest row with PadValues (0 for inputs it does not name), and
	// each output row is cut back to the shape of that row's own unbatched
	// result before comparing: the handler must mask padding out. When
	// false, all rows must share one shape.
	Ragged    bool
	PadValues map[string]float64
	// BatchSizes to try. Default 1, 3 and 17 (the last is usually not a
	// power of two and longer than small fixtures, whose rows then repeat).
	BatchSizes []int
	// Goroutines calling Infer at once in the concurrency test. Default 8.
	Goroutines int
}

func (f Features) withDefaults() Features {
	if f.Tolerance == 0 {
		f.Tolerance = 1e-5
	}
	if len(f.BatchSizes) == 0 {
		f.BatchSizes = []int{1, 3, 17}
	}
	if f.Goroutines == 0 {
		f.Goroutines = 8
	}
	return f
}

// suite is one run of the conformance tests against one handler.
type suite struct {
	f       Features
	h       handlers.ModelHandler
	inputs  []handlers.TensorSpec
	outputs []handlers.TensorSpec
	fx      *Fixture
	// perRow[i] is the handler's result for row i alone (a batch of one).
	perRow []map[string]*tensor.Tensor
}

// Run runs the conformance suite as subtests of t. newHandler returns a
// freshly loaded handler each time it is called; Run closes every handler
// it gets (Close must be idempotent, so newHandler may also register a
// t.Cleanup that closes it).
func Run(t *testing.T, newHandler func(t *testing.T) handlers.ModelHandler, f Features) {
	t.Helper()
	f = f.withDefaults()
	s := &suite{f: f, h: newHandler(t)}
	t.Cleanup(func() { s.h.Close() })
	s.inputs, s.outputs = s.h.Inputs(), s.h.Outputs()

	if !t.Run("Describe", s.testDescribe) {
		// Without sound specs the other tests cannot build inputs.
		return
	}
	if f.Fixture != "" {
		fx, err := LoadFixture(f.Fixture, s.inputs, s.outputs)
		if err != nil {
			t.Fatalf("loading fixture: %v", err)
		}
		s.fx = fx
	} else {
		s.fx = SyntheticFixture(s.inputs, 20)
	}
	if len(s.fx.Inputs) == 0 {
		t.Fatalf("fixture %s has no rows", f.Fixture)
	}
	if !f.Ragged {
		for i, row := range s.fx.Inputs {
			for name, x := range row {
				if first := s.fx.Inputs[0][name]; !slices.Equal(x.Shape, first.Shape) {
					t.Fatalf("fixture row %d input %q has shape %s, row 0 has %s; set Features.Ragged to pad such rows",
						i, name, tensor.ShapeString(x.Shape), tensor.ShapeString(first.Shape))
				}
			}
		}
	}

	if !t.Run("PerRow", s.testPerRow) {
		return
	}
	t.Run("BatchSizes", s.testBatchSizes)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("BadInputs", s.testBadInputs)
	t.Run("CancelledContext", s.testCancelledContext)
	if _, ok := s.h.(handlers.VersionInferer); ok {
		t.Run("InferVersion", s.testInferVersion)
	}
	t.Run("CloseTwice", func(t *testing.T) {
		h := newHandler(t)
		if err := h.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := h.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("InferAfterClose", func(t *testing.T) {
		h := newHandler(t)
		if err := h.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		out, err := safeInfer(context.Background(), h, s.batch(t, 0, s.batchSizes()[0]))
		if err == nil {
			t.Fatalf("Infer after Close returned %d outputs and no error", len(out))
		}
	})
	t.Run("CloseDuringInfer", func(t *testing.T) {
		s.testCloseDuringInfer(t, newHandler(t))
	})
}

func (s *suite) testDescribe(t *testing.T) {
	if s.h.Name() == "" {
		t.Error("Name() is empty")
	}
	if s.h.Version() == "" {
		t.Error("Version() is empty")
	}
	check := func(kind string, specs []handlers.TensorSpec) {
		if len(specs) == 0 {
			t.Errorf("%s: none", kind)
		}
		seen := map[string]bool{}
		for _, sp := range specs {
			if sp.Name == "" {
				t.Errorf("%s %v: empty name", kind, sp)
			}
			if seen[sp.Name] {
				t.Errorf("%s %q: listed twice", kind, sp.Name)
			}
			seen[sp.Name] = true
			if tensor.MakeSlice(sp.DType, 0) == nil {
				t.Errorf("%s %q: invalid dtype %v", kind, sp.Name, sp.DType)
			}
			if len(sp.Shape) == 0 {
				t.Errorf("%s %q: shape %s has no batch dim", kind, sp.Name, tensor.ShapeString(sp.Shape))
				continue
			}
			for i, d := range sp.Shape {
				if d == 0 || d < -1 {
					t.Errorf("%s %q: dim %d is %d; want -1 (dynamic) or positive", kind, sp.Name, i, d)
				}
			}
			if s.f.DynamicBatch && sp.Shape[0] != -1 {
				t.Errorf("%s %q: shape %s has a fixed batch dim, but Features.DynamicBatch is set", kind, sp.Name, tensor.ShapeString(sp.Shape))
			}
		}
	}
	check("input", s.inputs)
	check("output", s.outputs)
	// The specs are the handler's to keep: a caller changing the returned
	// slices must not change what the handler reports next time.
	if ins := s.h.Inputs(); len(ins) > 0 && len(ins[0].Shape) > 0 {
		ins[0].Name, ins[0].Shape[0] = "mutated", 12345
		if again := s.h.Inputs(); again[0].Name == "mutated" || again[0].Shape[0] == 12345 {
			t.Error("Inputs() returns the handler's own slices; mutating the result changed the handler")
		}
	}
}

// batchSizes are the sizes the handler accepts among Features.BatchSizes.
func (s *suite) batchSizes() []int {
	if s.f.DynamicBatch {
		return s.f.BatchSizes
	}
	if d := s.inputs[0].Shape[0]; d > 0 {
		return []int{int(d)}
	}
	return []int{1}
}

// rowIndexes are n fixture rows starting at start, wrapping around.
func (s *suite) rowIndexes(start, n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = (start + i) % len(s.fx.Inputs)
	}
	return idx
}

// batch builds a batch of n fixture rows starting at row start.
func (s *suite) batch(t *testing.T, start, n int) map[string]*tensor.Tensor {
	t.Helper()
	rows := make([]map[string]*tensor.Tensor, 0, n)
	for _, i := range s.rowIndexes(start, n) {
		rows = append(rows, s.fx.Inputs[i])
	}
	b, err := makeBatch(rows, s.f.Ragged, s.f.PadValues)
	if err != nil {
		t.Fatalf("building a batch of %d rows from row %d: %v", n, start, err)
	}
	return b
}

// checkOutputs checks a batch result against the specs and returns each
// output split into rows.
func (s *suite) checkOutputs(out map[string]*tensor.Tensor, n int) (map[string][]*tensor.Tensor, error) {
	for name := range out {
		if !slices.ContainsFunc(s.outputs, func(sp handlers.TensorSpec) bool { return sp.Name == name }) {
			return nil, fmt.Errorf("output %q is not among the declared outputs", name)
		}
	}
	rows := map[string][]*tensor.Tensor{}
	for _, sp := range s.outputs {
		o, ok := out[sp.Name]
		if !ok || o == nil {
			return nil, fmt.Errorf("output %q missing", sp.Name)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("output %q: %v", sp.Name, err)
		}
		if o.DType != sp.DType {
			return nil, fmt.Errorf("output %q is %v; declared %v", sp.Name, o.DType, sp)
		}
		if len(o.Shape) != len(sp.Shape) {
			return nil, fmt.Errorf("output %q has shape %s; declared %v", sp.Name, tensor.ShapeString(o.Shape), sp)
		}
		for i, d := range sp.Shape {
			if d >= 0 && o.Shape[i] != d {
				return nil, fmt.Errorf("output %q has shape %s; declared %v", sp.Name, tensor.ShapeString(o.Shape), sp)
			}
		}
		if o.Shape[0] != int64(n) {
			return nil, fmt.Errorf("output %q has shape %s for a batch of %d: the leading dim must be the batch size", sp.Name, tensor.ShapeString(o.Shape), n)
		}
		r, err := tensor.Unstack(o)
		if err != nil {
			return nil, fmt.Errorf("output %q: %v", sp.Name, err)
		}
		rows[sp.Name] = r
	}
	return rows, nil
}

// compareRow compares one output row of a batch with the row's own result,
// cropping padding away first when rows are ragged.
func (s *suite) compareRow(got, want *tensor.Tensor) error {
	if s.f.Ragged && len(got.Shape) == len(want.Shape) && !slices.Equal(got.Shape, want.Shape) {
		for i := range got.Shape {
			if got.Shape[i] < want.Shape[i] {
				return fmt.Errorf("shape %s is smaller than the unbatched result's %s", tensor.ShapeString(got.Shape), tensor.ShapeString(want.Shape))
			}
		}
		got = reshapeCorner(got, want.Shape, 0)
	}
	return compare(got, want, s.f.Tolerance)
}

func (s *suite) testPerRow(t *testing.T) {
	ctx := context.Background()
	s.perRow = make([]map[string]*tensor.Tensor, len(s.fx.Inputs))
	for i := range s.fx.Inputs {
		b := s.batch(t, i, 1)
		out, err := safeInfer(ctx, s.h, b)
		if err != nil {
			t.Fatalf("row %d alone: %v", i, err)
		}
		rows, err := s.checkOutputs(out, 1)
		if err != nil {
			t.Fatalf("row %d alone: %v", i, err)
		}
		s.perRow[i] = map[string]*tensor.Tensor{}
		for name, r := range rows {
			s.perRow[i][name] = r[0]
		}
		if s.fx.Outputs == nil {
			continue
		}
		for name, want := range s.fx.Outputs[i] {
			if err := compare(s.perRow[i][name], want, s.f.Tolerance); err != nil {
				t.Errorf("row %d output %q vs the reference: %v", i, name, err)
			}
		}
	}
}

func (s *suite) testBatchSizes(t *testing.T) {
	for _, n := range s.batchSizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			// Cover every fixture row once; the last batch wraps around.
			for start := 0; start < len(s.fx.Inputs); start += n {
				out, err := safeInfer(context.Background(), s.h, s.batch(t, start, n))
				if err != nil {
					t.Fatalf("batch of %d from row %d: %v", n, start, err)
				}
				rows, err := s.checkOutputs(out, n)
				if err != nil {
					t.Fatalf("batch of %d from row %d: %v", n, start, err)
				}
				for j, i := range s.rowIndexes(start, n) {
					for name, r := range rows {
						if err := s.compareRow(r[j], s.perRow[i][name]); err != nil {
							t.Fatalf("batch of %d from row %d: row %d (fixture row %d) output %q differs from the row inferred alone: %v",
								n, start, j, i, name, err)
						}
					}
				}
			}
		})
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	sizes := s.batchSizes()
	n := sizes[len(sizes)-1]
	if s.f.DynamicBatch {
		n = 5
	}
	const iterations = 10
	g := s.f.Goroutines
	batches := make([]map[string]*tensor.Tensor, g)
	want := make([]map[string]*tensor.Tensor, g)
	for i := range g {
		// Each goroutine has its own rows, so that a result delivered to
		// the wrong caller shows.
		batches[i] = s.batch(t, i*n, n)
		out, err := safeInfer(context.Background(), s.h, batches[i])
		if err != nil {
			t.Fatalf("sequential batch %d: %v", i, err)
		}
		want[i] = out
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range g {
		wg.Go(func() {
			<-start
			for it := range iterations {
				out, err := safeInfer(context.Background(), s.h, batches[i])
				if err != nil {
					t.Errorf("goroutine %d call %d: %v", i, it, err)
					return
				}
				for name, w := range want[i] {
					if err := compare(out[name], w, s.f.Tolerance); err != nil {
						t.Errorf("goroutine %d call %d output %q differs from the sequential result: %v", i, it, name, err)
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

// badCase is an invalid batch and what makes it invalid.
type badCase struct {
	name   string
	inputs map[string]*tensor.Tensor
}

func (s *suite) badCases(t *testing.T) []badCase {
	n := 2
	if sizes := s.batchSizes(); !s.f.DynamicBatch {
		n = sizes[0]
	}
	good := func() map[string]*tensor.Tensor { return cloneTensors(s.batch(t, 0, n)) }
	first := s.inputs[0]
	var cases []badCase
	add := func(name string, mutate func(m map[string]*tensor.Tensor)) {
		m := good()
		mutate(m)
		cases = append(cases, badCase{name, m})
	}
	add("unknown input name", func(m map[string]*tensor.Tensor) {
		m["kinfer_no_such_input"] = m[first.Name]
	})
	add("renamed input", func(m map[string]*tensor.Tensor) {
		m[first.Name+"_renamed"] = m[first.Name]
		delete(m, first.Name)
	})
	add("missing input", func(m map[string]*tensor.Tensor) { delete(m, first.Name) })
	add("no inputs", func(m map[string]*tensor.Tensor) { clear(m) })
	add("nil tensor", func(m map[string]*tensor.Tensor) { m[first.Name] = nil })
	add("wrong dtype", func(m map[string]*tensor.Tensor) {
		other := map[tensor.DType]tensor.DType{
			tensor.Float32: tensor.Float64, tensor.Float64: tensor.Float32,
			tensor.Int64: tensor.Int32, tensor.Int32: tensor.Int64,
		}[first.DType]
		if other == tensor.Invalid {
			other = tensor.Float32
		}
		m[first.Name] = convert(m[first.Name], other)
	})
	add("dtype does not match data", func(m map[string]*tensor.Tensor) {
		x := m[first.Name]
		if x.DType == tensor.Float32 {
			x.DType = tensor.Int32 // same size, different type
		} else {
			x.DType = tensor.Float32
		}
	})
	add("data shorter than shape", func(m map[string]*tensor.Tensor) {
		x := m[first.Name]
		x.Data = tensor.SliceData(x.Data, 0, x.Len()-1)
	})
	add("extra axis", func(m map[string]*tensor.Tensor) {
		x := m[first.Name]
		x.Shape = append(slices.Clone(x.Shape), 1)
	})
	if len(first.Shape) >= 2 {
		add("missing axis", func(m map[string]*tensor.Tensor) {
			x := m[first.Name]
			r := len(x.Shape)
			x.Shape = append(slices.Clone(x.Shape[:r-2]), x.Shape[r-2]*x.Shape[r-1])
		})
	}
	if i := slices.IndexFunc(first.Shape[1:], func(d int64) bool { return d > 0 }); i >= 0 {
		axis := i + 1
		add(fmt.Sprintf("wrong size of fixed dim %d", axis), func(m map[string]*tensor.Tensor) {
			x := m[first.Name]
			shape := slices.Clone(x.Shape)
			shape[axis]++
			m[first.Name] = reshapeCorner(x, shape, 0)
		})
	}
	if len(s.inputs) >= 2 && s.f.DynamicBatch {
		add("inputs disagree on batch size", func(m map[string]*tensor.Tensor) {
			second := s.inputs[1].Name
			x := m[second]
			shape := slices.Clone(x.Shape)
			shape[0]++
			m[second] = reshapeCorner(x, shape, 0)
		})
	}
	if s.f.DynamicBatch {
		add("empty batch", func(m map[string]*tensor.Tensor) {
			for name, x := range m {
				shape := slices.Clone(x.Shape)
				shape[0] = 0
				m[name] = tensor.New(x.DType, shape)
			}
		})
	}
	return cases
}

func (s *suite) testBadInputs(t *testing.T) {
	for _, c := range s.badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out, err := safeInfer(context.Background(), s.h, c.inputs)
			if errors.Is(err, errPanic) {
				t.Fatal(err)
			}
			if err == nil {
				// An empty batch may succeed, if it yields empty outputs.
				if c.name == "empty batch" {
					if _, cerr := s.checkOutputs(out, 0); cerr == nil {
						return
					}
				}
				t.Fatalf("no error (got %d outputs)", len(out))
			}
			t.Logf("error, as expected: %v", err)
		})
	}
	// The handler must still work after refusing all of that.
	if _, err := safeInfer(context.Background(), s.h, s.batch(t, 0, s.batchSizes()[0])); err != nil {
		t.Fatalf("a good batch after the bad ones: %v", err)
	}
}

func (s *suite) testCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := safeInfer(ctx, s.h, s.batch(t, 0, 1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Infer with a cancelled context: got error %v, want one wrapping context.Canceled", err)
	}
}

// testInferVersion checks a handlers.VersionInferer: while nothing
// changes, InferVersion returns Infer's outputs and Version().
func (s *suite) testInferVersion(t *testing.T) {
	vi := s.h.(handlers.VersionInferer)
	n := s.batchSizes()[0]
	b := s.batch(t, 0, n)
	out, version, err := vi.InferVersion(context.Background(), b)
	if err != nil {
		t.Fatalf("InferVersion: %v", err)
	}
	if version == "" || version != s.h.Version() {
		t.Errorf("InferVersion reports version %q; Version() is %q", version, s.h.Version())
	}
	rows, err := s.checkOutputs(out, n)
	if err != nil {
		t.Fatalf("InferVersion: %v", err)
	}
	for j, i := range s.rowIndexes(0, n) {
		for name, r := range rows {
			if err := s.compareRow(r[j], s.perRow[i][name]); err != nil {
				t.Errorf("InferVersion row %d output %q differs from Infer's: %v", j, name, err)
			}
		}
	}
	if _, v, err := vi.InferVersion(context.Background(), map[string]*tensor.Tensor{}); err == nil {
		t.Errorf("InferVersion with no inputs: no error (version %q)", v)
	}
}

// testCloseDuringInfer closes a handler while goroutines keep calling Infer:
// Close must return, every call must return (a result or an error), and
// none may panic.
func (s *suite) testCloseDuringInfer(t *testing.T, h handlers.ModelHandler) {
	b := s.batch(t, 0, s.batchSizes()[0])
	var wg sync.WaitGroup
	var closed atomic.Bool
	running := make(chan struct{}, s.f.Goroutines)
	for range s.f.Goroutines {
		wg.Go(func() {
			for i := 0; !closed.Load(); i++ {
				if i == 1 {
					running <- struct{}{}
				}
				_, err := safeInfer(context.Background(), h, b)
				if errors.Is(err, errPanic) {
					t.Error(err)
				}
				if err != nil && i == 0 {
					t.Errorf("Infer before Close: %v", err)
					running <- struct{}{}
					return
				}
			}
		})
	}
	for range s.f.Goroutines {
		<-running
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close while Infer runs: %v", err)
	}
	closed.Store(true)
	wg.Wait()
}

var errPanic = errors.New("handler panicked")

// safeInfer turns a panic in the handler into an error wrapping errPanic.
func safeInfer(ctx context.Context, h handlers.ModelHandler, in map[string]*tensor.Tensor) (out map[string]*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	return h.Infer(ctx, in)
}
