// Package memregistry is an in-memory Schema Registry that speaks the
// subset of the Confluent REST API used by franz-go's sr client for
// registering and fetching schemas. It backs tests and the embedded demo;
// it is not a registry for production data (no persistence, no
// compatibility checks, no deletes, no schema contexts).
//
// Supported endpoints:
//
//	GET  /subjects
//	GET  /subjects/{subject}/versions
//	POST /subjects/{subject}/versions        register (same schema, same id)
//	POST /subjects/{subject}                 look a schema up
//	GET  /subjects/{subject}/versions/{v}    v is a number, "latest" or -1
//	GET  /subjects/{subject}/versions/{v}/schema
//	GET  /schemas
//	GET  /schemas/types
//	GET  /schemas/ids/{id}
//	GET  /schemas/ids/{id}/schema
//	GET  /schemas/ids/{id}/subjects
//	GET  /schemas/ids/{id}/versions
//
// Errors use the Confluent body {"error_code":40403,"message":"..."}.
package memregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/linkedin/goavro/v2"
)

// ContentType is the media type of every response body.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Confluent error codes returned by the registry.
const (
	CodeSubjectNotFound = 40401
	CodeVersionNotFound = 40402
	CodeSchemaNotFound  = 40403
	CodeInvalidSchema   = 42201
	CodeInvalidVersion  = 42202
)

// Schema types accepted on registration. Only AVRO schemas are validated;
// the others are stored as opaque text.
const (
	TypeAvro     = "AVRO"
	TypeProtobuf = "PROTOBUF"
	TypeJSON     = "JSON"
)

// Reference is a schema reference as carried by the REST API. References
// are stored and returned but not resolved.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Registry is an in-memory schema registry. It implements http.Handler and
// is safe for concurrent use. The zero value is not usable; call New.
type Registry struct {
	mux      *http.ServeMux
	requests atomic.Int64

	mu       sync.Mutex
	schemas  []stored         // id i+1 is schemas[i]
	byKey    map[string]int   // canonical schema key -> id
	subjects map[string][]int // subject -> ids, index v-1 is version v
}

type stored struct {
	schema string
	typ    string
	refs   []Reference
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{byKey: map[string]int{}, subjects: map[string][]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subjects", r.listSubjects)
	mux.HandleFunc("GET /subjects/{subject}/versions", r.listVersions)
	mux.HandleFunc("POST /subjects/{subject}/versions", r.register)
	mux.HandleFunc("POST /subjects/{subject}", r.lookup)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", r.getVersion)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", r.getVersionText)
	mux.HandleFunc("GET /schemas", r.listSchemas)
	mux.HandleFunc("GET /schemas/types", r.types)
	mux.HandleFunc("GET /schemas/ids/{id}", r.getID)
	mux.HandleFunc("GET /schemas/ids/{id}/schema", r.getIDText)
	mux.HandleFunc("GET /schemas/ids/{id}/subjects", r.getIDSubjects)
	mux.HandleFunc("GET /schemas/ids/{id}/versions", r.getIDVersions)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found")
	})
	r.mux = mux
	return r
}

// ServeHTTP serves the registry API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	r.mux.ServeHTTP(w, req)
}

// Requests returns how many HTTP requests the registry has served, so that
// tests can check client-side caching.
func (r *Registry) Requests() int64 { return r.requests.Load() }

// Start serves the registry on a free port of 127.0.0.1 and returns its
// base URL and a function that stops it (safe to call more than once). It
// panics if no port can be bound, like httptest.NewServer; use Listen to
// handle that error.
func (r *Registry) Start() (string, func()) {
	baseURL, stop, err := r.Listen("127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("memregistry: %v", err))
	}
	return baseURL, stop
}

// Listen serves the registry on addr ("127.0.0.1:0" picks a free port) and
// returns its base URL and a function that stops it (safe to call more
// than once).
func (r *Registry) Listen(addr string) (baseURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: r}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Close()
			<-done
		})
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// Register stores an AVRO schema under subject, as POST
// /subjects/{subject}/versions does, and returns its id.
func (r *Registry) Register(subject, schema string) (int, error) {
	id, code, err := r.put(subject, schema, TypeAvro, nil)
	if err != nil {
		return 0, fmt.Errorf("registering under subject %q (error %d): %w", subject, code, err)
	}
	return id, nil
}

