package batch

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero is defaults", Config{}, ""},
		{"negative size", Config{MaxSize: -1}, "MaxSize"},
		{"negative delay", Config{MaxDelay: -time.Second}, "MaxDelay"},
		{"negative bytes", Config{MaxBytes: -1}, "MaxBytes"},
		{"negative axis", Config{Pad: map[string]PadSpec{"x": {Axis: -1}}}, `Pad["x"].Axis`},
		{"zero bucket", Config{Pad: map[string]PadSpec{"x": {Buckets: []int64{0, 4}}}}, "must be > 0"},
		{"unsorted buckets", Config{Pad: map[string]PadSpec{"x": {Buckets: []int64{8, 4}}}}, "strictly ascending"},
		{"repeated bucket", Config{Pad: map[string]PadSpec{"x": {Buckets: []int64{4, 4}}}}, "strictly ascending"},
		{"truncate without buckets", Config{Pad: map[string]PadSpec{"x": {Truncate: true}}}, "Truncate needs Buckets"},
		{"bad trim axis", Config{TrimAxis: map[string]int{"y": -2}}, "TrimAxis"},
		{"nan pad", Config{Pad: map[string]PadSpec{"x": {Value: nan()}}}, "finite"},
		{"empty pad name", Config{Pad: map[string]PadSpec{"": {}}}, "empty input name"},
		{"mask without pad", Config{MaskInput: "m"}, "needs at least one Pad"},
		{"mask is a pad input", Config{MaskInput: "x", Pad: map[string]PadSpec{"x": {}}}, "cannot also be a Pad input"},
		{"mask with differing buckets", Config{MaskInput: "m", Pad: map[string]PadSpec{
			"a": {Buckets: []int64{4, 8}}, "b": {Buckets: []int64{4, 16}}}}, "same Buckets"},
		{"mask with shared buckets", Config{MaskInput: "m", Pad: map[string]PadSpec{
			"a": {Buckets: []int64{4, 8}}, "b": {Axis: 1, Buckets: []int64{4, 8}}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New: err = %v, want one mentioning %q", err, tc.wantErr)
			}
			if b != nil {
				t.Fatalf("New returned a batcher with an error")
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestDefaultsAndPrivateCopy(t *testing.T) {
	buckets := []int64{4, 8}
	pad := map[string]PadSpec{"x": {Buckets: buckets}}
	b := mustNew(t, Config{Pad: pad})
	got := b.Config()
	if got.MaxSize != DefaultMaxSize || got.MaxDelay != DefaultMaxDelay || got.MaxBytes != DefaultMaxBytes {
		t.Fatalf("defaults not applied: %+v", got)
	}
	// Changing the caller's config afterwards must not change batching.
	buckets[0] = 100
	pad["x"] = PadSpec{Buckets: []int64{1000}}
	if _, err := b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"x": seq(1, 2, 3)}}); err != nil {
		t.Fatal(err)
	}
	bs := b.Flush()
	if len(bs) != 1 || bs[0].Key != "x:int64[4]" {
		t.Fatalf("got %d batches, key %q; want one with key x:int64[4]", len(bs), bs[0].Key)
	}
}

