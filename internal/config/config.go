// Package config loads and validates pipeline.yaml: one struct, defaults in
// one place (Default), one validation pass (Validate) whose messages name the
// file, the field and what was expected.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kinfer/kinfer/internal/tensor"
)

// Guarantee values for processing.guarantee.
const (
	AtLeastOnce = "at_least_once"
	ExactlyOnce = "exactly_once"
)

// Config is a whole pipeline.yaml.
type Config struct {
	// File is the path the config was loaded from; relative paths inside
	// the config (schema file, model path) are resolved against its folder.
	File string `yaml:"-"`

	Kafka      Kafka      `yaml:"kafka"`
	Schema     Schema     `yaml:"schema"`
	Model      Model      `yaml:"model"`
	Batch      Batch      `yaml:"batch"`
	Output     Output     `yaml:"output"`
	Processing Processing `yaml:"processing"`
	Metrics    Metrics    `yaml:"metrics"`
}

// Kafka says where records come from and go to.
type Kafka struct {
	// Brokers are the seed brokers. Required for run; the --brokers flag
	// overrides them.
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group id. Required.
	Group string `yaml:"group"`
	// InputTopic is read by the group. Required.
	InputTopic string `yaml:"input_topic"`
	// OutputTopic receives one prediction per input. Required.
	OutputTopic string `yaml:"output_topic"`
	// DeadLetterTopic receives records that could not be predicted, with
	// the reason in headers. Default: "<input_topic>.dlq".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// ClientID is sent to the broker. Default "kinfer".
	ClientID string `yaml:"client_id"`
	// StartOffset is where a group with no committed offset starts:
	// "earliest" (default) or "latest".
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is how long the group waits for a silent member (a
	// crashed one) before giving its partitions to others. Default 45s;
	// the broker bounds it (group.min/max.session.timeout.ms, 6s..30m by
	// default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds a rebalance, including draining revoked
	// partitions (processing.drain_timeout must fit in it). Default 60s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// InstanceID enables static membership (KIP-345): a member restarting
	// with the same id gets its partitions back without a rebalance, and
	// a stopped one is not removed until SessionTimeout. Use a stable
	// per-replica id (the pod name of a StatefulSet). Default "" (dynamic).
	InstanceID string `yaml:"instance_id"`
}

// Schema says how record values are encoded.
type Schema struct {
	// RegistryURL selects the Confluent wire format (magic byte + schema
	// id); writer schemas are fetched from this registry. Empty means
	// plain Avro with the writer schema in InputSchemaFile.
	RegistryURL string `yaml:"registry_url"`
	// InputSchemaFile is the Avro schema (.avsc) of input records. Required
	// without a registry; with one it is optional and, when given, is what
	// start-up validation checks mappings against (otherwise the latest
	// schema of the "<input_topic>-value" subject is used).
	InputSchemaFile string `yaml:"input_schema_file"`
	// OutputEncoding is "wire" (register the output schema under
	// OutputSubject and prefix each value with its id) or "plain".
	// Default: "wire" with a registry, "plain" without.
	OutputEncoding string `yaml:"output_encoding"`
	// OutputSubject is the registry subject for the output schema.
	// Default "<output_topic>-value".
	OutputSubject string `yaml:"output_subject"`
	// OutputRecordName and OutputNamespace name the generated output
	// record schema. Defaults "Prediction" and "kinfer".
	OutputRecordName string `yaml:"output_record_name"`
	OutputNamespace  string `yaml:"output_namespace"`
}

// Model is the ONNX model the pipeline runs.
type Model struct {
	// Name identifies the model in predictions and metrics. Required.
	Name string `yaml:"name"`
	// Path to the .onnx file. Required.
	Path string `yaml:"path"`
	// Version stamped on predictions. Default: the first 12 hex digits of
	// the model file's sha256.
	Version string `yaml:"version"`
	// Copies is how many ONNX Runtime sessions run batches in parallel.
	// Default 1.
	Copies int `yaml:"copies"`
	// IntraOpThreads is each session's thread pool size. Default 0: the
	// cores divided among the copies (GOMAXPROCS/copies, at least 1).
	IntraOpThreads int `yaml:"intra_op_threads"`
	// Provider is "cpu" (default), "cuda" or "tensorrt". A GPU provider
	// that is unavailable falls back to CPU with a warning.
	Provider string `yaml:"provider"`
	// DeviceID is the GPU ordinal for cuda/tensorrt. Default 0.
	DeviceID int `yaml:"device_id"`
	// Inputs map record fields to the model's named input tensors. Every
	// model input must be mapped. Required.
	Inputs []Input `yaml:"inputs"`
	// Outputs choose which model outputs land in the prediction record and
	// under what field names. Default: every model output, under its own
	// name.
	Outputs []OutputTensor `yaml:"outputs"`
}

// Input maps record fields to one model input tensor.
type Input struct {
	// Tensor is the model input name. Required.
	Tensor string `yaml:"tensor"`
	// Field is one record field (dotted path for nested records). Exactly
	// one of Field and Fields is required.
	Field string `yaml:"field"`
	// Fields are several scalar fields stacked into a vector, in order.
	Fields []string `yaml:"fields"`
	// Encoding is "value" (default: Avro scalars and nested arrays) or
	// "raw" (a bytes field holding a little-endian tensor).
	Encoding string `yaml:"encoding"`
	// DType of the tensor (float32, float64, int32, int64, uint8, int8,
	// bool). Required; checked against the model.
	DType string `yaml:"dtype"`
	// Shape is the per-row shape, without the batch dim; -1 marks a
	// dynamic dim. Default: [] for one scalar field, [len(fields)] for
	// several. Checked against the model.
	Shape []int64 `yaml:"shape"`
	// AllowNaN lets NaN through; by default a NaN dead-letters the record.
	AllowNaN bool `yaml:"allow_nan"`
}

// OutputTensor puts one model output into the prediction record.
type OutputTensor struct {
	// Tensor is the model output name. Required.
	Tensor string `yaml:"tensor"`
	// Field is the prediction record field. Default: the tensor name.
	Field string `yaml:"field"`
}

// Batch controls micro-batching.
type Batch struct {
	// MaxSize is the most rows in one batch. Default 64.
	MaxSize int `yaml:"max_size"`
	// MaxDelay is how long a partial batch waits for more rows. Default 5ms.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxBytes caps a batch's tensor bytes. Default 8MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Output shapes the prediction record.
type Output struct {
	// PassThrough are input fields copied into each prediction (dotted
	// paths allowed; the output field is the last path element).
	PassThrough []string `yaml:"passthrough"`
}

// Processing sets delivery and resource limits.
type Processing struct {
	// Guarantee is "at_least_once" (default). "exactly_once" is not
	// available yet and is rejected by validation.
	Guarantee string `yaml:"guarantee"`
	// MaxInFlightRecords caps records fetched but not yet acknowledged;
	// at the cap, fetching waits. Default 10000.
	MaxInFlightRecords int `yaml:"max_in_flight_records"`
	// MaxInFlightBytes caps the input bytes of those records. Default 64MiB.
	MaxInFlightBytes ByteSize `yaml:"max_in_flight_bytes"`
	// CommitInterval is how often acknowledged offsets are committed.
	// Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// DrainTimeout bounds the wait for in-flight records at shutdown and on
	// partition revocation. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// DecodeWorkers decode and map records in parallel. Default: GOMAXPROCS.
	DecodeWorkers int `yaml:"decode_workers"`
}

// Metrics configures the HTTP endpoint for /metrics, /healthz and /readyz.
type Metrics struct {
	// Listen address. Default "127.0.0.1:9464"; "" after defaults means off
	// only when Disabled is set.
	Listen string `yaml:"listen"`
	// Disabled turns the endpoint off.
	Disabled bool `yaml:"disabled"`
}

// ByteSize is a byte count written as 1048576, "64KiB", "8MiB" or "1GiB".
type ByteSize int64

// UnmarshalYAML accepts integers and strings with a binary unit suffix.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "123", "64KiB", "8MiB", "1GiB" (KB/MB/GB mean the
// same binary units).
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size (expected e.g. 1048576, 64KiB, 8MiB)", s)
	}
	return ByteSize(n * mult), nil
}

