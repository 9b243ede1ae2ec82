package kinfercmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", `Join the consumer group in pipeline.yaml, predict every record of the input
topic with the model, and write one prediction per record to the output topic
(or a dead-letter record with the reason). At-least-once: an input offset is
committed only after its output is acknowledged. SIGINT/SIGTERM drain in-flight
records, commit, leave the group and exit 0. With a transform section, each
record goes through its stages with the artifacts kinfer fit wrote
(transform_artifacts, or --transform-artifacts) before mapping; a missing,
damaged or mismatched artifact directory stops the start with exit status 2.

HTTP (metrics.listen, loopback by default): /metrics (Prometheus), /healthz
(the process is alive), /readyz (the model is loaded, the member joined the
group and a broker answered recently), /debug/pprof/ with --pprof.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	brokers := fs.String("brokers", "", "comma-separated seed brokers (overrides kafka.brokers)")
	listen := fs.String("metrics-listen", "", "address for /metrics, /healthz, /readyz (overrides metrics.listen)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", true, "structured JSON logs (false: text)")
	withPprof := fs.Bool("pprof", false, "also serve net/http/pprof under /debug/pprof/ on the metrics address")
	artifacts := transformArtifactsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if err := artifacts(cfg); err != nil {
		return err
	}
	if *listen != "" {
		cfg.Metrics.Listen = *listen
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := processor.NewMetrics(reg)
	// The endpoint starts before the model loads, so that /healthz answers
	// (and a liveness probe passes) while a large model is still loading.
	var rd readiness
	rd.set(errors.New("loading the model"))
	if !cfg.Metrics.Disabled {
		stopHTTP, err := serveHTTP(cfg.Metrics.Listen, reg, rd.check, *withPprof, log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	} else if *withPprof {
		log.Warn("--pprof ignored: metrics.disabled is set, so nothing is served")
	}

	var load modelLoad
	p, err := processor.Build(ctx, cfg, load.wrap(modelLoader(log, m)), processor.BuildOptions{RegisterOutput: true})
	if err != nil {
		return err
	}
	defer p.Close()
	warnAdvice(log, p)
	observeLoads(m, load.loaded)
	rd.set(errors.New("connecting to kafka"))
	return processor.RunStream(ctx, p, processor.RunOptions{
		Brokers:    splitList(*brokers),
		Registerer: reg,
		Metrics:    m,
		Logger:     log,
		OnReady:    func(f func() error) { rd.use(f) },
	})
}

// readiness is what /readyz asks: a fixed reason while the run is still
// starting, then the stream's own check.
type readiness struct{ f atomic.Pointer[func() error] }

func (r *readiness) set(err error)      { r.use(func() error { return err }) }
func (r *readiness) use(f func() error) { r.f.Store(&f) }

func (r *readiness) check() error {
	if f := r.f.Load(); f != nil {
		return (*f)()
	}
	return errors.New("starting")
}

// modelLoad measures each model load that Build does: the time spent in
// the loader and the size of the model file.
type modelLoad struct {
	mu     sync.Mutex
	loaded []loadedModel
}

// observeLoads exports what loading each model took, and where it runs.
func observeLoads(m *processor.Metrics, loaded []loadedModel) {
	for _, l := range loaded {
		m.ObserveModelLoad(l.name, l.version, l.seconds, l.bytes)
		if l.active != "" {
			m.ObserveProvider(l.name, l.requested, l.active)
		}
	}
}

type loadedModel struct {
	name, version string
	seconds       float64
	bytes         int64
	// requested and active are the execution providers asked for and in
	// use; active is "" for handlers without one (remote, custom).
	requested, active string
}

func (ml *modelLoad) wrap(load processor.ModelLoader) processor.ModelLoader {
	return func(ctx context.Context, m config.Model, path string) (handlers.ModelHandler, error) {
		start := time.Now()
		h, err := load(ctx, m, path)
		if err != nil {
			return nil, err
		}
		l := loadedModel{name: h.Name(), version: h.Version(), seconds: time.Since(start).Seconds()}
		if fi, statErr := os.Stat(path); statErr == nil {
			l.bytes = fi.Size()
		}
		if pr, ok := h.(handlers.ProviderReporter); ok {
			l.requested, l.active = cmp.Or(strings.ToLower(strings.TrimSpace(m.Provider)), "cpu"), pr.ActiveProvider()
		}
		ml.mu.Lock()
		ml.loaded = append(ml.loaded, l)
		ml.mu.Unlock()
		return h, nil
	}
}

// serveHTTP serves /metrics, /healthz (the process is alive: it does not
// depend on Kafka, so a broker outage never restarts pods), /readyz (ready
// returns nil) and, with withPprof, /debug/pprof/.
func serveHTTP(addr string, reg *prometheus.Registry, ready func() error, withPprof bool, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %q: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", withPprof)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