func TestAddRejects(t *testing.T) {
	cfg := Config{Pad: map[string]PadSpec{"ids": {Buckets: []int64{4, 8}}}}
	maskCfg := Config{MaskInput: "mask", Pad: map[string]PadSpec{
		"ids": {Buckets: []int64{4, 8}}, "type_ids": {Buckets: []int64{4, 8}}}}
	tests := []struct {
		name       string
		cfg        Config
		inputs     map[string]*tensor.Tensor
		wantReason string
		wantInput  string
	}{
		{"no inputs", cfg, nil, ReasonBadShape, ""},
		{"nil tensor", cfg, map[string]*tensor.Tensor{"x": nil}, ReasonBadShape, "x"},
		{"dtype holds other data", cfg, map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1}, Data: []int64{1}}}, ReasonBadShape, "x"},
		{"shape and data disagree", cfg, map[string]*tensor.Tensor{"x": {DType: tensor.Int64, Shape: []int64{3}, Data: []int64{1}}}, ReasonBadShape, "x"},
		{"negative dim", cfg, map[string]*tensor.Tensor{"x": {DType: tensor.Int64, Shape: []int64{-1}, Data: []int64{}}}, ReasonBadShape, "x"},
		{"invalid dtype", cfg, map[string]*tensor.Tensor{"x": {Shape: []int64{1}, Data: []string{"a"}}}, ReasonBadShape, "x"},
		{"scalar where axis 0 is padded", cfg, map[string]*tensor.Tensor{"ids": ints64(nil, 1)}, ReasonBadShape, "ids"},
		{"longer than largest bucket", cfg, map[string]*tensor.Tensor{"ids": filled(tensor.Int64, []int64{9}, 0)}, ReasonRowTooLong, "ids"},
		{"carries the mask input", maskCfg, map[string]*tensor.Tensor{"ids": seq(1), "mask": seq(1)}, ReasonBadShape, "mask"},
		{"padded inputs of different lengths under a mask", maskCfg, map[string]*tensor.Tensor{"ids": seq(1, 2), "type_ids": seq(0)}, ReasonBadShape, "type_ids"},
		{"no padded input to take the mask from", maskCfg, map[string]*tensor.Tensor{"other": seq(1)}, ReasonBadShape, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, tc.cfg)
			ready, err := b.Add(t0, Item{Inputs: tc.inputs, Ref: 1})
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("Add: err = %v, want a *RowError", err)
			}
			if re.Reason != tc.wantReason || re.Input != tc.wantInput {
				t.Fatalf("Add: %v: reason %q input %q, want %q %q", err, re.Reason, re.Input, tc.wantReason, tc.wantInput)
			}
			if ready != nil || b.Pending() != 0 || len(b.Flush()) != 0 {
				t.Fatalf("a rejected row was kept")
			}
		})
	}
}

