package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Decoder turns a Kafka record value into goavro's native form.
//
// Every error caused by the value itself is an [*Error] (reasons
// [ReasonBadMagic], [ReasonUnknownSchema], [ReasonDecode]); other errors
// (a cancelled context) say nothing about the record.
type Decoder interface {
	Decode(ctx context.Context, value []byte) (Record, error)
}

// Record is one decoded value.
type Record struct {
	// Native is the record in goavro's native form: fields keyed by name;
	// int as int32, long as int64, float as float32, double as float64,
	// arrays as []any, maps and nested records as map[string]any, non-null
	// union values as map[string]any{"typeName": value}. bytes and fixed
	// values alias the decoded buffer, which must not be modified while
	// the record is in use. One difference from goavro: unless the schema
	// has a logical type that goavro converts (date, time-*, timestamp-*,
	// decimal), arrays of float, double, int and long are []float32,
	// []float64, []int32 and []int64 (goavro's encoder accepts those too).
	Native map[string]any
	// SchemaID is the registry id of the writer schema, or 0 for values
	// decoded with a fixed schema.
	SchemaID int
}

// compiled is a writer schema ready for decoding.
type compiled struct {
	root  *avroType
	codec *goavro.Codec
	// native: decodeNative produces the native form (see nativeSafe);
	// otherwise goavro decodes.
	native bool
}

func compileRecordSchema(schemaJSON string) (*compiled, error) {
	root, err := parseSchema(schemaJSON)
	if err != nil {
		return nil, err
	}
	if root.kind != kindRecord {
		return nil, fmt.Errorf("top-level Avro type is %s, want a record", root.describe())
	}
	codec, err := compileCodec(schemaJSON)
	if err != nil {
		return nil, err
	}
	return &compiled{root: root, codec: codec, native: nativeSafe(root)}, nil
}

func (c *compiled) decode(value []byte) (native map[string]any, err error) {
	if c.native {
		// decodeNative bounds what it reads as checkBinary does (the
		// same eachBlock), so one walk is enough.
		v, rest, err := decodeNative(c.root, value, 0)
		if err == nil && len(rest) != 0 {
			err = fmt.Errorf("%d trailing bytes after the record", len(rest))
		}
		if err != nil {
			return nil, errorf(ReasonDecode, "decoding Avro %s: %w", c.root.name, err)
		}
		return v.(map[string]any), nil
	}
	if err := checkBinary(c.root, value); err != nil {
		return nil, errorf(ReasonDecode, "decoding Avro %s: %w", c.root.name, err)
	}
	defer func() {
		if r := recover(); r != nil {
			native, err = nil, errorf(ReasonDecode, "decoding Avro %s: goavro panicked: %v", c.root.name, r)
		}
	}()
	v, rest, err := c.codec.NativeFromBinary(value)
	if err != nil {
		return nil, errorf(ReasonDecode, "decoding Avro %s: %w", c.root.name, err)
	}
	if len(rest) != 0 {
		return nil, errorf(ReasonDecode, "decoding Avro %s: %d trailing bytes after the record", c.root.name, len(rest))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(ReasonDecode, "decoding Avro %s: goavro returned %T, want a record", c.root.name, v)
	}
	return m, nil
}

// FileDecoder decodes plain Avro binary (no header) written with one fixed
// schema, such as a schema file named in the pipeline config. It is safe
// for concurrent use.
type FileDecoder struct {
	c *compiled
}

// NewFileDecoder compiles the writer schema, which must be an Avro record.
func NewFileDecoder(schemaJSON string) (*FileDecoder, error) {
	c, err := compileRecordSchema(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("creating file decoder: %w", err)
	}
	return &FileDecoder{c: c}, nil
}

// Decode decodes one value. Trailing bytes after the record are an error.
func (d *FileDecoder) Decode(_ context.Context, value []byte) (Record, error) {
	native, err := d.c.decode(value)
	if err != nil {
		return Record{}, err
	}
	return Record{Native: native}, nil
}

