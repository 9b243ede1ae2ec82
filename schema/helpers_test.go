package schema

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/schema/memregistry"
)

// txnSchema exercises every Avro type the package handles.
const txnSchema = `{
  "type": "record", "name": "Txn", "namespace": "com.acme",
  "fields": [
    {"name": "id", "type": "string", "doc": "transaction id"},
    {"name": "amount", "type": "double"},
    {"name": "count", "type": "int"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "float"},
    {"name": "flag", "type": "boolean"},
    {"name": "opt", "type": ["null", "float"], "default": null},
    {"name": "optArr", "type": ["null", {"type": "array", "items": "float"}], "default": null},
    {"name": "multi", "type": ["null", "int", "string"], "default": null},
    {"name": "vec", "type": {"type": "array", "items": "float"}},
    {"name": "ivec", "type": {"type": "array", "items": "long"}},
    {"name": "mat", "type": {"type": "array", "items": {"type": "array", "items": "double"}}},
    {"name": "cube", "type": {"type": "array", "items": {"type": "array", "items": {"type": "array", "items": "int"}}}},
    {"name": "bvec", "type": {"type": "array", "items": "boolean"}},
    {"name": "raw", "type": "bytes"},
    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 8}},
    {"name": "payment", "type": {"type": "record", "name": "Payment", "fields": [
      {"name": "amount", "type": "float"},
      {"name": "currency", "type": "string"},
      {"name": "geo", "type": {"type": "record", "name": "Geo", "fields": [
        {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}}]}},
    {"name": "maybePay", "type": ["null", "Payment"], "default": null},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
    {"name": "tags", "type": {"type": "map", "values": "string"}}
  ]
}`

// txnRecord returns a valid native Txn; tests modify their own copy.
func txnRecord() map[string]any {
	payment := map[string]any{
		"amount": float32(12.5), "currency": "EUR",
		"geo": map[string]any{"lat": 52.5, "lon": 13.4},
	}
	return map[string]any{
		"id":     "t-1",
		"amount": 99.5,
		"count":  int32(3),
		"big":    int64(1) << 40,
		"ratio":  float32(0.25),
		"flag":   true,
		"opt":    nil,
		"optArr": nil,
		"multi":  nil,
		"vec":    []any{float32(1), float32(2), float32(3), float32(4)},
		"ivec":   []any{int64(7), int64(8)},
		"mat":    []any{[]any{1.0, 2.0, 3.0}, []any{4.0, 5.0, 6.0}},
		"cube": []any{
			[]any{[]any{int32(1), int32(2)}, []any{int32(3), int32(4)}},
			[]any{[]any{int32(5), int32(6)}, []any{int32(7), int32(8)}},
		},
		"bvec":     []any{true, false, true},
		"raw":      []byte{1, 2, 3, 4},
		"hash":     []byte{0, 0, 128, 63, 0, 0, 0, 64}, // float32 1, 2
		"payment":  payment,
		"maybePay": nil,
		"ts":       int64(1700000000000),
		"color":    "GREEN",
		"tags":     map[string]any{"k": "v"},
	}
}

func mustCodec(t testing.TB, schemaJSON string) *goavro.Codec {
	t.Helper()
	c, err := goavro.NewCodec(schemaJSON)
	if err != nil {
		t.Fatalf("compiling test schema: %v", err)
	}
	return c
}

func mustBinary(t testing.TB, schemaJSON string, native map[string]any) []byte {
	t.Helper()
	b, err := mustCodec(t, schemaJSON).BinaryFromNative(nil, native)
	if err != nil {
		t.Fatalf("encoding test record: %v", err)
	}
	return b
}

func wire(id int, body []byte) []byte {
	b, err := appendWireHeader(nil, id)
	if err != nil {
		panic(err)
	}
	return append(b, body...)
}

// handlerTransport serves HTTP requests in-process, for tests (and fuzzing)
// that need a registry but not a socket.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// newTestRegistry starts a memregistry on a real socket and returns it
// with an sr client talking to it.
func newTestRegistry(t testing.TB) (*memregistry.Registry, *sr.Client) {
	t.Helper()
	reg := memregistry.New()
	url, stop := reg.Start()
	t.Cleanup(stop)
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl
}

// inProcessClient returns an sr client that calls h directly.
func inProcessClient(t testing.TB, h http.Handler) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs("http://registry.invalid"), sr.HTTPClient(&http.Client{Transport: handlerTransport{h}}))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want reason %q", reason)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *schema.Error", err, err)
	}
	if got := ReasonOf(err); got != reason {
		t.Fatalf("reason = %q, want %q (error: %v)", got, reason, err)
	}
}

var bg = context.Background()

var (
	errorsNew = errors.New
	fmtErrorf = fmt.Errorf
)
