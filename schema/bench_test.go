package schema

import (
	"encoding/binary"
	"testing"

	"github.com/kinfer/kinfer/tensor"
)

// A 28x28 image as 784 floats, once as an Avro array and once as raw bytes.
const (
	img784ArraySchema = `{"type":"record","name":"Img","fields":[{"name":"pixels","type":{"type":"array","items":"float"}}]}`
	img784RawSchema   = `{"type":"record","name":"ImgRaw","fields":[{"name":"pixels","type":"bytes"}]}`
)

func img784(tb testing.TB) (arrayValue, rawValue []byte) {
	items := make([]any, 784)
	raw := make([]byte, 0, 784*4)
	for i := range items {
		f := float32(i) / 784
		items[i] = f
		raw, _ = binary.Append(raw, binary.LittleEndian, f)
	}
	return mustBinary(tb, img784ArraySchema, map[string]any{"pixels": items}),
		mustBinary(tb, img784RawSchema, map[string]any{"pixels": raw})
}

func BenchmarkDecode784(b *testing.B) {
	arrayValue, rawValue := img784(b)
	for _, bc := range []struct {
		name, schema string
		value        []byte
	}{
		{"array", img784ArraySchema, arrayValue},
		{"raw", img784RawSchema, rawValue},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d, err := NewFileDecoder(bc.schema)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(bg, bc.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The same array through goavro, kinfer's decoder before decodeNative.
	b.Run("array-goavro", func(b *testing.B) {
		d, err := NewFileDecoder(img784ArraySchema)
		if err != nil {
			b.Fatal(err)
		}
		d.c.native = false
		b.SetBytes(int64(len(arrayValue)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Decode(bg, arrayValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("array-wire-cached", func(b *testing.B) {
		reg, cl := newTestRegistry(b)
		id, _ := reg.Register("img", img784ArraySchema)
		d := NewRegistryDecoder(cl)
		value := wire(id, arrayValue)
		if _, err := d.Decode(bg, value); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Decode(bg, value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMap784(b *testing.B) {
	arrayValue, rawValue := img784(b)
	for _, bc := range []struct {
		name, schema, encoding string
		value                  []byte
	}{
		{"array", img784ArraySchema, EncodingValue, arrayValue},
		{"array-goavro", img784ArraySchema, EncodingValue, arrayValue},
		{"raw", img784RawSchema, EncodingRaw, rawValue},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d, _ := NewFileDecoder(bc.schema)
			d.c.native = bc.name != "array-goavro" // []any elements, as goavro decodes
			rec, err := d.Decode(bg, bc.value)
			if err != nil {
				b.Fatal(err)
			}
			m, err := NewMapper(bc.schema, []InputMapping{{Tensor: "x", Fields: []string{"pixels"}, Encoding: bc.encoding, DType: tensor.Float32, Shape: []int64{28, 28}}})
			if bc.encoding == EncodingValue {
				m, err = NewMapper(bc.schema, []InputMapping{{Tensor: "x", Fields: []string{"pixels"}, DType: tensor.Float32, Shape: []int64{784}}})
			}
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Map(rec.Native); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