// WireHeaderSize is the length of the Confluent wire format header: the
// magic byte 0 and a 4-byte big-endian schema id.
const WireHeaderSize = 5

// ErrRegistryUnavailable is wrapped (inside an [*Error] with reason
// [ReasonUnknownSchema]) when a schema could not be fetched because the
// registry failed or could not be reached, rather than because the id is
// unknown. Engines may prefer to retry such records over dead-lettering
// them.
var ErrRegistryUnavailable = errors.New("schema registry unavailable")

// Defaults for [RegistryDecoder] options.
const (
	DefaultNegativeCacheTTL = 30 * time.Second
	DefaultRetryAfter       = time.Second
	DefaultFetchTimeout     = 10 * time.Second
)

// maxFailedEntries bounds how many failed ids are remembered, since ids
// come from untrusted input.
const maxFailedEntries = 4096

// RegistryDecoderOption configures a [RegistryDecoder].
type RegistryDecoderOption func(*RegistryDecoder)

// NegativeCacheTTL sets how long a schema id that the registry does not
// know (or that is not a usable Avro record schema) is answered from cache
// before it is looked up again. Default [DefaultNegativeCacheTTL].
func NegativeCacheTTL(d time.Duration) RegistryDecoderOption {
	return func(r *RegistryDecoder) { r.negativeTTL = d }
}

// RetryAfter sets how long a lookup that failed because the registry was
// unavailable is answered from cache before it is tried again. Default
// [DefaultRetryAfter].
func RetryAfter(d time.Duration) RegistryDecoderOption {
	return func(r *RegistryDecoder) { r.retryAfter = d }
}

// FetchTimeout bounds one schema lookup. The lookup does not stop when the
// context of the Decode call that started it is cancelled, because other
// records may be waiting for the same id. Default [DefaultFetchTimeout].
func FetchTimeout(d time.Duration) RegistryDecoderOption {
	return func(r *RegistryDecoder) { r.fetchTimeout = d }
}

// RegistryDecoder decodes the Confluent wire format, fetching writer
// schemas by id from a Schema Registry. Compiled schemas are cached per id
// for the decoder's lifetime (ids are immutable); concurrent first uses of
// an id share one lookup; failed lookups are cached briefly. It is safe for
// concurrent use.
type RegistryDecoder struct {
	client       *sr.Client
	negativeTTL  time.Duration
	retryAfter   time.Duration
	fetchTimeout time.Duration
	now          func() time.Time

	entries sync.Map // int -> *schemaEntry
	failed  atomic.Int64
}

type schemaEntry struct {
	ready   chan struct{} // closed once c or err is set
	c       *compiled
	err     error
	expires time.Time // when a failure stops being served from cache
}

