package processor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinfer/kinfer/batch"
)

// Metrics are the engine's Prometheus metrics, all under kinfer_. Build one
// per process with NewMetrics on a non-global registry.
type Metrics struct {
	Consumed     *prometheus.CounterVec
	Produced     *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	EndToEnd     prometheus.Histogram
	Commits      *prometheus.CounterVec
	Rebalances   *prometheus.CounterVec

	Inferences  *prometheus.CounterVec
	Failures    *prometheus.CounterVec
	BatchSize   *prometheus.HistogramVec
	Padding     *prometheus.HistogramVec
	QueueWait   *prometheus.HistogramVec
	InferTime   *prometheus.HistogramVec
	ShapeRows   *prometheus.CounterVec
	ModelLoaded *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	lat := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5ms .. ~16s
	m := &Metrics{
		Consumed:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_consumed_total", Help: "Input records taken into the pipeline."}, []string{"topic", "partition"}),
		Produced:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_produced_total", Help: "Predictions acknowledged by the broker."}, []string{"topic"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_dead_lettered_total", Help: "Input records written to the dead-letter topic, by reason."}, []string{"reason"}),
		EndToEnd:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kinfer_end_to_end_latency_seconds", Help: "Input record timestamp to prediction acknowledged.", Buckets: lat}),
		Commits:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_offset_commits_total", Help: "Offset commits, by result."}, []string{"result"}),
		Rebalances:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_rebalances_total", Help: "Partitions assigned, revoked or lost."}, []string{"event"}),
		Inferences:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_inferences_total", Help: "Model calls (batches)."}, []string{"model"}),
		Failures:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_failures_total", Help: "Model calls that returned an error."}, []string{"model"}),
		BatchSize:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_batch_size_rows", Help: "Rows per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}, []string{"model"}),
		Padding:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_padding_ratio", Help: "Padded elements / total elements per batch.", Buckets: []float64{0, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 0.75, 1}}, []string{"model"}),
		QueueWait:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_queue_wait_seconds", Help: "Time a row waited in the batcher.", Buckets: lat}, []string{"model"}),
		InferTime:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_inference_seconds", Help: "Model call latency per batch.", Buckets: lat}, []string{"model"}),
		ShapeRows:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_shape_rows_total", Help: "Rows per shape bucket."}, []string{"model", "shape"}),
		ModelLoaded:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_model_loaded_info", Help: "1 for the model version that serves predictions."}, []string{"model", "version"}),
	}
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Produced, m.DeadLettered, m.EndToEnd, m.Commits, m.Rebalances,
			m.Inferences, m.Failures, m.BatchSize, m.Padding, m.QueueWait, m.InferTime, m.ShapeRows, m.ModelLoaded)
	}
	return m
}

// RegisterInFlight exposes the engine's in-flight records as a gauge.
func (m *Metrics) RegisterInFlight(reg prometheus.Registerer, e *Engine) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kinfer_in_flight_records", Help: "Records taken in but not yet durable."}, func() float64 { n, _ := e.InFlight(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kinfer_in_flight_bytes", Help: "Input bytes of records taken in but not yet durable."}, func() float64 { _, b := e.InFlight(); return float64(b) }),
	)
}

func (m *Metrics) deadLettered(reason string) { m.DeadLettered.WithLabelValues(reason).Inc() }

func (m *Metrics) modelInfo(info ModelInfo) {
	m.ModelLoaded.WithLabelValues(info.Name, info.Version).Set(1)
}

func (m *Metrics) queueWait(model string, d time.Duration) {
	m.QueueWait.WithLabelValues(model).Observe(d.Seconds())
}

func (m *Metrics) batch(model string, b *batch.Batch) {
	m.BatchSize.WithLabelValues(model).Observe(float64(len(b.Refs)))
	if b.TotalElems > 0 {
		m.Padding.WithLabelValues(model).Observe(float64(b.PaddedElems) / float64(b.TotalElems))
	}
	m.ShapeRows.WithLabelValues(model, b.Key).Add(float64(len(b.Refs)))
}

func (m *Metrics) inference(model string, d time.Duration, err error) {
	m.Inferences.WithLabelValues(model).Inc()
	m.InferTime.WithLabelValues(model).Observe(d.Seconds())
	if err != nil {
		m.Failures.WithLabelValues(model).Inc()
	}
}
