package processor

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinfer/kinfer/batch"
)

// Metrics are the engine's Prometheus metrics, all under kinfer_, with the
// unit in the name. Build one per process with NewMetrics on a non-global
// registry. docs/metrics.md lists every name; a test keeps the two equal.
type Metrics struct {
	Consumed     *prometheus.CounterVec
	Produced     *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	EndToEnd     prometheus.Histogram
	Commits      *prometheus.CounterVec
	Rebalances   *prometheus.CounterVec

	// Lag is, per owned partition, the high watermark minus the offset
	// this member would commit now (the oldest record not yet durable).
	// Series are deleted when the partition is revoked or lost.
	Lag *prometheus.GaugeVec
	// PartitionInFlight is, per owned partition, the records taken in but
	// not yet durable. Deleted with the partition like Lag.
	PartitionInFlight *prometheus.GaugeVec

	Inferences    *prometheus.CounterVec
	Failures      *prometheus.CounterVec
	BatchSize     *prometheus.HistogramVec
	Padding       *prometheus.HistogramVec
	QueueWait     *prometheus.HistogramVec
	InferTime     *prometheus.HistogramVec
	ShapeRows     *prometheus.CounterVec
	ModelLoaded   *prometheus.GaugeVec
	ModelLoadTime *prometheus.GaugeVec
	ModelBytes    *prometheus.GaugeVec
	// ModelProvider is 1 for the execution provider each model asked for
	// (requested) and runs on (active); they differ after a fallback.
	ModelProvider *prometheus.GaugeVec
	// ReloadRefused counts model updates that were refused because the new
	// model failed its checks, so the serving model was kept.
	ReloadRefused *prometheus.CounterVec
	// Reloads counts model updates swapped in.
	Reloads *prometheus.CounterVec
	// Transactions counts exactly-once transactions by outcome.
	Transactions *prometheus.CounterVec
}

// Label names shared by several metrics.
const (
	labelTopic     = "topic"
	labelPartition = "partition"
	labelModel     = "model"
	labelVersion   = "version"
)

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	lat := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5ms .. ~16s
	e2e := prometheus.ExponentialBuckets(0.001, 2, 20)  // 1ms .. ~9min: backlogs show here
	tp := []string{labelTopic, labelPartition}
	model := []string{labelModel}
	m := &Metrics{
		Consumed:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_consumed_total", Help: "Input records taken into the pipeline."}, tp),
		Produced:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_produced_total", Help: "Predictions acknowledged by the broker."}, []string{labelTopic}),
		DeadLettered:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_records_dead_lettered_total", Help: "Input records written to the dead-letter topic and acknowledged, by model and reason."}, []string{labelModel, "reason"}),
		EndToEnd:          prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kinfer_end_to_end_latency_seconds", Help: "Input record timestamp to prediction acknowledged by the broker.", Buckets: e2e}),
		Commits:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_offset_commits_total", Help: "Offset commits, by result (ok, error)."}, []string{"result"}),
		Rebalances:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_rebalances_total", Help: "Partitions assigned, revoked or lost."}, []string{"event"}),
		Lag:               prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_consumer_lag_records", Help: "Per owned partition: high watermark minus the offset this member would commit now."}, tp),
		PartitionInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_partition_in_flight_records", Help: "Per owned partition: records taken in but not yet durable."}, tp),
		Inferences:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_inferences_total", Help: "Model calls (batches)."}, model),
		Failures:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_failures_total", Help: "Model calls that returned an error."}, model),
		BatchSize:         prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_batch_size_rows", Help: "Rows per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}, model),
		Padding:           prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_padding_ratio", Help: "Padded elements / total elements per batch.", Buckets: []float64{0, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 0.75, 1}}, model),
		QueueWait:         prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_queue_wait_seconds", Help: "Time a row waited in the batcher.", Buckets: lat}, model),
		InferTime:         prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kinfer_model_inference_seconds", Help: "Model call latency per batch.", Buckets: lat}, model),
		ShapeRows:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_shape_rows_total", Help: "Rows per shape bucket."}, []string{labelModel, "shape"}),
		ModelLoaded:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_model_loaded_info", Help: "1 for the model version that serves predictions."}, []string{labelModel, labelVersion}),
		ModelLoadTime:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_model_load_seconds", Help: "How long loading the serving model version took."}, []string{labelModel, labelVersion}),
		ModelBytes:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_model_size_bytes", Help: "Size of the serving model version's file."}, []string{labelModel, labelVersion}),
		ModelProvider:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kinfer_model_execution_provider_info", Help: "1 for the execution provider a model asked for (requested) and runs on (active); they differ after a fallback to the CPU."}, []string{labelModel, "requested", "active"}),
		ReloadRefused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_reload_refused_total", Help: "Model updates refused (the serving model was kept)."}, model),
		Reloads:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_model_reloads_total", Help: "Model updates swapped in by hot reload."}, model),
		Transactions:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kinfer_transactions_total", Help: "Exactly-once transactions, by result (committed, aborted, error)."}, []string{"result"}),
	}
	// Exported at 0 from the start, so that alerts on a rate of errors
	// have a series to look at.
	m.Commits.WithLabelValues("ok")
	m.Commits.WithLabelValues("error")
	for _, r := range []string{"committed", "aborted", "error"} {
		m.Transactions.WithLabelValues(r) // exported at 0 from the start
	}
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Produced, m.DeadLettered, m.EndToEnd, m.Commits, m.Rebalances, m.Lag, m.PartitionInFlight,
			m.Inferences, m.Failures, m.BatchSize, m.Padding, m.QueueWait, m.InferTime, m.ShapeRows,
			m.ModelLoaded, m.ModelLoadTime, m.ModelBytes, m.ModelProvider, m.ReloadRefused, m.Reloads, m.Transactions)
	}
	return m
}

