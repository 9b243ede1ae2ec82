package kinfercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/gen"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/schema/memregistry"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", `Run the fraud-scoring example end to end: an embedded in-process Kafka
(or --brokers), an embedded Schema Registry, a generator writing realistic card
transactions in the Confluent wire format (with a few corrupt ones), and kinfer
predicting each with the shipped scikit-learn model through ONNX Runtime. A live
view prints throughput and sample predictions every second. --config runs
another pipeline over the same transactions (examples/custom-handler with a
kinfer-custom build).`, stderr)
	cfgPath := fs.String("config", "examples/fraud/pipeline.yaml", "pipeline config of the example (its input schema must be examples/fraud/transaction.avsc's)")
	brokers := fs.String("brokers", "", "use these brokers instead of the embedded Kafka (topics are created if missing)")
	records := fs.Int("records", 200000, "records to generate")
	rate := fs.Int("rate", 25000, "records per second to generate (0: as fast as possible, to measure throughput)")
	badEvery := fs.Int("bad-every", 200, "make every Nth record corrupt or of an unknown schema id, to show the dead-letter topic (0: none)")
	logLevel := fs.String("log-level", "warn", "kinfer's log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel, false)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	k := cfg.Kafka
	topics := []string{k.InputTopic, k.OutputTopic, k.DeadLetterTopic}
	seeds := splitList(*brokers)
	if len(seeds) == 0 {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topics...))
		if err != nil {
			return fmt.Errorf("starting embedded kafka: %w", err)
		}
		defer cluster.Close()
		seeds = cluster.ListenAddrs()
		fmt.Fprintf(stdout, "embedded kafka at %v\n", seeds)
	} else if err := ensureTopics(ctx, seeds, topics); err != nil {
		return err
	}
	regURL, stopReg := memregistry.New().Start()
	defer stopReg()
	regClient, err := sr.NewClient(sr.URLs(regURL))
	if err != nil {
		return err
	}
	inSchema, err := os.ReadFile(cfg.Resolve(cfg.Schema.InputSchemaFile))
	if err != nil {
		return err
	}
	inID, err := schema.RegisterOutputSchema(ctx, regClient, k.InputTopic+"-value", string(inSchema))
	if err != nil {
		return fmt.Errorf("registering the input schema: %w", err)
	}
	cfg.Schema.RegistryURL = regURL
	cfg.Schema.OutputEncoding = "wire"
	cfg.Kafka.Brokers = seeds
	cfg.Metrics.Disabled = true
	p, err := processor.Build(ctx, cfg, modelLoader(log, nil), processor.BuildOptions{Registry: regClient, RegisterOutput: true})
	if err != nil {
		return err
	}
	defer p.Close()
	for _, h := range p.Models {
		fmt.Fprintf(stdout, "model %s version %s\n", h.Name(), h.Version())
	}
	fmt.Fprintf(stdout, "%d records to %q, predictions to %q, dead letters to %q\n", *records, k.InputTopic, k.OutputTopic, k.DeadLetterTopic)

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	runErr := make(chan error, 1)
	go func() {
		runErr <- processor.RunStream(runCtx, p, processor.RunOptions{Registerer: prometheus.NewRegistry(), Logger: log})
	}()

	start := time.Now()
	var produced atomic.Int64
	prodErr := make(chan error, 1)
	go func() {
		prodErr <- generate(runCtx, seeds, k.InputTopic, inID, string(inSchema), *records, *rate, *badEvery, &produced)
	}()

	view, err := newLiveView(seeds, k.OutputTopic, k.DeadLetterTopic, p.Codec.OutputSchema, regClient)
	if err != nil {
		return err
	}
	defer view.close()
	go view.consume(runCtx)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastDone int64
	lastT := start
	for {
		select {
		case <-ctx.Done():
			cancelRun()
			<-runErr
			return nil
		case err := <-runErr:
			return fmt.Errorf("processor stopped: %w", err)
		case err := <-prodErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("generator: %w", err)
			}
		case now := <-tick.C:
			pred, dl := view.counts()
			done := pred + dl
			rate := float64(done-lastDone) / now.Sub(lastT).Seconds()
			lastDone, lastT = done, now
			fmt.Fprintf(stdout, "[%5.1fs] generated %7d  predicted %7d  dead-lettered %5d  %8.0f records/s\n",
				now.Sub(start).Seconds(), produced.Load(), pred, dl, rate)
			if s := view.sample(); s != "" {
				fmt.Fprintf(stdout, "         sample: %s\n", s)
			}
			if done >= int64(*records) {
				elapsed := time.Since(start)
				cancelRun()
				if err := <-runErr; err != nil {
					return err
				}
				fmt.Fprintf(stdout, "done: %d records in %.2fs (%.0f records/s end to end: generate, consume, decode, predict, encode, produce); %d predicted, %d dead-lettered\n",
					done, elapsed.Seconds(), float64(done)/elapsed.Seconds(), pred, dl)
				return nil
			}
		}
	}
}

func ensureTopics(ctx context.Context, seeds, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 6, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerrTopicExists) {
			return fmt.Errorf("creating topic %q: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// generate writes n transactions in the wire format; every badEvery-th is
// corrupt (alternately garbage and an unregistered schema id).
func generate(ctx context.Context, seeds []string, topic string, schemaID int, schemaJSON string, n, rate, badEvery int, produced *atomic.Int64) error {
	enc, err := schema.NewEncoder(schemaJSON)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	g := gen.NewTransactions(42)
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	next := time.Now()
	var firstErr error
	var mu sync.Mutex
	for i := 1; i <= n; i++ {
		key, native := g.Next()
		val, err := enc.EncodeWire(schemaID, native)
		if err != nil {
			return err
		}
		if badEvery > 0 && i%badEvery == 0 {
			if (i/badEvery)%2 == 0 {
				val = []byte{0, 0, 0, 0x7f, 0xff, 1, 2, 3} // schema id nobody registered
			} else {
				val = val[:5+rand.IntN(len(val)-5)] // truncated Avro after a valid header
			}
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
				return
			}
			produced.Add(1)
		})
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
