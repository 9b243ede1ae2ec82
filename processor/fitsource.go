package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/transform"
)

// FitInputOptions are the run-time parts of `kinfer fit`'s input.
type FitInputOptions struct {
	// Brokers override kafka.brokers when set.
	Brokers []string
	// ClientOpts are extra franz-go options (TLS, SASL, tests' tuning).
	ClientOpts []kgo.Opt
	// Registry replaces the client built from schema.registry_url.
	Registry *sr.Client
	Logger   *slog.Logger
}

// FitInput is the bounded input of `kinfer fit`: the topic slice or the
// Avro container files that the config's replay section names (flags
// applied), read with the replay sources. The slice is fixed when it is
// opened, and every pass reads it in the same order (partition after
// partition, or file after file, each in offset order), so a multi-pass
// fit sees the same rows each time and the same data gives the same
// artifacts. Each record is decoded into goavro's native form with the
// pipeline's decoder (input files: with each file's writer schema): the
// row the streaming engine hands to the transform.
type FitInput struct {
	// Name says what is read: "topic:T partitions 0-5 [from, to)" or
	// "files:GLOB (n files)".
	Name string
	// Records is the slice's size: offsets of the topic slice
	// (transaction markers included), or records in the files.
	Records int64

	cfg      *config.Config
	log      *slog.Logger
	topic    string
	clOpts   []kgo.Opt
	ranges   map[int32]offsetRange
	files    []inputFile
	decs     []schema.Decoder // by file; decs[0] for a topic
	pass     int
	failed   int64
	reasons  map[string]int64
	closeAll []func()
}

// OpenFitInput resolves the input of a fit: the files of
// replay.input_files, or the offsets of replay.topic between replay.from
// and replay.to. tp, when set, has the record fields its stages read
// checked against each writer schema.
func OpenFitInput(ctx context.Context, cfg *config.Config, tp *transform.Pipeline, opts FitInputOptions) (_ *FitInput, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	in := &FitInput{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	check := func(sch, what string) error {
		if tp == nil {
			return nil
		}
		if probs := checkTransformInputs(tp, sch); len(probs) > 0 {
			if what == "" {
				return &config.Error{File: cfg.File, Problems: probs}
			}
			return fmt.Errorf("%s: its writer schema does not fit the transform: %w", what, &config.Error{File: cfg.File, Problems: probs})
		}
		return nil
	}
	rc := cfg.Replay
	if rc.InputFiles != "" {
		files, err := resolveInputFiles(cfg.Resolve(rc.InputFiles))
		if err != nil {
			return nil, err
		}
		in.files = files
		in.ranges = map[int32]offsetRange{}
		bySchema := map[string]schema.Decoder{}
		for i, f := range files {
			in.ranges[int32(i)] = offsetRange{End: f.Records}
			in.Records += f.Records
			sch, err := fileSchema(f.Path)
			if err != nil {
				return nil, err
			}
			d, ok := bySchema[sch]
			if !ok {
				if err := check(sch, f.Path); err != nil {
					return nil, err
				}
				if d, err = schema.NewFileDecoder(sch); err != nil {
					return nil, fmt.Errorf("%s: %w", f.Path, err)
				}
				bySchema[sch] = d
			}
			in.decs = append(in.decs, d)
		}
		in.Name = fmt.Sprintf("files:%s (%d files)", rc.InputFiles, len(files))
		return in, nil
	}

	reg := opts.Registry
	if reg == nil && cfg.Schema.RegistryURL != "" {
		if reg, err = sr.NewClient(sr.URLs(cfg.Schema.RegistryURL)); err != nil {
			return nil, problem(cfg, "schema.registry_url", err.Error())
		}
	}
	sch, err := inputSchema(ctx, cfg, reg)
	if err != nil {
		return nil, err
	}
	if err := check(sch, ""); err != nil {
		return nil, err
	}
	if reg != nil {
		in.decs = []schema.Decoder{schema.NewRegistryDecoder(reg)}
	} else {
		d, err := schema.NewFileDecoder(sch)
		if err != nil {
			return nil, problem(cfg, "schema.input_schema_file", err.Error())
		}
		in.decs = []schema.Decoder{d}
	}
	brokers := opts.Brokers
	if len(brokers) == 0 {
		brokers = cfg.Kafka.Brokers
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%s: kafka.brokers: required to fit on a topic slice (or pass --brokers, or --input-files)", cfg.File)
	}
	in.clOpts = append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(cfg.Kafka.ClientID)}, opts.ClientOpts...)
	cl, err := kgo.NewClient(in.clOpts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	in.closeAll = append(in.closeAll, cl.Close)
	from, _ := config.ParsePosition(rc.From)
	to, _ := config.ParsePosition(rc.To)
	if in.ranges, err = resolveTopicRanges(ctx, kadm.NewClient(cl), rc.Topic, rc.Partitions, from, to, log); err != nil {
		return nil, err
	}
	in.topic = rc.Topic
	parts := slices.Sorted(maps.Keys(in.ranges))
	var desc string
	for _, p := range parts {
		r := in.ranges[p]
		in.Records += r.End - r.Start
		if desc != "" {
			desc += ","
		}
		desc += fmt.Sprintf("%d:[%d,%d)", p, r.Start, r.End)
	}
	in.Name = fmt.Sprintf("topic:%s %s", rc.Topic, desc)
	return in, nil
}

