package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
)

// Errors RunReplay returns (wrapped) when a job stops before its end.
var (
	// ErrTooManyFailures is returned when more records were dead-lettered
	// than replay.max_failures allows; the job stopped early.
	ErrTooManyFailures = errors.New("too many records dead-lettered")
	// ErrReplayInterrupted is returned when ctx ended before the job did;
	// its progress is saved and --resume continues it.
	ErrReplayInterrupted = errors.New("replay interrupted")
)

// ReplayOptions are the run-time parts of a replay that do not live in
// pipeline.yaml (its replay section, with flags applied, says what to
// replay and where to).
type ReplayOptions struct {
	// Brokers override kafka.brokers when set.
	Brokers []string
	// Resume continues the job in the checkpoint instead of starting one.
	Resume bool
	// Registerer receives kinfer's metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ClientOpts are extra franz-go options (TLS, SASL, tests' tuning)
	// for every client the replay makes.
	ClientOpts []kgo.Opt
	// Progress, when set, is called once the job's size is known: total
	// is the number of records this run has to do, and counts returns the
	// run's live counts. It should return quickly (start a goroutine).
	Progress func(total int64, counts func() ReplayCounts)
}

// ReplayCounts counts records of a replay.
type ReplayCounts struct {
	// In is the records taken from the source.
	In int64 `json:"in"`
	// Predicted is the predictions written (durably, for topic outputs).
	Predicted int64 `json:"predicted"`
	// DeadLettered is the records written to the dead-letter topic or
	// files, by reason in Reasons.
	DeadLettered int64            `json:"dead_lettered"`
	Reasons      map[string]int64 `json:"reasons,omitempty"`
}

func (c ReplayCounts) clone() ReplayCounts {
	c.Reasons = maps.Clone(c.Reasons)
	return c
}

// Done is the records with an output: predicted or dead-lettered.
func (c ReplayCounts) Done() int64 { return c.Predicted + c.DeadLettered }

func (c ReplayCounts) plus(o ReplayCounts) ReplayCounts {
	out := c.clone()
	out.In += o.In
	out.Predicted += o.Predicted
	out.DeadLettered += o.DeadLettered
	for k, v := range o.Reasons {
		if out.Reasons == nil {
			out.Reasons = map[string]int64{}
		}
		out.Reasons[k] += v
	}
	return out
}

// ReplaySummary says what a replay did.
type ReplaySummary struct {
	// Run counts this run; Job the whole job, earlier runs included.
	Run, Job ReplayCounts
	// Total is the job's size in records; Remaining what this run had
	// left when it started.
	Total, Remaining int64
	Elapsed          time.Duration
	// Complete is set when every record of the job has an output.
	Complete bool
	Resumed  bool
	// Checkpoint is the checkpoint file.
	Checkpoint string
	// Output is the output topic or directory; Parts the complete output
	// files of the job (file output).
	Output string
	Parts  []string
}

// Rate is this run's records per second.
func (s *ReplaySummary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Run.Done()) / s.Elapsed.Seconds()
}

// replayCounter counts outputs as the sink acknowledges them.
type replayCounter struct {
	in, predicted, dead atomic.Int64
	mu                  sync.Mutex
	reasons             map[string]int64
}

func (c *replayCounter) snapshot() ReplayCounts {
	c.mu.Lock()
	r := maps.Clone(c.reasons)
	c.mu.Unlock()
	return ReplayCounts{In: c.in.Load(), Predicted: c.predicted.Load(), DeadLettered: c.dead.Load(), Reasons: r}
}

// countingSink counts what its sink acknowledged and reports dead letters.
type countingSink struct {
	Sink
	dlqTopic string
	c        *replayCounter
	onDead   func(total int64)
}

func (s *countingSink) Write(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	s.Sink.Write(ctx, rec, func(r *kgo.Record, err error) {
		if err == nil {
			if rec.Topic == s.dlqTopic {
				reason := ReasonOfRecord(rec)
				s.c.mu.Lock()
				if s.c.reasons == nil {
					s.c.reasons = map[string]int64{}
				}
				s.c.reasons[reason]++
				s.c.mu.Unlock()
				n := s.c.dead.Add(1)
				if s.onDead != nil {
					s.onDead(n)
				}
			} else {
				s.c.predicted.Add(1)
			}
		}
		done(r, err)
	})
}

