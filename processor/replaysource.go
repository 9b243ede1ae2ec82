package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
)

// replaySource feeds a bounded slice to the engine: each partition's (or
// file's) records in order, through submit, from one goroutine. run
// returns nil once every partition reached its end.
type replaySource interface {
	run(ctx context.Context, submit func(ctx context.Context, p int32, recs []*kgo.Record) error) error
}

// submitChunk is the number of records a topic poll or a file block hands
// over at once; it bounds what sources buffer ahead of the engine.
const submitChunk = 4096

// topicSource reads offsets [from, end) of each partition of a topic with
// a group-less client, so no consumer group's offsets change.
type topicSource struct {
	topic string
	from  map[int32]int64
	end   map[int32]int64
	opts  []kgo.Opt
	log   *slog.Logger
}

func (s *topicSource) run(ctx context.Context, submit func(context.Context, int32, []*kgo.Record) error) error {
	offsets := map[int32]kgo.Offset{}
	for p, off := range s.from {
		if off < s.end[p] {
			offsets[p] = kgo.NewOffset().At(off)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	opts := append(slices.Clone(s.opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too; seeing
		// them tells a partition whose last offsets are markers that it
		// has reached its end.
		kgo.KeepControlRecords(),
		// An offset deleted by retention mid-job is an error, not a
		// silent jump that would skip records of the slice.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating the replay consumer: %w", err)
	}
	defer cl.Close()
	done := map[int32]bool{}
	pending := len(offsets)
	finish := func(p int32) {
		done[p] = true
		pending--
		cl.PauseFetchPartitions(map[string][]int32{s.topic: {p}})
	}
	for pending > 0 {
		fs := cl.PollRecords(ctx, submitChunk)
		if err := ctx.Err(); err != nil {
			return err
		}
		if fs.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled):
			case errors.Is(err, kerr.OffsetOutOfRange):
				fatal = fmt.Errorf("reading %s/%d: offsets of the slice are gone (deleted by retention?): %w", t, p, err)
			case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnknownTopicOrPartition):
				fatal = fmt.Errorf("reading %s/%d: %w", t, p, err)
			default:
				s.log.Warn("fetch error; retrying", "topic", t, "partition", p, "err", err)
			}
		})
		if fatal != nil {
			return fatal
		}
		var serr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			p := fp.Partition
			if serr != nil || done[p] || fp.Topic != s.topic {
				return
			}
			end := s.end[p]
			// The partition's records in the slice, in one hand-over.
			take := make([]*kgo.Record, 0, len(fp.Records))
			last := false
			for _, rec := range fp.Records {
				if rec.Offset >= end {
					last = true
					break
				}
				if !rec.Attrs.IsControl() {
					take = append(take, rec)
				}
				if rec.Offset >= end-1 {
					last = true
					break
				}
			}
			if len(take) > 0 {
				if serr = submit(ctx, p, take); serr != nil {
					return
				}
			}
			if last {
				finish(p)
			}
		})
		if serr != nil {
			return serr
		}
	}
	return nil
}

// resolveTopicRanges turns replay.from/to into offsets [start, end) per
// partition, against the offsets the topic has now: ends are the last
// stable offsets (what a read_committed reader can reach), so the job has
// a fixed size even while producers keep appending.
func resolveTopicRanges(ctx context.Context, adm *kadm.Client, topic string, only []int32, from, to config.Position, log *slog.Logger) (map[int32]offsetRange, error) {
	listed := func(what string, l kadm.ListedOffsets, err error) (map[int32]int64, error) {
		if err != nil {
			return nil, fmt.Errorf("listing %s offsets of %s: %w", what, topic, err)
		}
		if err := l.Error(); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("topic %q does not exist", topic)
			}
			return nil, fmt.Errorf("listing %s offsets of %s: %w", what, topic, err)
		}
		out := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic && o.Partition >= 0 {
				out[o.Partition] = o.Offset
			}
		})
		return out, nil
	}
	l, err := adm.ListStartOffsets(ctx, topic)
	starts, err := listed("start", l, err)
	if err != nil {
		return nil, err
	}
	if len(starts) == 0 {
		return nil, fmt.Errorf("topic %q does not exist", topic)
	}
	l, err = adm.ListCommittedOffsets(ctx, topic)
	ends, err := listed("end", l, err)
	if err != nil {
		return nil, err
	}
	atTime := func(pos config.Position) (map[int32]int64, error) {
		if pos.Kind != config.PosTime {
			return nil, nil
		}
		l, err := adm.ListOffsetsAfterMilli(ctx, pos.Time.UnixMilli(), topic)
		return listed("time", l, err)
	}
	fromTime, err := atTime(from)
	if err != nil {
		return nil, err
	}
	toTime, err := atTime(to)
	if err != nil {
		return nil, err
	}
	for _, pos := range []config.Position{from, to} {
		for p := range pos.Partitions {
			if _, ok := starts[p]; !ok {
				return nil, fmt.Errorf("topic %q has no partition %d", topic, p)
			}
		}
	}
	for _, p := range only {
		if _, ok := starts[p]; !ok {
			return nil, fmt.Errorf("topic %q has no partition %d", topic, p)
		}
	}
	out := map[int32]offsetRange{}
	for p, lo := range starts {
		if len(only) > 0 && !slices.Contains(only, p) {
			continue
		}
		hi := ends[p]
		r := offsetRange{Start: lo, End: hi}
		switch from.Kind {
		case config.PosOffset:
			r.Start = from.Offset
		case config.PosPartitions:
			if v, ok := from.Partitions[p]; ok {
				r.Start = v
			}
		case config.PosTime:
			r.Start = fromTime[p]
		}
		switch to.Kind {
		case config.PosOffset:
			r.End = to.Offset
		case config.PosPartitions:
			if v, ok := to.Partitions[p]; ok {
				r.End = v
			}
		case config.PosTime:
			r.End = toTime[p]
		}
		if r.Start < lo {
			log.Warn("slice starts before the partition's first offset (deleted by retention); starting there", "partition", p, "from", r.Start, "first", lo)
			r.Start = lo
		}
		if r.End > hi {
			log.Warn("slice ends after the partition's end; ending there", "partition", p, "to", r.End, "end", hi)
			r.End = hi
		}
		r.Start = min(r.Start, r.End)
		out[p] = r
	}
	return out, nil
}

