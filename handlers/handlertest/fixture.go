package handlertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Fixture is a set of example rows and, optionally, the outputs a reference
// framework computed for each of them. A row is the named tensors of one
// record, without the batch dim.
type Fixture struct {
	Inputs []map[string]*tensor.Tensor
	// Outputs has one map per row, holding some or all of the model's
	// outputs; nil when there is no reference to compare with.
	Outputs []map[string]*tensor.Tensor
}

// fixtureFile is the layout of testdata/models/*/expected.json (see
// testdata/models/README.md). Other keys (model, framework, signature...)
// are documentation and ignored here.
type fixtureFile struct {
	Inputs  map[string]json.RawMessage `json:"inputs"`
	Outputs map[string]json.RawMessage `json:"outputs"`
}

// LoadFixture reads an expected.json: {"inputs": {name: [row, ...]},
// "outputs": {name: [row, ...]}}, each row a number, bool or nested list.
// JSON carries no dtypes, so values are converted to the dtype of the spec
// with the same name; a tensor the specs do not name is an error, and so is
// a model input the file lacks. Integers must be integral; floats are parsed
// straight to the spec's precision.
func LoadFixture(path string, inputs, outputs []handlers.TensorSpec) (*Fixture, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ff fixtureFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ins, n, err := parseRows(ff.Inputs, inputs, "inputs")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range inputs {
		if _, ok := ff.Inputs[s.Name]; !ok {
			return nil, fmt.Errorf("%s: inputs has no %q, which the model needs", path, s.Name)
		}
	}
	fx := &Fixture{Inputs: ins}
	if len(ff.Outputs) > 0 {
		outs, m, err := parseRows(ff.Outputs, outputs, "outputs")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m != n {
			return nil, fmt.Errorf("%s: %d input rows but %d output rows", path, n, m)
		}
		fx.Outputs = outs
	}
	return fx, nil
}

// parseRows turns {name: [row, ...]} into one map per row.
func parseRows(raw map[string]json.RawMessage, specs []handlers.TensorSpec, what string) ([]map[string]*tensor.Tensor, int, error) {
	var rows []map[string]*tensor.Tensor
	for name, msg := range raw {
		i := slices.IndexFunc(specs, func(s handlers.TensorSpec) bool { return s.Name == name })
		if i < 0 {
			return nil, 0, fmt.Errorf("%s has %q, which is not one of the model's %s", what, name, what)
		}
		dt := specs[i].DType
		var list []any
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.UseNumber()
		if err := dec.Decode(&list); err != nil {
			return nil, 0, fmt.Errorf("%s.%s: want a list of rows: %w", what, name, err)
		}
		if rows == nil {
			rows = make([]map[string]*tensor.Tensor, len(list))
			for r := range rows {
				rows[r] = map[string]*tensor.Tensor{}
			}
		} else if len(list) != len(rows) {
			return nil, 0, fmt.Errorf("%s.%s has %d rows, other tensors have %d", what, name, len(list), len(rows))
		}
		for r, v := range list {
			t, err := parseTensor(v, dt)
			if err != nil {
				return nil, 0, fmt.Errorf("%s.%s row %d: %w", what, name, r, err)
			}
			rows[r][name] = t
		}
	}
	return rows, len(rows), nil
}

