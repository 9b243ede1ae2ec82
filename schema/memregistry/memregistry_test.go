package memregistry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/schema/memregistry"
)

const (
	schemaA = `{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}`
	// schemaA with other whitespace: the same schema to a registry.
	schemaASpaced = "{ \"type\": \"record\", \"name\": \"A\",\n \"fields\": [ {\"name\": \"x\", \"type\": \"int\"} ] }"
	schemaB       = `{"type":"record","name":"B","fields":[{"name":"y","type":"string"}]}`
)

func start(t *testing.T) (*memregistry.Registry, *sr.Client, string) {
	t.Helper()
	reg := memregistry.New()
	url, stop := reg.Start()
	t.Cleanup(stop)
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl, url
}

func wantCode(t *testing.T, err error, status, code int) {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not an sr.ResponseError", err, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got HTTP %d error_code %d (%s), want %d/%d", re.StatusCode, re.ErrorCode, re.Message, status, code)
	}
}

func TestRegisterAndFetch(t *testing.T) {
	_, cl, _ := start(t)
	ctx := context.Background()

	idA, err := cl.RegisterSchema(ctx, "a-value", sr.Schema{Schema: schemaA}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.RegisterSchema(ctx, "a-value", sr.Schema{Schema: schemaASpaced}, -1, -1)
	if err != nil || again != idA {
		t.Fatalf("re-registering: id %d err %v, want %d", again, err, idA)
	}
	other, err := cl.RegisterSchema(ctx, "other", sr.Schema{Schema: schemaA}, -1, -1)
	if err != nil || other != idA {
		t.Fatalf("same schema, other subject: id %d err %v, want %d", other, err, idA)
	}
	idB, err := cl.RegisterSchema(ctx, "a-value", sr.Schema{Schema: schemaB}, -1, -1)
	if err != nil || idB == idA {
		t.Fatalf("new schema: id %d err %v", idB, err)
	}

	s, err := cl.SchemaByID(ctx, idA)
	if err != nil || s.Schema != schemaA || s.Type != sr.TypeAvro {
		t.Fatalf("SchemaByID = %+v, %v", s, err)
	}
	text, err := cl.SchemaTextByID(ctx, idB)
	if err != nil || text != schemaB {
		t.Fatalf("SchemaTextByID = %q, %v", text, err)
	}

	versions, err := cl.SubjectVersions(ctx, "a-value")
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("SubjectVersions = %v, %v", versions, err)
	}
	for _, tc := range []struct {
		version, wantVersion, wantID int
	}{{1, 1, idA}, {2, 2, idB}, {-1, 2, idB}} {
		ss, err := cl.SchemaByVersion(ctx, "a-value", tc.version)
		if err != nil || ss.Version != tc.wantVersion || ss.ID != tc.wantID || ss.Subject != "a-value" {
			t.Errorf("SchemaByVersion(%d) = %+v, %v", tc.version, ss, err)
		}
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"a-value", "other"}) {
		t.Fatalf("Subjects = %v, %v", subjects, err)
	}

	ss, err := cl.LookupSchema(ctx, "a-value", sr.Schema{Schema: schemaASpaced})
	if err != nil || ss.ID != idA || ss.Version != 1 {
		t.Fatalf("LookupSchema = %+v, %v", ss, err)
	}
	created, err := cl.CreateSchema(ctx, "c", sr.Schema{Schema: schemaB})
	if err != nil || created.ID != idB || created.Subject != "c" || created.Version != 1 {
		t.Fatalf("CreateSchema = %+v, %v", created, err)
	}
	all, err := cl.AllSchemas(ctx)
	if err != nil || len(all) != 4 {
		t.Fatalf("AllSchemas = %d schemas, %v; want 4", len(all), err)
	}
	usages, err := cl.SchemaUsagesByID(ctx, idA)
	if err != nil || len(usages) != 2 {
		t.Fatalf("SchemaUsagesByID = %+v, %v", usages, err)
	}
}

