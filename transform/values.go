package transform

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// Reading row values. A row is the decoder's native form of a record
// (map[string]any with nil, bool, int32, int64, float32, float64, string,
// []byte, []any, map[string]any; arrays of numbers may be []float32,
// []float64, []int32 or []int64), plus what earlier stages wrote: float64,
// int64, []float64, []int64, []string and *tensor.Tensor. Go's int is
// accepted wherever int64 is, for rows built by hand.

type lookupStatus uint8

const (
	found lookupStatus = iota
	absent
	isNull
)

// avroTypeNames are the keys goavro uses to wrap a value of a union.
var avroTypeNames = map[string]bool{
	"boolean": true, "int": true, "long": true, "float": true, "double": true,
	"bytes": true, "string": true, "array": true, "map": true,
}

// lookup finds field in row: the key itself first (stage outputs, flat
// fields), then a dotted path through nested records. Union wrappers
// ({"string": "x"}) are removed.
func lookup(row map[string]any, field string) (any, lookupStatus) {
	if v, ok := row[field]; ok {
		v = unwrapUnion(v)
		if v == nil {
			return nil, isNull
		}
		return v, found
	}
	if !strings.Contains(field, ".") {
		return nil, absent
	}
	cur := row
	rest := field
	for {
		seg, tail, more := strings.Cut(rest, ".")
		v, ok := cur[seg]
		if !ok {
			return nil, absent
		}
		v = unwrapUnion(v)
		if v == nil {
			return nil, isNull
		}
		if !more {
			return v, found
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, absent
		}
		if _, direct := m[strings.SplitN(tail, ".", 2)[0]]; !direct && len(m) == 1 {
			// A nullable record wrapped by its full name: {"ns.Rec": {...}}.
			for _, inner := range m {
				if r, isRec := inner.(map[string]any); isRec {
					m = r
				}
			}
		}
		cur, rest = m, tail
	}
}

func unwrapUnion(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	for k, inner := range m {
		if avroTypeNames[k] {
			return inner
		}
	}
	return v
}

// form is the shape of an input value, which the output keeps.
type form uint8

const (
	formScalar form = iota
	formList
	formTensor
)

// numbers is a numeric input read as float64s.
type numbers struct {
	vals  []float64
	form  form
	shape []int64 // formTensor
}

// badValue is a reason and a detail for a value a stage cannot use.
type badValue struct {
	reason string
	err    error
}

func bad(reason, format string, args ...any) *badValue {
	return &badValue{reason: reason, err: fmt.Errorf(format, args...)}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int32, int64:
		return "integer"
	case float32, float64:
		return "floating-point"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case []any, []string, []float64, []float32, []int64, []int32:
		return "array"
	case map[string]any:
		return "record or map"
	case *tensor.Tensor:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

// scalarFloat converts one numeric value.
func scalarFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func checkFinite(x float64, i int, f form) *badValue {
	if finite(x) {
		return nil
	}
	if f == formScalar {
		return bad(ReasonInvalidValue, "value is %v", x)
	}
	return bad(ReasonInvalidValue, "element %d is %v", i, x)
}

// readNumbers reads a number, an array of numbers or a numeric tensor.
// scratch is used for a scalar so that it does not allocate.
func readNumbers(v any, scratch *[1]float64) (numbers, *badValue) {
	if x, ok := scalarFloat(v); ok {
		if b := checkFinite(x, 0, formScalar); b != nil {
			return numbers{}, b
		}
		scratch[0] = x
		return numbers{vals: scratch[:], form: formScalar}, nil
	}
	var vals []float64
	switch x := v.(type) {
	case []any:
		vals = make([]float64, len(x))
		for i, it := range x {
			f, ok := scalarFloat(it)
			if !ok {
				return numbers{}, bad(ReasonWrongType, "element %d is a %s value, want a number", i, typeName(it))
			}
			vals[i] = f
		}
	case []float64:
		vals = x
	case []float32:
		vals = make([]float64, len(x))
		for i, f := range x {
			vals[i] = float64(f)
		}
	case []int64:
		vals = make([]float64, len(x))
		for i, f := range x {
			vals[i] = float64(f)
		}
	case []int32:
		vals = make([]float64, len(x))
		for i, f := range x {
			vals[i] = float64(f)
		}
	case *tensor.Tensor:
		if x.DType == tensor.Bool || x.Validate() != nil {
			return numbers{}, bad(ReasonWrongType, "a %s tensor of shape %s is not numeric", x.DType, tensor.ShapeString(x.Shape))
		}
		vals = make([]float64, x.Len())
		for i := range vals {
			vals[i] = x.Float64At(i)
		}
		for i, f := range vals {
			if b := checkFinite(f, i, formTensor); b != nil {
				return numbers{}, b
			}
		}
		return numbers{vals: vals, form: formTensor, shape: x.Shape}, nil
	default:
		return numbers{}, bad(ReasonWrongType, "a %s value, want a number or an array of numbers", typeName(v))
	}
	for i, f := range vals {
		if b := checkFinite(f, i, formList); b != nil {
			return numbers{}, b
		}
	}
	return numbers{vals: vals, form: formList}, nil
}

// integers is an integer input.
type integers struct {
	vals  []int64
	form  form
	shape []int64
}

func scalarInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}