// NewRegistryDecoder returns a decoder that looks schemas up through client.
func NewRegistryDecoder(client *sr.Client, opts ...RegistryDecoderOption) *RegistryDecoder {
	d := &RegistryDecoder{
		client:       client,
		negativeTTL:  DefaultNegativeCacheTTL,
		retryAfter:   DefaultRetryAfter,
		fetchTimeout: DefaultFetchTimeout,
		now:          time.Now,
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Decode decodes one wire-format value: magic byte 0, 4-byte big-endian
// schema id, Avro binary. Trailing bytes after the record are an error.
func (d *RegistryDecoder) Decode(ctx context.Context, value []byte) (Record, error) {
	if len(value) < WireHeaderSize {
		return Record{}, errorf(ReasonBadMagic, "value of %d bytes is shorter than the %d-byte wire format header", len(value), WireHeaderSize)
	}
	if value[0] != 0 {
		return Record{}, errorf(ReasonBadMagic, "wire format magic byte is 0x%02x, want 0x00", value[0])
	}
	id := int(int32(binary.BigEndian.Uint32(value[1:WireHeaderSize])))
	c, err := d.schema(ctx, id)
	if err != nil {
		return Record{}, err
	}
	native, err := c.decode(value[WireHeaderSize:])
	if err != nil {
		return Record{}, &Error{Reason: ReasonOf(err), Err: fmt.Errorf("schema id %d: %w", id, err)}
	}
	return Record{Native: native, SchemaID: id}, nil
}

// schema returns the compiled schema for id, fetching it at most once per
// id at a time.
func (d *RegistryDecoder) schema(ctx context.Context, id int) (*compiled, error) {
	if id < 0 {
		return nil, errorf(ReasonUnknownSchema, "schema id %d is negative", id)
	}
	for {
		if v, ok := d.entries.Load(id); ok {
			e := v.(*schemaEntry)
			select {
			case <-e.ready:
			default:
				select {
				case <-e.ready:
				case <-ctx.Done():
					return nil, fmt.Errorf("waiting for schema id %d: %w", id, ctx.Err())
				}
			}
			if e.c != nil {
				return e.c, nil
			}
			if d.now().Before(e.expires) {
				return nil, e.err
			}
			if d.entries.CompareAndDelete(id, e) {
				d.failed.Add(-1)
			}
			continue
		}
		e := &schemaEntry{ready: make(chan struct{})}
		if _, loaded := d.entries.LoadOrStore(id, e); loaded {
			continue
		}
		go d.fetch(context.WithoutCancel(ctx), id, e)
	}
}

// fetch looks id up and completes e. It runs on its own goroutine so that
// a caller whose context is cancelled can stop waiting without failing
// the lookup for the others.
func (d *RegistryDecoder) fetch(ctx context.Context, id int, e *schemaEntry) {
	defer close(e.ready)
	ctx, cancel := context.WithTimeout(ctx, d.fetchTimeout)
	defer cancel()
	c, transient, err := d.lookup(ctx, id)
	if err == nil {
		e.c = c
		return
	}
	e.err = err
	ttl := d.negativeTTL
	if transient {
		ttl = d.retryAfter
	}
	e.expires = d.now().Add(ttl)
	if d.failed.Add(1) > maxFailedEntries {
		d.forgetFailures(e)
	}
}

func (d *RegistryDecoder) lookup(ctx context.Context, id int) (c *compiled, transient bool, err error) {
	s, err := d.client.SchemaByID(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, false, errorf(ReasonUnknownSchema, "schema id %d is not registered: %w", id, err)
		}
		return nil, true, &Error{Reason: ReasonUnknownSchema, Err: fmt.Errorf("fetching schema id %d: %w: %w", id, ErrRegistryUnavailable, err)}
	}
	if s.Type != sr.TypeAvro {
		return nil, false, errorf(ReasonUnknownSchema, "schema id %d has type %s, only AVRO is supported", id, s.Type)
	}
	if len(s.References) > 0 {
		return nil, false, errorf(ReasonUnknownSchema, "schema id %d uses schema references, which are not supported", id)
	}
	c, err = compileRecordSchema(s.Schema)
	if err != nil {
		return nil, false, errorf(ReasonUnknownSchema, "schema id %d: %w", id, err)
	}
	return c, false, nil
}

// forgetFailures drops remembered failures other than keep, so that a
// stream of random ids cannot grow the cache without bound.
func (d *RegistryDecoder) forgetFailures(keep *schemaEntry) {
	d.entries.Range(func(k, v any) bool {
		e := v.(*schemaEntry)
		if e == keep {
			return true
		}
		select {
		case <-e.ready:
			if e.c == nil && d.entries.CompareAndDelete(k, e) {
				d.failed.Add(-1)
			}
		default:
		}
		return true
	})
}

// appendWireHeader appends the wire format header for id to b.
func appendWireHeader(b []byte, id int) ([]byte, error) {
	if id < 0 || id > math.MaxInt32 {
		return nil, fmt.Errorf("schema id %d out of range [0,%d]", id, math.MaxInt32)
	}
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, uint32(id)), nil
}
