package schema

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/kinfer/kinfer/tensor"
)

type convResult uint8

const (
	convOK convResult = iota
	convWrongType
	convRange
	convNaN
)

type number interface {
	float32 | float64 | int32 | int64 | uint8 | int8
}

// rowConv converts native Avro values into a typed row of the same length.
// On failure it returns the index of the offending value and why.
type rowConv[T any] func(mp *mapping, row []T, items []any) (bad int, r convResult)

// numRow converts native values to T. Integers convert to floats; floats
// never convert to integers; integers out of T's range are rejected rather
// than wrapped. The type switch sits inside the loop (rather than in a
// per-element function) because this is the hot path for array fields.
func numRow[T number](mp *mapping, row []T, items []any) (int, convResult) {
	row = row[:len(items)]
	for i, it := range items {
		switch x := it.(type) {
		case float32:
			if !mp.isFloat {
				return i, convWrongType
			}
			if x != x && !mp.allowNaN {
				return i, convNaN
			}
			row[i] = T(x)
		case float64:
			if !mp.isFloat {
				return i, convWrongType
			}
			if x != x && !mp.allowNaN {
				return i, convNaN
			}
			row[i] = T(x)
		case int32:
			r := T(x)
			if !mp.isFloat && int64(r) != int64(x) {
				return i, convRange
			}
			row[i] = r
		case int64:
			r := T(x)
			if !mp.isFloat && int64(r) != x {
				return i, convRange
			}
			row[i] = r
		case int:
			r := T(x)
			if !mp.isFloat && int64(r) != int64(x) {
				return i, convRange
			}
			row[i] = r
		case bool:
			if x {
				row[i] = 1
			} else {
				row[i] = 0
			}
		default:
			return i, convWrongType
		}
	}
	return -1, convOK
}

func boolRow(_ *mapping, row []bool, items []any) (int, convResult) {
	row = row[:len(items)]
	for i, it := range items {
		b, ok := it.(bool)
		if !ok {
			return i, convWrongType
		}
		row[i] = b
	}
	return -1, convOK
}

func (mp *mapping) convError(field string, index int, v any, r convResult) error {
	at := ""
	if index >= 0 {
		at = ": element " + strconv.Itoa(index)
	}
	switch r {
	case convNaN:
		return errorf(ReasonNaN, "input %q: field %q%s: NaN is not allowed", mp.tensor, field, at)
	case convRange:
		return errorf(ReasonWrongType, "input %q: field %q%s: value %v is out of range for %s", mp.tensor, field, at, v, mp.dtype)
	}
	return errorf(ReasonWrongType, "input %q: field %q%s: %s value cannot feed %s", mp.tensor, field, at, nativeTypeName(v), mp.dtype)
}

// nativeTypeName names the Avro type behind a goavro native value, for
// error messages.
func nativeTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int32:
		return "int"
	case int64, int:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case []any, []float32, []float64, []int32, []int64:
		return "array"
	case map[string]any:
		return "record or map"
	}
	return fmt.Sprintf("Go %T", v)
}

// Native arrays are []any, or typed slices for arrays of float, double,
// int and long (see decodeNative).

// arrayLen returns the length of a native array.
func arrayLen(v any) (int, bool) {
	if items, ok := v.([]any); ok {
		return len(items), true
	}
	return typedLen(v)
}

// typedLen returns the length of a typed native array.
func typedLen(v any) (int, bool) {
	switch x := v.(type) {
	case []float32:
		return len(x), true
	case []float64:
		return len(x), true
	case []int32:
		return len(x), true
	case []int64:
		return len(x), true
	}
	return 0, false
}

// arrayItem returns element i of a native array of at least i+1 items.
func arrayItem(v any, i int) any {
	switch x := v.(type) {
	case []any:
		return x[i]
	case []float32:
		return x[i]
	case []float64:
		return x[i]
	case []int32:
		return x[i]
	case []int64:
		return x[i]
	}
	return nil
}

// sameType returns a typed native array whose element type is the
// mapping's dtype, unchanged, with the index of its first NaN (-1: none,
// or NaN allowed). ok is false for any other value.
func sameType(mp *mapping, v any) (data any, bad int, ok bool) {
	switch x := v.(type) {
	case []float32:
		if mp.dtype == tensor.Float32 {
			return x, firstNaN(mp, x), true
		}
	case []float64:
		if mp.dtype == tensor.Float64 {
			return x, firstNaN(mp, x), true
		}
	case []int32:
		if mp.dtype == tensor.Int32 {
			return x, -1, true
		}
	case []int64:
		if mp.dtype == tensor.Int64 {
			return x, -1, true
		}
	}
	return nil, -1, false
}

func firstNaN[T float32 | float64](mp *mapping, x []T) int {
	if mp.allowNaN {
		return -1
	}
	return indexNaN(x)
}

