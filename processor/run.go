package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/kinfer/kinfer/internal/config"
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
	// Metrics receives kinfer's metrics; nil: NewMetrics(Registerer).
	// Pass one to record what happens before the run (ObserveModelLoad).
	Metrics *Metrics
	// OnReady is called once the stream object exists, so a readiness
	// endpoint can ask it whether the member is ready (Stream.ReadyErr).
	OnReady func(ready func() error)
}

// EngineConfigFor derives the engine settings from a pipeline (the
// per-step settings live in p.Steps).
func EngineConfigFor(p *Pipeline) EngineConfig {
	c := p.Config
	return EngineConfig{
		OutputTopic:        c.Kafka.OutputTopic,
		DeadLetterTopic:    c.Kafka.DeadLetterTopic,
		DecodeWorkers:      c.Processing.DecodeWorkers,
		MaxInFlightRecords: c.Processing.MaxInFlightRecords,
		MaxInFlightBytes:   int64(c.Processing.MaxInFlightBytes),
	}
}

// NewPipelineEngine starts an engine running p's model graph into sink.
func NewPipelineEngine(p *Pipeline, sink Sink, m *Metrics, log *slog.Logger) (*Engine, error) {
	return NewGraphEngine(EngineConfigFor(p), p.Codec, p.Steps, sink, m, log)
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
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(opts.Registerer)
	}
	cur := &currentEngine{}
	m.RegisterInFlight(opts.Registerer, cur)
	var wait time.Duration
	for {
		started := time.Now()
		err := runMember(ctx, p, opts, brokers, m, cur, log)
		var lost *sessionLostError
		if !errors.As(err, &lost) {
			return err
		}
		if ctx.Err() != nil {
			return nil // shutting down: the next owner redoes the records
		}
		wait = restartWait(wait, time.Since(started))
		// franz-go: no error from ending a transaction is retryable on
		// that client. Nothing of the failed transaction is visible, so a
		// new member with a new session redoes its records.
		log.Warn("exactly-once: the transactional session is lost; starting a new one", "err", err, "wait", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// stableRun is how long a member must have run for the next restart to
// start again from the shortest pause.
const stableRun = 2 * time.Minute

// restartWait is the pause before a new member, given the previous pause
// (0: none yet) and how long the member that just ended ran: 1 s the first
// time and after a member that ran stableRun or longer; otherwise twice
// the previous pause, at most 30 s. A broker outage backs off; a session
// lost once a day does not wait 30 s because of last week's outage.
func restartWait(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= stableRun {
		return time.Second
	}
	return min(2*prev, 30*time.Second)
}

// currentEngine is the engine of the member running now (a lost
// exactly-once session starts a new member), for the in-flight gauges.
type currentEngine struct{ e atomic.Pointer[Engine] }

func (c *currentEngine) InFlight() (int, int64) {
	if e := c.e.Load(); e != nil {
		return e.InFlight()
	}
	return 0, 0
}

// runMember is one consumer-group member: a client (or transactional
// session), an engine and a stream, until ctx ends or the member fails.
func runMember(ctx context.Context, p *Pipeline, opts RunOptions, brokers []string, m *Metrics, cur *currentEngine, log *slog.Logger) error {
	c := p.Config
	stream := NewStream(StreamConfig{
		Group:          c.Kafka.Group,
		InputTopic:     c.Kafka.InputTopic,
		StartOffset:    c.Kafka.StartOffset,
		CommitInterval: c.Processing.CommitInterval,
		DrainTimeout:   c.Processing.DrainTimeout,
		ExactlyOnce:    c.Processing.Guarantee == config.ExactlyOnce,
	}, m, log)
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(c.Kafka.ClientID),
		kgo.SessionTimeout(c.Kafka.SessionTimeout), kgo.RebalanceTimeout(c.Kafka.RebalanceTimeout),
		// franz-go buffers at most one fetch per broker until it is
		// polled; with the in-flight budget this bounds memory under any
		// backlog.
		kgo.FetchMaxBytes(int32(c.Kafka.FetchMaxBytes)), kgo.FetchMaxPartitionBytes(int32(c.Kafka.FetchMaxPartitionBytes)),
		kgo.ProducerLinger(producerLinger(c)), kgo.FetchMaxWait(config.FetchMaxWait)}
	if c.Kafka.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(c.Kafka.InstanceID))
	}
	if opts.Registerer != nil {
		kopts = append(kopts, kgo.WithHooks(kprom.NewMetrics("kinfer_kafka", kprom.Registerer(opts.Registerer),
			kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Records, kprom.UncompressedBytes, kprom.ConsistentNaming))))
	}
	kopts = append(kopts, stream.GroupOpts()...)
	exactlyOnce := c.Processing.Guarantee == config.ExactlyOnce
	var (
		cl   *kgo.Client
		sess *kgo.GroupTransactSession
		err  error
	)
	if exactlyOnce {
		txnID := TransactionalID(c)
		kopts = append(kopts, kgo.TransactionalID(txnID), kgo.TransactionTimeout(c.Processing.TransactionTimeout))
		kopts = append(kopts, opts.ClientOpts...)
		if sess, err = kgo.NewGroupTransactSession(kopts...); err != nil {
			return fmt.Errorf("creating the transactional kafka client: %w", err)
		}
		defer sess.Close()
		cl = sess.Client()
		log.Info("exactly-once: transactional producer", "transactional_id", txnID, "cycle", c.Processing.CommitInterval)
	} else {
		kopts = append(kopts, opts.ClientOpts...)
		if cl, err = kgo.NewClient(kopts...); err != nil {
			return fmt.Errorf("creating kafka client: %w", err)
		}
		defer cl.Close()
	}
	if err := checkTopics(ctx, cl, c.Kafka.InputTopic, c.Kafka.OutputTopic, c.Kafka.DeadLetterTopic); err != nil {
		return err
	}
	var sink Sink = KafkaSink{Client: cl}
	if exactlyOnce {
		sink = stream.NewTxnSink(cl)
	}
	eng, err := NewPipelineEngine(p, sink, m, log)
	if err != nil {
		return err
	}
	cur.e.Store(eng)
	if opts.OnReady != nil {
		opts.OnReady(stream.ReadyErr)
	}
	log.Info("starting", "group", c.Kafka.Group, "input", c.Kafka.InputTopic, "output", c.Kafka.OutputTopic,
		"dead_letter", c.Kafka.DeadLetterTopic, "models", modelList(p))
	if exactlyOnce {
		err = stream.RunExactlyOnce(ctx, sess, eng)
	} else {
		err = stream.Run(ctx, cl, eng)
	}
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

// TransactionalID is the exactly-once producer's transactional id: the
// configured one, else derived from the group and the instance id, else
// from the group, host and process (see config.Processing).
func TransactionalID(c *config.Config) string {
	if id := c.Processing.TransactionalID; id != "" {
		return id
	}
	if c.Kafka.InstanceID != "" {
		return "kinfer-" + c.Kafka.Group + "-" + c.Kafka.InstanceID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("kinfer-%s-%s-%d", c.Kafka.Group, host, os.Getpid())
}

// modelList names the models loaded at start, for logs.
func modelList(p *Pipeline) []string {
	var out []string
	for _, h := range p.Models {
		out = append(out, h.Name()+"@"+h.Version())
	}
	return out
}

// producerLinger is kafka.producer_linger, defaulted.
func producerLinger(c *config.Config) time.Duration {
	if c.Kafka.ProducerLinger == nil {
		return config.DefaultProducerLinger
	}
	return *c.Kafka.ProducerLinger
}