// fileSource reads Avro object container files, each as one partition
// whose offsets are record indexes, several files at a time.
type fileSource struct {
	files    []inputFile
	from     map[int32]int64
	end      map[int32]int64
	parallel int
}

type fileChunk struct {
	p    int32
	recs []*kgo.Record
}

func (s *fileSource) run(ctx context.Context, submit func(context.Context, int32, []*kgo.Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan fileChunk, 2*s.parallel)
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		readErr error
	)
	go func() {
		defer close(chunks)
		sem := make(chan struct{}, s.parallel)
		for i := range s.files {
			p := int32(i)
			if s.from[p] >= s.end[p] {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := s.read(ctx, p, chunks); err != nil && ctx.Err() == nil {
					errMu.Lock()
					readErr = errors.Join(readErr, err)
					errMu.Unlock()
					cancel()
				}
			}()
		}
		wg.Wait()
	}()
	var serr error
	for c := range chunks {
		if serr != nil {
			continue // drain so the readers can finish
		}
		if serr = submit(ctx, c.p, c.recs); serr != nil {
			cancel()
		}
	}
	errMu.Lock()
	defer errMu.Unlock()
	if readErr != nil {
		return readErr
	}
	if serr != nil {
		return serr
	}
	return ctx.Err()
}

// read sends records [from, end) of file p, in order. Reading a block is
// I/O; decompressing and splitting it is CPU work as large as the block
// (a 602 KB image record costs more there than in the engine's decode), so
// blocks are decompressed by up to blockWorkers goroutines at once while
// this one reads ahead, and sent in file order.
func (s *fileSource) read(ctx context.Context, p int32, out chan<- fileChunk) error {
	in := s.files[p]
	f, err := os.Open(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := schema.NewOCFReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in.Path, err)
	}
	from, end := s.from[p], s.end[p]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Blocks being decompressed, in file order; its capacity bounds the
	// blocks held in memory.
	queue := make(chan *pendingBlock, blockWorkers())
	var readErr error
	go func() {
		defer close(queue)
		row := int64(0)
		for row < end {
			b, err := r.NextBlock()
			if err == io.EOF {
				err = fmt.Errorf("ends after %d records; it had %d when the job started", row, in.Records)
			}
			if err != nil {
				readErr = fmt.Errorf("%s: %w", in.Path, err)
				return
			}
			first := row
			row += b.Count
			if row <= from {
				continue
			}
			pb := &pendingBlock{done: make(chan struct{})}
			select {
			case queue <- pb:
			case <-ctx.Done():
				return
			}
			go func() {
				defer close(pb.done)
				pb.recs, pb.err = blockRecords(b, in.Path, p, first, from, end)
			}()
		}
	}()
	for pb := range queue {
		select {
		case <-pb.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pb.err != nil {
			return pb.err
		}
		select {
		case out <- fileChunk{p: p, recs: pb.recs}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The reader closed the queue: readErr is set before that, if at all.
	return readErr
}

// pendingBlock is a block being decompressed: recs and err are set when
// done is closed.
type pendingBlock struct {
	done chan struct{}
	recs []*kgo.Record
	err  error
}

// blockWorkers is how many blocks of one file are decompressed at once,
// 2 to 4: each holds a block twice (compressed and not), on top of the
// in-flight budget, for each of replay.parallel_files.
func blockWorkers() int { return min(max(2, runtime.GOMAXPROCS(0)), 4) }

// blockRecords decompresses b, whose first record is row first of the
// file, and returns its records in [from, end) as file p's.
func blockRecords(b *schema.OCFBlock, path string, p int32, first, from, end int64) ([]*kgo.Record, error) {
	raws, err := b.Records()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	recs := make([]*kgo.Record, 0, len(raws))
	for i, raw := range raws {
		off := first + int64(i)
		if off < from || off >= end {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: path, Partition: p, Offset: off, Value: raw})
	}
	return recs, nil
}

// resolveInputFiles expands the glob and reads each file's header and
// block counts, checking its writer schema against the input mappings.
func resolveInputFiles(pattern string) ([]inputFile, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("replay.input_files %q: %w", pattern, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("replay.input_files %q matches no file", pattern)
	}
	slices.Sort(paths)
	var out []inputFile
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			continue
		}
		n, err := countRecords(abs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", abs, err)
		}
		out = append(out, inputFile{Path: abs, Size: st.Size(), Records: n})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("replay.input_files %q matches only directories", pattern)
	}
	return out, nil
}

