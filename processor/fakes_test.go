package processor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// floatCodec reads a value of n little-endian float32s into tensor "x" and
// writes tensor "y" back the same way. It stands in for Avro so engine
// tests need neither schemas nor ONNX Runtime.
type floatCodec struct{ n int }

func (c floatCodec) Decode(_ context.Context, rec *kgo.Record) (Decoded, error) {
	if len(rec.Value) != 4*c.n {
		return Decoded{}, &RowError{Reason: "decode_error", Err: fmt.Errorf("value has %d bytes, want %d", len(rec.Value), 4*c.n)}
	}
	x := make([]float32, c.n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(rec.Value[4*i:]))
	}
	return Decoded{Inputs: map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{int64(c.n)}, Data: x}}}, nil
}

func (c floatCodec) Encode(_ context.Context, _ Decoded, res Result) ([]byte, error) {
	y, ok := res.Outputs[len(res.Outputs)-1]["y"]
	if !ok {
		return nil, errors.New("no output y")
	}
	return floatBytes(y.Data.([]float32)), nil
}

func floatBytes(xs []float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesFloats(b []byte) []float32 {
	xs := make([]float32, len(b)/4)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return xs
}

// doubler is a pure-Go model: y = 2x + 1. A batch holding poison fails,
// like a model that chokes on one bad row; delay makes it slow.
type doubler struct {
	n      int
	poison float32
	delay  time.Duration
	mu     sync.Mutex
	calls  int
}

func (d *doubler) Name() string    { return "doubler" }
func (d *doubler) Version() string { return "v1" }
func (d *doubler) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, int64(d.n)}}}
}
func (d *doubler) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, int64(d.n)}}}
}
func (d *doubler) Close() error { return nil }
func (d *doubler) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	x := in["x"]
	xs := x.Data.([]float32)
	ys := make([]float32, len(xs))
	for i, v := range xs {
		if d.poison != 0 && v == d.poison {
			return nil, fmt.Errorf("poison value %v at element %d", v, i)
		}
		ys[i] = 2*v + 1
	}
	return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: x.Shape, Data: ys}}, nil
}

// memSink keeps written records and acknowledges them after a random
// delay up to maxDelay, in whatever order the timers fire.
type memSink struct {
	maxDelay time.Duration
	fail     func(*kgo.Record) error

	mu    sync.Mutex
	recs  []*kgo.Record
	acked map[int64]bool // by source offset (single-partition tests)
}

func (s *memSink) Write(_ context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	ack := func() {
		var err error
		if s.fail != nil {
			err = s.fail(rec)
		}
		if err == nil {
			s.mu.Lock()
			s.recs = append(s.recs, rec)
			if s.acked == nil {
				s.acked = map[int64]bool{}
			}
			var off int64
			if v, ok := HeaderValue(rec, HeaderSourceOffset); ok {
				fmt.Sscan(v, &off)
			}
			s.acked[off] = true
			s.mu.Unlock()
		}
		done(rec, err)
	}
	if s.maxDelay > 0 {
		time.AfterFunc(time.Duration(rand.Int64N(int64(s.maxDelay))), ack)
		return
	}
	ack()
}

func (s *memSink) written() []*kgo.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*kgo.Record(nil), s.recs...)
}

func (s *memSink) isAcked(off int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked[off]
}
