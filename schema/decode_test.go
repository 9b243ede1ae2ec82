package schema

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/schema/memregistry"
	"github.com/kinfer/kinfer/tensor"
)

func TestFileDecoderRoundTrip(t *testing.T) {
	d, err := NewFileDecoder(txnSchema)
	if err != nil {
		t.Fatal(err)
	}
	in := txnRecord()
	in["opt"] = map[string]any{"float": float32(1.5)}
	in["maybePay"] = map[string]any{"com.acme.Payment": in["payment"]}
	rec, err := d.Decode(bg, mustBinary(t, txnSchema, in))
	if err != nil {
		t.Fatal(err)
	}
	if rec.SchemaID != 0 {
		t.Errorf("SchemaID = %d, want 0 for a file decoder", rec.SchemaID)
	}
	for _, k := range []string{"id", "amount", "count", "big", "ratio", "flag", "opt", "vec", "mat", "cube", "raw", "hash", "payment", "maybePay", "color", "tags"} {
		if !reflect.DeepEqual(rec.Native[k], in[k]) {
			t.Errorf("field %q = %#v, want %#v", k, rec.Native[k], in[k])
		}
	}
	if ts, ok := rec.Native["ts"].(time.Time); !ok || ts.UnixMilli() != in["ts"].(int64) {
		t.Errorf("ts = %#v, want time %d ms", rec.Native["ts"], in["ts"])
	}
}

func TestFileDecoderRejects(t *testing.T) {
	d, err := NewFileDecoder(txnSchema)
	if err != nil {
		t.Fatal(err)
	}
	good := mustBinary(t, txnSchema, txnRecord())
	const arraySchema = `{"type":"record","name":"A","fields":[{"name":"xs","type":{"type":"array","items":"long"}}]}`
	ad, err := NewFileDecoder(arraySchema)
	if err != nil {
		t.Fatal(err)
	}
	const nullsSchema = `{"type":"record","name":"N","fields":[{"name":"xs","type":{"type":"array","items":"null"}}]}`
	nd, err := NewFileDecoder(nullsSchema)
	if err != nil {
		t.Fatal(err)
	}
	const listSchema = `{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}`
	ld, err := NewFileDecoder(listSchema)
	if err != nil {
		t.Fatal(err)
	}
	deepList := make([]byte, 0, 4000)
	for range 2000 {
		deepList = append(deepList, 2, 2) // v=1, union index 1 (L)
	}
	deepList = append(deepList, 2, 0)
	for _, tc := range []struct {
		name  string
		d     *FileDecoder
		value []byte
		want  string // substring of the error
	}{
		{"trailing bytes", d, append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"truncated", d, good[:len(good)-3], "unexpected end"},
		{"empty", d, nil, "unexpected end"},
		// A 6-byte value claiming 2^31-1 longs must fail before goavro
		// preallocates for them.
		{"huge block count", ad, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0}, "cannot fit"},
		{"negative length", d, []byte{1}, "negative string length"},
		{"zero-width flood", nd, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0}, "zero-width"},
		{"deep recursion", ld, deepList, "nested deeper"},
		{"long varint", ad, []byte{0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, "varint longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.d.Decode(bg, tc.value)
			wantReason(t, err, ReasonDecode)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// A short recursive list still decodes.
	if _, err := ld.Decode(bg, []byte{2, 2, 4, 0}); err != nil {
		t.Errorf("short list: %v", err)
	}
}

func TestNewFileDecoderErrors(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`"string"`, "want a record"},
		{`{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}`, `unknown type name "nope"`},
		{`{not json`, "parsing Avro schema JSON"},
	} {
		if _, err := NewFileDecoder(tc.schema); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewFileDecoder(%s) = %v, want error containing %q", tc.schema, err, tc.want)
		}
	}
}

