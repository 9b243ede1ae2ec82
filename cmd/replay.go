package kinfercmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", `Run the pipeline as a bounded batch job: over a slice of a topic (start and
end positions per partition, fixed when the job starts, so it ends while
producers keep writing) or over Avro container files, into the output topic
or into Avro container files (size-capped parts, each written under a
temporary name and renamed once complete). All partitions or files run in
parallel, in full batches. No consumer group is joined and no offset is
committed: progress is kept in a checkpoint file, and --resume continues a
stopped or killed job (file outputs then hold every record exactly once).
Dead letters go to the dead-letter topic or dead-letter files; more than
--max-failures of them stops the job. Flags override the config's replay
section. A transform section is applied with its artifacts, as in kinfer run.
A terminal shows a progress bar, anything else gets periodic log lines; a
summary is printed at the end.
Exit status: 0 when every record has an output, 1 when not (a failure,
--max-failures reached, or interrupted: --resume continues), 2 on a usage or
config error.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	brokers := fs.String("brokers", "", "comma-separated seed brokers (overrides kafka.brokers)")
	srcFlags := addSourceFlags(fs, "replay", "the end offsets at the job's start")
	outputFiles := fs.String("output-files", "", "directory for Avro container output files instead of the output topic (replay.output_dir)")
	outputCodec := fs.String("output-codec", "", "output file compression: null, deflate or snappy (replay.output_codec)")
	outputMax := fs.String("output-file-max-bytes", "", "start a new output file past this size, e.g. 128MiB (replay.output_file_max_bytes)")
	deadLetter := fs.String("dead-letter", "", "where dead letters go: file or topic (replay.dead_letter)")
	checkpoint := fs.String("checkpoint", "", "checkpoint file (replay.checkpoint)")
	resume := fs.Bool("resume", false, "continue the job in the checkpoint (start it when there is none)")
	maxFailures := fs.Int64("max-failures", -1, "stop once more than this many records were dead-lettered (replay.max_failures; -1: the config's, default no limit)")
	progress := fs.String("progress", "auto", "auto (a bar on a terminal, else log lines), bar, log or none")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "structured JSON logs (false: text)")
	artifacts := transformArtifactsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !slices.Contains([]string{"auto", "bar", "log", "none"}, *progress) {
		return usageError{fmt.Errorf("--progress: %q is not one of auto, bar, log, none", *progress)}
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	set := flagsSet(fs)
	r := &cfg.Replay
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", usageError{err}
		}
		return a, nil
	}
	if err := srcFlags.apply(set, r); err != nil {
		return err
	}
	if set["output-files"] {
		if r.OutputDir, err = abs(*outputFiles); err != nil {
			return err
		}
	}
	if set["output-codec"] {
		r.OutputCodec = *outputCodec
	}
	if set["output-file-max-bytes"] {
		n, err := config.ParseByteSize(*outputMax)
		if err != nil {
			return usageError{fmt.Errorf("--output-file-max-bytes: %w", err)}
		}
		r.OutputFileMaxBytes = n
	}
	if set["dead-letter"] {
		r.DeadLetter = *deadLetter
	}
	if set["checkpoint"] {
		if r.Checkpoint, err = abs(*checkpoint); err != nil {
			return err
		}
	}
	if *maxFailures >= 0 {
		r.MaxFailures = maxFailures
	}
	if err := artifacts(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// A batch job pins its model: a hot reload mid-job would mix versions
	// in one output (and a resumed job checks it still has the same one).
	cfg.Model.Reload = nil
	for i := range cfg.Models {
		cfg.Models[i].Reload = nil
	}

	p, err := processor.Build(ctx, cfg, modelLoader(log, nil), processor.BuildOptions{RegisterOutput: r.OutputDir == ""})
	if err != nil {
		return err
	}
	defer p.Close()
	warnAdvice(log, p)

	mode := *progress
	if mode == "auto" {
		mode = "log"
		if isTerminal(stderr) {
			mode = "bar"
		}
	}
	var prog *progressView
	sum, runErr := processor.RunReplay(ctx, p, processor.ReplayOptions{
		Brokers: splitList(*brokers),
		Resume:  *resume,
		Logger:  log,
		Progress: func(total int64, counts func() processor.ReplayCounts) {
			if mode != "none" {
				prog = startProgress(mode, total, counts, cfg.Replay.ProgressInterval, stderr, log)
			}
		},
	})
	if prog != nil {
		prog.stop(sum != nil && sum.Complete)
	}
	if sum != nil {
		printSummary(stdout, sum)
	}
	return runErr
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressView shows a replay's progress: a bar with rate and ETA on a
// terminal, or a log line every interval.
type progressView struct {
	done chan struct{}
	wg   sync.WaitGroup
	bar  *progressbar.ProgressBar
	w    io.Writer
	last func()
}

func startProgress(mode string, total int64, counts func() processor.ReplayCounts, every time.Duration, w io.Writer, log *slog.Logger) *progressView {
	v := &progressView{done: make(chan struct{}), w: w}
	start := time.Now()
	var tick time.Duration
	var update func()
	if mode == "bar" {
		v.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
		)
		tick = 200 * time.Millisecond
		update = func() { v.bar.Set64(counts().Done()) }
	} else {
		tick = every
		update = func() {
			c := counts()
			el := time.Since(start)
			rate := float64(c.Done()) / el.Seconds()
			attrs := []any{"done", c.Done(), "total", total, "predicted", c.Predicted, "dead_lettered", c.DeadLettered,
				"records_per_second", int64(rate), "elapsed", el.Round(time.Second).String()}
			if total > 0 {
				attrs = append(attrs, "percent", fmt.Sprintf("%.1f", 100*float64(c.Done())/float64(total)))
			}
			if rate > 0 && c.Done() < total {
				attrs = append(attrs, "eta", time.Duration(float64(total-c.Done())/rate*float64(time.Second)).Round(time.Second).String())
			}
			log.Info("replay progress", attrs...)
		}
	}
	v.last = update
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-v.done:
				return
			case <-t.C:
				update()
			}
		}
	}()
	return v
}

func (v *progressView) stop(complete bool) {
	close(v.done)
	v.wg.Wait()
	if v.bar != nil {
		v.last()
		if complete {
			v.bar.Finish()
		} else {
			v.bar.Exit()
		}
		fmt.Fprintln(v.w)
	}
}

func printSummary(w io.Writer, s *processor.ReplaySummary) {
	state := "complete"
	if !s.Complete {
		state = "INCOMPLETE"
	}
	fmt.Fprintf(w, "replay %s: %d records in %v (%.0f records/s)\n", state, s.Run.Done(), s.Elapsed.Round(time.Millisecond), s.Rate())
	fmt.Fprintf(w, "  records in:     %d\n", s.Run.In)
	fmt.Fprintf(w, "  predicted:      %d\n", s.Run.Predicted)
	fmt.Fprintf(w, "  dead-lettered:  %d%s\n", s.Run.DeadLettered, reasons(s.Run.Reasons))
	if s.Resumed {
		fmt.Fprintf(w, "  job so far:     %d of %d records (%d predicted, %d dead-lettered)\n", s.Job.Done(), s.Total, s.Job.Predicted, s.Job.DeadLettered)
	}
	out := s.Output
	if len(s.Parts) > 0 {
		out += fmt.Sprintf(" (%d part files)", len(s.Parts))
	}
	fmt.Fprintf(w, "  output:         %s\n", out)
	fmt.Fprintf(w, "  checkpoint:     %s\n", s.Checkpoint)
}

func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
