package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// ocfRecords makes n distinct Txn records of varying size.
func ocfRecords(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		r := txnRecord()
		r["id"] = fmt.Sprintf("t-%d", i)
		r["count"] = int32(i)
		r["raw"] = bytes.Repeat([]byte{byte(i)}, i%17)
		if i%3 == 0 {
			r["multi"] = map[string]any{"string": strings.Repeat("x", i%50)}
		}
		out[i] = r
	}
	return out
}

// Files written by goavro with each codec split into exactly the records
// goavro wrote, each decoding to the same value.
func TestOCFReaderReadsGoavroFiles(t *testing.T) {
	recs := ocfRecords(5000)
	codec := mustCodec(t, txnSchema)
	for _, name := range OCFCodecs() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Codec: codec, CompressionName: name})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(recs); i += 300 { // several blocks
				batch := make([]any, 0, 300)
				for _, r := range recs[i:min(i+300, len(recs))] {
					batch = append(batch, r)
				}
				if err := w.Append(batch); err != nil {
					t.Fatal(err)
				}
			}
			n, err := CountOCFRecords(bytes.NewReader(buf.Bytes()))
			if err != nil || n != int64(len(recs)) {
				t.Fatalf("CountOCFRecords = %d, %v; want %d", n, err, len(recs))
			}
			r, err := NewOCFReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if r.Codec() != name {
				t.Fatalf("codec %q, want %q", r.Codec(), name)
			}
			dec, err := NewFileDecoder(r.Schema())
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for {
				b, err := r.NextBlock()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				raws, err := b.Records()
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(raws)) != b.Count {
					t.Fatalf("block %d: %d records, header says %d", b.Index, len(raws), b.Count)
				}
				for _, raw := range raws {
					got, err := dec.Decode(t.Context(), raw)
					if err != nil {
						t.Fatalf("record %d: %v", i, err)
					}
					if got.Native["id"] != recs[i]["id"] || !bytes.Equal(got.Native["raw"].([]byte), recs[i]["raw"].([]byte)) {
						t.Fatalf("record %d: got %v, want %v", i, got.Native["id"], recs[i]["id"])
					}
					i++
				}
			}
			if i != len(recs) {
				t.Fatalf("read %d records, want %d", i, len(recs))
			}
		})
	}
}

// Files OCFWriter writes with each codec are read back by goavro, record
// for record.
func TestOCFWriterReadByGoavro(t *testing.T) {
	recs := ocfRecords(3000)
	codec := mustCodec(t, txnSchema)
	for _, name := range OCFCodecs() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewOCFWriter(&buf, txnSchema, name, map[string][]byte{"kinfer.test": []byte("yes")})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				b, err := codec.BinaryFromNative(nil, r)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Append(b); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Records() != int64(len(recs)) || w.Size() != int64(buf.Len()) {
				t.Fatalf("Records %d Size %d, wrote %d bytes", w.Records(), w.Size(), buf.Len())
			}
			rd, err := goavro.NewOCFReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(rd.MetaData()["kinfer.test"]); got != "yes" {
				t.Fatalf("metadata kinfer.test = %q", got)
			}
			i := 0
			for rd.Scan() {
				v, err := rd.Read()
				if err != nil {
					t.Fatal(err)
				}
				want := recs[i]
				if !reflect.DeepEqual(v.(map[string]any)["payment"], want["payment"]) || v.(map[string]any)["id"] != want["id"] {
					t.Fatalf("record %d: got %v, want %v", i, v, want)
				}
				i++
			}
			if err := rd.Err(); err != nil {
				t.Fatal(err)
			}
			if i != len(recs) {
				t.Fatalf("goavro read %d records, want %d", i, len(recs))
			}
		})
	}
}

// A damaged file is an error that says so, never a panic.
func TestOCFReaderDamaged(t *testing.T) {
	codec := mustCodec(t, txnSchema)
	var buf bytes.Buffer
	w, err := NewOCFWriter(&buf, txnSchema, OCFSnappy, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ocfRecords(50) {
		b, _ := codec.BinaryFromNative(nil, r)
		w.Append(b)
	}
	w.Flush()
	good := buf.Bytes()
	readAll := func(b []byte) error {
		r, err := NewOCFReader(bytes.NewReader(b))
		if err != nil {
			return err
		}
		for {
			blk, err := r.NextBlock()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := blk.Records(); err != nil {
				return err
			}
		}
	}
	if err := readAll(good); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"magic":     {flip(0), "bad magic"},
		"truncated": {good[:len(good)-5], "unexpected EOF"},
		"sync":      {flip(len(good) - 1), "sync marker"},
		"crc":       {flip(len(good) - 17), "CRC"},
		"empty":     {nil, "unexpected EOF"},
	}
	for name, c := range cases {
		err := readAll(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
	// A record that does not fit its schema cannot be split.
	var bad bytes.Buffer
	w, _ = NewOCFWriter(&bad, txnSchema, OCFNull, nil)
	w.Append([]byte{0x02, 'x', 0xff})
	w.Flush()
	if err := readAll(bad.Bytes()); err == nil || !strings.Contains(err.Error(), "record 0 of 1") {
		t.Errorf("bad record: %v", err)
	}
	if _, err := NewOCFWriter(io.Discard, txnSchema, "bzip2", nil); err == nil {
		t.Error("NewOCFWriter accepted codec bzip2")
	}
	var unsupported bytes.Buffer
	if _, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &unsupported, Codec: codec, CompressionName: "null"}); err != nil {
		t.Fatal(err)
	}
	b := bytes.Replace(unsupported.Bytes(), []byte("null"), []byte("zstd"), 1)
	if _, err := NewOCFReader(bytes.NewReader(b)); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), `"zstd"`) {
		t.Errorf("zstd codec: %v", err)
	}
}

// FuzzOCFReader feeds damaged container files to the reader: it must
// return errors, not panic or allocate without bound.
func FuzzOCFReader(f *testing.F) {
	codec, err := goavro.NewCodec(txnSchema)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range OCFCodecs() {
		var buf bytes.Buffer
		w, _ := NewOCFWriter(&buf, txnSchema, name, nil)
		for _, r := range ocfRecords(5) {
			b, _ := codec.BinaryFromNative(nil, r)
			w.Append(b)
		}
		w.Flush()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewOCFReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for range 100 {
			b, err := r.NextBlock()
			if err != nil {
				return
			}
			if _, err := b.Records(); err != nil {
				return
			}
		}
	})
}
