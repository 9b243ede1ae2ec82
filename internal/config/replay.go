package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Replay configures `kinfer replay`: the same pipeline run as a bounded
// batch job over a slice of a topic or over Avro object container files,
// writing to the output topic or to Avro files. Flags of `kinfer replay`
// override these fields. Relative paths are relative to the config file.
type Replay struct {
	// Topic is the topic to replay. Default: kafka.input_topic.
	Topic string `yaml:"topic"`
	// Partitions limits the replay to these partitions. Default: all.
	Partitions []int32 `yaml:"partitions"`
	// From is where each partition's slice starts (inclusive): "earliest"
	// (default), an offset ("1200", the same on every partition), offsets
	// per partition ("0:1200,3:900"; unlisted partitions start at the
	// earliest offset), or an RFC 3339 time ("2025-05-01T00:00:00Z": the
	// first record stamped at or after it).
	From string `yaml:"from"`
	// To is where each slice ends (exclusive): "end" (default: the end
	// offsets seen when the job starts, so it terminates while producers
	// keep writing), an offset, offsets per partition (unlisted
	// partitions end at "end"), or an RFC 3339 time (records stamped
	// before it). An end past the partition's end is cut to it.
	To string `yaml:"to"`
	// InputFiles is a glob of Avro object container files (codec null,
	// deflate or snappy) to read instead of a topic. Each file is read in
	// order, as one partition; files run in parallel. Records are read
	// with the file's own writer schema and mapped by field name.
	// Default "" (read the topic).
	InputFiles string `yaml:"input_files"`
	// OutputDir receives the predictions as Avro object container files
	// part-00000.avro, part-00001.avro, ... instead of kafka.output_topic.
	// A file appears under its final name only once complete (written
	// under a temporary name, synced, then renamed). Default "" (write
	// to the output topic).
	OutputDir string `yaml:"output_dir"`
	// OutputFileMaxBytes starts a new part file once one reaches this
	// size. Default 128MiB.
	OutputFileMaxBytes ByteSize `yaml:"output_file_max_bytes"`
	// OutputCodec compresses output files: "null", "deflate" (default) or
	// "snappy".
	OutputCodec string `yaml:"output_codec"`
	// DeadLetter is where records that cannot be predicted go: "file"
	// (dead-letters-NNNNN.avro beside the part files, with the reason) or
	// "topic" (kafka.dead_letter_topic, as in streaming). Default: "file"
	// with output_dir, "topic" otherwise.
	DeadLetter string `yaml:"dead_letter"`
	// Checkpoint is the file that records the job's progress, so that
	// `kinfer replay --resume` continues a stopped or killed job. Default:
	// _kinfer_checkpoint.json in output_dir, or
	// replay-<input>-<output_topic>.checkpoint.json beside the config file.
	Checkpoint string `yaml:"checkpoint"`
	// CheckpointInterval is how often progress is saved when writing to a
	// topic. File outputs save it each time a part file is complete.
	// Default 5s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// MaxFailures stops the job (exit status 1) once more than this many
	// records have been dead-lettered. Default: no limit.
	MaxFailures *int64 `yaml:"max_failures"`
	// BatchMaxDelay replaces batch.max_delay for replays: throughput
	// over latency, so batches leave full. Default 100ms.
	BatchMaxDelay time.Duration `yaml:"batch_max_delay"`
	// ParallelFiles is how many input files are read at once. Default 4.
	ParallelFiles int `yaml:"parallel_files"`
	// ProgressInterval is how often a progress line is logged when the
	// output is not a terminal (a terminal gets a progress bar). Default
	// 10s.
	ProgressInterval time.Duration `yaml:"progress_interval"`
}

// Dead-letter destinations for replay.dead_letter.
const (
	DeadLetterFile  = "file"
	DeadLetterTopic = "topic"
)

func (r *Replay) applyDefaults(c *Config) {
	if r.Topic == "" {
		r.Topic = c.Kafka.InputTopic
	}
	if r.From == "" {
		r.From = "earliest"
	}
	if r.To == "" {
		r.To = "end"
	}
	if r.OutputFileMaxBytes == 0 {
		r.OutputFileMaxBytes = 128 << 20
	}
	if r.OutputCodec == "" {
		r.OutputCodec = "deflate"
	}
	if r.CheckpointInterval == 0 {
		r.CheckpointInterval = 5 * time.Second
	}
	if r.BatchMaxDelay == 0 {
		r.BatchMaxDelay = 100 * time.Millisecond
	}
	if r.ParallelFiles == 0 {
		r.ParallelFiles = 4
	}
	if r.ProgressInterval == 0 {
		r.ProgressInterval = 10 * time.Second
	}
}

