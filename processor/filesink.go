package processor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/schema"
)

// Output file names of an AvroFileSink: part files hold predictions,
// dead-letter files the records that could not be predicted. Both are
// written as ".NAME.tmp" and renamed once complete.
const (
	partFileFormat       = "part-%05d.avro"
	deadLetterFileFormat = "dead-letters-%05d.avro"
	tempFileFormat       = ".%s.tmp"
)

// outputFileRE matches every file an AvroFileSink writes, final or not.
var outputFileRE = regexp.MustCompile(`^\.?(part|dead-letters)-\d{5,}\.avro(\.tmp)?$`)

// DeadLetterSchema is the Avro schema of dead-letter files: the input
// record unchanged (its key, value and headers), where it came from, and
// why it could not be predicted.
const DeadLetterSchema = `{
  "type": "record", "name": "DeadLetter", "namespace": "kinfer",
  "doc": "An input record kinfer could not predict, with the reason.",
  "fields": [
    {"name": "reason", "type": "string", "doc": "kinfer.reason: decode_error, missing_field, wrong_type, shape_mismatch, nan_forbidden, inference_error, ..."},
    {"name": "error", "type": "string", "doc": "the error text"},
    {"name": "source", "type": "string", "doc": "input topic, or input file path"},
    {"name": "partition", "type": "int", "doc": "input partition, or the input file's index in the job"},
    {"name": "offset", "type": "long", "doc": "input offset, or the record's index in its file"},
    {"name": "key", "type": ["null", "bytes"], "default": null},
    {"name": "value", "type": "bytes", "doc": "the input value, unchanged (for file inputs, Avro binary in the file's writer schema)"},
    {"name": "value_json", "type": ["null", "string"], "default": null, "doc": "the decoded input as JSON, when it decodes"},
    {"name": "headers", "type": {"type": "array", "items": {"type": "record", "name": "Header", "fields": [
      {"name": "key", "type": "string"}, {"name": "value", "type": "bytes"}]}}}
  ]
}`

var deadLetterCodec = func() *goavro.Codec {
	c, err := goavro.NewCodec(DeadLetterSchema)
	if err != nil {
		panic(err)
	}
	return c
}()

// FileSinkConfig configures an AvroFileSink.
type FileSinkConfig struct {
	// Dir receives the files. It must exist.
	Dir string
	// DeadLetterTopic is the topic the engine addresses dead letters to;
	// every other record is a prediction.
	DeadLetterTopic string
	// Schema is the prediction schema (the engine's values are plain Avro
	// binary of it).
	Schema string
	// Codec compresses blocks: schema.OCFNull, OCFDeflate or OCFSnappy.
	Codec string
	// MaxBytes starts a new part once a file reaches it.
	MaxBytes int64
	// Meta is extra metadata for every file's header.
	Meta map[string][]byte
	// FirstPart numbers the first file (a resumed job continues).
	FirstPart int
	// DeadLetters, when set, receives dead letters (a KafkaSink) instead
	// of dead-letter files.
	DeadLetters Sink
	// DescribeValue renders a dead letter's input value as JSON for the
	// value_json field ("" when it does not decode). Optional.
	DescribeValue func(partition int32, value []byte) string
	// Commit records a cut (complete files and the input positions they
	// cover) before the files are renamed to their final names. It must
	// be durable when it returns: a crash after it and before the renames
	// is repaired on resume by RecoverOutputDir.
	Commit func(FileCut) error
}

// FileCut is what one cut made durable.
type FileCut struct {
	// Part is the cut's files; both names are empty when the cut closed
	// no file (only the final one can).
	Part replayPart
	// NextPart numbers the file after this cut.
	NextPart int
	// Positions are, per source partition, the next offset after the last
	// record in this or an earlier cut.
	Positions map[int32]int64
	// Final is set on the cut made by Close.
	Final bool
}

// AvroFileSink writes predictions into size-capped Avro object container
// files (part-00000.avro, ...) and dead letters into dead-letter files
// (dead-letters-00000.avro, ...) beside them, each cut finishing both.
//
// It acknowledges a record as soon as it is in the current file, which
// frees the engine's in-flight budget however large the files are; what
// is durable is tracked here instead: the sink sees each partition's
// records in input order (the engine's reorder buffer), so at a cut every
// record before the last one written per partition is in a complete file.
// Commit is told those positions, and only then are the files renamed.
type AvroFileSink struct {
	cfg FileSinkConfig

	mu        sync.Mutex
	part      int
	out, dlq  *partWriter
	partRecs  int64
	partDead  int64
	positions map[int32]int64
	err       error // sticky: after a failure nothing is cut again

	// Dead letters sent to cfg.DeadLetters and not yet acknowledged.
	dlqMu      sync.Mutex
	dlqCond    *sync.Cond
	dlqPending int
	dlqErr     error
}

