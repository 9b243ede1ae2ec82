package config

import (
	"strings"
	"testing"
	"time"
)

const minimal = `
kafka: {group: g, input_topic: in, output_topic: out}
schema: {input_schema_file: s.avsc}
model:
  name: m
  path: m.onnx
  inputs: [{tensor: x, fields: [a, b], dtype: float32}]
`

func TestDefaults(t *testing.T) {
	c, err := Parse("p.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"dead letter topic", c.Kafka.DeadLetterTopic, "in.dlq"},
		{"start offset", c.Kafka.StartOffset, "earliest"},
		{"output encoding", c.Schema.OutputEncoding, "plain"},
		{"output subject", c.Schema.OutputSubject, "out-value"},
		{"copies", c.Model.Copies, 1},
		{"shape from fields", len(c.Model.Inputs[0].Shape), 1},
		{"encoding", c.Model.Inputs[0].Encoding, "value"},
		{"max size", c.Batch.MaxSize, 64},
		{"max delay", c.Batch.MaxDelay, 5 * time.Millisecond},
		{"max bytes", c.Batch.MaxBytes, ByteSize(8 << 20)},
		{"guarantee", c.Processing.Guarantee, AtLeastOnce},
		{"commit interval", c.Processing.CommitInterval, time.Second},
		{"metrics listen", c.Metrics.Listen, "127.0.0.1:9464"},
		{"producer linger", *c.Kafka.ProducerLinger, time.Millisecond},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// producer_linger: 0 is a value (send at once), not "unset".
	for yaml, want := range map[string]time.Duration{"0s": 0, "20ms": 20 * time.Millisecond} {
		lc, err := Parse("p.yaml", []byte(strings.Replace(minimal, "output_topic: out}", "output_topic: out, producer_linger: "+yaml+"}", 1)))
		if err != nil {
			t.Fatalf("producer_linger %s: %v", yaml, err)
		}
		if *lc.Kafka.ProducerLinger != want {
			t.Errorf("producer_linger %s: got %v, want %v", yaml, *lc.Kafka.ProducerLinger, want)
		}
	}
	if c.Resolve("m.onnx") != "m.onnx" {
		t.Errorf("resolve relative to the config's folder: %q", c.Resolve("m.onnx"))
	}
	reg, err := Parse("dir/p.yaml", []byte(strings.Replace(minimal, "input_schema_file: s.avsc", "registry_url: http://r", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Schema.OutputEncoding != "wire" || reg.Resolve("m.onnx") != "dir/m.onnx" {
		t.Errorf("registry defaults: %q %q", reg.Schema.OutputEncoding, reg.Resolve("m.onnx"))
	}
}

// Every bad value is reported with the file, the field and what was
// expected, all problems at once.
func TestValidationMessages(t *testing.T) {
	cases := []struct {
		name, replace, with string
		want                []string
	}{
		{"missing group", "group: g, ", "", []string{"p.yaml: kafka.group: required"}},
		{"bad dtype", "dtype: float32", "dtype: flot32", []string{`p.yaml: model.inputs[0].dtype: unknown dtype "flot32" (expected one of float32`}},
		{"output equals input", "output_topic: out", "output_topic: in", []string{"kafka.output_topic: must differ from kafka.input_topic"}},
		{"no schema", "schema: {input_schema_file: s.avsc}", "", []string{"schema.input_schema_file: required when schema.registry_url is empty"}},
		{"field and fields", "fields: [a, b]", "fields: [a, b], field: c", []string{"model.inputs[0]: set exactly one of field, fields and from"}},
		{"shape vs fields", "dtype: float32", "dtype: float32, shape: [3]", []string{"model.inputs[0].shape: expected [2] for 2 stacked fields, found [3]"}},
		{"unknown field", "path: m.onnx", "path: m.onnx\n  pth: x", []string{"p.yaml: yaml: unmarshal errors", "field pth not found"}},
		{"transaction shorter than its cycle", "kafka:", "processing: {guarantee: exactly_once, commit_interval: 20s}\nkafka:", []string{`processing.transaction_timeout: must be longer than processing.commit_interval (20s), found 10s`}},
		{"unknown guarantee", "kafka:", "processing: {guarantee: at_most_once}\nkafka:", []string{`processing.guarantee: expected "at_least_once" or "exactly_once", found "at_most_once"`}},
		{"bad byte size", "kafka:", "batch: {max_bytes: lots}\nkafka:", []string{`"lots" is not a byte size`}},
		{"bad provider", "path: m.onnx", "path: m.onnx\n  provider: tpu", []string{`model.provider: expected one of ["cpu" "cuda" "tensorrt"], found "tpu"`}},
		{"linger too long", "output_topic: out}", "output_topic: out, producer_linger: 2s}", []string{"p.yaml: kafka.producer_linger: is 2s; want a duration from 0 to 1s"}},
		{"two problems at once", "group: g, input_topic: in, ", "", []string{"p.yaml: kafka.group: required\np.yaml: kafka.input_topic: required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(minimal, tc.replace, tc.with, 1)
			if src == minimal {
				t.Fatalf("replacement %q did not apply", tc.replace)
			}
			_, err := Parse("p.yaml", []byte(src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "64KiB": 64 << 10, "8MiB": 8 << 20, "1GiB": 1 << 30, "2 MB": 2 << 20, "10B": 10} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5MiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const graph = `
kafka: {group: g, input_topic: in, output_topic: out}
schema: {input_schema_file: s.avsc}
models:
  - name: enc
    path: enc.onnx
    inputs: [{tensor: ids, field: tokens, dtype: int64, shape: [-1]}]
  - name: cls
    path: cls.onnx
    inputs: [{tensor: emb, from: enc.embedding}]
    post: [{op: argmax, tensor: probs, field: label, labels: [a, b]}]
`

func TestGraphValidation(t *testing.T) {
	c, err := Parse("g.yaml", []byte(graph))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Steps()) != 2 || c.StepField(1) != "models[1]" || c.OutputField(1, "probs") != "cls_probs" {
		t.Fatalf("steps %d, field %s, output %s", len(c.Steps()), c.StepField(1), c.OutputField(1, "probs"))
	}
	cases := []struct{ name, old, new, want string }{
		{"edge to a later step", "from: enc.embedding", "from: cls.embedding", `models[1].inputs[0].from: expected "<step>.<output>" naming an earlier step, found "cls.embedding"`},
		{"edge without an output", "from: enc.embedding", "from: enc", `models[1].inputs[0].from: expected "<step>.<output>"`},
		{"duplicate step", "name: cls", "name: enc", `models[1].name: "enc" is also the name of models[0]`},
		{"both model and models", "kafka:", "model: {name: x, path: x.onnx}\nkafka:", "set either model (one model) or models (a graph), not both"},
		{"one variant", "    path: cls.onnx\n", "    variants: [{name: v1, path: a.onnx, weight: 1}]\n", "an A/B split needs at least two variants"},
		{"path and per_key", "    path: cls.onnx\n", "    path: cls.onnx\n    per_key: {field: k, path: \"m/{key}.onnx\"}\n", "set one of path/url (one model), variants (A/B) and per_key"},
		{"per_key without {key}", "    path: cls.onnx\n", "    per_key: {field: k, path: m.onnx}\n", `models[1].per_key.path: must contain {key}`},
		{"threshold labels", "op: argmax", "op: threshold", ""},
		{"bad post op", "op: argmax", "op: argmin", `models[1].post[0].op: expected one of`},
		{"field collision", "field: label", "field: ids", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(graph, tc.old, tc.new, 1)
			_, err := Parse("g.yaml", []byte(src))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nlacks %q", err, tc.want)
			}
		})
	}
}
