package processor

import (
	"fmt"
	"math"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/tensor"
)

func TestPostOps(t *testing.T) {
	cfg := &config.Config{}
	outs := []handlers.TensorSpec{{Name: "p", DType: tensor.Float32, Shape: []int64{-1, 3}}}
	res := Result{Outputs: []map[string]*tensor.Tensor{{"p": {DType: tensor.Float32, Shape: []int64{3}, Data: []float32{0.2, 0.7, 0.1}}}}}
	th := func(v float64) *float64 { return &v }
	idx := func(i int) *int { return &i }
	labels := []string{"a", "b", "c"}
	cases := []struct {
		post config.Post
		want string
	}{
		{config.Post{Op: "argmax", Tensor: "p", Field: "f"}, "1"},
		{config.Post{Op: "argmax", Tensor: "p", Field: "f", Labels: labels}, "b"},
		{config.Post{Op: "top_k", Tensor: "p", Field: "f", K: 2, Labels: labels}, "[map[label:b score:0.7] map[label:a score:0.2]]"},
		{config.Post{Op: "top_k", Tensor: "p", Field: "f", K: 5}, "[map[label:1 score:0.7] map[label:0 score:0.2] map[label:2 score:0.1]]"},
		{config.Post{Op: "threshold", Tensor: "p", Field: "f", Labels: []string{"no", "yes"}, Threshold: th(0.5), Index: idx(1)}, "yes"},
		{config.Post{Op: "threshold", Tensor: "p", Field: "f", Labels: []string{"no", "yes"}, Threshold: th(0.75), Index: idx(1)}, "no"},
	}
	for _, tc := range cases {
		op, err := newPostOp(cfg, 0, tc.post, outs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := op.run(res)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(got); s != tc.want {
			t.Errorf("%s: got %s, want %s", tc.post.Op, s, tc.want)
		}
	}
	op, _ := newPostOp(cfg, 0, config.Post{Op: "softmax", Tensor: "p", Field: "f"}, outs)
	got, _ := op.run(res)
	sum := 0.0
	for _, v := range got.([]any) {
		sum += float64(v.(float32))
	}
	if math.Abs(sum-1) > 1e-6 || got.([]any)[1].(float32) <= got.([]any)[0].(float32) {
		t.Errorf("softmax %v", got)
	}
	if _, err := newPostOp(cfg, 0, config.Post{Op: "argmax", Tensor: "p", Field: "f", Labels: []string{"x"}}, outs); err == nil {
		t.Error("1 label for 3 classes accepted")
	}
}
