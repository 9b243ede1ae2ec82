package schema

import (
	"fmt"
	"sync/atomic"

	"github.com/linkedin/goavro/v2"
)

// Encoder writes native records as Avro binary with one schema. It is safe
// for concurrent use.
type Encoder struct {
	codec *goavro.Codec
	name  string
	// root is the schema tree; native: encodeNative may encode (see
	// nativeSafe), falling back to goavro for values it does not take.
	root   *avroType
	native bool
	// schemaJSON is the schema as given (NewRowEncoder pairs an encoder
	// with a builder of the same schema).
	schemaJSON string
	// sizeHint is the size of a recent encoding, used to allocate the next
	// buffer once instead of growing it.
	sizeHint atomic.Int64
}

// NewEncoder compiles schemaJSON, which must be an Avro record schema.
func NewEncoder(schemaJSON string) (*Encoder, error) {
	root, err := parseSchema(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("creating encoder: %w", err)
	}
	if root.kind != kindRecord {
		return nil, fmt.Errorf("creating encoder: top-level Avro type is %s, want a record", root.describe())
	}
	codec, err := compileCodec(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("creating encoder: %w", err)
	}
	return &Encoder{codec: codec, name: root.name, root: root, native: nativeSafe(root), schemaJSON: schemaJSON}, nil
}

// Encode returns native as plain Avro binary. A failure is an [*Error] with
// reason [ReasonEncode].
func (e *Encoder) Encode(native map[string]any) ([]byte, error) {
	return e.appendNative(make([]byte, 0, e.sizeHint.Load()), native)
}

// EncodeWire returns native in the Confluent wire format: magic byte 0,
// schemaID as 4 bytes big-endian, then the Avro binary. A failure is an
// [*Error] with reason [ReasonEncode].
func (e *Encoder) EncodeWire(schemaID int, native map[string]any) ([]byte, error) {
	buf, err := appendWireHeader(make([]byte, 0, WireHeaderSize+e.sizeHint.Load()), schemaID)
	if err != nil {
		return nil, errorf(ReasonEncode, "encoding %s: %w", e.name, err)
	}
	return e.appendNative(buf, native)
}

func (e *Encoder) appendNative(buf []byte, native map[string]any) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, errorf(ReasonEncode, "encoding %s: goavro panicked: %v", e.name, r)
		}
	}()
	start := len(buf)
	if e.native {
		if out, ok := encodeNative(e.root, buf, native, 0); ok {
			e.sizeHint.Store(int64(len(out) - start))
			return out, nil
		}
		buf = buf[:start]
	}
	out, err = e.codec.BinaryFromNative(buf, native)
	if err != nil {
		return nil, errorf(ReasonEncode, "encoding %s: %w", e.name, err)
	}
	e.sizeHint.Store(int64(len(out) - start))
	return out, nil
}