// NewAvroFileSink returns a sink writing into cfg.Dir, starting from the
// given positions (a resumed job's).
func NewAvroFileSink(cfg FileSinkConfig, positions map[int32]int64) (*AvroFileSink, error) {
	if cfg.Commit == nil {
		return nil, errors.New("file sink: Commit is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 128 << 20
	}
	if cfg.Codec == "" {
		cfg.Codec = schema.OCFDeflate
	}
	s := &AvroFileSink{cfg: cfg, part: cfg.FirstPart, positions: maps.Clone(positions)}
	if s.positions == nil {
		s.positions = map[int32]int64{}
	}
	s.dlqCond = sync.NewCond(&s.dlqMu)
	return s, nil
}

// partWriter is one output file being written under its temporary name.
type partWriter struct {
	f     *os.File
	bw    *bufio.Writer
	w     *schema.OCFWriter
	tmp   string
	final string
}

func (s *AvroFileSink) open(format, schemaJSON string) (*partWriter, error) {
	name := fmt.Sprintf(format, s.part)
	pw := &partWriter{final: filepath.Join(s.cfg.Dir, name), tmp: filepath.Join(s.cfg.Dir, fmt.Sprintf(tempFileFormat, name))}
	f, err := os.OpenFile(pw.tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	pw.f = f
	pw.bw = bufio.NewWriterSize(f, 1<<20)
	if pw.w, err = schema.NewOCFWriter(pw.bw, schemaJSON, s.cfg.Codec, s.cfg.Meta); err != nil {
		f.Close()
		return nil, err
	}
	return pw, nil
}

// finish flushes, syncs and closes the temporary file.
func (pw *partWriter) finish() error {
	err := pw.w.Flush()
	if err == nil {
		err = pw.bw.Flush()
	}
	if err == nil {
		err = pw.f.Sync()
	}
	if cerr := pw.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Write implements Sink.
func (s *AvroFileSink) Write(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	p, off, err := sourcePosition(rec)
	if err != nil {
		done(rec, err)
		return
	}
	dead := rec.Topic == s.cfg.DeadLetterTopic
	if dead && s.cfg.DeadLetters != nil {
		s.mu.Lock()
		if err := s.err; err != nil {
			s.mu.Unlock()
			done(rec, err)
			return
		}
		s.dlqMu.Lock()
		s.dlqPending++
		s.dlqMu.Unlock()
		s.positions[p] = off + 1
		s.mu.Unlock()
		s.cfg.DeadLetters.Write(ctx, rec, func(r *kgo.Record, err error) {
			s.dlqMu.Lock()
			s.dlqPending--
			if err != nil && s.dlqErr == nil {
				s.dlqErr = fmt.Errorf("writing a dead letter to %s: %w", r.Topic, err)
			}
			s.dlqCond.Broadcast()
			s.dlqMu.Unlock()
			done(r, err)
		})
		return
	}
	s.mu.Lock()
	err = s.append(rec, dead, p, off)
	if err == nil && s.out != nil && s.out.w.Size() >= s.cfg.MaxBytes {
		err = s.cutLocked(false)
	}
	s.mu.Unlock()
	done(rec, err)
}

func (s *AvroFileSink) append(rec *kgo.Record, dead bool, p int32, off int64) error {
	if s.err != nil {
		return s.err
	}
	var err error
	if dead {
		if s.dlq == nil {
			if s.dlq, err = s.open(deadLetterFileFormat, DeadLetterSchema); err != nil {
				return s.fail(err)
			}
		}
		b, err := s.deadLetterValue(rec, p, off)
		if err != nil {
			return s.fail(err)
		}
		if err := s.dlq.w.Append(b); err != nil {
			return s.fail(err)
		}
		s.partDead++
	} else {
		if s.out == nil {
			if s.out, err = s.open(partFileFormat, s.cfg.Schema); err != nil {
				return s.fail(err)
			}
		}
		if err := s.out.w.Append(rec.Value); err != nil {
			return s.fail(err)
		}
		s.partRecs++
	}
	s.positions[p] = off + 1
	return nil
}

func (s *AvroFileSink) fail(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("writing output files in %s: %w", s.cfg.Dir, err)
	}
	return s.err
}

func (s *AvroFileSink) deadLetterValue(rec *kgo.Record, p int32, off int64) ([]byte, error) {
	source, _ := HeaderValue(rec, HeaderSourceTopic)
	reason, _ := HeaderValue(rec, HeaderReason)
	msg, _ := HeaderValue(rec, HeaderError)
	headers := []any{}
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderReason, HeaderError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset:
			continue
		}
		headers = append(headers, map[string]any{"key": h.Key, "value": h.Value})
	}
	var key, js any
	if rec.Key != nil {
		key = goavro.Union("bytes", rec.Key)
	}
	if s.cfg.DescribeValue != nil {
		if j := s.cfg.DescribeValue(p, rec.Value); j != "" {
			js = goavro.Union("string", j)
		}
	}
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	return deadLetterCodec.BinaryFromNative(nil, map[string]any{
		"reason": reason, "error": msg, "source": source, "partition": p, "offset": off,
		"key": key, "value": value, "value_json": js, "headers": headers,
	})
}