// put registers a schema and returns its id, or a Confluent error code.
func (r *Registry) put(subject, schema, typ string, refs []Reference) (int, int, error) {
	if subject == "" {
		return 0, http.StatusUnprocessableEntity, fmt.Errorf("empty subject")
	}
	switch typ {
	case "":
		typ = TypeAvro
	case TypeAvro, TypeProtobuf, TypeJSON:
	default:
		return 0, CodeInvalidSchema, fmt.Errorf("unknown schema type %q", typ)
	}
	if typ == TypeAvro && len(refs) == 0 {
		if err := checkAvro(schema); err != nil {
			return 0, CodeInvalidSchema, fmt.Errorf("invalid schema: %w", err)
		}
	}
	key := schemaKey(schema, typ, refs)
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.byKey[key]
	if !ok {
		r.schemas = append(r.schemas, stored{schema: schema, typ: typ, refs: refs})
		id = len(r.schemas)
		r.byKey[key] = id
	}
	if !slices.Contains(r.subjects[subject], id) {
		r.subjects[subject] = append(r.subjects[subject], id)
	}
	return id, 0, nil
}

func checkAvro(schema string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	_, err = goavro.NewCodec(schema)
	return err
}

// schemaKey identifies a schema regardless of JSON whitespace, which is how
// a registry decides that a registration repeats an earlier one.
func schemaKey(schema, typ string, refs []Reference) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(schema)) != nil {
		b.Reset()
		b.WriteString(schema)
	}
	refsJSON, _ := json.Marshal(refs)
	return typ + "\x00" + b.String() + "\x00" + string(refsJSON)
}

type schemaBody struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	ID         int         `json:"id,omitempty"`
	Version    int         `json:"version,omitempty"`
}

type subjectSchema struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
}

func readBody(w http.ResponseWriter, req *http.Request) (schemaBody, bool) {
	var body schemaBody
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 16<<20))
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, http.StatusBadRequest, "Unrecognized request body: "+err.Error())
		return body, false
	}
	if body.SchemaType == "" {
		body.SchemaType = TypeAvro
	}
	body.SchemaType = strings.ToUpper(body.SchemaType)
	return body, true
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request) {
	body, ok := readBody(w, req)
	if !ok {
		return
	}
	if body.ID > 0 || body.Version > 0 {
		writeError(w, http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "registering with an explicit id or version is not supported")
		return
	}
	id, code, err := r.put(req.PathValue("subject"), body.Schema, body.SchemaType, body.References)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, code, err.Error())
		return
	}
	writeJSON(w, map[string]int{"id": id})
}

func (r *Registry) lookup(w http.ResponseWriter, req *http.Request) {
	body, ok := readBody(w, req)
	if !ok {
		return
	}
	subject := req.PathValue("subject")
	key := schemaKey(body.Schema, body.SchemaType, body.References)
	r.mu.Lock()
	ids, known := r.subjects[subject]
	id := r.byKey[key]
	v := slices.Index(ids, id) + 1
	var ss subjectSchema
	if id > 0 && v > 0 {
		ss = r.subjectSchema(subject, v, id)
	}
	r.mu.Unlock()
	switch {
	case !known:
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, fmt.Sprintf("Subject '%s' not found.", subject))
	case id == 0 || v == 0:
		writeError(w, http.StatusNotFound, CodeSchemaNotFound, "Schema not found")
	default:
		writeJSON(w, ss)
	}
}

// subjectSchema must be called with r.mu held.
func (r *Registry) subjectSchema(subject string, version, id int) subjectSchema {
	s := r.schemas[id-1]
	ss := subjectSchema{Subject: subject, Version: version, ID: id, Schema: s.schema, References: s.refs}
	if s.typ != TypeAvro {
		ss.SchemaType = s.typ
	}
	return ss
}

func (r *Registry) listSubjects(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	subjects := make([]string, 0, len(r.subjects))
	for s := range r.subjects {
		subjects = append(subjects, s)
	}
	r.mu.Unlock()
	slices.Sort(subjects)
	writeJSON(w, subjects)
}

