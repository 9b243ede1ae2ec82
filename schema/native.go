package schema

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// goavro decodes every array into []any, boxing each element: an image of
// 784 floats costs 784 allocations and about 20 µs, half of what a record
// costs kinfer outside the model. decodeNative walks the writer schema
// tree itself and produces goavro's native form, except that arrays of
// float, double, int and long become []float32, []float64, []int32 and
// []int64, which the mapper copies into tensors without a type switch per
// element. Schemas with logical types whose native form goavro converts
// (timestamps, dates, decimals) keep goavro's decoder; see nativeSafe.
//
// It checks what checkBinary checks (block counts through the same
// eachBlock, so allocations are bounded by the input's size; nesting
// depth; every length and index), so values are walked once.

// nativeSafe reports whether decodeNative yields goavro's native form for
// every value of t: no type reachable from t has a goavro-converted
// logical type.
func nativeSafe(t *avroType) bool {
	return nativeSafeWalk(t, map[*avroType]bool{})
}

func nativeSafeWalk(t *avroType, seen map[*avroType]bool) bool {
	if seen[t] {
		return true
	}
	seen[t] = true
	if t.nativeLogical() {
		return false
	}
	switch t.kind {
	case kindRecord:
		for _, f := range t.fields {
			if !nativeSafeWalk(f.typ, seen) {
				return false
			}
		}
	case kindUnion:
		for _, b := range t.branches {
			if !nativeSafeWalk(b, seen) {
				return false
			}
		}
	case kindArray, kindMap:
		return nativeSafeWalk(t.items, seen)
	}
	return true
}

// typedArray reports whether arrays of items decode to a typed slice.
func typedArray(items *avroType) bool {
	switch items.kind {
	case kindFloat, kindDouble, kindInt, kindLong:
		return true
	}
	return false
}

