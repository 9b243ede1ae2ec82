// Package config loads and validates pipeline.yaml: one struct, defaults in
// one place (Default), one validation pass (Validate) whose messages name the
// file, the field and what was expected.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kinfer/kinfer/transform"
)

// DefaultProducerLinger is kafka.producer_linger when unset.
const DefaultProducerLinger = time.Millisecond

// FetchMaxWait is how long kinfer's consumer lets the broker hold a fetch
// that has no data yet (not a setting). franz-go's default, 5s, let one
// such fetch hold back partitions that had data for seconds (seen on a
// new topic under load); 500ms is the Java consumer's default.
const FetchMaxWait = 500 * time.Millisecond

// DefaultFetchMaxBytes and DefaultFetchMaxPartitionBytes are
// kafka.fetch_max_bytes and kafka.fetch_max_partition_bytes when unset.
const (
	DefaultFetchMaxBytes          = 16 << 20
	DefaultFetchMaxPartitionBytes = 1 << 20
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

	Kafka  Kafka  `yaml:"kafka"`
	Schema Schema `yaml:"schema"`
	// Model is a pipeline's one model; Models is a model graph (steps
	// every row passes through in order). Set exactly one; Steps returns
	// the graph either way.
	Model      Model      `yaml:"model"`
	Models     []Model    `yaml:"models"`
	Batch      Batch      `yaml:"batch"`
	Output     Output     `yaml:"output"`
	Processing Processing `yaml:"processing"`
	Metrics    Metrics    `yaml:"metrics"`
	Replay     Replay     `yaml:"replay"`
	// Transform are the preprocessing stages applied to every record
	// between decoding and mapping (docs/transform.md). Default: none.
	Transform transform.Config `yaml:"transform"`
	// TransformArtifacts is the directory `kinfer fit` wrote for
	// Transform (relative to the config file). Required when a stage needs
	// fitting; run, replay and validate refuse a directory that is
	// missing, damaged or fitted for other stages.
	TransformArtifacts string `yaml:"transform_artifacts"`
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
	// FetchMaxBytes caps one fetch response, which bounds what the client
	// buffers ahead of the pipeline. Default 16MiB.
	FetchMaxBytes ByteSize `yaml:"fetch_max_bytes"`
	// FetchMaxPartitionBytes caps the bytes per partition in one fetch.
	// Default 1MiB.
	FetchMaxPartitionBytes ByteSize `yaml:"fetch_max_partition_bytes"`
	// ProducerLinger is how long the producer waits for more records
	// before sending a partition's batch of predictions. Predictions
	// leave in bursts (one per model batch), so a short linger costs
	// little throughput; every millisecond here adds to end-to-end
	// latency at low load. Default 1ms; 0 sends at once.
	ProducerLinger *time.Duration `yaml:"producer_linger"`
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

// Batch controls micro-batching.
type Batch struct {
	// MaxSize is the most rows in one batch. Default 64.
	MaxSize int `yaml:"max_size"`
	// MaxDelay is how long a partial batch waits for more rows. Default 5ms.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxBytes caps a batch's tensor bytes (after padding). Default 8MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Pad lets rows of different lengths share a batch: per model input,
	// which per-row axis is dynamic and how it is padded. Without an entry
	// an input is not padded, and only rows of exactly the same shape
	// share a batch. Default: none.
	Pad map[string]Pad `yaml:"pad"`
	// MaskInput names a model input (int64, [batch, length]) that the
	// batcher generates: 1 at real positions, 0 at padding. It is not
	// mapped from a field. Needs pad. Default "" (none).
	MaskInput string `yaml:"mask_input"`
	// TrimOutputs gives, per model output, the per-row axis that carries
	// the padded length, trimmed back to each row's true length; -1 means
	// never trim. Default: inferred from the model, an output with exactly
	// one dynamic per-row dim is trimmed on that axis.
	TrimOutputs map[string]int `yaml:"trim_outputs"`
}

// Pad says how one input is padded.
type Pad struct {
	// Axis is the dynamic per-row axis (0 = first dim after the batch).
	Axis int `yaml:"axis"`
	// Buckets are ascending lengths; a row is padded to the smallest
	// bucket that holds it and batched only with rows of that bucket.
	// Empty: pad to the longest row in each batch.
	Buckets []int64 `yaml:"buckets"`
	// Value fills padded positions. Default 0.
	Value float64 `yaml:"value"`
	// Truncate cuts rows longer than the largest bucket instead of
	// dead-lettering them (reason row_too_long). Default false.
	Truncate bool `yaml:"truncate"`
}

// Output shapes the prediction record.
type Output struct {
	// PassThrough are input fields copied into each prediction (dotted
	// paths allowed; the output field is the last path element).
	PassThrough []string `yaml:"passthrough"`
}

// Processing sets delivery and resource limits.
type Processing struct {
	// Guarantee is "at_least_once" (default: an offset is committed after
	// its output is acknowledged; a crash may repeat outputs) or
	// "exactly_once" (outputs, dead letters and offsets commit in one Kafka
	// transaction per commit interval; read_committed consumers see each
	// prediction once).
	Guarantee string `yaml:"guarantee"`
	// TransactionalID names this member's transactional producer
	// (exactly_once). Default: "kinfer-<group>-<kafka.instance_id>" when an
	// instance id is set (a restart then fences and aborts the crashed
	// instance's open transaction at once), else
	// "kinfer-<group>-<host>-<pid>" (a crashed instance's open transaction
	// holds back read_committed consumers until transaction_timeout).
	TransactionalID string `yaml:"transactional_id"`
	// TransactionTimeout is how long the broker lets a transaction stay
	// open before aborting it. Default 10s.
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// MaxInFlightRecords caps records fetched but not yet acknowledged;
	// at the cap, fetching waits. Default 10000.
	MaxInFlightRecords int `yaml:"max_in_flight_records"`
	// MaxInFlightBytes caps the input bytes of those records. Default 64MiB.
	MaxInFlightBytes ByteSize `yaml:"max_in_flight_bytes"`
	// CommitInterval is how often acknowledged offsets are committed; with
	// exactly_once, how long one transaction collects records (each cycle
	// ends with a short drain of the pipeline, and predictions become
	// visible to read_committed consumers only at its end, so this is
	// also their added latency). Default 1s, 100ms with exactly_once (as
	// Kafka Streams).
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
	if k.FetchMaxBytes == 0 {
		k.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if k.FetchMaxPartitionBytes == 0 {
		k.FetchMaxPartitionBytes = DefaultFetchMaxPartitionBytes
	}
	if k.ProducerLinger == nil {
		d := DefaultProducerLinger
		k.ProducerLinger = &d
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
	if len(c.Models) > 0 {
		for i := range c.Models {
			c.Models[i].applyDefaults()
		}
	} else {
		c.Model.applyDefaults()
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
		if p.Guarantee == ExactlyOnce {
			p.CommitInterval = 100 * time.Millisecond
		}
	}
	if p.TransactionTimeout == 0 {
		p.TransactionTimeout = 10 * time.Second
	}
	if p.DrainTimeout == 0 {
		p.DrainTimeout = 30 * time.Second
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = "127.0.0.1:9464"
	}
	c.Replay.applyDefaults(c)
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
	if k.ProducerLinger != nil && (*k.ProducerLinger < 0 || *k.ProducerLinger > time.Second) {
		v.add("kafka.producer_linger", fmt.Sprintf("is %s; want a duration from 0 to 1s", *k.ProducerLinger))
	}
	if k.FetchMaxBytes < 1024 || k.FetchMaxPartitionBytes < 1024 {
		v.add("kafka.fetch_max_bytes", "fetch_max_bytes and fetch_max_partition_bytes must be at least 1KiB")
	}
	s := c.Schema
	if s.RegistryURL == "" && s.InputSchemaFile == "" {
		v.add("schema.input_schema_file", "required when schema.registry_url is empty (plain Avro needs the writer schema)")
	}
	v.oneOf("schema.output_encoding", s.OutputEncoding, "wire", "plain")
	if s.OutputEncoding == "wire" && s.RegistryURL == "" {
		v.add("schema.output_encoding", `"wire" needs schema.registry_url to register the output schema`)
	}
	c.validateGraph(v)
	v.batch("batch", c.Batch)
	p := c.Processing
	switch p.Guarantee {
	case AtLeastOnce:
	case ExactlyOnce:
		if p.TransactionTimeout <= p.CommitInterval {
			v.add("processing.transaction_timeout", fmt.Sprintf("must be longer than processing.commit_interval (%v), found %v", p.CommitInterval, p.TransactionTimeout))
		}
	default:
		v.add("processing.guarantee", fmt.Sprintf("expected \"at_least_once\" or \"exactly_once\", found %q", p.Guarantee))
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
	c.Replay.validate(v)
	c.validateTransform(v)
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

func (v *validator) batch(field string, b Batch) {
	v.positive(field+".max_size", b.MaxSize)
	if b.MaxDelay < 0 {
		v.add(field+".max_delay", "must not be negative")
	}
	if b.MaxBytes <= 0 {
		v.add(field+".max_bytes", "must be positive")
	}
	for name, pd := range b.Pad {
		f := field + ".pad." + name
		if pd.Axis < 0 {
			v.add(f+".axis", fmt.Sprintf("must not be negative, found %d", pd.Axis))
		}
		for i, bk := range pd.Buckets {
			if bk <= 0 || (i > 0 && bk <= pd.Buckets[i-1]) {
				v.add(f+".buckets", fmt.Sprintf("must be positive and strictly ascending, found %v", pd.Buckets))
				break
			}
		}
		if pd.Truncate && len(pd.Buckets) == 0 {
			v.add(f+".truncate", "needs buckets (truncation cuts to the largest bucket)")
		}
		if math.IsNaN(pd.Value) || math.IsInf(pd.Value, 0) {
			v.add(f+".value", "must be a finite number")
		}
	}
	if b.MaskInput != "" && len(b.Pad) == 0 {
		v.add(field+".mask_input", "needs pad: a mask marks padded positions")
	}
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