// RunReplay runs the pipeline over a bounded slice (config replay
// section): a topic between start and end offsets per partition, or Avro
// container files, into the output topic or Avro container files, with
// the same engine as streaming. It joins no consumer group and commits
// nothing; progress goes to a checkpoint file, and opts.Resume continues
// a job from it. It returns a summary (also on failure, when the job got
// going) and an error when not every record got an output, when more
// records were dead-lettered than replay.max_failures allows, or when ctx
// ended first (ErrReplayInterrupted).
func RunReplay(ctx context.Context, p *Pipeline, opts ReplayOptions) (*ReplaySummary, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := p.Config
	rc := cfg.Replay
	fileIn, fileOut := rc.InputFiles != "", rc.OutputDir != ""
	dlMode := rc.DeadLetterMode()
	ckPath := cfg.CheckpointPath()
	outDir := cfg.Resolve(rc.OutputDir)

	var cl *kgo.Client
	if !fileIn || !fileOut || dlMode == config.DeadLetterTopic {
		brokers := opts.Brokers
		if len(brokers) == 0 {
			brokers = cfg.Kafka.Brokers
		}
		if len(brokers) == 0 {
			return nil, fmt.Errorf("%s: kafka.brokers: required to replay a topic or write to one (or pass --brokers)", cfg.File)
		}
		kopts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(cfg.Kafka.ClientID)}, opts.ClientOpts...)
		var err error
		// A batch job fails (and can be resumed) rather than waiting
		// forever on a broker that does not come back.
		if cl, err = kgo.NewClient(append(kopts, kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(2*time.Minute))...); err != nil {
			return nil, fmt.Errorf("creating kafka client: %w", err)
		}
		defer cl.Close()
		opts.ClientOpts = kopts
		var topics []string
		if !fileOut {
			topics = append(topics, cfg.Kafka.OutputTopic)
		}
		if dlMode == config.DeadLetterTopic {
			topics = append(topics, cfg.Kafka.DeadLetterTopic)
		}
		if len(topics) > 0 {
			if err := checkTopics(ctx, cl, topics...); err != nil {
				return nil, err
			}
		}
	}

	models, versions := pipelineModels(p)
	job := replayJob{Model: models, ModelVersion: versions, Output: "topic:" + cfg.Kafka.OutputTopic, DeadLetter: "topic:" + cfg.Kafka.DeadLetterTopic}
	if fileOut {
		abs, err := filepath.Abs(outDir)
		if err != nil {
			return nil, err
		}
		job.Output = "dir:" + abs
	}
	if dlMode == config.DeadLetterFile {
		job.DeadLetter = "file"
	}
	ck, resumed, err := openCheckpoint(ctx, ckPath, job, cfg, cl, fileOut, outDir, opts.Resume, log)
	if err != nil {
		return nil, err
	}
	// ck is replaced by every save; what the job covers never changes.
	fixed := ck.Job
	sum := &ReplaySummary{Total: fixed.total(), Remaining: ck.remaining(), Resumed: resumed, Checkpoint: ckPath, Output: job.Output, Job: ck.Counts}
	if ck.Done {
		log.Info("the job in the checkpoint is already complete", "checkpoint", ckPath)
		sum.Complete = true
		sum.Parts = partNames(ck.Parts)
		return sum, nil
	}

	// The engine's codec: file outputs hold plain Avro of the prediction
	// schema (the schema is in the file header), whatever the topic
	// encoding.
	base := p.Codec
	if fileOut {
		plain := *p.Codec
		plain.wireID = 0
		base = &plain
	}
	var codec Codec = base
	describe := func(_ int32, v []byte) string {
		r, err := base.dec.Decode(context.Background(), v)
		if err != nil {
			return ""
		}
		return nativeJSON(r.Native)
	}
	var src replaySource
	from, end := map[int32]int64{}, map[int32]int64{}
	for part, r := range ck.Job.Ranges {
		from[part], end[part] = max(r.Start, ck.Positions[part]), r.End
	}
	if fileIn {
		fc, err := newFileCodec(base, cfg, ck.Job.Files)
		if err != nil {
			return nil, err
		}
		codec, describe = fc, fc.describe
		src = &fileSource{files: ck.Job.Files, from: from, end: end, parallel: rc.ParallelFiles}
	} else {
		src = &topicSource{topic: rc.Topic, from: from, end: end, opts: opts.ClientOpts, log: log}
	}

	// Sinks: the Kafka producer and/or the file sink, counted.
	ckMu := sync.Mutex{}
	saveCheckpoint := func(update func(c *replayCheckpoint)) error {
		ckMu.Lock()
		defer ckMu.Unlock()
		next := ck.clone()
		update(next)
		if err := writeCheckpoint(ckPath, next); err != nil {
			return err
		}
		ck = next
		return nil
	}
	var sink Sink
	var fsink *AvroFileSink
	// finished is set, before the final cut, when the source reached the
	// end of every partition and nothing failed.
	var finished atomic.Bool
	if fileOut {
		var dl Sink
		if dlMode == config.DeadLetterTopic {
			dl = KafkaSink{Client: cl}
		}
		baseCounts := ck.Counts
		var partsCounts ReplayCounts // outputs in cuts of this run
		fsink, err = NewAvroFileSink(FileSinkConfig{
			Dir:             outDir,
			DeadLetterTopic: cfg.Kafka.DeadLetterTopic,
			Schema:          base.OutputSchema,
			Codec:           rc.OutputCodec,
			MaxBytes:        int64(rc.OutputFileMaxBytes),
			Meta:            map[string][]byte{"kinfer.model": []byte(models), "kinfer.model_version": []byte(versions)},
			FirstPart:       ck.NextPart,
			DeadLetters:     dl,
			DescribeValue:   describe,
			Commit: func(cut FileCut) error {
				// Cuts are serialised by the sink.
				partsCounts.Predicted += cut.Part.Records
				partsCounts.DeadLettered += cut.Part.DeadLettered
				return saveCheckpoint(func(c *replayCheckpoint) {
					c.Positions = cut.Positions
					c.NextPart = cut.NextPart
					if cut.Part.File != "" || cut.Part.DeadLetters != "" {
						c.Parts = append(c.Parts, cut.Part)
					}
					c.Counts = baseCounts.plus(partsCounts)
					c.Counts.In = c.Counts.Done()
					// Per reason only in the run summary: cuts do not know them.
					c.Counts.Reasons = nil
					if cut.Final && finished.Load() {
						markDone(c)
					}
				})
			},
		}, ck.Positions)
		if err != nil {
			return nil, err
		}
		sink = fsink
	} else {
		sink = KafkaSink{Client: cl}
	}
	counter := &replayCounter{}
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	baseDead := ck.Counts.DeadLettered
	csink := &countingSink{Sink: sink, dlqTopic: cfg.Kafka.DeadLetterTopic, c: counter}
	if rc.MaxFailures != nil {
		limit := *rc.MaxFailures
		csink.onDead = func(n int64) {
			if baseDead+n > limit {
				cancelRun(fmt.Errorf("%w: %d, more than replay.max_failures (%d)", ErrTooManyFailures, baseDead+n, limit))
			}
		}
	}

	// Throughput over latency: every step waits longer for full batches.
	steps := make([]*Step, len(p.Steps))
	for i, s := range p.Steps {
		cp := *s
		cp.Batch.MaxDelay = rc.BatchMaxDelay
		steps[i] = &cp
	}
	m := NewMetrics(opts.Registerer)
	eng, err := NewGraphEngine(EngineConfigFor(p), codec, steps, csink, m, log)
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-eng.Fatal():
			cancelRun(eng.Err())
		case <-runCtx.Done():
		}
	}()
	lanes := map[int32]*lane{}
	for part := range fixed.Ranges {
		topic := rc.Topic
		if fileIn {
			topic = fixed.Files[part].Path
		}
		lanes[part] = newLane(topic, part)
	}
	submit := func(ctx context.Context, part int32, recs []*kgo.Record) error {
		n, err := eng.SubmitAll(ctx, lanes[part], recs)
		counter.in.Add(int64(n))
		if err != nil {
			return err
		}
		if n < len(recs) {
			return fmt.Errorf("partition %d no longer takes records", part)
		}
		return nil
	}

	// Topic outputs: save the lanes' watermarks periodically.
	var saver sync.WaitGroup
	watermarks := func() map[int32]int64 {
		ckMu.Lock()
		pos := maps.Clone(ck.Positions)
		ckMu.Unlock()
		for part, l := range lanes {
			if wm, ok := l.watermark(); ok {
				pos[part] = wm.Offset
			}
		}
		return pos
	}
	baseCounts := ck.Counts
	if !fileOut {
		saver.Add(1)
		go func() {
			defer saver.Done()
			t := time.NewTicker(rc.CheckpointInterval)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					pos := watermarks()
					run := counter.snapshot()
					if err := saveCheckpoint(func(c *replayCheckpoint) { c.Positions = pos; c.Counts = baseCounts.plus(run) }); err != nil {
						log.Warn("saving the checkpoint failed; will retry", "err", err)
					}
				}
			}
		}()
	}

	log.Info("replay starting", "source", fixed.Source, "output", job.Output, "dead_letter", job.DeadLetter,
		"records", sum.Remaining, "of", sum.Total, "resumed", resumed, "checkpoint", ckPath, "model", models, "version", versions)
	if opts.Progress != nil {
		opts.Progress(sum.Remaining, counter.snapshot)
	}

	srcErr := src.run(runCtx, submit)
	for _, l := range lanes {
		l.close()
	}
	drained := drain(ctx, eng, cfg.Processing.DrainTimeout, log)
	cancelRun(nil)
	saver.Wait()

	engErr := eng.Err()
	srcDone := srcErr == nil
	if srcErr != nil && (errors.Is(srcErr, context.Canceled) || errors.Is(srcErr, context.DeadlineExceeded)) {
		srcErr = nil // the cause says why
	}
	cause := context.Cause(runCtx)
	if errors.Is(cause, context.Canceled) {
		cause = nil // ctx ended (interrupted), or we cancelled after the source finished
	}
	// Complete when the source read every partition to its end and every
	// record has an output (an interruption during the drain may still
	// leave nothing undone).
	complete := srcDone && drained && engErr == nil && cause == nil
	finished.Store(complete)
	var finErr error
	if fsink != nil {
		if engErr == nil {
			finErr = fsink.Close()
		} else {
			fsink.Abandon()
		}
	} else if engErr == nil {
		pos := watermarks()
		run := counter.snapshot()
		finErr = saveCheckpoint(func(c *replayCheckpoint) {
			c.Positions = pos
			c.Counts = baseCounts.plus(run)
			if complete {
				markDone(c)
			}
		})
	}

	sum.Elapsed = time.Since(start)
	sum.Run = counter.snapshot()
	ckMu.Lock()
	sum.Complete = ck.Done
	sum.Parts = partNames(ck.Parts)
	if fileOut {
		sum.Job = ck.Counts
	} else {
		sum.Job = baseCounts.plus(sum.Run)
	}
	ckMu.Unlock()

	switch {
	case engErr != nil:
		return sum, engErr
	case srcErr != nil:
		return sum, srcErr
	case finErr != nil:
		return sum, finErr
	case cause != nil:
		return sum, cause
	case ctx.Err() != nil && !sum.Complete:
		return sum, fmt.Errorf("%w: progress saved in %s; --resume continues", ErrReplayInterrupted, ckPath)
	case !sum.Complete:
		return sum, fmt.Errorf("replay ended with records left (see %s)", ckPath)
	}
	return sum, nil
}

