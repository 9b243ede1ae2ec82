package processor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEngine(t *testing.T, model *doubler, sink Sink, cfg EngineConfig) *Engine {
	t.Helper()
	if cfg.OutputTopic == "" {
		cfg.OutputTopic, cfg.DeadLetterTopic = "out", "dlq"
	}
	if cfg.Batch.MaxSize == 0 {
		cfg.Batch = batch.Config{MaxSize: 32, MaxDelay: time.Millisecond}
	}
	e, err := NewEngine(cfg, floatCodec{n: model.n}, model, sink, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func inputRecord(p int32, off int64, xs ...float32) *kgo.Record {
	return &kgo.Record{Topic: "in", Partition: p, Offset: off, Key: []byte("k" + strconv.FormatInt(off%7, 10)), Value: floatBytes(xs)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A poison row fails its batch in the model; only that row is
// dead-lettered, its batch-mates are predicted, and output order still
// follows input order.
func TestEnginePoisonRowIsolated(t *testing.T) {
	model := &doubler{n: 4, poison: 666}
	sink := &memSink{}
	e := newTestEngine(t, model, sink, EngineConfig{})
	l := newLane("in", 0)
	const n = 500
	for i := range int64(n) {
		x := float32(i)
		if i%97 == 13 {
			x = 666
		}
		if _, err := e.Submit(context.Background(), l, inputRecord(0, i, x, 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	waitFor(t, "all acked", func() bool { n, _ := e.InFlight(); return n == 0 })
	recs := sink.written()
	if len(recs) != n {
		t.Fatalf("got %d outputs for %d inputs", len(recs), n)
	}
	for i, r := range recs {
		off, _ := HeaderValue(r, HeaderSourceOffset)
		if off != strconv.Itoa(i) {
			t.Fatalf("output %d is for offset %s: order not kept", i, off)
		}
		poison := i%97 == 13
		if poison != (r.Topic == "dlq") {
			t.Fatalf("offset %d: topic %s, poison=%v", i, r.Topic, poison)
		}
		if poison {
			if ReasonOfRecord(r) != ReasonInference {
				t.Fatalf("offset %d: reason %q", i, ReasonOfRecord(r))
			}
			continue
		}
		if got := bytesFloats(r.Value); got[0] != 2*float32(i)+1 || got[3] != 7 {
			t.Fatalf("offset %d: got %v", i, got)
		}
	}
	wm, _ := l.watermark()
	if wm.Offset != n {
		t.Fatalf("watermark %d, want %d", wm.Offset, n)
	}
}

// Acknowledgements arrive in random order; the commit watermark never
// passes an offset whose output is not yet acknowledged, and output is
// written in input order.
func TestEngineWatermarkNeverAheadOfAcks(t *testing.T) {
	model := &doubler{n: 4}
	sink := &memSink{maxDelay: 3 * time.Millisecond}
	e := newTestEngine(t, model, sink, EngineConfig{Batch: batch.Config{MaxSize: 8, MaxDelay: time.Millisecond}})
	l := newLane("in", 0)
	const n = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range int64(n) {
			// Offsets with gaps, as after compaction or transaction markers.
			if _, err := e.Submit(context.Background(), l, inputRecord(0, 3*i, float32(i), 0, 0, 0)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	checks := 0
	for {
		wm, ok := l.watermark()
		if ok {
			// Every tracked offset below the watermark must be acked.
			for off := int64(0); off < wm.Offset; off += 3 {
				if !sink.isAcked(off) {
					t.Fatalf("watermark %d passed unacknowledged offset %d", wm.Offset, off)
				}
			}
			checks++
		}
		if ok && wm.Offset == 3*(n-1)+1 {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	<-done
	e.Close()
	if checks < 10 {
		t.Fatalf("only %d watermark checks ran", checks)
	}
}

// With a slow model and a small cap, records in flight never exceed the
// cap: Submit waits instead of buffering without limit.
func TestEngineBudgetBoundsInFlight(t *testing.T) {
	model := &doubler{n: 4, delay: 2 * time.Millisecond}
	sink := &memSink{}
	e := newTestEngine(t, model, sink, EngineConfig{MaxInFlightRecords: 40, MaxInFlightBytes: 1 << 20,
		Batch: batch.Config{MaxSize: 8, MaxDelay: time.Millisecond}})
	l := newLane("in", 0)
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		p := 0
		for {
			select {
			case <-stop:
				peak <- p
				return
			default:
			}
			n, _ := e.InFlight()
			p = max(p, n)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for i := range int64(600) {
		if _, err := e.Submit(context.Background(), l, inputRecord(0, i, 1, 2, 3, 4)); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	close(stop)
	if p := <-peak; p > 40 || p == 0 {
		t.Fatalf("peak in-flight %d, cap 40", p)
	}
	if got := len(sink.written()); got != 600 {
		t.Fatalf("%d outputs, want 600", got)
	}
}

// A prediction the sink refuses for good is replaced by a dead-letter
// record for its input, so the offset still ends with an output.
func TestEngineProduceFailureDeadLetters(t *testing.T) {
	model := &doubler{n: 4}
	sink := &memSink{fail: func(r *kgo.Record) error {
		if r.Topic == "out" && bytesFloats(r.Value)[0] == 2*5+1 {
			return io.ErrShortWrite
		}
		return nil
	}}
	e := newTestEngine(t, model, sink, EngineConfig{})
	l := newLane("in", 0)
	for i := range int64(10) {
		e.Submit(context.Background(), l, inputRecord(0, i, float32(i), 0, 0, 0))
	}
	e.Close()
	waitFor(t, "all acked", func() bool { n, _ := e.InFlight(); return n == 0 })
	var dl int
	for _, r := range sink.written() {
		if r.Topic == "dlq" {
			dl++
			if ReasonOfRecord(r) != ReasonProduce {
				t.Fatalf("reason %q", ReasonOfRecord(r))
			}
		}
	}
	if dl != 1 || len(sink.written()) != 10 {
		t.Fatalf("dead letters %d, outputs %d", dl, len(sink.written()))
	}
}

// If the dead-letter topic refuses a record too, the engine stops with an
// error and the watermark stays before that record.
func TestEngineDeadLetterFailureIsFatal(t *testing.T) {
	model := &doubler{n: 4}
	sink := &memSink{fail: func(r *kgo.Record) error {
		if r.Topic == "dlq" {
			return io.ErrClosedPipe
		}
		return nil
	}}
	e := newTestEngine(t, model, sink, EngineConfig{})
	l := newLane("in", 0)
	e.Submit(context.Background(), l, inputRecord(0, 0, 1, 2, 3, 4))
	e.Submit(context.Background(), l, &kgo.Record{Topic: "in", Offset: 1, Value: []byte("bad")})
	e.Submit(context.Background(), l, inputRecord(0, 2, 1, 2, 3, 4))
	e.Close()
	select {
	case <-e.Fatal():
	case <-time.After(10 * time.Second):
		t.Fatal("engine did not fail")
	}
	if e.Err() == nil {
		t.Fatal("no error")
	}
	waitFor(t, "offset 2 acked", func() bool { return sink.isAcked(2) })
	if wm, _ := l.watermark(); wm.Offset != 1 {
		t.Fatalf("watermark %d, want 1 (stuck at the record that could not be dead-lettered)", wm.Offset)
	}
}

// flaky fails its first n calls as temporarily unavailable.
type flaky struct {
	*doubler
	left atomic.Int64
}

func (f *flaky) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if f.left.Add(-1) >= 0 {
		return nil, fmt.Errorf("server says 503: %w", handlers.ErrUnavailable)
	}
	return f.doubler.Infer(ctx, in)
}

// A model that is only temporarily unavailable gets its batches again
// after a backoff: every row is predicted, none dead-lettered.
func TestEngineRetriesUnavailableModel(t *testing.T) {
	model := &flaky{doubler: &doubler{n: 4}}
	model.left.Store(4)
	sink := &memSink{}
	e, err := NewEngine(EngineConfig{OutputTopic: "out", DeadLetterTopic: "dlq", Batch: batch.Config{MaxSize: 8, MaxDelay: time.Millisecond}}, floatCodec{n: 4}, model, sink, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	l := newLane("in", 0)
	for i := range int64(50) {
		e.Submit(context.Background(), l, inputRecord(0, i, float32(i), 0, 0, 0))
	}
	e.Close()
	waitFor(t, "all acked", func() bool { n, _ := e.InFlight(); return n == 0 })
	for _, r := range sink.written() {
		if r.Topic != "out" {
			msg, _ := HeaderValue(r, HeaderError)
			t.Fatalf("dead letter: %s", msg)
		}
	}
	if len(sink.written()) != 50 || model.left.Load() >= 0 {
		t.Fatalf("%d outputs; %d failures left", len(sink.written()), model.left.Load())
	}
}

// TestPredictionHeaders: the five headers share one buffer; each value is
// its own (an append to one cannot overwrite the next).
func TestPredictionHeaders(t *testing.T) {
	for _, in := range []*kgo.Record{
		{Topic: "events", Partition: 7, Offset: 1234567890123},
		{Topic: "", Partition: 0, Offset: 0},
		{Topic: strings.Repeat("t", 300), Partition: 2147483647, Offset: 9223372036854775807},
	} {
		h := predictionHeaders(in, "fraud-model", "v42")
		want := map[string]string{
			HeaderSourceTopic: in.Topic, HeaderSourcePartition: strconv.Itoa(int(in.Partition)),
			HeaderSourceOffset: strconv.FormatInt(in.Offset, 10), HeaderModel: "fraud-model", HeaderModelVersion: "v42",
		}
		if len(h) != len(want) {
			t.Fatalf("%d headers, want %d: %v", len(h), len(want), h)
		}
		for i := range h {
			_ = append(h[i].Value, "XXXXXXXXXXXXXXXXXXXX"...)
		}
		for _, x := range h {
			if w, ok := want[x.Key]; !ok || string(x.Value) != w {
				t.Errorf("header %s = %q, want %q", x.Key, x.Value, w)
			}
		}
		src := sourceHeaders(in)
		for i, x := range src {
			if x.Key != h[i].Key || string(x.Value) != string(h[i].Value) {
				t.Errorf("source header %d: %s=%q, prediction has %s=%q", i, x.Key, x.Value, h[i].Key, h[i].Value)
			}
		}
	}
}

// TestRestartWait: quick failures back off to 30 s; a member that ran
// stably resets the pause.
func TestRestartWait(t *testing.T) {
	var w time.Duration
	var got []time.Duration
	for _, ran := range []time.Duration{0, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, stableRun, time.Second} {
		w = restartWait(w, ran)
		got = append(got, w)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 1, 2}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("pauses %v, want %v seconds", got, want)
		}
	}
}

// TestEncodeRowsMatchesBuildRow: a prediction encoded without building
// its map (AvroCodec.rows) has the bytes of the long way, plain and
// behind a wire header.
func TestEncodeRowsMatchesBuildRow(t *testing.T) {
	p := replayTestPipeline(t, []string{"127.0.0.1:1"}, "  topic: in\n", &replayModel{})
	defer p.Close()
	c := p.Codec
	if c.rows == nil {
		t.Fatal("the replay test pipeline does not use the map-free encoder")
	}
	for i := range 50 {
		d, err := c.Decode(t.Context(), &kgo.Record{Value: replayValue(t, "id-"+strconv.Itoa(i), float32(i))})
		if err != nil {
			t.Fatal(err)
		}
		res := Result{
			Outputs: []map[string]*tensor.Tensor{{"y": {DType: tensor.Float32, Shape: []int64{4}, Data: []float32{float32(i), 1, 2, 3}}}},
			Models:  []ModelInfo{{Name: "twice", Version: "v" + strconv.Itoa(i)}},
		}
		for _, wire := range []int{0, 12} {
			c.wireID = wire
			fast, err := c.Encode(t.Context(), d, res)
			if err != nil {
				t.Fatal(err)
			}
			rows := c.rows
			c.rows = nil
			slow, err := c.Encode(t.Context(), d, res)
			c.rows = rows
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fast, slow) {
				t.Fatalf("row %d wire %d: %x, the long way %x", i, wire, fast, slow)
			}
		}
	}
	c.wireID = 0
	// A missing output still gets the long way's error.
	d, _ := c.Decode(t.Context(), &kgo.Record{Value: replayValue(t, "x", 1)})
	_, err := c.Encode(t.Context(), d, Result{Outputs: []map[string]*tensor.Tensor{{}}, Models: []ModelInfo{{Name: "twice"}}})
	if err == nil || !strings.Contains(err.Error(), `model output "twice/y" is missing`) {
		t.Errorf("missing output: %v", err)
	}
}