// Source returns the transform.Source that reads the input once per call
// (once per fit pass). Records that do not decode are skipped (the engine
// would dead-letter them) and counted in the first pass; an unreachable
// schema registry fails the pass.
func (in *FitInput) Source() transform.Source {
	return func(ctx context.Context, observe func(row map[string]any) error) error {
		in.pass++
		first := in.pass == 1
		start := time.Now()
		var n int64
		submit := func(ctx context.Context, p int32, recs []*kgo.Record) error {
			dec := in.decs[0]
			if in.files != nil {
				dec = in.decs[p]
			}
			for _, rec := range recs {
				r, err := dec.Decode(ctx, rec.Value)
				if err != nil {
					if errors.Is(err, schema.ErrRegistryUnavailable) || ctx.Err() != nil {
						return fmt.Errorf("decoding %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
					}
					if first {
						in.failed++
						if in.reasons == nil {
							in.reasons = map[string]int64{}
						}
						in.reasons[schema.ReasonOf(err)]++
					}
					continue
				}
				n++
				if err := observe(r.Native); err != nil {
					return err
				}
			}
			return nil
		}
		from, end := map[int32]int64{}, map[int32]int64{}
		for p, r := range in.ranges {
			from[p], end[p] = r.Start, r.End
		}
		if in.files != nil {
			// One file at a time, in order.
			src := &fileSource{files: in.files, from: from, end: end, parallel: 1}
			if err := src.run(ctx, submit); err != nil {
				return err
			}
		} else {
			for _, p := range slices.Sorted(maps.Keys(in.ranges)) {
				src := &topicSource{topic: in.topic, from: map[int32]int64{p: from[p]}, end: map[int32]int64{p: end[p]}, opts: in.clOpts, log: in.log}
				if err := src.run(ctx, submit); err != nil {
					return err
				}
			}
		}
		in.log.Info("fit pass read", "pass", in.pass, "records", n, "seconds", time.Since(start).Seconds())
		return nil
	}
}

// Undecodable returns the records of the input that did not decode, by
// reason (counted once, in the first pass).
func (in *FitInput) Undecodable() (int64, map[string]int64) {
	return in.failed, maps.Clone(in.reasons)
}

// Close releases the input's clients.
func (in *FitInput) Close() {
	for _, f := range in.closeAll {
		f()
	}
	in.closeAll = nil
}
