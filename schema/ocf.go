package schema

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"

	"github.com/golang/snappy"
)

// Avro object container file (OCF) compression codecs that OCFReader and
// OCFWriter support: the ones goavro reads and writes.
const (
	OCFNull    = "null"
	OCFDeflate = "deflate"
	OCFSnappy  = "snappy"
)

// OCF metadata keys defined by the Avro specification.
const (
	ocfSchemaKey = "avro.schema"
	ocfCodecKey  = "avro.codec"
)

const (
	ocfSyncSize = 16
	// maxOCFBlockBytes bounds one block, compressed and decompressed: the
	// sizes come from the file, which is untrusted.
	maxOCFBlockBytes = 1 << 30
	// maxOCFMetaBytes bounds the header's metadata.
	maxOCFMetaBytes = 16 << 20
	// maxOCFMetaEntries bounds the number of metadata entries, which may
	// be empty and so are not bounded by maxOCFMetaBytes.
	maxOCFMetaEntries = 1 << 16
	// DefaultOCFBlockBytes is the uncompressed size at which OCFWriter
	// closes a block.
	DefaultOCFBlockBytes = 64 << 10
)

var ocfMagic = [4]byte{'O', 'b', 'j', 1}

// OCFCodecs lists the supported codec names.
func OCFCodecs() []string { return []string{OCFNull, OCFDeflate, OCFSnappy} }

func knownOCFCodec(c string) bool { return slices.Contains(OCFCodecs(), c) }

// OCFReader reads an Avro object container file block by block and splits
// each block into its records' Avro binary, in the file's writer schema,
// without decoding them (goavro's reader only returns decoded values).
// Block headers, sizes and every record's extent are checked against the
// writer schema, so a damaged file is an error, never a panic or a huge
// allocation.
type OCFReader struct {
	r      *bufio.Reader
	schema string
	root   *avroType
	codec  string
	meta   map[string][]byte
	sync   [ocfSyncSize]byte
	blocks int64
}

// NewOCFReader reads the header of an object container file.
func NewOCFReader(r io.Reader) (*OCFReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return nil, fmt.Errorf("reading the Avro container header: %w", noEOF(err))
	}
	if magic != ocfMagic {
		return nil, errors.New("not an Avro object container file (bad magic bytes)")
	}
	meta, err := readOCFMeta(br)
	if err != nil {
		return nil, fmt.Errorf("reading the Avro container metadata: %w", err)
	}
	sch, ok := meta[ocfSchemaKey]
	if !ok {
		return nil, errors.New("the Avro container header has no avro.schema")
	}
	codec := OCFNull
	if c, ok := meta[ocfCodecKey]; ok {
		codec = string(c)
	}
	if !knownOCFCodec(codec) {
		return nil, fmt.Errorf("the Avro container uses codec %q; supported: %q", codec, OCFCodecs())
	}
	root, err := parseSchema(string(sch))
	if err != nil {
		return nil, fmt.Errorf("the Avro container's schema: %w", err)
	}
	o := &OCFReader{r: br, schema: string(sch), root: root, codec: codec, meta: meta}
	if _, err := io.ReadFull(br, o.sync[:]); err != nil {
		return nil, fmt.Errorf("reading the Avro container sync marker: %w", noEOF(err))
	}
	return o, nil
}

// Schema returns the writer schema (JSON) from the file header.
func (o *OCFReader) Schema() string { return o.schema }

// Codec returns the file's compression codec.
func (o *OCFReader) Codec() string { return o.codec }

// Metadata returns a header metadata value.
func (o *OCFReader) Metadata(key string) ([]byte, bool) {
	v, ok := o.meta[key]
	return v, ok
}

// OCFBlock is one data block, still compressed: Count records are known
// without decompressing, so a reader can skip whole blocks cheaply.
type OCFBlock struct {
	// Count is the number of records in the block.
	Count int64
	// Index is the block's position in the file, from 0.
	Index int64
	data  []byte
	o     *OCFReader
}

// NextBlock reads the next block. It returns io.EOF after the last one.
func (o *OCFReader) NextBlock() (*OCFBlock, error) { return o.next(true) }

