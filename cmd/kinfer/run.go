package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/processor"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", `Join the consumer group in pipeline.yaml, predict every record of the input
topic with the model, and write one prediction per record to the output topic
(or a dead-letter record with the reason). At-least-once: an input offset is
committed only after its output is acknowledged. SIGINT/SIGTERM drain in-flight
records, commit, leave the group and exit 0.`, stderr)
	cfgPath := fs.String("config", "pipeline.yaml", "pipeline config file")
	brokers := fs.String("brokers", "", "comma-separated seed brokers (overrides kafka.brokers)")
	listen := fs.String("metrics-listen", "", "address for /metrics, /healthz, /readyz (overrides metrics.listen)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", true, "structured JSON logs (false: text)")
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
	if *listen != "" {
		cfg.Metrics.Listen = *listen
	}
	p, err := processor.Build(ctx, cfg, onnxLoader(log), processor.BuildOptions{RegisterOutput: true})
	if err != nil {
		return err
	}
	defer p.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ready atomic.Pointer[func() bool]
	if !cfg.Metrics.Disabled {
		stopHTTP, err := serveHTTP(cfg.Metrics.Listen, reg, func() bool {
			f := ready.Load()
			return f != nil && (*f)()
		}, log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	return processor.RunStream(ctx, p, processor.RunOptions{
		Brokers:    splitList(*brokers),
		Registerer: reg,
		Logger:     log,
		OnReady:    func(f func() bool) { ready.Store(&f) },
	})
}

// onnxLoader loads models with ONNX Runtime.
func onnxLoader(log *slog.Logger) processor.ModelLoader {
	return func(ctx context.Context, m config.Model, path string) (handlers.ModelHandler, error) {
		return onnx.Load(ctx, onnx.Options{
			Name: m.Name, Version: m.Version, Path: path, Copies: m.Copies,
			IntraOpThreads: m.IntraOpThreads, Provider: m.Provider, DeviceID: m.DeviceID, Logger: log,
		})
	}
}

// serveHTTP serves /metrics, /healthz (alive) and /readyz (joined the
// group with the model loaded).
func serveHTTP(addr string, reg *prometheus.Registry, ready func() bool, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: not yet assigned partitions", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
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
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