// drain waits until every submitted record is durable or failed, and
// reports whether that happened. After ctx ended it waits at most
// timeout, then gives up on the rest (they stay uncommitted and are redone
// on resume).
func drain(ctx context.Context, eng *Engine, timeout time.Duration, log *slog.Logger) bool {
	closed := make(chan struct{})
	go func() { eng.Close(); close(closed) }()
	var deadline <-chan time.Time
	for {
		if ctx.Err() != nil && deadline == nil {
			deadline = time.After(timeout)
		}
		select {
		case <-closed:
			closed = nil
		case <-deadline:
			n, _ := eng.InFlight()
			log.Warn("drain timeout: records left without output; --resume redoes them", "records", n)
			eng.Abort()
			return false
		case <-time.After(2 * time.Millisecond):
		}
		if n, _ := eng.InFlight(); closed == nil && (n == 0 || eng.Err() != nil) {
			return n == 0
		}
	}
}

// pipelineModels names the pipeline's models and versions ("a+b" for
// several), which a resumed job must still have.
func pipelineModels(p *Pipeline) (names, versions string) {
	ms := p.Models
	if len(ms) == 0 && p.Model != nil {
		ms = []handlers.ModelHandler{p.Model}
	}
	for i, m := range ms {
		if i > 0 {
			names += "+"
			versions += "+"
		}
		names += m.Name()
		versions += m.Version()
	}
	if p.Transform != nil {
		// A resumed job must also apply the same transform artifacts.
		names += "+transform"
		versions += "+" + TransformVersion(p.Transform)
	}
	return names, versions
}

