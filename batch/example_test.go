package batch_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/tensor"
)

// The engine owns the clock: it adds rows as they come, asks for due
// batches at NextDeadline, and flushes at the end.
func Example() {
	b, err := batch.New(batch.Config{
		MaxSize:   4,
		MaxDelay:  5 * time.Millisecond,
		Pad:       map[string]batch.PadSpec{"input_ids": {Buckets: []int64{4, 8}}},
		MaskInput: "attention_mask",
		TrimAxis:  map[string]int{"token_scores": 0},
	})
	if err != nil {
		panic(err)
	}
	model := func(_ context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
		ids := in["input_ids"]
		scores := make([]float32, ids.Len())
		for i, v := range ids.Data.([]int64) {
			scores[i] = float32(v) / 10
		}
		return map[string]*tensor.Tensor{"token_scores": {DType: tensor.Float32, Shape: ids.Shape, Data: scores}}, nil
	}
	run := func(bt *batch.Batch) {
		outs, errs := batch.Isolate(context.Background(), bt, model)
		for i, ref := range bt.Refs {
			fmt.Printf("%s row %v: %v %v\n", bt.Key, ref, outs[i]["token_scores"].Data, errs[i])
		}
	}

	start := time.Unix(0, 0)
	rows := [][]int64{{7, 8}, {1, 2, 3, 4, 5}, {9}, {10, 11, 12, 13, 14, 15, 16, 17, 18}}
	for i, ids := range rows {
		now := start.Add(time.Duration(i) * time.Millisecond)
		ready, err := b.Add(now, batch.Item{
			Inputs: map[string]*tensor.Tensor{"input_ids": {DType: tensor.Int64, Shape: []int64{int64(len(ids))}, Data: ids}},
			Ref:    i,
		})
		if err != nil {
			fmt.Printf("row %d: %v\n", i, err) // dead-letter it
		}
		for _, bt := range ready {
			run(bt)
		}
	}
	if at, ok := b.NextDeadline(); ok {
		for _, bt := range b.Due(at) {
			run(bt)
		}
	}
	for _, bt := range b.Flush() {
		run(bt)
	}
	// Output:
	// row 3: batch: row rejected (row_too_long): input "input_ids": length 9 at axis 0 is over the largest bucket 8
	// input_ids:int64[4] row 0: [0.7 0.8] <nil>
	// input_ids:int64[4] row 2: [0.9] <nil>
	// input_ids:int64[8] row 1: [0.1 0.2 0.3 0.4 0.5] <nil>
}