func (o *OCFReader) next(keep bool) (*OCFBlock, error) {
	count, err := binary.ReadVarint(o.r)
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, o.blockErr("count", err)
	}
	size, err := binary.ReadVarint(o.r)
	if err != nil {
		return nil, o.blockErr("size", err)
	}
	if count < 0 || size < 0 || size > maxOCFBlockBytes {
		return nil, fmt.Errorf("Avro container block %d: invalid count %d or size %d", o.blocks, count, size)
	}
	var data []byte
	if keep {
		// size is bounded above, so one allocation of it (not ReadAll's
		// doubling from 512 bytes, which copies a 10 MB block ~15 times).
		data = make([]byte, size)
		_, err = io.ReadFull(o.r, data)
	} else {
		_, err = o.r.Discard(int(size))
	}
	if err != nil {
		return nil, o.blockErr("data", err)
	}
	var sync [ocfSyncSize]byte
	if _, err := io.ReadFull(o.r, sync[:]); err != nil {
		return nil, o.blockErr("sync marker", err)
	}
	if sync != o.sync {
		return nil, fmt.Errorf("Avro container block %d: sync marker does not match the header's (damaged file)", o.blocks)
	}
	b := &OCFBlock{Count: count, Index: o.blocks, data: data, o: o}
	o.blocks++
	return b, nil
}

func (o *OCFReader) blockErr(what string, err error) error {
	return fmt.Errorf("Avro container block %d: reading its %s: %w", o.blocks, what, noEOF(err))
}

// Records decompresses the block and returns each record's Avro binary.
// The slices share one buffer owned by the caller.
func (b *OCFBlock) Records() ([][]byte, error) {
	raw, err := b.o.decompress(b.data)
	if err != nil {
		return nil, fmt.Errorf("Avro container block %d: %w", b.Index, err)
	}
	// Every record takes at least one byte unless the schema allows
	// empty values; either way the count cannot exceed what the bytes
	// can hold by much.
	if b.Count > int64(len(raw))+maxZeroWidthItems {
		return nil, fmt.Errorf("Avro container block %d: %d records cannot fit in %d bytes", b.Index, b.Count, len(raw))
	}
	recs := make([][]byte, 0, b.Count)
	rest := raw
	for i := range b.Count {
		next, err := skip(b.o.root, rest, 0)
		if err != nil {
			return nil, fmt.Errorf("Avro container block %d: record %d of %d: %w", b.Index, i, b.Count, err)
		}
		n := len(rest) - len(next)
		recs = append(recs, rest[:n:n])
		rest = next
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("Avro container block %d: %d bytes left after its %d records", b.Index, len(rest), b.Count)
	}
	return recs, nil
}

func (o *OCFReader) decompress(data []byte) ([]byte, error) {
	switch o.codec {
	case OCFDeflate:
		r := flate.NewReader(bytes.NewReader(data))
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, maxOCFBlockBytes+1))
		if err != nil {
			return nil, fmt.Errorf("inflating: %w", err)
		}
		if len(out) > maxOCFBlockBytes {
			return nil, fmt.Errorf("inflates past %d bytes", maxOCFBlockBytes)
		}
		return out, nil
	case OCFSnappy:
		if len(data) < 4 {
			return nil, errors.New("snappy block shorter than its CRC")
		}
		body := data[:len(data)-4]
		n, err := snappy.DecodedLen(body)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		// Snappy cannot expand more than about 22 times (a 3-byte copy of
		// 64 bytes), so a larger claim is a damaged length, refused before
		// it becomes an allocation.
		if n > maxOCFBlockBytes || n > 32*len(body)+64 {
			return nil, fmt.Errorf("snappy block of %d bytes claims to decode to %d", len(body), n)
		}
		out, err := snappy.Decode(nil, body)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		if crc32.ChecksumIEEE(out) != binary.BigEndian.Uint32(data[len(data)-4:]) {
			return nil, errors.New("snappy block CRC mismatch (damaged file)")
		}
		return out, nil
	default:
		return data, nil
	}
}

// readOCFMeta reads the header's map<bytes>.
func readOCFMeta(r *bufio.Reader) (map[string][]byte, error) {
	meta := map[string][]byte{}
	total, entries := 0, int64(0)
	for {
		count, err := binary.ReadVarint(r)
		if err != nil {
			return nil, noEOF(err)
		}
		if count == 0 {
			return meta, nil
		}
		if count < 0 {
			count = -count
			if _, err := binary.ReadVarint(r); err != nil { // block size in bytes
				return nil, noEOF(err)
			}
		}
		if entries += count; count < 0 || entries > maxOCFMetaEntries {
			return nil, fmt.Errorf("more than %d metadata entries", maxOCFMetaEntries)
		}
		for range count {
			k, err := readOCFBytes(r, &total)
			if err != nil {
				return nil, err
			}
			v, err := readOCFBytes(r, &total)
			if err != nil {
				return nil, err
			}
			meta[string(k)] = v
		}
	}
}