func readIntegers(v any, scratch *[1]int64) (integers, *badValue) {
	if x, ok := scalarInt(v); ok {
		scratch[0] = x
		return integers{vals: scratch[:], form: formScalar}, nil
	}
	switch x := v.(type) {
	case []any:
		vals := make([]int64, len(x))
		for i, it := range x {
			n, ok := scalarInt(it)
			if !ok {
				return integers{}, bad(ReasonWrongType, "element %d is a %s value, want an integer", i, typeName(it))
			}
			vals[i] = n
		}
		return integers{vals: vals, form: formList}, nil
	case []int64:
		return integers{vals: x, form: formList}, nil
	case []int32:
		vals := make([]int64, len(x))
		for i, n := range x {
			vals[i] = int64(n)
		}
		return integers{vals: vals, form: formList}, nil
	case *tensor.Tensor:
		switch d := x.Data.(type) {
		case []int64:
			if x.Validate() == nil {
				return integers{vals: d, form: formTensor, shape: x.Shape}, nil
			}
		case []int32:
			if x.Validate() == nil {
				vals := make([]int64, len(d))
				for i, n := range d {
					vals[i] = int64(n)
				}
				return integers{vals: vals, form: formTensor, shape: x.Shape}, nil
			}
		}
		return integers{}, bad(ReasonWrongType, "a %s tensor, want int32 or int64 ids", x.DType)
	}
	return integers{}, bad(ReasonWrongType, "a %s value, want an integer or an array of integers", typeName(v))
}

// readStrings reads a string, an integer (as decimal text) or an array of
// them. scalar reports a non-array input.
func readStrings(v any, scratch *[1]string) (vals []string, scalar bool, b *badValue) {
	switch x := v.(type) {
	case string:
		scratch[0] = x
		return scratch[:], true, nil
	case []string:
		return x, false, nil
	case []any:
		vals = make([]string, len(x))
		for i, it := range x {
			switch s := it.(type) {
			case string:
				vals[i] = s
			default:
				n, ok := scalarInt(it)
				if !ok {
					return nil, false, bad(ReasonWrongType, "element %d is a %s value, want a string", i, typeName(it))
				}
				vals[i] = strconv.FormatInt(n, 10)
			}
		}
		return vals, false, nil
	}
	if n, ok := scalarInt(v); ok {
		scratch[0] = strconv.FormatInt(n, 10)
		return scratch[:], true, nil
	}
	return nil, false, bad(ReasonWrongType, "a %s value, want a string or an array of strings", typeName(v))
}

// Writing outputs.

// floatOutput builds a scaling stage's output in the input's form.
// vals may be reused by the caller only when the output is native scalar.
func floatOutput(in form, shape []int64, vals []float64, dt tensor.DType) any {
	return numOutput[float64, float32](in, shape, vals, dt, tensor.Float64, tensor.Float32)
}

// intOutput builds an integer stage's output in the input's form.
func intOutput(in form, shape []int64, vals []int64, dt tensor.DType) any {
	return numOutput[int64, int32](in, shape, vals, dt, tensor.Int64, tensor.Int32)
}

// numOutput builds a stage's output in the input's form: with dt unset a
// native scalar or list for native input, else a tensor of dt (or of the
// narrow dtype when dt is unset), holding vals itself when dt is wide.
func numOutput[W float64 | int64, N float32 | int32](in form, shape []int64, vals []W, dt, wide, narrow tensor.DType) any {
	if dt == tensor.Invalid {
		switch in {
		case formScalar:
			return vals[0]
		case formList:
			return vals
		}
		dt = narrow
	}
	t := &tensor.Tensor{DType: dt, Shape: outShape(in, shape, len(vals))}
	if dt == wide {
		t.Data = vals
	} else {
		d := make([]N, len(vals))
		for i, v := range vals {
			d[i] = N(v)
		}
		t.Data = d
	}
	return t
}

func outShape(in form, shape []int64, n int) []int64 {
	switch in {
	case formScalar:
		return []int64{}
	case formList:
		return []int64{int64(n)}
	}
	return append([]int64(nil), shape...)
}

// vectorTensor builds a dense vector (or a stack of them) of dtype dt from
// float64 values.
func vectorTensor(dt tensor.DType, shape []int64, vals []float64) *tensor.Tensor {
	t := &tensor.Tensor{DType: dt, Shape: shape}
	switch dt {
	case tensor.Float64:
		t.Data = vals
	case tensor.Float32:
		d := make([]float32, len(vals))
		for i, v := range vals {
			d[i] = float32(v)
		}
		t.Data = d
	case tensor.Int32:
		d := make([]int32, len(vals))
		for i, v := range vals {
			d[i] = int32(v)
		}
		t.Data = d
	case tensor.Int64:
		d := make([]int64, len(vals))
		for i, v := range vals {
			d[i] = int64(v)
		}
		t.Data = d
	}
	return t
}
