package processor

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
)

// FieldModels lists, in a multi-step graph's predictions, every step's
// model name and version.
const FieldModels = "models"

var modelsAvroType = map[string]any{"type": "array", "items": map[string]any{
	"type": "record", "name": "ModelRef", "fields": []any{
		map[string]any{"name": "step", "type": "string"},
		map[string]any{"name": "name", "type": "string"},
		map[string]any{"name": "version", "type": "string"},
	}}}

// postOp is one declared post-processing step: it reads a step's per-row
// output vector and writes one prediction field.
type postOp struct {
	step     int
	field    string
	tensor   string
	avroType any
	apply    func(x []float64) any
}

func (p *postOp) run(res Result) (any, error) {
	t, ok := res.Outputs[p.step][p.tensor]
	if !ok {
		return nil, fmt.Errorf("post-processing %q: model output %q is missing", p.field, p.tensor)
	}
	x := make([]float64, t.Len())
	for i := range x {
		x[i] = t.Float64At(i)
	}
	if len(x) == 0 {
		return nil, fmt.Errorf("post-processing %q: model output %q is empty", p.field, p.tensor)
	}
	return p.apply(x), nil
}

func newPostOp(cfg *config.Config, step int, pc config.Post, outs []handlers.TensorSpec) (*postOp, error) {
	labels := pc.Labels
	if pc.LabelsFile != "" {
		var err error
		if labels, err = readLabels(cfg.Resolve(pc.LabelsFile)); err != nil {
			return nil, err
		}
	}
	if spec, ok := specOK(outs, pc.Tensor); ok {
		n := int64(1)
		for _, d := range rowShape(spec.Shape) {
			n *= d
		}
		if n > 0 && len(labels) > 0 && pc.Op != config.PostThreshold && int64(len(labels)) != n {
			return nil, fmt.Errorf("%d labels for output %q of %d classes", len(labels), pc.Tensor, n)
		}
		if pc.Op == config.PostThreshold && n > 0 && int64(*pc.Index) >= n {
			return nil, fmt.Errorf("index %d is past output %q's %d classes", *pc.Index, pc.Tensor, n)
		}
	}
	label := func(i int) string {
		if i < len(labels) {
			return labels[i]
		}
		return strconv.Itoa(i)
	}
	op := &postOp{step: step, field: pc.Field, tensor: pc.Tensor}
	switch pc.Op {
	case config.PostSoftmax:
		op.avroType = map[string]any{"type": "array", "items": "float"}
		op.apply = func(x []float64) any {
			m := x[0]
			for _, v := range x {
				m = math.Max(m, v)
			}
			sum := 0.0
			e := make([]float64, len(x))
			for i, v := range x {
				e[i] = math.Exp(v - m)
				sum += e[i]
			}
			out := make([]any, len(x))
			for i := range e {
				out[i] = float32(e[i] / sum)
			}
			return out
		}
	case config.PostArgmax:
		if len(labels) > 0 {
			op.avroType = "string"
			op.apply = func(x []float64) any { return label(argmax(x)) }
		} else {
			op.avroType = "long"
			op.apply = func(x []float64) any { return int64(argmax(x)) }
		}
	case config.PostTopK:
		op.avroType = map[string]any{"type": "array", "items": map[string]any{
			"type": "record", "name": "TopK_" + pc.Field, "fields": []any{
				map[string]any{"name": "label", "type": "string"},
				map[string]any{"name": "score", "type": "float"},
			}}}
		k := pc.K
		op.apply = func(x []float64) any {
			idx := make([]int, len(x))
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] > x[idx[b]] })
			out := make([]any, 0, k)
			for _, i := range idx[:min(k, len(idx))] {
				out = append(out, map[string]any{"label": label(i), "score": float32(x[i])})
			}
			return out
		}
	case config.PostThreshold:
		if len(labels) != 2 {
			return nil, fmt.Errorf("threshold needs two labels (below, at or above), found %d", len(labels))
		}
		op.avroType = "string"
		th, at := *pc.Threshold, *pc.Index
		op.apply = func(x []float64) any {
			if at < len(x) && x[at] >= th {
				return labels[1]
			}
			return labels[0]
		}
	default:
		return nil, fmt.Errorf("unknown op %q", pc.Op)
	}
	return op, nil
}

func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("labels file: %w", err)
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			labels = append(labels, l)
		}
	}
	return labels, sc.Err()
}
