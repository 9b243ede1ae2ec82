package schema

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// TestIndexNaN holds the eight-bytes-at-a-time NaN scan to a plain loop on
// every NaN encoding's edges (quiet, signalling, negative, the smallest and
// largest payloads), infinities, and each position in slices of 0..70
// elements.
func TestIndexNaN(t *testing.T) {
	nans32 := []uint32{0x7f800001, 0x7fc00000, 0x7fffffff, 0xff800001, 0xffc00000, 0xffffffff}
	near32 := []uint32{0x7f800000, 0xff800000, 0x7f7fffff, 0x00000000, 0x80000000, 0x00000001}
	nans64 := []uint64{0x7ff0000000000001, 0x7ff8000000000000, 0x7fffffffffffffff, 0xfff0000000000001, 0xffffffffffffffff}
	near64 := []uint64{0x7ff0000000000000, 0xfff0000000000000, 0x7fefffffffffffff, 0, 1 << 63, 1}
	plain := func(x []float64) int {
		for i, f := range x {
			if f != f {
				return i
			}
		}
		return -1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 71 {
		for trial := range 40 {
			x32 := make([]float32, n)
			x64 := make([]float64, n)
			for i := range n {
				b := near32[rng.IntN(len(near32))]
				x32[i] = math.Float32frombits(b)
				x64[i] = math.Float64frombits(near64[rng.IntN(len(near64))])
			}
			if n > 0 && trial > 0 {
				for range 1 + rng.IntN(2) {
					i := rng.IntN(n)
					x32[i] = math.Float32frombits(nans32[rng.IntN(len(nans32))])
					x64[i] = math.Float64frombits(nans64[rng.IntN(len(nans64))])
				}
			}
			w32 := make([]float64, n)
			for i, f := range x32 {
				w32[i] = float64(f)
			}
			if got, want := indexNaN(x32), plain(w32); got != want {
				t.Fatalf("float32 %v: indexNaN = %d, want %d", x32, got, want)
			}
			if got, want := indexNaN(x64), plain(x64); got != want {
				t.Fatalf("float64 %v: indexNaN = %d, want %d", x64, got, want)
			}
		}
	}
}

// TestAppendLE reads little-endian elements from unaligned buffers, in one
// block and appended in several, as encoding/binary does.
func TestAppendLE(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 8*100+8)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for off := range 8 {
		b := buf[off:]
		for _, n := range []int{0, 1, 7, 100} {
			f32 := appendLE[float32](nil, b, n)
			f64 := appendLE[float64](nil, b, n)
			i32 := appendLE[int32](nil, b, n)
			i64 := appendLE[int64](nil, b, n)
			if len(f32) != n || len(f64) != n || len(i32) != n || len(i64) != n {
				t.Fatalf("offset %d n %d: lengths %d %d %d %d", off, n, len(f32), len(f64), len(i32), len(i64))
			}
			for i := range n {
				if math.Float32bits(f32[i]) != binary.LittleEndian.Uint32(b[4*i:]) || int32(binary.LittleEndian.Uint32(b[4*i:])) != i32[i] ||
					math.Float64bits(f64[i]) != binary.LittleEndian.Uint64(b[8*i:]) || int64(binary.LittleEndian.Uint64(b[8*i:])) != i64[i] {
					t.Fatalf("offset %d n %d: element %d differs", off, n, i)
				}
			}
		}
		// In blocks: the second append starts where the first ended.
		two := appendLE(appendLE[float32](nil, b, 3), b[12:], 5)
		one := appendLE[float32](nil, b, 8)
		for i := range one {
			if math.Float32bits(one[i]) != math.Float32bits(two[i]) {
				t.Fatalf("offset %d: blockwise element %d differs", off, i)
			}
		}
	}
}

func BenchmarkIndexNaN784(b *testing.B) {
	x := make([]float32, 784)
	for i := range x {
		x[i] = float32(i) / 784
	}
	b.SetBytes(int64(len(x) * 4))
	for b.Loop() {
		if indexNaN(x) != -1 {
			b.Fatal("NaN")
		}
	}
}