// cutLocked finishes the current files, has Commit record them with the
// positions they cover, and renames them to their final names.
func (s *AvroFileSink) cutLocked(final bool) error {
	if s.err != nil {
		return s.err
	}
	if s.out == nil && s.dlq == nil && !final {
		return nil
	}
	if s.cfg.DeadLetters != nil {
		s.dlqMu.Lock()
		for s.dlqPending > 0 {
			s.dlqCond.Wait()
		}
		err := s.dlqErr
		s.dlqMu.Unlock()
		if err != nil {
			return s.fail(err)
		}
	}
	cut := FileCut{Final: final, NextPart: s.part}
	var files []*partWriter
	for _, pw := range []*partWriter{s.out, s.dlq} {
		if pw == nil {
			continue
		}
		if err := pw.finish(); err != nil {
			return s.fail(err)
		}
		files = append(files, pw)
	}
	if len(files) > 0 {
		cut.NextPart = s.part + 1
		cut.Part = replayPart{Records: s.partRecs, DeadLettered: s.partDead}
		if s.out != nil {
			cut.Part.File = filepath.Base(s.out.final)
		}
		if s.dlq != nil {
			cut.Part.DeadLetters = filepath.Base(s.dlq.final)
		}
	}
	cut.Positions = maps.Clone(s.positions)
	if err := s.cfg.Commit(cut); err != nil {
		return s.fail(err)
	}
	for _, pw := range files {
		if err := os.Rename(pw.tmp, pw.final); err != nil {
			return s.fail(err)
		}
	}
	if len(files) > 0 {
		if err := syncDir(s.cfg.Dir); err != nil {
			return s.fail(err)
		}
	}
	s.out, s.dlq = nil, nil
	s.part = cut.NextPart
	s.partRecs, s.partDead = 0, 0
	return nil
}

// Close makes everything written durable with a final cut. After a
// failure it cuts nothing and returns the failure; the unfinished
// temporary files are removed by the next RecoverOutputDir.
func (s *AvroFileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.cutLocked(true)
	s.abandonLocked()
	return err
}

// Abandon closes the current temporary files without cutting.
func (s *AvroFileSink) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abandonLocked()
}

func (s *AvroFileSink) abandonLocked() {
	for _, pw := range []*partWriter{s.out, s.dlq} {
		if pw != nil {
			pw.f.Close()
		}
	}
	s.out, s.dlq = nil, nil
	if s.err == nil {
		s.err = errors.New("file sink closed")
	}
}

// sourcePosition reads the input partition and offset the engine stamps
// on every output.
func sourcePosition(rec *kgo.Record) (int32, int64, error) {
	ps, ok1 := HeaderValue(rec, HeaderSourcePartition)
	offs, ok2 := HeaderValue(rec, HeaderSourceOffset)
	p, err1 := strconv.ParseInt(ps, 10, 32)
	off, err2 := strconv.ParseInt(offs, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return 0, 0, errors.New("output record has no source position headers")
	}
	return int32(p), off, nil
}

// RecoverOutputDir repairs an output directory after a crash, given the
// complete parts the checkpoint lists: a listed file that is still under
// its temporary name (the crash fell between the checkpoint and the
// rename) is renamed; every other temporary file is an unfinished part
// and is deleted, since the checkpoint's positions do not cover it. Part
// files the checkpoint does not list are an error: they would duplicate
// records when the job continues.
func RecoverOutputDir(dir string, parts []replayPart) error {
	listed := map[string]bool{}
	for _, p := range parts {
		for _, name := range []string{p.File, p.DeadLetters} {
			if name == "" {
				continue
			}
			listed[name] = true
			final := filepath.Join(dir, name)
			if _, err := os.Stat(final); err == nil {
				continue
			}
			tmp := filepath.Join(dir, fmt.Sprintf(tempFileFormat, name))
			if _, err := os.Stat(tmp); err != nil {
				return fmt.Errorf("output file %s is listed in the checkpoint but missing", final)
			}
			if err := os.Rename(tmp, final); err != nil {
				return err
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !outputFileRE.MatchString(name) {
			continue
		}
		if filepath.Ext(name) == ".tmp" {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
			continue
		}
		if !listed[name] {
			return fmt.Errorf("output file %s is not in the checkpoint; remove it or use another output directory", filepath.Join(dir, name))
		}
	}
	return syncDir(dir)
}

// outputFilesIn lists the files an AvroFileSink wrote (or started) in dir.
func outputFilesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if outputFileRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