func (r *Registry) listVersions(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	ids, ok := r.subjects[subject]
	n := len(ids)
	r.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, fmt.Sprintf("Subject '%s' not found.", subject))
		return
	}
	versions := make([]int, n)
	for i := range versions {
		versions[i] = i + 1
	}
	writeJSON(w, versions)
}

// version resolves a subject version path value, writing the error itself.
func (r *Registry) version(w http.ResponseWriter, req *http.Request) (subjectSchema, bool) {
	subject, vs := req.PathValue("subject"), req.PathValue("version")
	v, err := strconv.Atoi(vs)
	if vs == "latest" {
		v, err = -1, nil
	}
	if err != nil || v == 0 || v < -1 {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalidVersion, fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", vs))
		return subjectSchema{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, fmt.Sprintf("Subject '%s' not found.", subject))
		return subjectSchema{}, false
	}
	if v == -1 {
		v = len(ids)
	}
	if v > len(ids) {
		writeError(w, http.StatusNotFound, CodeVersionNotFound, fmt.Sprintf("Version %d not found.", v))
		return subjectSchema{}, false
	}
	return r.subjectSchema(subject, v, ids[v-1]), true
}

func (r *Registry) getVersion(w http.ResponseWriter, req *http.Request) {
	if ss, ok := r.version(w, req); ok {
		writeJSON(w, ss)
	}
}

func (r *Registry) getVersionText(w http.ResponseWriter, req *http.Request) {
	if ss, ok := r.version(w, req); ok {
		writeRaw(w, ss.Schema)
	}
}

func (r *Registry) listSchemas(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	var all []subjectSchema
	for subject, ids := range r.subjects {
		for i, id := range ids {
			all = append(all, r.subjectSchema(subject, i+1, id))
		}
	}
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b subjectSchema) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	if all == nil {
		all = []subjectSchema{}
	}
	writeJSON(w, all)
}

func (r *Registry) types(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, []string{TypeAvro, TypeJSON, TypeProtobuf})
}

// byID resolves the {id} path value, writing the error itself.
func (r *Registry) byID(w http.ResponseWriter, req *http.Request) (int, stored, bool) {
	id, err := strconv.Atoi(req.PathValue("id"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id < 1 || id > len(r.schemas) {
		writeError(w, http.StatusNotFound, CodeSchemaNotFound, "Schema "+req.PathValue("id")+" not found")
		return 0, stored{}, false
	}
	return id, r.schemas[id-1], true
}

func (r *Registry) getID(w http.ResponseWriter, req *http.Request) {
	_, s, ok := r.byID(w, req)
	if !ok {
		return
	}
	// Like Confluent, the type is omitted for AVRO, its default.
	body := schemaBody{Schema: s.schema, References: s.refs}
	if s.typ != TypeAvro {
		body.SchemaType = s.typ
	}
	writeJSON(w, body)
}

func (r *Registry) getIDText(w http.ResponseWriter, req *http.Request) {
	if _, s, ok := r.byID(w, req); ok {
		writeRaw(w, s.schema)
	}
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

func (r *Registry) usages(id int) []subjectVersion {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []subjectVersion{}
	for subject, ids := range r.subjects {
		for i, sid := range ids {
			if sid == id {
				out = append(out, subjectVersion{subject, i + 1})
			}
		}
	}
	slices.SortFunc(out, func(a, b subjectVersion) int { return strings.Compare(a.Subject, b.Subject) })
	return out
}

func (r *Registry) getIDSubjects(w http.ResponseWriter, req *http.Request) {
	id, _, ok := r.byID(w, req)
	if !ok {
		return
	}
	subjects := []string{}
	for _, u := range r.usages(id) {
		subjects = append(subjects, u.Subject)
	}
	writeJSON(w, subjects)
}

func (r *Registry) getIDVersions(w http.ResponseWriter, req *http.Request) {
	if id, _, ok := r.byID(w, req); ok {
		writeJSON(w, r.usages(id))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, 50001, err.Error())
		return
	}
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write(b)
}

// writeRaw writes a schema's own text, as the /schema endpoints do.
func writeRaw(w http.ResponseWriter, schema string) {
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write([]byte(schema))
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}{code, message})
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