// markDone records a finished job: every partition read to its end, every
// record with an output. Positions move to the ends, past trailing
// offsets that hold no record to process (transaction markers).
func markDone(c *replayCheckpoint) {
	c.Done = true
	for part, r := range c.Job.Ranges {
		c.Positions[part] = max(c.Positions[part], r.End)
	}
}

func partNames(parts []replayPart) []string {
	var out []string
	for _, p := range parts {
		if p.File != "" {
			out = append(out, p.File)
		}
	}
	return out
}

// openCheckpoint starts a job (a new checkpoint, with the slice fixed
// now) or, with resume, loads the one in the checkpoint and repairs the
// output directory.
func openCheckpoint(ctx context.Context, path string, job replayJob, cfg *config.Config, cl *kgo.Client, fileOut bool, outDir string, resume bool, log *slog.Logger) (*replayCheckpoint, bool, error) {
	rc := cfg.Replay
	existing, err := readCheckpoint(path)
	if err != nil {
		return nil, false, err
	}
	if resume && existing == nil {
		// Nothing to continue (the job was stopped before it saved its
		// first checkpoint): start it, so that a restart loop can always
		// pass --resume.
		log.Info("no checkpoint to resume; starting the job", "checkpoint", path)
		resume = false
	}
	if resume {
		j := existing.Job
		switch {
		case j.ModelVersion != job.ModelVersion || j.Model != job.Model:
			return nil, false, fmt.Errorf("--resume: the job in %s ran model %s version %s; this pipeline has %s version %s", path, j.Model, j.ModelVersion, job.Model, job.ModelVersion)
		case j.Output != job.Output:
			return nil, false, fmt.Errorf("--resume: the job in %s writes to %s, not %s", path, j.Output, job.Output)
		case j.DeadLetter != job.DeadLetter:
			return nil, false, fmt.Errorf("--resume: the job in %s dead-letters to %s, not %s", path, j.DeadLetter, job.DeadLetter)
		}
		if len(j.Files) > 0 {
			if err := checkInputFiles(j.Files); err != nil {
				return nil, false, err
			}
		}
		removeCheckpointTemps(path)
		if fileOut {
			if err := RecoverOutputDir(outDir, existing.Parts); err != nil {
				return nil, false, fmt.Errorf("--resume: %w", err)
			}
		}
		log.Info("resuming replay", "checkpoint", path, "remaining", existing.remaining(), "of", existing.Job.total())
		return existing, true, nil
	}
	if existing != nil {
		return nil, false, fmt.Errorf("checkpoint %s holds an earlier job: pass --resume to continue it, or remove it (and its outputs) to start over", path)
	}
	if fileOut {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return nil, false, err
		}
		if names, err := outputFilesIn(outDir); err != nil {
			return nil, false, err
		} else if len(names) > 0 {
			return nil, false, fmt.Errorf("output directory %s already holds output files (%s, ...): use an empty directory, or --resume", outDir, names[0])
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, err
	}
	job.Started = time.Now().UTC()
	if rc.InputFiles != "" {
		files, err := resolveInputFiles(cfg.Resolve(rc.InputFiles))
		if err != nil {
			return nil, false, err
		}
		job.Source = "files"
		job.Files = files
		job.Ranges = map[int32]offsetRange{}
		for i, f := range files {
			job.Ranges[int32(i)] = offsetRange{End: f.Records}
		}
	} else {
		from, _ := config.ParsePosition(rc.From)
		to, _ := config.ParsePosition(rc.To)
		ranges, err := resolveTopicRanges(ctx, kadm.NewClient(cl), rc.Topic, rc.Partitions, from, to, log)
		if err != nil {
			return nil, false, err
		}
		job.Source = "topic:" + rc.Topic
		job.Ranges = ranges
	}
	ck := &replayCheckpoint{Version: checkpointVersion, Job: job, Positions: map[int32]int64{}}
	for part, r := range job.Ranges {
		ck.Positions[part] = r.Start
	}
	if err := writeCheckpoint(path, ck); err != nil {
		return nil, false, err
	}
	return ck, false, nil
}