func readOCFBytes(r *bufio.Reader, total *int) ([]byte, error) {
	n, err := binary.ReadVarint(r)
	if err != nil {
		return nil, noEOF(err)
	}
	if n < 0 || int64(*total)+n > maxOCFMetaBytes {
		return nil, fmt.Errorf("metadata entry of %d bytes (at most %d in all)", n, maxOCFMetaBytes)
	}
	*total += int(n)
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, noEOF(err)
	}
	return b, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// OCFWriter writes records that are already Avro binary into an object
// container file, so predictions the engine encoded once are not decoded
// and encoded again. Files it writes are read by goavro and every other
// Avro implementation. It is not safe for concurrent use.
type OCFWriter struct {
	w         io.Writer
	codec     string
	sync      [ocfSyncSize]byte
	block     []byte
	count     int64
	blockSize int
	written   int64
	records   int64
	fw        *flate.Writer
	cbuf      bytes.Buffer
	sbuf      []byte
	hdr       []byte
}

// NewOCFWriter writes the header for schemaJSON with codec (OCFNull,
// OCFDeflate or OCFSnappy) and extra metadata, and returns a writer for
// records of that schema. Blocks close at DefaultOCFBlockBytes.
func NewOCFWriter(w io.Writer, schemaJSON, codec string, meta map[string][]byte) (*OCFWriter, error) {
	if !knownOCFCodec(codec) {
		return nil, fmt.Errorf("Avro container codec %q: supported %q", codec, OCFCodecs())
	}
	if _, err := parseSchema(schemaJSON); err != nil {
		return nil, fmt.Errorf("Avro container schema: %w", err)
	}
	o := &OCFWriter{w: w, codec: codec, blockSize: DefaultOCFBlockBytes}
	if _, err := rand.Read(o.sync[:]); err != nil {
		return nil, err
	}
	all := maps.Clone(meta)
	if all == nil {
		all = map[string][]byte{}
	}
	all[ocfSchemaKey] = []byte(schemaJSON)
	all[ocfCodecKey] = []byte(codec)
	h := append([]byte(nil), ocfMagic[:]...)
	h = binary.AppendVarint(h, int64(len(all)))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		h = binary.AppendVarint(h, int64(len(k)))
		h = append(h, k...)
		h = binary.AppendVarint(h, int64(len(all[k])))
		h = append(h, all[k]...)
	}
	h = binary.AppendVarint(h, 0)
	h = append(h, o.sync[:]...)
	if err := o.write(h); err != nil {
		return nil, err
	}
	if codec == OCFDeflate {
		// BestSpeed: replay output is written at inference speed; the
		// ratio difference to the default level is small for predictions.
		o.fw, _ = flate.NewWriter(&o.cbuf, flate.BestSpeed)
	}
	return o, nil
}

// Append adds one record (Avro binary of the writer's schema). The block
// is written out once it reaches its size.
func (o *OCFWriter) Append(rec []byte) error {
	o.block = append(o.block, rec...)
	o.count++
	o.records++
	if len(o.block) >= o.blockSize {
		return o.Flush()
	}
	return nil
}

// Flush writes the pending block, if any, to the underlying writer.
func (o *OCFWriter) Flush() error {
	if o.count == 0 {
		return nil
	}
	data := o.block
	switch o.codec {
	case OCFDeflate:
		o.cbuf.Reset()
		o.fw.Reset(&o.cbuf)
		if _, err := o.fw.Write(o.block); err != nil {
			return err
		}
		if err := o.fw.Close(); err != nil {
			return err
		}
		data = o.cbuf.Bytes()
	case OCFSnappy:
		data = snappy.Encode(o.sbuf[:cap(o.sbuf)], o.block)
		data = binary.BigEndian.AppendUint32(data, crc32.ChecksumIEEE(o.block))
		o.sbuf = data
	}
	o.hdr = binary.AppendVarint(o.hdr[:0], o.count)
	o.hdr = binary.AppendVarint(o.hdr, int64(len(data)))
	if err := o.write(o.hdr); err != nil {
		return err
	}
	if err := o.write(data); err != nil {
		return err
	}
	if err := o.write(o.sync[:]); err != nil {
		return err
	}
	o.block = o.block[:0]
	o.count = 0
	return nil
}

func (o *OCFWriter) write(b []byte) error {
	n, err := o.w.Write(b)
	o.written += int64(n)
	return err
}

// Size is the bytes written so far plus the pending block's uncompressed
// size: an upper bound of the file's size after Flush for most data.
func (o *OCFWriter) Size() int64 { return o.written + int64(len(o.block)) }

// Records is the number of records appended.
func (o *OCFWriter) Records() int64 { return o.records }

// CountOCFRecords returns the number of records in an object container
// file by reading its block headers only.
func CountOCFRecords(r io.Reader) (int64, error) {
	o, err := NewOCFReader(r)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		b, err := o.next(false)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += b.Count
	}
}