func TestKeys(t *testing.T) {
	cfg := Config{Pad: map[string]PadSpec{
		"ids":  {Buckets: []int64{16, 32}},
		"feat": {Axis: 1},
	}}
	tests := []struct {
		name   string
		inputs map[string]*tensor.Tensor
		want   string
	}{
		{"bucketed", map[string]*tensor.Tensor{"ids": filled(tensor.Int64, []int64{20}, 0)}, "ids:int64[32]"},
		{"names sorted", map[string]*tensor.Tensor{"ids": filled(tensor.Int64, []int64{3}, 0), "att": filled(tensor.Int64, []int64{3}, 0)}, "att:int64[3]|ids:int64[16]"},
		{"longest shows ?", map[string]*tensor.Tensor{"feat": filled(tensor.Float32, []int64{2, 7, 3}, 0)}, "feat:float32[2,?,3]"},
		{"dtype in key", map[string]*tensor.Tensor{"x": filled(tensor.Float64, []int64{2, 2}, 0)}, "x:float64[2,2]"},
		{"scalar", map[string]*tensor.Tensor{"x": filled(tensor.Bool, nil, 0)}, "x:bool[]"},
		{"odd names quoted", map[string]*tensor.Tensor{"in:0": filled(tensor.Int8, []int64{1}, 0), "a|b": filled(tensor.Int8, []int64{1}, 0)}, `"a|b":int8[1]|"in:0":int8[1]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, cfg)
			if _, err := b.Add(t0, Item{Inputs: tc.inputs}); err != nil {
				t.Fatal(err)
			}
			bs := b.Flush()
			if len(bs) != 1 || bs[0].Key != tc.want {
				t.Fatalf("key %q, want %q", bs[0].Key, tc.want)
			}
		})
	}
}

func TestSameShapeOtherDTypeIsOtherBatch(t *testing.T) {
	c := newCollector(t, Config{})
	for i := range 6 {
		dt := []tensor.DType{tensor.Float32, tensor.Int32, tensor.Float64}[i%3]
		if err := c.add(t0, map[string]*tensor.Tensor{"x": filled(dt, []int64{2, 2}, i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.finish(t0)
	if len(c.out) != 3 {
		t.Fatalf("%d batches, want one per dtype (3)", len(c.out))
	}
	for _, bt := range c.out {
		if len(bt.Refs) != 2 {
			t.Fatalf("batch %s has %d rows, want 2", bt.Key, len(bt.Refs))
		}
	}
}

// The failure Dataflow ML users hit, and the same rows going through the
// batcher.
func TestNaiveStackFailsBatcherDoesNot(t *testing.T) {
	rows := []*tensor.Tensor{seq(101, 2023, 102), seq(101, 7592, 2088, 999, 102), seq(101, 102)}
	_, err := tensor.Stack(rows)
	if err == nil || !strings.Contains(err.Error(), "stack expects each tensor to be equal size") {
		t.Fatalf("tensor.Stack of mixed lengths: err = %v, want the equal-size error", err)
	}
	for _, cfg := range []Config{
		{}, // no padding: one batch per length
		{Pad: map[string]PadSpec{"input_ids": {Buckets: []int64{4, 8}}}, MaskInput: "attention_mask"},
		{Pad: map[string]PadSpec{"input_ids": {}}, MaskInput: "attention_mask"},
	} {
		c := newCollector(t, cfg)
		for _, r := range rows {
			if err := c.add(t0, map[string]*tensor.Tensor{"input_ids": r}); err != nil {
				t.Fatalf("Add: %v", err)
			}
		}
		c.finish(t0)
	}
}

func TestFlushOnSizeAndBytes(t *testing.T) {
	row := func(n int64) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{"x": filled(tensor.Float32, []int64{n}, 0)}
	}
	tests := []struct {
		name      string
		cfg       Config
		rows      []int64 // lengths of float32 rows
		wantSizes []int   // rows per batch returned by Add, in order
		pending   int
	}{
		{"by size", Config{MaxSize: 3}, []int64{4, 4, 4, 4, 4, 4, 4}, []int{3, 3}, 1},
		{"by bytes", Config{MaxBytes: 48}, []int64{4, 4, 4, 4}, []int{3}, 1}, // 16 bytes a row
		{"bytes exactly full", Config{MaxBytes: 32}, []int64{4, 4}, []int{2}, 0},
		{"oversize row leaves alone", Config{MaxBytes: 10}, []int64{4, 4}, []int{1, 1}, 0},
		{"longest: a long row pushes the batch out", Config{MaxBytes: 100, Pad: map[string]PadSpec{"x": {}}},
			[]int64{2, 2, 2, 10}, []int{3}, 1}, // 3x2x4=24 bytes, with the 10 it would be 4x10x4=160
		{"longest: a long row alone over MaxBytes", Config{MaxBytes: 64, Pad: map[string]PadSpec{"x": {}}},
			[]int64{2, 20, 2}, []int{1, 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(t, tc.cfg)
			var sizes []int
			for _, l := range tc.rows {
				n := len(c.out)
				if err := c.add(t0, row(l)); err != nil {
					t.Fatal(err)
				}
				for _, bt := range c.out[n:] {
					sizes = append(sizes, len(bt.Refs))
				}
			}
			if !slices.Equal(sizes, tc.wantSizes) || c.b.Pending() != tc.pending {
				t.Fatalf("Add returned batches of %v with %d pending, want %v with %d", sizes, c.b.Pending(), tc.wantSizes, tc.pending)
			}
			c.finish(t0)
		})
	}
}

func TestTruncateAndPadValues(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32, tensor.Int64, tensor.Uint8, tensor.Int8, tensor.Bool} {
		t.Run(dt.String(), func(t *testing.T) {
			c := newCollector(t, Config{
				MaskInput: "mask",
				Pad: map[string]PadSpec{
					"a": {Buckets: []int64{2, 4}, Value: 7, Truncate: true},
					"b": {Axis: 1, Buckets: []int64{2, 4}, Value: 5, Truncate: true},
				},
			})
			for i, l := range []int64{1, 3, 4, 6, 9, 2} {
				err := c.add(t0, map[string]*tensor.Tensor{
					"a": filled(dt, []int64{l}, i*10),
					"b": filled(dt, []int64{2, l, 3}, i*100),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			c.finish(t0)
			truncated := 0
			for _, bt := range c.out {
				truncated += bt.TruncatedRows
			}
			if truncated != 2 {
				t.Fatalf("TruncatedRows add up to %d, want 2", truncated)
			}
		})
	}
}

// rowGen makes random rows of a few layouts for the property tests.
type rowGen struct {
	rng     *rand.Rand
	maxLen  int64
	masked  bool
	counter int
}

func (g *rowGen) row() map[string]*tensor.Tensor {
	g.counter += 1000
	l := g.rng.Int64N(g.maxLen + 1)
	if g.masked {
		l = max(l, 1)
	}
	layouts := 5
	if g.masked {
		layouts = 2
	}
	switch g.rng.IntN(layouts) {
	case 0: // token ids with a type-id input of the same length
		return map[string]*tensor.Tensor{
			"ids":      filled(tensor.Int64, []int64{l}, g.counter),
			"type_ids": filled(tensor.Int32, []int64{l}, g.counter+500),
		}
	case 1: // features padded on their second axis
		return map[string]*tensor.Tensor{"feat": filled(tensor.Float32, []int64{3, l, 2}, g.counter)}
	case 2: // fixed shapes, same dims, different dtypes
		dt := []tensor.DType{tensor.Float32, tensor.Float64, tensor.Uint8}[g.rng.IntN(3)]
		return map[string]*tensor.Tensor{"x": filled(dt, []int64{2, 3}, g.counter)}
	case 3: // an unpadded variable length input: batches by exact length
		return map[string]*tensor.Tensor{"raw": filled(tensor.Int64, []int64{g.rng.Int64N(4)}, g.counter)}
	default: // a fixed input next to a padded one
		return map[string]*tensor.Tensor{
			"ids":   filled(tensor.Int64, []int64{l}, g.counter),
			"dense": filled(tensor.Float64, []int64{4}, g.counter),
		}
	}
}

// randomConfig draws a batcher configuration and the longest row length
// worth generating for it.
func randomConfig(rng *rand.Rand) (Config, int64, bool) {
	cfg := Config{
		MaxSize:  1 + rng.IntN(40),
		MaxDelay: time.Duration(1+rng.IntN(10)) * time.Millisecond,
		MaxBytes: 8 + rng.IntN(4000),
	}
	var buckets []int64
	maxLen := int64(1 + rng.IntN(40))
	truncate := false
	switch rng.IntN(3) {
	case 0: // buckets
		for b := int64(1 + rng.IntN(4)); b <= 64; b *= 2 {
			buckets = append(buckets, b)
		}
		truncate = rng.IntN(2) == 0
		maxLen = buckets[len(buckets)-1] + int64(rng.IntN(8))
	case 1: // pad to the longest
	case 2: // no padding at all
		return cfg, maxLen, false
	}
	masked := rng.IntN(2) == 0
	cfg.Pad = map[string]PadSpec{
		"ids":      {Buckets: buckets, Truncate: truncate, Value: float64(rng.IntN(3))},
		"type_ids": {Buckets: buckets, Truncate: truncate},
		"feat":     {Axis: 1, Buckets: buckets, Truncate: truncate, Value: -2},
	}
	if masked {
		cfg.MaskInput = "mask"
	}
	return cfg, maxLen, masked
}

// Every accepted row leaves exactly once, in a batch within MaxSize and
// MaxBytes, holding its data, padded to its own bucket, with a right mask.
func TestPropertyBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 400 {
		cfg, maxLen, masked := randomConfig(rng)
		c := newCollector(t, cfg)
		g := &rowGen{rng: rng, maxLen: maxLen, masked: masked}
		now := t0
		for range 1 + rng.IntN(300) {
			now = now.Add(time.Duration(rng.IntN(2000)) * time.Microsecond)
			if rng.IntN(10) == 0 {
				c.take(now, c.b.Due(now))
			}
			r := g.row()
			if err := c.add(now, r); err != nil {
				var re *RowError
				ps := cfg.Pad["ids"]
				tooLongOK := len(ps.Buckets) > 0 && !ps.Truncate
				if !errors.As(err, &re) || re.Reason != ReasonRowTooLong || !tooLongOK {
					t.Fatalf("iter %d: Add(%s): %v", iter, rowName(r), err)
				}
			}
		}
		c.finish(now)
	}
}

// With the driver calling Due once per interval, no row waits longer than
// MaxDelay plus one interval, and Due never sends a batch early.
func TestPropertyMaxDelay(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 300 {
		cfg, maxLen, masked := randomConfig(rng)
		interval := time.Duration(1+rng.IntN(3000)) * time.Microsecond
		c := newCollector(t, cfg)
		g := &rowGen{rng: rng, maxLen: maxLen, masked: masked}
		now, tick := t0, t0
		drive := func(until time.Time) {
			for ; !tick.After(until); tick = tick.Add(interval) {
				pending := c.b.Pending()
				next, ok := c.b.NextDeadline()
				due := c.b.Due(tick)
				if ok != (pending > 0) {
					t.Fatalf("iter %d: NextDeadline ok=%v with rows pending", iter, ok)
				}
				if ok && tick.Before(next) && len(due) > 0 {
					t.Fatalf("iter %d: Due(%v) sent a batch before NextDeadline %v", iter, tick, next)
				}
				if ok && !tick.Before(next) && len(due) == 0 {
					t.Fatalf("iter %d: Due(%v) sent nothing at NextDeadline %v", iter, tick, next)
				}
				for _, bt := range due {
					if w := tick.Sub(slices.MinFunc(bt.Enqueued, func(a, b time.Time) int { return a.Compare(b) })); w < c.cfg.MaxDelay {
						t.Fatalf("iter %d: Due sent a batch whose oldest row waited %v < MaxDelay %v", iter, w, c.cfg.MaxDelay)
					}
				}
				c.take(tick, due)
			}
		}
		for range 1 + rng.IntN(200) {
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Microsecond)
			drive(now)
			_ = c.add(now, g.row())
		}
		for c.b.Pending() > 0 {
			drive(tick)
		}
		c.finish(tick)
		for r, left := range c.left {
			if c.seen[r] < 0 {
				continue
			}
			if w := left.Sub(c.enq[r]); w > c.cfg.MaxDelay+interval {
				t.Fatalf("iter %d: row %d waited %v > MaxDelay %v + interval %v", iter, r, w, c.cfg.MaxDelay, interval)
			}
		}
	}
}

func TestClockGoingBackKeepsDeadlinesRight(t *testing.T) {
	b := mustNew(t, Config{MaxDelay: 10 * time.Millisecond})
	add := func(at time.Duration, n int64) {
		if _, err := b.Add(t0.Add(at), Item{Inputs: map[string]*tensor.Tensor{"x": filled(tensor.Int64, []int64{n}, 0)}}); err != nil {
			t.Fatal(err)
		}
	}
	add(5*time.Millisecond, 1)
	add(6*time.Millisecond, 2)
	add(1*time.Millisecond, 2) // the clock stepped back: key 2's oldest row is now at 1ms
	if d, _ := b.NextDeadline(); !d.Equal(t0.Add(11 * time.Millisecond)) {
		t.Fatalf("NextDeadline = %v, want t0+11ms", d.Sub(t0))
	}
	due := b.Due(t0.Add(11 * time.Millisecond))
	if len(due) != 1 || due[0].Key != "x:int64[2]" || len(due[0].Refs) != 2 {
		t.Fatalf("Due sent %d batches, want the two rows of x:int64[2]", len(due))
	}
	if d, _ := b.NextDeadline(); !d.Equal(t0.Add(15 * time.Millisecond)) {
		t.Fatalf("NextDeadline = %v, want t0+15ms", d.Sub(t0))
	}
}

func TestCallerMayNotReachIntoBatches(t *testing.T) {
	// Stacked tensors are copies: changing a row after its batch left does
	// not change the batch.
	b := mustNew(t, Config{MaxSize: 2})
	r0, r1 := seq(1, 2), seq(3, 4)
	b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"x": r0}})
	bs, _ := b.Add(t0, Item{Inputs: map[string]*tensor.Tensor{"x": r1}})
	r0.Data.([]int64)[0] = 99
	if got := bs[0].Inputs["x"].Data.([]int64); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("stacked %v, want [1 2 3 4]", got)
	}
}
