package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePosition(t *testing.T) {
	ts := time.Date(2025, 5, 1, 12, 30, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want Position
		err  string
	}{
		{in: "earliest", want: Position{Kind: PosEarliest}},
		{in: "end", want: Position{Kind: PosEnd}},
		{in: "latest", want: Position{Kind: PosEnd}},
		{in: "1200", want: Position{Kind: PosOffset, Offset: 1200}},
		{in: " 0 ", want: Position{Kind: PosOffset}},
		{in: "2025-05-01T12:30:00Z", want: Position{Kind: PosTime, Time: ts}},
		{in: "2025-05-01T14:30:00+02:00", want: Position{Kind: PosTime, Time: ts}},
		{in: "0:100,3:250", want: Position{Kind: PosPartitions, Partitions: map[int32]int64{0: 100, 3: 250}}},
		{in: "2:7", want: Position{Kind: PosPartitions, Partitions: map[int32]int64{2: 7}}},
		{in: "-5", err: "negative"},
		{in: "0:100,0:200", err: "twice"},
		{in: "0:x", err: "partition:offset"},
		{in: "0:-1", err: "partition:offset"},
		{in: "yesterday", err: "expected earliest, end"},
		{in: "2025-05-01", err: "expected earliest, end"},
	}
	for _, c := range cases {
		got, err := ParsePosition(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParsePosition(%q) error %v, want one saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePosition(%q): %v", c.in, err)
			continue
		}
		if got.Kind != c.want.Kind || got.Offset != c.want.Offset || !got.Time.Equal(c.want.Time) || len(got.Partitions) != len(c.want.Partitions) {
			t.Errorf("ParsePosition(%q) = %+v, want %+v", c.in, got, c.want)
		}
		for p, o := range c.want.Partitions {
			if got.Partitions[p] != o {
				t.Errorf("ParsePosition(%q) partition %d = %d, want %d", c.in, p, got.Partitions[p], o)
			}
		}
		if again, err := ParsePosition(got.String()); err != nil || again.Kind != got.Kind {
			t.Errorf("String() of %q = %q does not parse back: %v", c.in, got.String(), err)
		}
	}
}

const replayBase = `kafka:
  group: g
  input_topic: in
  output_topic: out
schema:
  input_schema_file: in.avsc
model:
  name: m
  path: m.onnx
  inputs:
    - tensor: x
      field: x
      dtype: float32
`

func TestReplayDefaults(t *testing.T) {
	c, err := Parse("/etc/kinfer/pipeline.yaml", []byte(replayBase))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Replay
	if r.Topic != "in" || r.From != "earliest" || r.To != "end" || r.OutputFileMaxBytes != 128<<20 || r.OutputCodec != "deflate" ||
		r.CheckpointInterval != 5*time.Second || r.MaxFailures != nil || r.BatchMaxDelay != 100*time.Millisecond || r.ParallelFiles != 4 {
		t.Fatalf("defaults: %+v", r)
	}
	if r.DeadLetterMode() != DeadLetterTopic {
		t.Fatalf("dead letters without output_dir go to %q", r.DeadLetterMode())
	}
	if got := c.CheckpointPath(); got != "/etc/kinfer/replay-in-out.checkpoint.json" {
		t.Fatalf("checkpoint path %q", got)
	}
	c, err = Parse("/etc/kinfer/pipeline.yaml", []byte(replayBase+"replay:\n  output_dir: out\n  max_failures: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Replay.DeadLetterMode() != DeadLetterFile || *c.Replay.MaxFailures != 0 {
		t.Fatalf("with output_dir: %+v", c.Replay)
	}
	if got := c.CheckpointPath(); got != filepath.Join("/etc/kinfer/out", "_kinfer_checkpoint.json") {
		t.Fatalf("checkpoint path %q", got)
	}
}

func TestReplayValidation(t *testing.T) {
	cases := map[string]string{
		"  from: end\n":                       "replay.from: \"end\" would replay nothing",
		"  to: earliest\n":                    "replay.to: \"earliest\" would replay nothing",
		"  from: soon\n":                      "replay.from: \"soon\": expected",
		"  output_codec: zstd\n":              "replay.output_codec",
		"  dead_letter: file\n":               "replay.dead_letter: \"file\" needs replay.output_dir",
		"  dead_letter: nowhere\n":            "replay.dead_letter",
		"  max_failures: -1\n":                "replay.max_failures: must not be negative",
		"  output_file_max_bytes: 100\n":      "replay.output_file_max_bytes: must be at least 1KiB",
		"  partitions: [-1]\n":                "replay.partitions",
		"  input_files: \"[\"\n":              "replay.input_files",
		"  checkpoint_interval: -1s\n":        "replay.checkpoint_interval",
		"  parallel_files: -2\n":              "replay.parallel_files",
		"  to: \"0:10,bad\"\n":                "replay.to",
		"  unknown_field: 1\n":                "unknown_field",
		"  output_dir: o\n  dead_letter: x\n": "replay.dead_letter",
	}
	for replay, want := range cases {
		_, err := Parse("p.yaml", []byte(replayBase+"replay:\n"+replay))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("replay:\n%s: error %v, want one saying %q", replay, err, want)
		}
	}
}