func TestOtherSchemaTypes(t *testing.T) {
	_, cl, _ := start(t)
	ctx := context.Background()
	id, err := cl.RegisterSchema(ctx, "p", sr.Schema{Schema: `syntax = "proto3"; message M {}`, Type: sr.TypeProtobuf}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cl.SchemaByID(ctx, id)
	if err != nil || s.Type != sr.TypeProtobuf {
		t.Fatalf("SchemaByID = %+v, %v", s, err)
	}
	refs := []sr.SchemaReference{{Name: "A", Subject: "a", Version: 1}}
	id, err = cl.RegisterSchema(ctx, "r", sr.Schema{Schema: `{"type":"record","name":"R","fields":[{"name":"a","type":"A"}]}`, References: refs}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	s, err = cl.SchemaByID(ctx, id)
	if err != nil || !slices.Equal(s.References, refs) {
		t.Fatalf("references not returned: %+v, %v", s, err)
	}
}

func TestErrors(t *testing.T) {
	reg, cl, url := start(t)
	ctx := context.Background()
	if _, err := reg.Register("a", schemaA); err != nil {
		t.Fatal(err)
	}

	_, err := cl.SchemaByID(ctx, 99)
	wantCode(t, err, http.StatusNotFound, memregistry.CodeSchemaNotFound)
	var re *sr.ResponseError
	errors.As(err, &re)
	if re.SchemaError() != sr.ErrSchemaNotFound {
		t.Errorf("SchemaError() = %v, want ErrSchemaNotFound", re.SchemaError())
	}
	_, err = cl.SchemaByVersion(ctx, "nope", 1)
	wantCode(t, err, http.StatusNotFound, memregistry.CodeSubjectNotFound)
	_, err = cl.SchemaByVersion(ctx, "a", 2)
	wantCode(t, err, http.StatusNotFound, memregistry.CodeVersionNotFound)
	_, err = cl.SubjectVersions(ctx, "nope")
	wantCode(t, err, http.StatusNotFound, memregistry.CodeSubjectNotFound)
	_, err = cl.LookupSchema(ctx, "a", sr.Schema{Schema: schemaB})
	wantCode(t, err, http.StatusNotFound, memregistry.CodeSchemaNotFound)
	_, err = cl.LookupSchema(ctx, "nope", sr.Schema{Schema: schemaA})
	wantCode(t, err, http.StatusNotFound, memregistry.CodeSubjectNotFound)
	_, err = cl.RegisterSchema(ctx, "a", sr.Schema{Schema: `{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}`}, -1, -1)
	wantCode(t, err, http.StatusUnprocessableEntity, memregistry.CodeInvalidSchema)

	for _, tc := range []struct {
		method, path, body string
		status, code       int
	}{
		{"GET", "/subjects/a/versions/abc", "", http.StatusUnprocessableEntity, memregistry.CodeInvalidVersion},
		{"GET", "/subjects/a/versions/0", "", http.StatusUnprocessableEntity, memregistry.CodeInvalidVersion},
		{"GET", "/schemas/ids/x", "", http.StatusNotFound, memregistry.CodeSchemaNotFound},
		{"GET", "/nowhere", "", http.StatusNotFound, http.StatusNotFound},
		{"POST", "/subjects/a/versions", "{", http.StatusBadRequest, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), `"error_code":`) {
			t.Errorf("%s %s: HTTP %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
		}
		if ct := resp.Header.Get("Content-Type"); ct != memregistry.ContentType {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
	}
}

func TestRawSchemaEndpointAndContentType(t *testing.T) {
	reg, _, url := start(t)
	if _, err := reg.Register("a", schemaA); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + "/subjects/a/versions/latest/schema")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != schemaA || resp.Header.Get("Content-Type") != memregistry.ContentType {
		t.Fatalf("got %q (%s)", body, resp.Header.Get("Content-Type"))
	}
}

func TestStartStop(t *testing.T) {
	reg := memregistry.New()
	url, stop := reg.Start()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("url %q", url)
	}
	resp, err := http.Get(url + "/subjects")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "[]" {
		t.Fatalf("empty registry lists %s", body)
	}
	stop()
	stop() // safe twice
	if _, err := http.Get(url + "/subjects"); err == nil {
		t.Fatal("registry still serving after stop")
	}
	if reg.Requests() != 1 {
		t.Fatalf("Requests() = %d, want 1", reg.Requests())
	}
	if _, err := reg.Register("a", "{"); err == nil {
		t.Fatal("Register accepted an invalid schema")
	}
}
