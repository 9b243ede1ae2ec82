package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// graphCodec writes, per row, the last step's y and the models that
// served it, as JSON; a record's value is its float x and route key.
type graphCodec struct{}

type graphOut struct {
	Y      []float32 `json:"y"`
	Models []string  `json:"models"`
}

func (graphCodec) Decode(_ context.Context, rec *kgo.Record) (Decoded, error) {
	var in struct {
		X   float32 `json:"x"`
		Key string  `json:"key"`
	}
	if err := json.Unmarshal(rec.Value, &in); err != nil {
		return Decoded{}, &RowError{Reason: "decode_error", Err: err}
	}
	return Decoded{
		Inputs: map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{4}, Data: []float32{in.X, in.X, in.X, in.X}}},
		Route:  map[string]string{"key": in.Key},
	}, nil
}

func (graphCodec) Encode(_ context.Context, _ Decoded, res Result) ([]byte, error) {
	o := graphOut{Y: res.Outputs[len(res.Outputs)-1]["y"].Data.([]float32)}
	for _, m := range res.Models {
		o.Models = append(o.Models, m.Name+"@"+m.Version)
	}
	return json.Marshal(o)
}

// named is a doubler with its own name, to tell models apart.
type named struct {
	*doubler
	name string
}

func (n named) Name() string { return n.name }