// parseTensor converts a JSON scalar or nested list to a tensor of dt.
func parseTensor(v any, dt tensor.DType) (*tensor.Tensor, error) {
	var shape []int64
	for x := v; ; {
		l, ok := x.([]any)
		if !ok {
			break
		}
		shape = append(shape, int64(len(l)))
		if len(l) == 0 {
			break
		}
		x = l[0]
	}
	var leaves []any
	if err := flatten(v, shape, &leaves); err != nil {
		return nil, err
	}
	t := tensor.New(dt, shape)
	for i, leaf := range leaves {
		if err := setElem(t, i, leaf); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return t, nil
}

func flatten(v any, shape []int64, out *[]any) error {
	if len(shape) == 0 {
		if _, ok := v.([]any); ok {
			return fmt.Errorf("ragged nesting: a list where a value was expected")
		}
		*out = append(*out, v)
		return nil
	}
	l, ok := v.([]any)
	if !ok || int64(len(l)) != shape[0] {
		return fmt.Errorf("ragged nesting: want a list of %d at this level, got %v", shape[0], describeJSON(v))
	}
	for _, x := range l {
		if err := flatten(x, shape[1:], out); err != nil {
			return err
		}
	}
	return nil
}

func describeJSON(v any) string {
	if l, ok := v.([]any); ok {
		return fmt.Sprintf("a list of %d", len(l))
	}
	return fmt.Sprintf("%v", v)
}

func setElem(t *tensor.Tensor, i int, leaf any) error {
	if b, ok := leaf.(bool); ok {
		d, ok := t.Data.([]bool)
		if !ok {
			return fmt.Errorf("bool value for a %v tensor", t.DType)
		}
		d[i] = b
		return nil
	}
	num, ok := leaf.(json.Number)
	if !ok {
		return fmt.Errorf("want a number, got %v", leaf)
	}
	s := string(num)
	switch d := t.Data.(type) {
	case []float32:
		f, err := strconv.ParseFloat(s, 32)
		d[i] = float32(f)
		return err
	case []float64:
		f, err := strconv.ParseFloat(s, 64)
		d[i] = f
		return err
	case []bool:
		f, err := strconv.ParseFloat(s, 64)
		d[i] = f != 0
		return err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return fmt.Errorf("%s is not an integer, as %v needs", s, t.DType)
		}
		n = int64(f)
	}
	switch d := t.Data.(type) {
	case []int64:
		d[i] = n
	case []int32:
		if n != int64(int32(n)) {
			return fmt.Errorf("%d overflows int32", n)
		}
		d[i] = int32(n)
	case []uint8:
		if n < 0 || n > math.MaxUint8 {
			return fmt.Errorf("%d overflows uint8", n)
		}
		d[i] = uint8(n)
	case []int8:
		if n != int64(int8(n)) {
			return fmt.Errorf("%d overflows int8", n)
		}
		d[i] = int8(n)
	default:
		return fmt.Errorf("unsupported dtype %v", t.DType)
	}
	return nil
}

// syntheticDim stands in for a dynamic non-batch dim when the suite has to
// make inputs up.
const syntheticDim = 4

// SyntheticFixture makes n rows from input specs, with no reference
// outputs: floats uniform in [-1, 1), integers and bools 0 or 1 (valid as
// ids, masks and flags alike), dynamic non-batch dims of 4. The values are
// the same on every call.
func SyntheticFixture(inputs []handlers.TensorSpec, n int) *Fixture {
	rng := rand.New(rand.NewPCG(1, 2))
	fx := &Fixture{Inputs: make([]map[string]*tensor.Tensor, n)}
	for r := range n {
		row := map[string]*tensor.Tensor{}
		for _, s := range inputs {
			shape := slices.Clone(s.Shape[min(1, len(s.Shape)):])
			for i, d := range shape {
				if d < 0 {
					shape[i] = syntheticDim
				}
			}
			t := tensor.New(s.DType, shape)
			for i := range t.Len() {
				switch d := t.Data.(type) {
				case []float32:
					d[i] = float32(rng.Float64()*2 - 1)
				case []float64:
					d[i] = rng.Float64()*2 - 1
				case []int32:
					d[i] = int32(rng.IntN(2))
				case []int64:
					d[i] = int64(rng.IntN(2))
				case []uint8:
					d[i] = uint8(rng.IntN(2))
				case []int8:
					d[i] = int8(rng.IntN(2))
				case []bool:
					d[i] = rng.IntN(2) == 1
				}
			}
			row[s.Name] = t
		}
		fx.Inputs[r] = row
	}
	return fx
}