func countRecords(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return schema.CountOCFRecords(f)
}

// checkInputFiles verifies that the files of a resumed job are the ones it
// started with.
func checkInputFiles(files []inputFile) error {
	for _, in := range files {
		st, err := os.Stat(in.Path)
		if err != nil {
			return fmt.Errorf("input file of the resumed job: %w", err)
		}
		if st.Size() != in.Size {
			return fmt.Errorf("input file %s changed since the job started (%d bytes, was %d)", in.Path, st.Size(), in.Size)
		}
	}
	return nil
}

// fileCodec decodes records of input files with each file's own writer
// schema, then maps and encodes exactly as the pipeline's codec does (it
// is a copy of it with another decoder); the mapper maps by field name.
type fileCodec struct {
	*AvroCodec
	byFile []*AvroCodec // by file index
	decs   []*schema.FileDecoder
}

func newFileCodec(base *AvroCodec, cfg *config.Config, files []inputFile) (*fileCodec, error) {
	c := &fileCodec{AvroCodec: base, byFile: make([]*AvroCodec, len(files)), decs: make([]*schema.FileDecoder, len(files))}
	type perSchema struct {
		codec *AvroCodec
		dec   *schema.FileDecoder
	}
	bySchema := map[string]perSchema{}
	for i, in := range files {
		sch, err := fileSchema(in.Path)
		if err != nil {
			return nil, err
		}
		if ps, ok := bySchema[sch]; ok {
			c.byFile[i], c.decs[i] = ps.codec, ps.dec
			continue
		}
		if err := base.fitsWriterSchema(sch); err != nil {
			return nil, fmt.Errorf("%s: its writer schema does not fit the pipeline (transform, model.inputs): %w", in.Path, err)
		}
		d, err := schema.NewFileDecoder(sch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Path, err)
		}
		fc := *base
		fc.dec = d
		bySchema[sch] = perSchema{codec: &fc, dec: d}
		c.byFile[i], c.decs[i] = &fc, d
	}
	return c, nil
}

func fileSchema(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := schema.NewOCFReader(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return r.Schema(), nil
}

// Decode implements Codec with the record's file's codec; Encode is the
// pipeline codec's.
func (c *fileCodec) Decode(ctx context.Context, rec *kgo.Record) (Decoded, error) {
	if rec.Partition < 0 || int(rec.Partition) >= len(c.byFile) {
		return Decoded{}, &RowError{Reason: ReasonUnexpected, Err: fmt.Errorf("no input file %d", rec.Partition)}
	}
	return c.byFile[rec.Partition].Decode(ctx, rec)
}

// describe renders an input value as JSON for dead-letter files.
func (c *fileCodec) describe(p int32, value []byte) string {
	if p < 0 || int(p) >= len(c.decs) {
		return ""
	}
	r, err := c.decs[p].Decode(context.Background(), value)
	if err != nil {
		return ""
	}
	return nativeJSON(r.Native)
}

func nativeJSON(native map[string]any) string {
	b, err := json.Marshal(jsonSafe(native))
	if err != nil {
		return ""
	}
	return string(b)
}

// jsonSafe replaces what encoding/json refuses in the native form (arrays
// of floats may be typed slices):
// NaN and infinite floats (often why a record was dead-lettered) become
// the strings "NaN", "Infinity" and "-Infinity", as Avro's JSON encoding
// writes them.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float32:
		return jsonSafe(float64(x))
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case []float32:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case []float64:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	}
	return v
}