// RegisterInFlight exposes the engine's in-flight records as a gauge.
func (m *Metrics) RegisterInFlight(reg prometheus.Registerer, e interface{ InFlight() (int, int64) }) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kinfer_in_flight_records", Help: "Records taken in but not yet durable."}, func() float64 { n, _ := e.InFlight(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kinfer_in_flight_bytes", Help: "Input bytes of records taken in but not yet durable."}, func() float64 { _, b := e.InFlight(); return float64(b) }),
	)
}

// ObserveModelLoad records how long loading a model version took and its
// file size. The command (package kinfercmd) calls it after building the pipeline.
func (m *Metrics) ObserveModelLoad(name, version string, seconds float64, bytes int64) {
	m.ModelLoadTime.WithLabelValues(name, version).Set(seconds)
	m.ModelBytes.WithLabelValues(name, version).Set(float64(bytes))
	m.initModel(name)
}

// ObserveProvider records the execution provider a model asked for and
// the one it runs on.
func (m *Metrics) ObserveProvider(name, requested, active string) {
	m.ModelProvider.WithLabelValues(name, requested, active).Set(1)
}

// ObserveReload records a hot-reload attempt of model: refused (err set;
// the previous version keeps serving) or swapped in (the loaded-version
// gauge moves from previous to version).
func (m *Metrics) ObserveReload(model, previous, version string, err error) {
	if err != nil {
		m.ReloadRefused.WithLabelValues(model).Inc()
		return
	}
	m.Reloads.WithLabelValues(model).Inc()
	m.ModelLoaded.DeleteLabelValues(model, previous)
	m.ModelLoaded.WithLabelValues(model, version).Set(1)
}

// initModel exports a model's counters at 0 from the start, so that rates
// and alerts on them have a series before the first event.
func (m *Metrics) initModel(name string) {
	m.Failures.WithLabelValues(name)
	m.ReloadRefused.WithLabelValues(name)
	m.Reloads.WithLabelValues(name)
}

// deadLettered counts a dead letter; model is the model (or step) the row
// failed in, "" when it failed before any model (decoding, mapping).
func (m *Metrics) deadLettered(model, reason string) {
	m.DeadLettered.WithLabelValues(model, reason).Inc()
}

func (m *Metrics) modelInfo(info ModelInfo) {
	m.ModelLoaded.WithLabelValues(info.Name, info.Version).Set(1)
	m.initModel(info.Name)
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

// partitionGauges sets one owned partition's lag and in-flight gauges.
func (m *Metrics) partitionGauges(topic string, p int32, lag int64, inFlight int) {
	ps := strconv.Itoa(int(p))
	m.Lag.WithLabelValues(topic, ps).Set(float64(lag))
	m.PartitionInFlight.WithLabelValues(topic, ps).Set(float64(inFlight))
}

// dropPartition deletes a partition's gauges when it leaves this member,
// so a scrape never shows lag for a partition someone else now owns.
func (m *Metrics) dropPartition(topic string, p int32) {
	ps := strconv.Itoa(int(p))
	m.Lag.DeleteLabelValues(topic, ps)
	m.PartitionInFlight.DeleteLabelValues(topic, ps)
}
