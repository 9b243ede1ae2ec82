package schema

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// encodeNative is the encoding side of decodeNative: it writes a native
// value as Avro binary without goavro, for the forms kinfer builds
// (predictions: typed slices for tensors, []any, records and union
// wrappers as maps, Go scalars of the field's own type). It writes exactly
// what goavro writes for the same value (one block per array or map). For
// anything else, where goavro may convert (an int for a float, a string
// for bytes, a missing field with a default), or may fail, it reports
// false and the caller lets goavro encode the whole record.
func encodeNative(t *avroType, buf []byte, v any, depth int) ([]byte, bool) {
	switch t.kind {
	case kindNull:
		return buf, v == nil
	case kindBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, false
		}
		if b {
			return append(buf, 1), true
		}
		return append(buf, 0), true
	case kindInt:
		switch x := v.(type) {
		case int32:
			return appendLong(buf, int64(x)), true
		case int:
			if x >= math.MinInt32 && x <= math.MaxInt32 {
				return appendLong(buf, int64(x)), true
			}
		}
		return nil, false
	case kindLong:
		switch x := v.(type) {
		case int64:
			return appendLong(buf, x), true
		case int:
			return appendLong(buf, int64(x)), true
		case int32:
			return appendLong(buf, int64(x)), true
		}
		return nil, false
	case kindFloat:
		switch x := v.(type) {
		case float32:
			return binary.LittleEndian.AppendUint32(buf, math.Float32bits(x)), true
		case float64:
			return binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(x))), true
		}
		return nil, false
	case kindDouble:
		switch x := v.(type) {
		case float64:
			return binary.LittleEndian.AppendUint64(buf, math.Float64bits(x)), true
		case float32:
			return binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(x))), true
		}
		return nil, false
	case kindString:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		return append(appendLong(buf, int64(len(s))), s...), true
	case kindBytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, false
		}
		return append(appendLong(buf, int64(len(b))), b...), true
	case kindFixed:
		b, ok := v.([]byte)
		if !ok || len(b) != t.size {
			return nil, false
		}
		return append(buf, b...), true
	case kindEnum:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		for i, sym := range t.symbolNames {
			if sym == s {
				return appendLong(buf, int64(i)), true
			}
		}
		return nil, false
	}

	if depth >= maxDataDepth {
		return nil, false
	}
	switch t.kind {
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		for _, f := range t.fields {
			fv, present := m[f.name]
			if !present {
				return nil, false // goavro may fill in the field's default
			}
			if buf, ok = encodeNative(f.typ, buf, fv, depth+1); !ok {
				return nil, false
			}
		}
		return buf, true
	case kindUnion:
		if v == nil {
			for i, b := range t.branches {
				if b.kind == kindNull {
					return appendLong(buf, int64(i)), true
				}
			}
			return nil, false
		}
		w, ok := v.(map[string]any)
		if !ok || len(w) != 1 {
			return nil, false
		}
		for key, inner := range w {
			for i, b := range t.branches {
				if b.unionKey() == key {
					return encodeNative(b, appendLong(buf, int64(i)), inner, depth+1)
				}
			}
		}
		return nil, false
	case kindArray:
		switch x := v.(type) {
		case []any:
			if len(x) > 0 {
				buf = appendLong(buf, int64(len(x)))
				var ok bool
				for _, item := range x {
					if buf, ok = encodeNative(t.items, buf, item, depth+1); !ok {
						return nil, false
					}
				}
			}
			return append(buf, 0), true
		case []float32:
			if t.items.kind != kindFloat {
				return nil, false
			}
			return appendFixedWidth(buf, x), true
		case []float64:
			if t.items.kind != kindDouble {
				return nil, false
			}
			return appendFixedWidth(buf, x), true
		case []int32:
			if t.items.kind != kindInt && t.items.kind != kindLong {
				return nil, false
			}
			return appendVarints(buf, x), true
		case []int64:
			if t.items.kind != kindLong {
				return nil, false
			}
			return appendVarints(buf, x), true
		}
		return nil, false
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if len(m) > 0 {
			buf = appendLong(buf, int64(len(m)))
			for k, item := range m {
				buf = append(appendLong(buf, int64(len(k))), k...)
				if buf, ok = encodeNative(t.items, buf, item, depth+1); !ok {
					return nil, false
				}
			}
		}
		return append(buf, 0), true
	}
	return nil, false
}

// appendLong appends v as a zig-zag varint.
func appendLong(buf []byte, v int64) []byte {
	return binary.AppendUvarint(buf, uint64(v<<1)^uint64(v>>63))
}

// appendFixedWidth appends an array of float or double as one block.
func appendFixedWidth[T float32 | float64](buf []byte, x []T) []byte {
	if len(x) > 0 {
		buf = appendLong(buf, int64(len(x)))
		if hostLittleEndian {
			buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*int(unsafe.Sizeof(x[0])))...)
		} else {
			for _, f := range x {
				if unsafe.Sizeof(f) == 4 {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(f)))
				} else {
					buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(f)))
				}
			}
		}
	}
	return append(buf, 0)
}

// appendVarints appends an array of int or long as one block.
func appendVarints[T int32 | int64](buf []byte, x []T) []byte {
	if len(x) > 0 {
		buf = appendLong(buf, int64(len(x)))
		for _, v := range x {
			buf = appendLong(buf, int64(v))
		}
	}
	return append(buf, 0)
}
