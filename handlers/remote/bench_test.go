package remote_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/remote"
	"github.com/kinfer/kinfer/tensor"
)

// wide is y = 2x + 1 on x float32[?,width].
func wide(width int64) *goModel {
	m := affine()
	m.name = fmt.Sprintf("wide%d", width)
	m.inputs = []handlers.TensorSpec{spec("x", tensor.Float32, -1, width)}
	m.outputs = []handlers.TensorSpec{spec("y", tensor.Float32, -1, width)}
	m.run = func(in map[string]*tensor.Tensor, n int) map[string]*tensor.Tensor {
		x := in["x"].Data.([]float32)
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = 2*v + 1
		}
		return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: []int64{int64(n), width}, Data: y}}
	}
	return m
}

// BenchmarkInfer measures the remote handler against the in-process
// server (both sides in this process, over loopback HTTP), with 8
// concurrent callers: rows/s is the figure to compare.
func BenchmarkInfer(b *testing.B) {
	for _, width := range []int64{8, 784} {
		m := wide(width)
		s := serve(b, m)
		for _, bin := range []bool{false, true} {
			h := load(b, s.URL, m.Name(), func(o *remote.Options) { o.Binary = bin })
			for _, batch := range []int{1, 32} {
				b.Run(fmt.Sprintf("width=%d/binary=%v/batch=%d", width, bin, batch), func(b *testing.B) {
					x := tensor.New(tensor.Float32, []int64{int64(batch), width})
					for i, d := 0, x.Data.([]float32); i < len(d); i++ {
						d[i] = float32(i%97) / 7
					}
					in := map[string]*tensor.Tensor{"x": x}
					b.SetParallelism(4) // 4 x GOMAXPROCS callers
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := h.Infer(context.Background(), in); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}