// decodeNative decodes one value of type t from b and returns the rest.
func decodeNative(t *avroType, b []byte, depth int) (any, []byte, error) {
	switch t.kind {
	case kindNull:
		return nil, b, nil
	case kindBoolean:
		if len(b) < 1 {
			return nil, nil, errShort
		}
		if b[0] > 1 {
			return nil, nil, fmt.Errorf("boolean byte is %d, want 0 or 1", b[0])
		}
		return b[0] == 1, b[1:], nil
	case kindInt:
		v, rest, err := readVarint(b, 5)
		if err != nil {
			return nil, nil, err
		}
		// Truncated to 32 bits, as goavro does with a 5-byte varint.
		return int32(v), rest, nil
	case kindLong:
		v, rest, err := readLong(b)
		if err != nil {
			return nil, nil, err
		}
		return v, rest, nil
	case kindFloat:
		if len(b) < 4 {
			return nil, nil, errShort
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b)), b[4:], nil
	case kindDouble:
		if len(b) < 8 {
			return nil, nil, errShort
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
	case kindBytes, kindString:
		n, rest, err := readLong(b)
		if err != nil {
			return nil, nil, err
		}
		if n < 0 {
			return nil, nil, fmt.Errorf("negative %s length %d", t.kind, n)
		}
		if n > int64(len(rest)) {
			return nil, nil, errShort
		}
		if t.kind == kindString {
			return string(rest[:n]), rest[n:], nil
		}
		return rest[:n:n], rest[n:], nil
	case kindFixed:
		if len(b) < t.size {
			return nil, nil, errShort
		}
		return b[:t.size:t.size], b[t.size:], nil
	case kindEnum:
		i, rest, err := readLong(b)
		if err != nil {
			return nil, nil, err
		}
		if i < 0 || i >= int64(len(t.symbolNames)) {
			return nil, nil, fmt.Errorf("enum %s index %d out of range [0,%d)", t.name, i, len(t.symbolNames))
		}
		return t.symbolNames[i], rest, nil
	}

	if depth >= maxDataDepth {
		return nil, nil, fmt.Errorf("value nested deeper than %d levels", maxDataDepth)
	}
	switch t.kind {
	case kindRecord:
		m := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			v, rest, err := decodeNative(f.typ, b, depth+1)
			if err != nil {
				return nil, nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			m[f.name], b = v, rest
		}
		return m, b, nil
	case kindUnion:
		i, rest, err := readLong(b)
		if err != nil {
			return nil, nil, err
		}
		if i < 0 || i >= int64(len(t.branches)) {
			return nil, nil, fmt.Errorf("union index %d out of range [0,%d)", i, len(t.branches))
		}
		br := t.branches[i]
		v, rest, err := decodeNative(br, rest, depth+1)
		if err != nil || v == nil {
			return nil, rest, err
		}
		return map[string]any{br.unionKey(): v}, rest, nil
	case kindArray:
		switch t.items.kind {
		case kindFloat:
			return decodeFixedWidth[float32](t, b)
		case kindDouble:
			return decodeFixedWidth[float64](t, b)
		case kindInt:
			return decodeVarints[int32](t, b)
		case kindLong:
			return decodeVarints[int64](t, b)
		}
		var items []any
		rest, err := eachBlock(t, b, func(count int64, b []byte) ([]byte, error) {
			if items == nil {
				items = make([]any, 0, count)
			}
			for j := int64(0); j < count; j++ {
				v, rest, err := decodeNative(t.items, b, depth+1)
				if err != nil {
					return nil, fmt.Errorf("array item %d: %w", len(items), err)
				}
				items, b = append(items, v), rest
			}
			return b, nil
		})
		if err != nil {
			return nil, nil, err
		}
		if items == nil {
			items = []any{}
		}
		return items, rest, nil
	case kindMap:
		m := map[string]any{}
		rest, err := eachBlock(t, b, func(count int64, b []byte) ([]byte, error) {
			for j := int64(0); j < count; j++ {
				k, rest, err := decodeNative(&stringType, b, depth+1)
				if err != nil {
					return nil, fmt.Errorf("map key: %w", err)
				}
				v, rest, err := decodeNative(t.items, rest, depth+1)
				if err != nil {
					return nil, fmt.Errorf("map value %q: %w", k, err)
				}
				key := k.(string)
				if _, dup := m[key]; dup {
					return nil, fmt.Errorf("map key %q repeated", key)
				}
				m[key], b = v, rest
			}
			return b, nil
		})
		if err != nil {
			return nil, nil, err
		}
		return m, rest, nil
	}
	return nil, nil, fmt.Errorf("unsupported Avro type %s", t.kind)
}

// decodeFixedWidth decodes an array of float or double into a typed
// slice, copying each block in one move on little-endian hosts.
func decodeFixedWidth[T float32 | float64](t *avroType, b []byte) (any, []byte, error) {
	var out []T
	size := int(unsafe.Sizeof(T(0)))
	rest, err := eachBlock(t, b, func(count int64, b []byte) ([]byte, error) {
		n := int(count)
		if int64(n) != count || n > len(b)/size {
			return nil, errShort
		}
		out = appendLE(out, b, n)
		return b[n*size:], nil
	})
	if err != nil {
		return nil, nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, rest, nil
}

// decodeVarints decodes an array of int or long into a typed slice.
func decodeVarints[T int32 | int64](t *avroType, b []byte) (any, []byte, error) {
	var out []T
	isInt := t.items.kind == kindInt
	rest, err := eachBlock(t, b, func(count int64, b []byte) ([]byte, error) {
		if out == nil {
			out = make([]T, 0, count)
		}
		for j := int64(0); j < count; j++ {
			var (
				v   int64
				err error
			)
			if isInt {
				v, b, err = readVarint(b, 5)
				v = int64(int32(v))
			} else {
				v, b, err = readLong(b)
			}
			if err != nil {
				return nil, fmt.Errorf("array item %d: %w", len(out), err)
			}
			out = append(out, T(v))
		}
		return b, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, rest, nil
}