// typedRow converts a typed native array into row, with numRow's rules.
func typedRow[T any](mp *mapping, row []T, v any) (int, convResult) {
	switch d := any(row).(type) {
	case []float32:
		return typedInto(mp, d, v)
	case []float64:
		return typedInto(mp, d, v)
	case []int32:
		return typedInto(mp, d, v)
	case []int64:
		return typedInto(mp, d, v)
	case []uint8:
		return typedInto(mp, d, v)
	case []int8:
		return typedInto(mp, d, v)
	}
	if len(row) == 0 {
		return -1, convOK
	}
	return 0, convWrongType // numbers never feed bool
}

func typedInto[T number](mp *mapping, row []T, v any) (int, convResult) {
	switch x := v.(type) {
	case []float32:
		return floatsInto(mp, row, x)
	case []float64:
		return floatsInto(mp, row, x)
	case []int32:
		return intsInto(mp, row, x)
	case []int64:
		return intsInto(mp, row, x)
	}
	return 0, convWrongType
}

func floatsInto[T number, S float32 | float64](mp *mapping, row []T, src []S) (int, convResult) {
	if len(src) == 0 {
		return -1, convOK
	}
	if !mp.isFloat {
		return 0, convWrongType
	}
	if same, ok := any(row).([]S); ok {
		copy(same, src)
	} else {
		row = row[:len(src)]
		for i, x := range src {
			row[i] = T(x)
		}
	}
	if !mp.allowNaN {
		for i, x := range src {
			if x != x {
				return i, convNaN
			}
		}
	}
	return -1, convOK
}

func intsInto[T number, S int32 | int64](mp *mapping, row []T, src []S) (int, convResult) {
	if same, ok := any(row).([]S); ok {
		copy(same, src)
		return -1, convOK
	}
	row = row[:len(src)]
	for i, x := range src {
		r := T(x)
		if !mp.isFloat && int64(r) != int64(x) {
			return i, convRange
		}
		row[i] = r
	}
	return -1, convOK
}

// hostLittleEndian is true on the platforms kinfer runs on (amd64, arm64),
// where raw tensor bytes already have the in-memory layout of the typed
// slice and can be copied wholesale.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// appendLE appends the n little-endian elements at the start of b to d.
// On a little-endian host that is one append of b's bytes viewed as
// elements: the runtime copies them into the new array without zeroing it
// first (as bytes.Clone does), which for a 784-float image is most of the
// cost of decoding it. b must hold at least n elements.
func appendLE[T float32 | float64 | int32 | int64](d []T, b []byte, n int) []T {
	if n == 0 {
		if d == nil {
			return []T{}
		}
		return d
	}
	size := int(unsafe.Sizeof(T(0)))
	b = b[:n*size]
	if hostLittleEndian {
		// Element types without pointers may be read unaligned.
		return append(d, unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)...)
	}
	for i := range n {
		var v T
		switch p := any(&v).(type) {
		case *float32:
			*p = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		case *float64:
			*p = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		case *int32:
			*p = int32(binary.LittleEndian.Uint32(b[4*i:]))
		case *int64:
			*p = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		d = append(d, v)
	}
	return d
}

// indexNaN returns the index of the first NaN in x, or -1. It tests eight
// bytes at a time (two float32 lanes or one float64) without a branch per
// element: a value is NaN when its bits without the sign exceed those of
// +Inf, and adding (all mantissa bits) to them carries into the lane's top
// bit exactly then; the lanes cannot carry into each other.
func indexNaN[T float32 | float64](x []T) int {
	size := int(unsafe.Sizeof(T(0)))
	var abs, carry, top uint64 = 0x7fffffffffffffff, 0x000fffffffffffff, 1 << 63
	if size == 4 {
		abs, carry, top = 0x7fffffff7fffffff, 0x007fffff007fffff, 0x8000000080000000
	}
	from := 0
	if words := len(x) * size / 8; words >= 4 {
		u := unsafe.Slice((*uint64)(unsafe.Pointer(&x[0])), words)
		w := 0
		for ; w+4 <= words; w += 4 {
			// + and | bind equally in Go: each sum needs its parentheses.
			if (((u[w]&abs)+carry)|((u[w+1]&abs)+carry)|((u[w+2]&abs)+carry)|((u[w+3]&abs)+carry))&top != 0 {
				break
			}
		}
		from = w * 8 / size
	}
	for i := from; i < len(x); i++ {
		if x[i] != x[i] {
			return i
		}
	}
	return -1
}

// rawFloats reads n little-endian floats from b; with !allowNaN a NaN
// fails the read and its index is returned (else -1).
func rawFloats[T float32 | float64](b []byte, n int, allowNaN bool) ([]T, int) {
	d := appendLE[T](nil, b, n)
	if !allowNaN {
		if i := indexNaN(d); i >= 0 {
			return nil, i
		}
	}
	return d, -1
}

func rawInt32(b []byte, n int) []int32 { return appendLE[int32](nil, b, n) }

func rawInt64(b []byte, n int) []int64 { return appendLE[int64](nil, b, n) }

func rawBool(b []byte, n int) ([]bool, int) {
	d := make([]bool, n)
	for i, c := range b[:n] {
		if c > 1 {
			return nil, i
		}
		d[i] = c == 1
	}
	return d, -1
}
