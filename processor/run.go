package processor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/kinfer/kinfer/batch"
)

// RunOptions are the run-time parts that do not live in pipeline.yaml.
type RunOptions struct {
	// Brokers override kafka.brokers when set.
	Brokers []string
	// Registerer receives kinfer's and franz-go's metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ClientOpts are extra franz-go options (TLS, SASL, tests' tuning).
	ClientOpts []kgo.Opt
	// OnReady is called once the stream object exists, so a health
	// endpoint can ask it whether the member has joined.
	OnReady func(ready func() bool)
}

// EngineConfigFor derives the engine settings from a pipeline.
func EngineConfigFor(p *Pipeline) EngineConfig {
	c := p.Config
	return EngineConfig{
		OutputTopic:     c.Kafka.OutputTopic,
		DeadLetterTopic: c.Kafka.DeadLetterTopic,
		Batch: batch.Config{
			MaxSize:  c.Batch.MaxSize,
			MaxDelay: c.Batch.MaxDelay,
			MaxBytes: int(c.Batch.MaxBytes),
		},
		DecodeWorkers:      c.Processing.DecodeWorkers,
		InferWorkers:       c.Model.Copies,
		MaxInFlightRecords: c.Processing.MaxInFlightRecords,
		MaxInFlightBytes:   int64(c.Processing.MaxInFlightBytes),
	}
}

// RunStream runs the pipeline as a consumer-group member until ctx is
// cancelled (clean drain, nil error) or a fatal error.
func RunStream(ctx context.Context, p *Pipeline, opts RunOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := p.Config
	brokers := opts.Brokers
	if len(brokers) == 0 {
		brokers = c.Kafka.Brokers
	}
	if len(brokers) == 0 {
		return fmt.Errorf("%s: kafka.brokers: required (or pass --brokers)", c.File)
	}
	m := NewMetrics(opts.Registerer)
	stream := NewStream(StreamConfig{
		Group:          c.Kafka.Group,
		InputTopic:     c.Kafka.InputTopic,
		StartOffset:    c.Kafka.StartOffset,
		CommitInterval: c.Processing.CommitInterval,
		DrainTimeout:   c.Processing.DrainTimeout,
	}, m, log)
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(c.Kafka.ClientID),
		kgo.SessionTimeout(c.Kafka.SessionTimeout), kgo.RebalanceTimeout(c.Kafka.RebalanceTimeout)}
	if c.Kafka.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(c.Kafka.InstanceID))
	}
	if opts.Registerer != nil {
		kopts = append(kopts, kgo.WithHooks(kprom.NewMetrics("kinfer_kafka", kprom.Registerer(opts.Registerer))))
	}
	kopts = append(kopts, stream.GroupOpts()...)
	kopts = append(kopts, opts.ClientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	if err := checkTopics(ctx, cl, c.Kafka.InputTopic, c.Kafka.OutputTopic, c.Kafka.DeadLetterTopic); err != nil {
		return err
	}
	eng, err := NewEngine(EngineConfigFor(p), p.Codec, p.Model, KafkaSink{Client: cl}, m, log)
	if err != nil {
		return err
	}
	m.RegisterInFlight(opts.Registerer, eng)
	if opts.OnReady != nil {
		opts.OnReady(stream.Ready)
	}
	log.Info("starting", "group", c.Kafka.Group, "input", c.Kafka.InputTopic, "output", c.Kafka.OutputTopic,
		"dead_letter", c.Kafka.DeadLetterTopic, "model", p.Model.Name(), "version", p.Model.Version())
	err = stream.Run(ctx, cl, eng)
	log.Info("stopped", "err", err)
	return err
}

// checkTopics fails fast, with the topic's name, when a topic the
// pipeline needs does not exist: producing to it would otherwise wait
// until the delivery timeout.
func checkTopics(ctx context.Context, cl *kgo.Client, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("reading topic metadata: %w", err)
	}
	for _, t := range topics {
		d, ok := md.Topics[t]
		if !ok || d.Err != nil {
			reason := "does not exist"
			if ok && d.Err != nil {
				reason = d.Err.Error()
			}
			return fmt.Errorf("topic %q %s: create it first (kafka-topics.sh --create --topic %s)", t, reason, t)
		}
	}
	return nil
}
