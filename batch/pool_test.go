package batch

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/kinfer/kinfer/tensor"
)

// TestReleaseReusesBuffers: a released batch's stacked inputs are filled
// again by later batches, and what a later batch holds is exactly its own
// rows, pad values and mask, never an earlier batch's leftovers.
func TestReleaseReusesBuffers(t *testing.T) {
	bt, err := New(Config{MaxSize: 16, MaxBytes: 64 << 20, MaskInput: "mask",
		Pad: map[string]PadSpec{"ids": {Buckets: []int64{256, 512}, Value: -7}}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[uintptr]bool{}
	reused := 0
	for round := range 40 {
		// Alternate long and short rows, so a reused buffer held longer
		// rows (other data where this batch needs padding).
		rows := make([][]int64, 16)
		for r := range rows {
			n := 1 + rng.IntN(255)
			if round%2 == 0 {
				n = 200 + rng.IntN(56)
			}
			rows[r] = make([]int64, n)
			for j := range rows[r] {
				rows[r][j] = rng.Int64N(1000)
			}
		}
		var bs []*Batch
		for r, row := range rows {
			out, err := bt.Add(time.Now(), Item{Ref: r, Inputs: map[string]*tensor.Tensor{"ids": {DType: tensor.Int64, Shape: []int64{int64(len(row))}, Data: row}}})
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, out...)
		}
		if len(bs) != 1 || bs[0].Len() != 16 {
			t.Fatalf("round %d: %d batches", round, len(bs))
		}
		b := bs[0]
		ids, mask := b.Inputs["ids"].Data.([]int64), b.Inputs["mask"].Data.([]int64)
		for _, d := range [][]int64{ids, mask} {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
			if seen[p] {
				reused++
			}
			seen[p] = true
		}
		for r, row := range rows {
			got := ids[r*256 : (r+1)*256]
			if !slices.Equal(got[:len(row)], row) {
				t.Fatalf("round %d row %d: ids differ from the row", round, r)
			}
			for j, v := range got[len(row):] {
				if v != -7 {
					t.Fatalf("round %d row %d: position %d is %d, want the pad value -7", round, len(row)+j, r, v)
				}
			}
			for j, m := range mask[r*256 : (r+1)*256] {
				if want := int64(0); j < len(row) && m != 1 || j >= len(row) && m != want {
					t.Fatalf("round %d row %d: mask[%d] = %d", round, r, j, m)
				}
			}
		}
		b.Release(nil)
		if b.Inputs != nil {
			t.Fatal("Inputs still set after Release")
		}
	}
	if reused == 0 {
		t.Fatal("no buffer was reused: the test checked nothing")
	}
}

// TestReleaseKeepsSharedBuffers: when a row's output is a view of the
// inputs (a model that returns its input), Release must not hand the
// buffer to the next batch.
func TestReleaseKeepsSharedBuffers(t *testing.T) {
	bt, _ := New(Config{MaxSize: 4, MaxBytes: 64 << 20})
	batchOf := func() *Batch {
		var bs []*Batch
		for r := range 4 {
			out, err := bt.Add(time.Now(), Item{Ref: r, Inputs: map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1024}, Data: make([]float32, 1024)}}})
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, out...)
		}
		return bs[0]
	}
	a := batchOf()
	x := a.Inputs["x"]
	rows, err := a.Split(map[string]*tensor.Tensor{"y": x}) // identity model
	if err != nil {
		t.Fatal(err)
	}
	a.Release(rows)
	kept := rows[2]["y"].Data.([]float32)
	for range 8 {
		b := batchOf()
		got := b.Inputs["x"].Data.([]float32)
		if unsafe.SliceData(got) == unsafe.SliceData(x.Data.([]float32)) {
			t.Fatal("a buffer an output still shares was handed to the next batch")
		}
		for i := range got {
			got[i] = 99
		}
		b.Release(nil)
	}
	for _, v := range kept {
		if v != 0 {
			t.Fatal("an output that shares the inputs was overwritten by a later batch")
		}
	}
}
