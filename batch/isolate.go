package batch

import (
	"context"
	"fmt"

	"github.com/kinfer/kinfer/tensor"
)

// Isolate runs b and, if the run fails, bisects: it runs each half as a
// sub-batch (views of b's inputs, mask included, at b's padded lengths),
// recursively, until every failure is pinned to a single row. With k
// failing rows among n it calls run at most 1 + 2k⌈log2 n⌉ times.
//
// outs[i] are row i's outputs (from Split), nil where the row failed;
// rowErrs[i] is row i's error, nil where it succeeded. Rows fail together,
// without further runs, when their sub-batch's outputs cannot be split (a
// model contract error, not a poison row) or when ctx is done. A panic in
// run counts as an error of the rows it was given.
func Isolate(ctx context.Context, b *Batch, run func(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error)) (outs []map[string]*tensor.Tensor, rowErrs []error) {
	n := b.Len()
	outs = make([]map[string]*tensor.Tensor, n)
	rowErrs = make([]error, n)
	if n > 0 {
		isolate(ctx, b, run, outs, rowErrs)
	}
	return outs, rowErrs
}

// isolate fills outs and errs, which are b's rows' entries.
func isolate(ctx context.Context, b *Batch, run func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error), outs []map[string]*tensor.Tensor, errs []error) {
	res, err := safeRun(ctx, b.Inputs, run)
	if err == nil {
		if serr := b.split(res, outs); serr != nil {
			clear(outs)
			fillErr(errs, serr)
		}
		return
	}
	n := b.Len()
	if n == 1 || ctx.Err() != nil {
		fillErr(errs, err)
		return
	}
	mid := n / 2
	isolate(ctx, b.slice(0, mid), run, outs[:mid], errs[:mid])
	isolate(ctx, b.slice(mid, n), run, outs[mid:], errs[mid:])
}

func safeRun(ctx context.Context, inputs map[string]*tensor.Tensor, run func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error)) (out map[string]*tensor.Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("batch: run panicked: %v", p)
		}
	}()
	return run(ctx, inputs)
}

func fillErr(errs []error, err error) {
	for i := range errs {
		errs[i] = err
	}
}