func runGraph(t *testing.T, steps []*Step, records []string) []graphOut {
	t.Helper()
	sink := &memSink{}
	e, err := NewGraphEngine(EngineConfig{OutputTopic: "out", DeadLetterTopic: "dlq"}, graphCodec{}, steps, sink, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	l := newLane("in", 0)
	for i, v := range records {
		if _, err := e.Submit(context.Background(), l, &kgo.Record{Topic: "in", Offset: int64(i), Key: []byte("k" + strconv.Itoa(i)), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	waitFor(t, "all acked", func() bool { n, _ := e.InFlight(); return n == 0 })
	var outs []graphOut
	for _, r := range sink.written() {
		if r.Topic != "out" {
			msg, _ := HeaderValue(r, HeaderError)
			outs = append(outs, graphOut{Models: []string{"DLQ:" + ReasonOfRecord(r) + ":" + msg}})
			continue
		}
		var o graphOut
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	if len(outs) != len(records) {
		t.Fatalf("%d outputs for %d records", len(outs), len(records))
	}
	return outs
}

var fastBatch = batch.Config{MaxSize: 8, MaxDelay: time.Millisecond}

// A chain: step b takes step a's output y as its input x. Every row gets
// b(a(x)) and names both models.
func TestGraphChain(t *testing.T) {
	a := &Step{Name: "a", Batch: fastBatch, Inputs: []StepInput{{Tensor: "x", Key: "x"}}, Models: SingleModel{Model: named{&doubler{n: 4}, "first"}}}
	b := &Step{Name: "b", Batch: fastBatch, Inputs: []StepInput{{Tensor: "x", FromStep: 0, FromTensor: "y"}}, Models: SingleModel{Model: named{&doubler{n: 4}, "second"}}}
	var recs []string
	for i := range 100 {
		recs = append(recs, fmt.Sprintf(`{"x": %d}`, i))
	}
	for i, o := range runGraph(t, []*Step{a, b}, recs) {
		if want := float32(2*(2*i+1) + 1); o.Y[0] != want {
			t.Fatalf("row %d: y=%v, want %v", i, o.Y[0], want)
		}
		if fmt.Sprint(o.Models) != "[first@v1 second@v1]" {
			t.Fatalf("row %d: models %v", i, o.Models)
		}
	}
}

// An A/B split sends each key to one variant, always the same one, and
// about the configured fraction of keys to each.
func TestGraphABSplitDeterministicByKey(t *testing.T) {
	ab, err := NewABModels([]string{"control", "treatment"},
		[]handlers.ModelHandler{named{&doubler{n: 4}, "control"}, named{&doubler{n: 4}, "treatment"}}, []float64{0.8, 0.2})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := range 20000 {
		key := []byte("key-" + strconv.Itoa(i))
		v, _ := ab.Route(key, Decoded{})
		again, _ := ab.Route(key, Decoded{})
		if v != again {
			t.Fatalf("key %s routed to %s then %s", key, v, again)
		}
		counts[v]++
	}
	if frac := float64(counts["treatment"]) / 20000; math.Abs(frac-0.2) > 0.015 {
		t.Fatalf("treatment got %.3f of keys, want 0.2 (%v)", frac, counts)
	}
	step := &Step{Name: "ab", Batch: fastBatch, Models: ab}
	var recs []string
	for i := range 300 {
		recs = append(recs, fmt.Sprintf(`{"x": %d}`, i))
	}
	outs := runGraph(t, []*Step{step}, recs)
	for i, o := range outs {
		want, _ := ab.Route([]byte("k"+strconv.Itoa(i)), Decoded{})
		if o.Models[0] != want+"@v1" || o.Y[0] != float32(2*i+1) {
			t.Fatalf("row %d: %v y=%v, want variant %s", i, o.Models, o.Y, want)
		}
	}
}

// Per-key models: the route field picks the model, at most MaxLoaded are
// loaded at once (least recently used unloaded), unknown keys are
// dead-lettered with no_model, and each model is loaded once per stay.
func TestGraphPerKeyLRU(t *testing.T) {
	var loads, evictions atomic.Int64
	pk := &PerKeyModels{Field: "key", MaxLoaded: 2,
		Load: func(_ context.Context, key string) (handlers.ModelHandler, error) {
			if key == "missing" {
				return nil, fmt.Errorf("%w: no file for %s", ErrNoModel, key)
			}
			loads.Add(1)
			return named{&doubler{n: 4}, "m-" + key}, nil
		},
		OnEvict: func(string) { evictions.Add(1) },
	}
	step := &Step{Name: "pk", Batch: batch.Config{MaxSize: 4, MaxDelay: time.Millisecond}, Models: pk}
	keys := []string{"a", "a", "b", "a", "c", "c", "missing", "b", "a"}
	var recs []string
	for i := range 90 {
		recs = append(recs, fmt.Sprintf(`{"x": %d, "key": %q}`, i, keys[i%len(keys)]))
	}
	outs := runGraph(t, []*Step{step}, recs)
	for i, o := range outs {
		k := keys[i%len(keys)]
		if k == "missing" {
			if len(o.Models) != 1 || o.Models[0][:13] != "DLQ:no_model:" {
				t.Fatalf("row %d (key %s): %v", i, k, o.Models)
			}
			continue
		}
		if o.Models[0] != "m-"+k+"@v1" || o.Y[0] != float32(2*i+1) {
			t.Fatalf("row %d (key %s): %v y=%v", i, k, o.Models, o.Y)
		}
	}
	if pk.Loaded() > 2 {
		t.Fatalf("%d models loaded, cap 2", pk.Loaded())
	}
	// Every load is either still loaded or was evicted; three keys and a
	// cap of two means churn.
	if evictions.Load() == 0 || loads.Load() != evictions.Load()+int64(pk.Loaded()) {
		t.Fatalf("loads %d, evictions %d, loaded %d", loads.Load(), evictions.Load(), pk.Loaded())
	}
	t.Logf("%d loads, %d evictions, %d loaded at the end", loads.Load(), evictions.Load(), pk.Loaded())
}

// A step whose model fails for good dead-letters the rows with the step
// named, and later steps never see them.
func TestGraphFailureInFirstStep(t *testing.T) {
	a := &Step{Name: "a", Batch: fastBatch, Inputs: []StepInput{{Tensor: "x", Key: "x"}}, Models: SingleModel{Model: named{&doubler{n: 4, poison: 7}, "first"}}}
	b := &Step{Name: "b", Batch: fastBatch, Inputs: []StepInput{{Tensor: "x", FromStep: 0, FromTensor: "y"}}, Models: SingleModel{Model: named{&doubler{n: 4}, "second"}}}
	outs := runGraph(t, []*Step{a, b}, []string{`{"x": 1}`, `{"x": 7}`, `{"x": 2}`})
	if outs[1].Models == nil || outs[1].Models[0][:20] != "DLQ:inference_error:" {
		t.Fatalf("poison row: %v", outs[1].Models)
	}
	if outs[0].Y[0] != 7 || outs[2].Y[0] != 11 {
		t.Fatalf("good rows: %v %v", outs[0].Y, outs[2].Y)
	}
}

// gated holds every batch until the test lets it go, and records the
// batch sizes its step saw.
type gated struct {
	*doubler
	release chan struct{}
	mu      sync.Mutex
	sizes   []int64
}

func (g *gated) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	g.mu.Lock()
	g.sizes = append(g.sizes, in["x"].Shape[0])
	g.mu.Unlock()
	if g.release != nil {
		<-g.release
	}
	return g.doubler.Infer(ctx, in)
}

func (g *gated) batchSizes() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// submitAll hands records {"x": i} to e without closing it.
func submitAll(t *testing.T, e *Engine, n int) {
	t.Helper()
	l := newLane("in", 0)
	for i := range n {
		if _, err := e.Submit(context.Background(), l, &kgo.Record{Topic: "in", Offset: int64(i), Value: []byte(fmt.Sprintf(`{"x": %d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// slowSecondStep is a running two-step chain, b(a(x)), whose second step
// has a batch.max_delay of an hour; the engine closes with the test.
func slowSecondStep(t *testing.T, first batch.Config, a, b handlers.ModelHandler) (*Engine, *memSink) {
	t.Helper()
	steps := []*Step{
		{Name: "a", Batch: first, Inputs: []StepInput{{Tensor: "x", Key: "x"}}, Models: SingleModel{Model: a}},
		{Name: "b", Batch: batch.Config{MaxSize: 64, MaxDelay: time.Hour}, Inputs: []StepInput{{Tensor: "x", FromStep: 0, FromTensor: "y"}}, Models: SingleModel{Model: b}},
	}
	sink := &memSink{}
	e, err := NewGraphEngine(EngineConfig{OutputTopic: "out", DeadLetterTopic: "dlq"}, graphCodec{}, steps, sink, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, sink
}

// A later step of a chain does not add its own batch.max_delay when the
// step before has nothing queued or running: its rows leave at once even
// with a max_delay of an hour.
func TestGraphLaterStepSkipsDelayWhenUpstreamIdle(t *testing.T) {
	second := &gated{doubler: &doubler{n: 4}}
	e, sink := slowSecondStep(t, fastBatch, named{&doubler{n: 4}, "first"}, second)
	submitAll(t, e, 3)
	waitFor(t, "3 predictions before the second step's max_delay (1h)", func() bool { return len(sink.written()) == 3 })
	if n := len(second.batchSizes()); n == 0 || n > 3 {
		t.Fatalf("second step ran %d batches for 3 rows", n)
	}
}

// While the step before still has batches queued or running, a later
// step waits for their rows (up to its max_delay) and batches them
// together: two upstream batches of 2 become one batch of 4.
func TestGraphLaterStepMergesWhileUpstreamBusy(t *testing.T) {
	first := &gated{doubler: &doubler{n: 4}, release: make(chan struct{})}
	second := &gated{doubler: &doubler{n: 4}}
	e, sink := slowSecondStep(t, batch.Config{MaxSize: 2, MaxDelay: time.Hour}, first, second)
	submitAll(t, e, 4)
	up := e.steps[0]
	// One batch in the model, the other queued behind it (one worker).
	waitFor(t, "two batches in the first step", func() bool { return up.busy.Load() == 2 })
	first.release <- struct{}{}
	waitFor(t, "the first batch done", func() bool { return up.busy.Load() == 1 })
	if got := second.batchSizes(); len(got) != 0 {
		t.Fatalf("second step ran %v while the first still had a batch", got)
	}
	first.release <- struct{}{}
	waitFor(t, "4 predictions", func() bool { return len(sink.written()) == 4 })
	if got := second.batchSizes(); !slices.Equal(got, []int64{4}) {
		t.Fatalf("second step's batches %v, want one of 4", got)
	}
	for i, r := range sink.written() {
		var o graphOut
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		if want := float32(2*(2*i+1) + 1); o.Y[0] != want {
			t.Fatalf("row %d: y=%v, want %v", i, o.Y[0], want)
		}
	}
}