func (r *Replay) validate(v *validator) {
	from, err := ParsePosition(r.From)
	if err != nil {
		v.add("replay.from", err.Error())
	} else if from.Kind == PosEnd {
		v.add("replay.from", `"end" would replay nothing; expected earliest, an offset, partition:offset pairs or a time`)
	}
	to, err := ParsePosition(r.To)
	if err != nil {
		v.add("replay.to", err.Error())
	} else if to.Kind == PosEarliest {
		v.add("replay.to", `"earliest" would replay nothing; expected end, an offset, partition:offset pairs or a time`)
	}
	for _, p := range r.Partitions {
		if p < 0 {
			v.add("replay.partitions", fmt.Sprintf("partitions are not negative, found %d", p))
		}
	}
	if r.InputFiles != "" {
		if _, err := filepath.Match(r.InputFiles, ""); err != nil {
			v.add("replay.input_files", fmt.Sprintf("%q is not a valid glob: %v", r.InputFiles, err))
		}
	}
	if r.OutputFileMaxBytes < 1024 {
		v.add("replay.output_file_max_bytes", fmt.Sprintf("must be at least 1KiB, found %d", r.OutputFileMaxBytes))
	}
	v.oneOf("replay.output_codec", r.OutputCodec, "null", "deflate", "snappy")
	if r.DeadLetter != "" {
		v.oneOf("replay.dead_letter", r.DeadLetter, DeadLetterFile, DeadLetterTopic)
		if r.DeadLetter == DeadLetterFile && r.OutputDir == "" {
			v.add("replay.dead_letter", `"file" needs replay.output_dir (dead-letter files are written beside the part files)`)
		}
	}
	if r.CheckpointInterval <= 0 {
		v.add("replay.checkpoint_interval", "must be positive")
	}
	if r.MaxFailures != nil && *r.MaxFailures < 0 {
		v.add("replay.max_failures", fmt.Sprintf("must not be negative, found %d (leave it out for no limit)", *r.MaxFailures))
	}
	if r.BatchMaxDelay < 0 {
		v.add("replay.batch_max_delay", "must not be negative")
	}
	v.positive("replay.parallel_files", r.ParallelFiles)
	if r.ProgressInterval <= 0 {
		v.add("replay.progress_interval", "must be positive")
	}
}

// DeadLetterMode returns where dead letters go: replay.dead_letter, or
// its default for the output.
func (r *Replay) DeadLetterMode() string {
	if r.DeadLetter != "" {
		return r.DeadLetter
	}
	if r.OutputDir != "" {
		return DeadLetterFile
	}
	return DeadLetterTopic
}

// CheckpointPath returns the checkpoint file of c's replay, resolved.
func (c *Config) CheckpointPath() string {
	r := &c.Replay
	switch {
	case r.Checkpoint != "":
		return c.Resolve(r.Checkpoint)
	case r.OutputDir != "":
		return filepath.Join(c.Resolve(r.OutputDir), "_kinfer_checkpoint.json")
	}
	in := r.Topic
	if r.InputFiles != "" {
		in = "files"
	}
	name := fmt.Sprintf("replay-%s-%s.checkpoint.json", safeName(in), safeName(c.Kafka.OutputTopic))
	if c.File == "" {
		return name
	}
	return filepath.Join(filepath.Dir(c.File), name)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == '*' || r == '?' {
			return '_'
		}
		return r
	}, s)
}

// Position kinds.
const (
	PosEarliest   = "earliest"
	PosEnd        = "end"
	PosOffset     = "offset"
	PosTime       = "time"
	PosPartitions = "partitions"
)

// Position is a parsed replay.from or replay.to.
type Position struct {
	// Kind is one of the Pos constants.
	Kind string
	// Offset applies to every partition (PosOffset).
	Offset int64
	// Time is the record timestamp bound (PosTime).
	Time time.Time
	// Partitions maps partitions to offsets (PosPartitions); other
	// partitions take the default bound (earliest for from, end for to).
	Partitions map[int32]int64
}

// ParsePosition parses "earliest", "end" (or "latest"), an offset, a list
// of partition:offset pairs, or an RFC 3339 time.
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "earliest", "start":
		return Position{Kind: PosEarliest}, nil
	case "end", "latest":
		return Position{Kind: PosEnd}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return Position{}, fmt.Errorf("offset %d is negative", n)
		}
		return Position{Kind: PosOffset, Offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Position{Kind: PosTime, Time: t}, nil
	}
	if strings.Contains(s, ":") && !strings.ContainsAny(s, "TZ") {
		pos := Position{Kind: PosPartitions, Partitions: map[int32]int64{}}
		for _, pair := range strings.Split(s, ",") {
			ps, offs, ok := strings.Cut(strings.TrimSpace(pair), ":")
			p, perr := strconv.ParseInt(ps, 10, 32)
			off, oerr := strconv.ParseInt(offs, 10, 64)
			if !ok || perr != nil || oerr != nil || p < 0 || off < 0 {
				return Position{}, fmt.Errorf("%q: expected partition:offset pairs like 0:1200,1:900", pair)
			}
			if _, dup := pos.Partitions[int32(p)]; dup {
				return Position{}, fmt.Errorf("partition %d is listed twice", p)
			}
			pos.Partitions[int32(p)] = off
		}
		return pos, nil
	}
	return Position{}, fmt.Errorf("%q: expected earliest, end, an offset, partition:offset pairs (0:1200,1:900) or an RFC 3339 time (2025-05-01T00:00:00Z)", s)
}

// String is the canonical text of p.
func (p Position) String() string {
	switch p.Kind {
	case PosOffset:
		return strconv.FormatInt(p.Offset, 10)
	case PosTime:
		return p.Time.Format(time.RFC3339Nano)
	case PosPartitions:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(p.Partitions)) {
			parts = append(parts, fmt.Sprintf("%d:%d", k, p.Partitions[k]))
		}
		return strings.Join(parts, ",")
	}
	return p.Kind
}