func TestRegistryDecoder(t *testing.T) {
	reg, cl := newTestRegistry(t)
	id, err := reg.Register("txn-value", txnSchema)
	if err != nil {
		t.Fatal(err)
	}
	d := NewRegistryDecoder(cl)
	body := mustBinary(t, txnSchema, txnRecord())
	rec, err := d.Decode(bg, wire(id, body))
	if err != nil {
		t.Fatal(err)
	}
	if rec.SchemaID != id || rec.Native["id"] != "t-1" {
		t.Fatalf("got id %d native id %v, want %d t-1", rec.SchemaID, rec.Native["id"], id)
	}

	protoID, _ := cl.RegisterSchema(bg, "p", sr.Schema{Schema: `syntax = "proto3"; message M {}`, Type: sr.TypeProtobuf}, -1, -1)
	refID, err := cl.RegisterSchema(bg, "r", sr.Schema{
		Schema:     `{"type":"record","name":"R","fields":[{"name":"p","type":"com.acme.Payment"}]}`,
		References: []sr.SchemaReference{{Name: "com.acme.Payment", Subject: "txn-value", Version: 1}},
	}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	strID, _ := reg.Register("s", `"string"`)

	for _, tc := range []struct {
		name   string
		value  []byte
		reason string
		want   string
	}{
		{"short", []byte{0, 0, 0}, ReasonBadMagic, "shorter than"},
		{"empty", nil, ReasonBadMagic, "shorter than"},
		{"magic byte", append([]byte{1}, wire(id, body)[1:]...), ReasonBadMagic, "magic byte is 0x01"},
		{"unknown id", wire(999, body), ReasonUnknownSchema, "not registered"},
		{"negative id", []byte{0, 0xff, 0xff, 0xff, 0xff, 0}, ReasonUnknownSchema, "negative"},
		{"protobuf", wire(protoID, body), ReasonUnknownSchema, "only AVRO"},
		{"references", wire(refID, body), ReasonUnknownSchema, "references"},
		{"not a record", wire(strID, []byte{0}), ReasonUnknownSchema, "want a record"},
		{"trailing", wire(id, append(append([]byte{}, body...), 7)), ReasonDecode, "trailing"},
		{"truncated", wire(id, body[:10]), ReasonDecode, "schema id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Decode(bg, tc.value)
			wantReason(t, err, tc.reason)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestRegistryDecoderCaching(t *testing.T) {
	reg, cl := newTestRegistry(t)
	id, _ := reg.Register("txn-value", txnSchema)
	value := wire(id, mustBinary(t, txnSchema, txnRecord()))

	t.Run("sequential", func(t *testing.T) {
		d := NewRegistryDecoder(cl)
		before := reg.Requests()
		for range 1000 {
			if _, err := d.Decode(bg, value); err != nil {
				t.Fatal(err)
			}
		}
		if n := reg.Requests() - before; n != 1 {
			t.Fatalf("1000 records with one schema id made %d registry requests, want 1", n)
		}
	})

	t.Run("concurrent first use", func(t *testing.T) {
		d := NewRegistryDecoder(cl)
		before := reg.Requests()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					if _, err := d.Decode(bg, value); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := reg.Requests() - before; n != 1 {
			t.Fatalf("64 goroutines made %d registry requests, want 1", n)
		}
	})

	t.Run("negative cache expires", func(t *testing.T) {
		var now atomic.Int64
		now.Store(time.Now().UnixNano())
		d := NewRegistryDecoder(cl, NegativeCacheTTL(30*time.Second))
		d.now = func() time.Time { return time.Unix(0, now.Load()) }
		unknown := wire(4242, nil)
		before := reg.Requests()
		for range 100 {
			_, err := d.Decode(bg, unknown)
			wantReason(t, err, ReasonUnknownSchema)
		}
		if n := reg.Requests() - before; n != 1 {
			t.Fatalf("100 records with an unknown id made %d requests, want 1", n)
		}
		now.Add(int64(31 * time.Second))
		_, err := d.Decode(bg, unknown)
		wantReason(t, err, ReasonUnknownSchema)
		if n := reg.Requests() - before; n != 2 {
			t.Fatalf("after the TTL: %d requests, want 2", n)
		}
	})
}

// flakyHandler fails every request with 503 while down is set.
type flakyHandler struct {
	h    http.Handler
	down atomic.Bool
	hits atomic.Int64
}

func (f *flakyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if f.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error_code":50003,"message":"unavailable"}`))
		return
	}
	f.h.ServeHTTP(w, r)
}

func TestRegistryDecoderUnavailable(t *testing.T) {
	reg := memregistry.New()
	id, _ := reg.Register("txn-value", txnSchema)
	fh := &flakyHandler{h: reg}
	fh.down.Store(true)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	d := NewRegistryDecoder(inProcessClient(t, fh), RetryAfter(time.Second))
	d.now = func() time.Time { return time.Unix(0, now.Load()) }
	value := wire(id, mustBinary(t, txnSchema, txnRecord()))

	for range 10 {
		_, err := d.Decode(bg, value)
		wantReason(t, err, ReasonUnknownSchema)
		if !errors.Is(err, ErrRegistryUnavailable) {
			t.Fatalf("error %v does not wrap ErrRegistryUnavailable", err)
		}
	}
	if n := fh.hits.Load(); n != 1 {
		t.Fatalf("outage: %d requests within the retry delay, want 1", n)
	}
	fh.down.Store(false)
	now.Add(int64(2 * time.Second))
	if _, err := d.Decode(bg, value); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// blockingHandler holds every request until release is closed.
type blockingHandler struct {
	h       http.Handler
	release chan struct{}
}

func (b *blockingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	<-b.release
	b.h.ServeHTTP(w, r)
}

func TestRegistryDecoderContextCancel(t *testing.T) {
	reg := memregistry.New()
	id, _ := reg.Register("txn-value", txnSchema)
	bh := &blockingHandler{h: reg, release: make(chan struct{})}
	d := NewRegistryDecoder(inProcessClient(t, bh))
	value := wire(id, mustBinary(t, txnSchema, txnRecord()))

	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	_, err := d.Decode(ctx, value)
	if !errors.Is(err, context.DeadlineExceeded) || ReasonOf(err) != "error" {
		t.Fatalf("cancelled wait: err %v reason %q, want a context error with no record reason", err, ReasonOf(err))
	}
	// The lookup the cancelled call started is not poisoned by it.
	close(bh.release)
	if _, err := d.Decode(bg, value); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRegistryDecoderBoundsFailedIDs(t *testing.T) {
	reg := memregistry.New()
	d := NewRegistryDecoder(inProcessClient(t, reg))
	for id := 1; id <= maxFailedEntries+100; id++ {
		_, err := d.Decode(bg, wire(id, nil))
		wantReason(t, err, ReasonUnknownSchema)
	}
	n := 0
	d.entries.Range(func(_, _ any) bool { n++; return true })
	if n > maxFailedEntries {
		t.Fatalf("%d failed ids remembered, want at most %d", n, maxFailedEntries)
	}
}

func TestSchemaEvolutionMapsByName(t *testing.T) {
	const v1 = `{"type":"record","name":"E","fields":[{"name":"x","type":"float"}]}`
	const v2 = `{"type":"record","name":"E","fields":[{"name":"note","type":"string","default":""},{"name":"x","type":["null","double"],"default":null}]}`
	reg, cl := newTestRegistry(t)
	id1, _ := reg.Register("e", v1)
	id2, _ := reg.Register("e", v2)
	d := NewRegistryDecoder(cl)
	m, err := NewMapper(v1, []InputMapping{{Tensor: "x", Fields: []string{"x"}, DType: tensor.Float32}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value []byte
		want  float32
	}{
		{wire(id1, mustBinary(t, v1, map[string]any{"x": float32(1.5)})), 1.5},
		{wire(id2, mustBinary(t, v2, map[string]any{"note": "n", "x": map[string]any{"double": 2.5}})), 2.5},
	} {
		rec, err := d.Decode(bg, tc.value)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := m.Map(rec.Native)
		if err != nil {
			t.Fatal(err)
		}
		if got := ts["x"].Data.([]float32)[0]; got != tc.want {
			t.Errorf("schema %d: x = %v, want %v", rec.SchemaID, got, tc.want)
		}
	}
}
