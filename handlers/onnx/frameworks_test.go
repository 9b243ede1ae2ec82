package onnx_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/handlertest"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/tensor"
)

// Fixtures exported by the frameworks themselves (torch.onnx.export and
// tf2onnx), made by testdata/models/make_framework_models.py; each
// expected.json holds the framework's own predictions. kinfer's must match
// them within frameworkTol.
const frameworkTol = 1e-5

var frameworkFixtures = []struct {
	model  string
	ragged bool // rows are token sequences of different lengths
	inputs []handlers.TensorSpec
	output []handlers.TensorSpec
}{
	{
		model:  "torch_textcnn",
		ragged: true,
		inputs: []handlers.TensorSpec{
			{Name: "input_ids", DType: tensor.Int64, Shape: []int64{-1, -1}},
			{Name: "attention_mask", DType: tensor.Int64, Shape: []int64{-1, -1}},
		},
		output: []handlers.TensorSpec{{Name: "logits", DType: tensor.Float32, Shape: []int64{-1, 4}}},
	},
	{
		model:  "keras_mlp",
		inputs: []handlers.TensorSpec{{Name: "features", DType: tensor.Float32, Shape: []int64{-1, 16}}},
		output: []handlers.TensorSpec{{Name: "probabilities", DType: tensor.Float32, Shape: []int64{-1, 3}}},
	},
}

// TestFrameworkConformance runs the handler conformance suite on each
// framework export: per row, in batches of 1, 3 and 17 (padded with id 0
// and mask 0 for the text model), concurrently, and with bad inputs.
func TestFrameworkConformance(t *testing.T) {
	orttest.Require(t)
	for _, c := range frameworkFixtures {
		t.Run(c.model, func(t *testing.T) {
			dir := modelDir(t, c.model)
			handlertest.Run(t, func(t *testing.T) handlers.ModelHandler {
				return load(t, onnx.Options{Path: filepath.Join(dir, "model.onnx")})
			}, handlertest.Features{
				Fixture:      filepath.Join(dir, "expected.json"),
				DynamicBatch: true,
				Tolerance:    frameworkTol,
				Ragged:       c.ragged,
			})
		})
	}
}

// TestFrameworkSpecs checks that the exporters' dynamic axes come through as
// dynamic (-1) dims.
func TestFrameworkSpecs(t *testing.T) {
	for _, c := range frameworkFixtures {
		t.Run(c.model, func(t *testing.T) {
			h := load(t, onnx.Options{Path: modelPath(t, c.model)})
			if got := h.Inputs(); !slices.EqualFunc(got, c.inputs, specEqual) {
				t.Errorf("Inputs() = %v, want %v", got, c.inputs)
			}
			if got := h.Outputs(); !slices.EqualFunc(got, c.output, specEqual) {
				t.Errorf("Outputs() = %v, want %v", got, c.output)
			}
		})
	}
}

// TestFrameworkMaxDiff compares kinfer's outputs with the framework's
// predictions in absolute terms (|got-want| <= 1e-5 for every value), for
// every row alone and for all rows in one batch (right-padded with id 0 and
// mask 0 for the text model), and logs the largest difference.
func TestFrameworkMaxDiff(t *testing.T) {
	for _, c := range frameworkFixtures {
		t.Run(c.model, func(t *testing.T) {
			dir := modelDir(t, c.model)
			h := load(t, onnx.Options{Path: filepath.Join(dir, "model.onnx")})
			fx, err := handlertest.LoadFixture(filepath.Join(dir, "expected.json"), h.Inputs(), h.Outputs())
			if err != nil {
				t.Fatal(err)
			}
			if len(fx.Outputs) == 0 {
				t.Fatal("expected.json has no outputs")
			}
			checkFrameworkHeader(t, filepath.Join(dir, "expected.json"))
			ctx := context.Background()
			name := c.output[0].Name

			rowMax := 0.0
			for i, row := range fx.Inputs {
				in, err := padRows([]map[string]*tensor.Tensor{row}, c.inputs)
				if err != nil {
					t.Fatal(err)
				}
				out, err := h.Infer(ctx, in)
				if err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				rowMax = math.Max(rowMax, maxAbsDiff(t, i, out[name], 0, fx.Outputs[i][name]))
			}

			in, err := padRows(fx.Inputs, c.inputs)
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Infer(ctx, in)
			if err != nil {
				t.Fatalf("batch of %d: %v", len(fx.Inputs), err)
			}
			batchMax := 0.0
			for i := range fx.Inputs {
				batchMax = math.Max(batchMax, maxAbsDiff(t, i, out[name], i, fx.Outputs[i][name]))
			}
			t.Logf("%s: %d rows, max |kinfer - framework| = %.3g one row at a time, %.3g in one batch %v",
				name, len(fx.Inputs), rowMax, batchMax, tensor.ShapeString(in[c.inputs[0].Name].Shape))
			if rowMax > frameworkTol || batchMax > frameworkTol {
				t.Errorf("max abs diff %.3g (rows) / %.3g (batch) > %g", rowMax, batchMax, frameworkTol)
			}
		})
	}
}

// checkFrameworkHeader checks that expected.json says which framework made
// the predictions and how the model was exported.
func checkFrameworkHeader(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Model, Framework, Exporter string }
	if err := json.Unmarshal(data, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Framework == "" || hdr.Exporter == "" {
		t.Errorf("%s: want non-empty \"framework\" and \"exporter\", got %+v", path, hdr)
	}
	t.Logf("framework: %s; exporter: %s", hdr.Framework, hdr.Exporter)
}

// padRows stacks rows into one batch; rows of different lengths (rank-1
// int64 rows only) are right-padded with 0, which is pad id 0 and mask 0.
func padRows(rows []map[string]*tensor.Tensor, specs []handlers.TensorSpec) (map[string]*tensor.Tensor, error) {
	in := map[string]*tensor.Tensor{}
	for _, s := range specs {
		ts := make([]*tensor.Tensor, len(rows))
		width := int64(0)
		for i, r := range rows {
			ts[i] = r[s.Name]
			if len(ts[i].Shape) == 1 {
				width = max(width, ts[i].Shape[0])
			}
		}
		if s.DType != tensor.Int64 || len(s.Shape) != 2 || s.Shape[1] != -1 {
			b, err := tensor.Stack(ts)
			if err != nil {
				return nil, err
			}
			in[s.Name] = b
			continue
		}
		b := tensor.New(tensor.Int64, []int64{int64(len(rows)), width})
		data := b.Data.([]int64)
		for i, r := range ts {
			copy(data[int64(i)*width:], r.Data.([]int64))
		}
		in[s.Name] = b
	}
	return in, nil
}

// maxAbsDiff is the largest |got[row] - want| over one output row; it fails
// the test if the shapes disagree.
func maxAbsDiff(t *testing.T, i int, got *tensor.Tensor, row int, want *tensor.Tensor) float64 {
	t.Helper()
	if got == nil || len(got.Shape) != len(want.Shape)+1 || !slices.Equal(got.Shape[1:], want.Shape) {
		t.Fatalf("row %d: output shape %v, want [batch]+%v", i, got, want.Shape)
	}
	n := want.Len()
	worst := 0.0
	for j := range n {
		g, w := got.Float64At(row*n+j), want.Float64At(j)
		if math.IsNaN(g) {
			t.Fatalf("row %d: NaN output", i)
		}
		worst = math.Max(worst, math.Abs(g-w))
	}
	return worst
}
