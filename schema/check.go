package schema

import (
	"errors"
	"fmt"
	"math"
)

// goavro trusts the block counts it reads: an array header claiming two
// billion items makes it preallocate tens of gigabytes before noticing the
// input is six bytes long, and deeply recursive data can exhaust the stack.
// Values come from Kafka and are untrusted, so every value is first walked
// against the writer schema without allocating: block counts are bounded by
// the bytes left, nesting is bounded, and the value must be consumed
// exactly. Only then does goavro build the native form.

const (
	// maxDataDepth bounds nesting of records, arrays, maps and unions in a
	// value; recursive schemas are otherwise limited only by input size.
	maxDataDepth = 512
	// maxZeroWidthItems bounds arrays and maps whose items take no bytes
	// (arrays of null or of empty records), which no size check can bound.
	maxZeroWidthItems = 1 << 16
)

var errShort = errors.New("unexpected end of data")

// checkBinary verifies that b holds exactly one value of type t.
func checkBinary(t *avroType, b []byte) error {
	rest, err := skip(t, b, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes after the record", len(rest))
	}
	return nil
}

func readVarint(b []byte, maxBytes int) (int64, []byte, error) {
	var u uint64
	for i := 0; i < len(b) && i < maxBytes; i++ {
		c := b[i]
		u |= uint64(c&0x7f) << (7 * uint(i))
		if c&0x80 == 0 {
			return int64(u>>1) ^ -int64(u&1), b[i+1:], nil
		}
	}
	if len(b) < maxBytes {
		return 0, nil, errShort
	}
	return 0, nil, fmt.Errorf("varint longer than %d bytes", maxBytes)
}

func readLong(b []byte) (int64, []byte, error) { return readVarint(b, 10) }

func skip(t *avroType, b []byte, depth int) ([]byte, error) {
	switch t.kind {
	case kindNull:
		return b, nil
	case kindBoolean:
		if len(b) < 1 {
			return nil, errShort
		}
		if b[0] > 1 {
			return nil, fmt.Errorf("boolean byte is %d, want 0 or 1", b[0])
		}
		return b[1:], nil
	case kindInt:
		_, rest, err := readVarint(b, 5)
		return rest, err
	case kindLong:
		_, rest, err := readLong(b)
		return rest, err
	case kindFloat, kindDouble, kindFixed:
		n := t.minSize
		if len(b) < n {
			return nil, errShort
		}
		return b[n:], nil
	case kindBytes, kindString:
		n, rest, err := readLong(b)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, fmt.Errorf("negative %s length %d", t.kind, n)
		}
		if n > int64(len(rest)) {
			return nil, errShort
		}
		return rest[n:], nil
	case kindEnum:
		i, rest, err := readLong(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(t.symbolNames)) {
			return nil, fmt.Errorf("enum %s index %d out of range [0,%d)", t.name, i, len(t.symbolNames))
		}
		return rest, nil
	}

	if depth >= maxDataDepth {
		return nil, fmt.Errorf("value nested deeper than %d levels", maxDataDepth)
	}
	switch t.kind {
	case kindRecord:
		var err error
		for _, f := range t.fields {
			if b, err = skip(f.typ, b, depth+1); err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
		}
		return b, nil
	case kindUnion:
		i, rest, err := readLong(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(t.branches)) {
			return nil, fmt.Errorf("union index %d out of range [0,%d)", i, len(t.branches))
		}
		return skip(t.branches[i], rest, depth+1)
	case kindArray, kindMap:
		return skipBlocks(t, b, depth)
	}
	return nil, fmt.Errorf("unsupported Avro type %s", t.kind)
}

func skipBlocks(t *avroType, b []byte, depth int) ([]byte, error) {
	return eachBlock(t, b, func(count int64, b []byte) ([]byte, error) {
		// Fixed-width items need no walk: eachBlock's size check is exact.
		if t.kind == kindArray && (t.items.kind == kindFloat || t.items.kind == kindDouble || t.items.kind == kindFixed || t.items.kind == kindNull) {
			return b[count*int64(t.items.minSize):], nil
		}
		var err error
		for i := int64(0); i < count; i++ {
			if t.kind == kindMap {
				if b, err = skip(&stringType, b, depth+1); err != nil {
					return nil, fmt.Errorf("map key: %w", err)
				}
			}
			if b, err = skip(t.items, b, depth+1); err != nil {
				return nil, fmt.Errorf("%s item %d: %w", t.kind, i, err)
			}
		}
		return b, nil
	})
}

// eachBlock reads the blocks of an array or map and calls item with each
// block's count and the bytes that follow its header; item returns the
// bytes after the block. Block counts are bounded before item runs: by the
// bytes left when items take at least one byte each, by maxZeroWidthItems
// in all when they take none. Both skip and decodeNative walk blocks
// through it, so they accept and refuse the same values.
func eachBlock(t *avroType, b []byte, item func(count int64, b []byte) ([]byte, error)) ([]byte, error) {
	itemMin := t.items.minSize
	if t.kind == kindMap {
		itemMin++ // every key is a string of at least one byte
	}
	var total int64
	for {
		count, rest, err := readLong(b)
		if err != nil {
			return nil, fmt.Errorf("%s block count: %w", t.kind, err)
		}
		b = rest
		if count == 0 {
			return b, nil
		}
		if count < 0 {
			if count == math.MinInt64 {
				return nil, fmt.Errorf("%s block count %d", t.kind, count)
			}
			count = -count
			size, rest, err := readLong(b)
			if err != nil {
				return nil, fmt.Errorf("%s block size: %w", t.kind, err)
			}
			if size < 0 || size > int64(len(rest)) {
				return nil, fmt.Errorf("%s block size %d with %d bytes left", t.kind, size, len(rest))
			}
			b = rest
		}
		if itemMin > 0 {
			if count > int64(len(b)/itemMin) {
				return nil, fmt.Errorf("%s block of %d items cannot fit in %d bytes", t.kind, count, len(b))
			}
		} else if total += count; total > maxZeroWidthItems {
			return nil, fmt.Errorf("%s of more than %d zero-width items", t.kind, maxZeroWidthItems)
		}
		if b, err = item(count, b); err != nil {
			return nil, err
		}
	}
}

var stringType = avroType{kind: kindString, minSize: 1}