// Load reads, defaults and validates a pipeline file.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pipeline config: %w", err)
	}
	return Parse(path, raw)
}

// Parse decodes raw YAML (unknown fields are errors), applies defaults and
// validates. path names the file in error messages and anchors relative
// paths.
func Parse(path string, raw []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.File = path
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyDefaults fills every unset field with its documented default.
func (c *Config) ApplyDefaults() {
	k := &c.Kafka
	if k.DeadLetterTopic == "" && k.InputTopic != "" {
		k.DeadLetterTopic = k.InputTopic + ".dlq"
	}
	if k.ClientID == "" {
		k.ClientID = "kinfer"
	}
	if k.StartOffset == "" {
		k.StartOffset = "earliest"
	}
	if k.SessionTimeout == 0 {
		k.SessionTimeout = 45 * time.Second
	}
	if k.RebalanceTimeout == 0 {
		k.RebalanceTimeout = 60 * time.Second
	}
	s := &c.Schema
	if s.OutputEncoding == "" {
		s.OutputEncoding = "plain"
		if s.RegistryURL != "" {
			s.OutputEncoding = "wire"
		}
	}
	if s.OutputSubject == "" && k.OutputTopic != "" {
		s.OutputSubject = k.OutputTopic + "-value"
	}
	if s.OutputRecordName == "" {
		s.OutputRecordName = "Prediction"
	}
	if s.OutputNamespace == "" {
		s.OutputNamespace = "kinfer"
	}
	m := &c.Model
	if m.Copies == 0 {
		m.Copies = 1
	}
	if m.Provider == "" {
		m.Provider = "cpu"
	}
	for i := range m.Inputs {
		in := &m.Inputs[i]
		if in.Encoding == "" {
			in.Encoding = "value"
		}
		if in.Shape == nil && len(in.Fields) > 0 {
			in.Shape = []int64{int64(len(in.Fields))}
		}
	}
	for i := range m.Outputs {
		if m.Outputs[i].Field == "" {
			m.Outputs[i].Field = m.Outputs[i].Tensor
		}
	}
	b := &c.Batch
	if b.MaxSize == 0 {
		b.MaxSize = 64
	}
	if b.MaxDelay == 0 {
		b.MaxDelay = 5 * time.Millisecond
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = 8 << 20
	}
	p := &c.Processing
	if p.Guarantee == "" {
		p.Guarantee = AtLeastOnce
	}
	if p.MaxInFlightRecords == 0 {
		p.MaxInFlightRecords = 10000
	}
	if p.MaxInFlightBytes == 0 {
		p.MaxInFlightBytes = 64 << 20
	}
	if p.CommitInterval == 0 {
		p.CommitInterval = time.Second
	}
	if p.DrainTimeout == 0 {
		p.DrainTimeout = 30 * time.Second
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = "127.0.0.1:9464"
	}
}

// Validate checks the config on its own (not against schema or model; see
// the pipeline package for that). All problems are reported at once.
func (c *Config) Validate() error {
	v := &validator{file: c.File}
	k := c.Kafka
	v.required("kafka.group", k.Group)
	v.required("kafka.input_topic", k.InputTopic)
	v.required("kafka.output_topic", k.OutputTopic)
	if k.InputTopic != "" && (k.OutputTopic == k.InputTopic || k.DeadLetterTopic == k.InputTopic) {
		v.add("kafka.output_topic", "must differ from kafka.input_topic (and so must kafka.dead_letter_topic), or kinfer would read its own output")
	}
	v.oneOf("kafka.start_offset", k.StartOffset, "earliest", "latest")
	if k.SessionTimeout <= 0 {
		v.add("kafka.session_timeout", "must be positive")
	}
	s := c.Schema
	if s.RegistryURL == "" && s.InputSchemaFile == "" {
		v.add("schema.input_schema_file", "required when schema.registry_url is empty (plain Avro needs the writer schema)")
	}
	v.oneOf("schema.output_encoding", s.OutputEncoding, "wire", "plain")
	if s.OutputEncoding == "wire" && s.RegistryURL == "" {
		v.add("schema.output_encoding", `"wire" needs schema.registry_url to register the output schema`)
	}
	m := c.Model
	v.required("model.name", m.Name)
	v.required("model.path", m.Path)
	v.positive("model.copies", m.Copies)
	if m.IntraOpThreads < 0 {
		v.add("model.intra_op_threads", fmt.Sprintf("must not be negative, found %d", m.IntraOpThreads))
	}
	v.oneOf("model.provider", m.Provider, "cpu", "cuda", "tensorrt")
	if len(m.Inputs) == 0 {
		v.add("model.inputs", "at least one input mapping is required")
	}
	seen := map[string]bool{}
	for i, in := range m.Inputs {
		f := fmt.Sprintf("model.inputs[%d]", i)
		v.required(f+".tensor", in.Tensor)
		if seen[in.Tensor] {
			v.add(f+".tensor", fmt.Sprintf("%q is mapped twice", in.Tensor))
		}
		seen[in.Tensor] = true
		if (in.Field == "") == (len(in.Fields) == 0) {
			v.add(f, "set exactly one of field and fields")
		}
		if _, err := tensor.ParseDType(in.DType); err != nil {
			v.add(f+".dtype", err.Error())
		}
		v.oneOf(f+".encoding", in.Encoding, "value", "raw")
		if in.Encoding == "raw" && len(in.Fields) > 0 {
			v.add(f+".encoding", `"raw" reads one bytes field; use field, not fields`)
		}
		if len(in.Fields) > 0 && (len(in.Shape) != 1 || in.Shape[0] != int64(len(in.Fields))) {
			v.add(f+".shape", fmt.Sprintf("expected [%d] for %d stacked fields, found %v", len(in.Fields), len(in.Fields), in.Shape))
		}
		dyn := 0
		for _, d := range in.Shape {
			if d == -1 {
				dyn++
			} else if d <= 0 {
				v.add(f+".shape", fmt.Sprintf("dims must be positive or -1 (dynamic), found %d", d))
			}
		}
		if in.Encoding == "raw" && dyn > 1 {
			v.add(f+".shape", "a raw tensor may have at most one dynamic (-1) dim")
		}
	}
	outSeen := map[string]bool{}
	for i, o := range m.Outputs {
		f := fmt.Sprintf("model.outputs[%d]", i)
		v.required(f+".tensor", o.Tensor)
		if outSeen[o.Field] {
			v.add(f+".field", fmt.Sprintf("%q is used twice", o.Field))
		}
		outSeen[o.Field] = true
	}
	b := c.Batch
	v.positive("batch.max_size", b.MaxSize)
	if b.MaxDelay < 0 {
		v.add("batch.max_delay", "must not be negative")
	}
	if b.MaxBytes <= 0 {
		v.add("batch.max_bytes", "must be positive")
	}
	p := c.Processing
	switch p.Guarantee {
	case AtLeastOnce:
	case ExactlyOnce:
		v.add("processing.guarantee", `"exactly_once" is not implemented yet; expected "at_least_once"`)
	default:
		v.add("processing.guarantee", fmt.Sprintf("expected \"at_least_once\", found %q", p.Guarantee))
	}
	v.positive("processing.max_in_flight_records", p.MaxInFlightRecords)
	if p.MaxInFlightBytes <= 0 {
		v.add("processing.max_in_flight_bytes", "must be positive")
	}
	if p.CommitInterval <= 0 {
		v.add("processing.commit_interval", "must be positive")
	}
	if p.DrainTimeout <= 0 {
		v.add("processing.drain_timeout", "must be positive")
	}
	if p.DrainTimeout >= k.RebalanceTimeout {
		v.add("processing.drain_timeout", fmt.Sprintf("must be shorter than kafka.rebalance_timeout (%v), found %v: revoked partitions are drained inside a rebalance", k.RebalanceTimeout, p.DrainTimeout))
	}
	if p.DecodeWorkers < 0 {
		v.add("processing.decode_workers", "must not be negative")
	}
	return v.err()
}

// Resolve returns p relative to the config file's folder unless absolute.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// Error lists every problem found in one config file.
type Error struct {
	File     string
	Problems []Problem
}

// Problem is one invalid field.
type Problem struct {
	Field   string
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: %s: %s", e.File, p.Field, p.Message)
	}
	return b.String()
}

type validator struct {
	file     string
	problems []Problem
}

func (v *validator) add(field, msg string) {
	v.problems = append(v.problems, Problem{Field: field, Message: msg})
}

func (v *validator) required(field, val string) {
	if strings.TrimSpace(val) == "" {
		v.add(field, "required")
	}
}

func (v *validator) positive(field string, n int) {
	if n <= 0 {
		v.add(field, fmt.Sprintf("must be positive, found %d", n))
	}
}

func (v *validator) oneOf(field, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(field, fmt.Sprintf("expected one of %q, found %q", allowed, val))
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &Error{File: v.file, Problems: v.problems}
}

// AsError reports whether err carries config problems.
func AsError(err error) (*Error, bool) {
	var ce *Error
	ok := errors.As(err, &ce)
	return ce, ok
}
