package kinfercmd

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/internal/orttest"
)

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body := get(t, addr, "/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after %v: %s", code, d, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countOutputs splits outputs into predictions and dead letters.
func countOutputs(out *outputs, tp topics) (predicted, dead int) {
	for _, recs := range out.byInput {
		for _, r := range recs {
			if r.Topic == tp.dlq {
				dead++
			} else {
				predicted++
			}
		}
	}
	return predicted, dead
}

// `kinfer run` against a real broker, scraped over HTTP while it runs:
// the record counters equal what the test produced and read back, the
// franz-go client's own counters agree, every histogram holds one sample
// per record or batch, the model gauges describe the model file, and once
// caught up each of the six partitions shows zero lag.
func TestIntegrationMetricsScrape(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	orttest.Require(t)
	fix := loadFixture(t)
	tp := newTopics(t, brokers)
	cfgPath := writeConfig(t, brokers, tp, "")
	enableMetrics(t, cfgPath)
	const n, badEvery = 6000, 100
	kind := func(i int) string {
		if i%badEvery == 17 {
			return "corrupt"
		}
		return ""
	}
	prod := newProducer(t, brokers, tp, fix, nil)
	prod.produce(0, n/2, kind, 0)
	start := time.Now()
	addr, stop := runCmd(t, cfgPath, "--pprof")
	defer stop()
	if code, _ := get(t, addr, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	waitReady(t, addr, time.Minute)
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
	// The second half arrives while the member runs.
	prod.produce(n/2, n/2, kind, 0)
	out := readOutputs(t, brokers, tp, n, 3*time.Minute)
	predicted, dead := countOutputs(out, tp)
	if dead != n/badEvery || predicted != n-n/badEvery {
		t.Fatalf("read back %d predictions and %d dead letters", predicted, dead)
	}

	// Acknowledgements are counted in produce callbacks, which can run just
	// after the reader above saw the record: wait for them to settle.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = scrapeHTTP(t, addr)
		if sumOf(fams, "kinfer_records_produced_total", map[string]string{"topic": tp.out}) == float64(predicted) &&
			sumOf(fams, "kinfer_records_dead_lettered_total", map[string]string{"model": "", "reason": "decode_error"}) == float64(dead) &&
			sumOf(fams, "kinfer_consumer_lag_records", nil) == 0 && len(fams["kinfer_consumer_lag_records"].GetMetric()) == partitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never matched the outputs: produced %v (want %d), dead-lettered %v (want %d), lag %v over %d partitions",
				sumOf(fams, "kinfer_records_produced_total", nil), predicted, sumOf(fams, "kinfer_records_dead_lettered_total", nil), dead,
				sumOf(fams, "kinfer_consumer_lag_records", nil), len(fams["kinfer_consumer_lag_records"].GetMetric()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	model := map[string]string{"model": "fraud"}
	check("consumed", sumOf(fams, "kinfer_records_consumed_total", map[string]string{"topic": tp.in}), n)
	check("consumed partition series", float64(len(fams["kinfer_records_consumed_total"].GetMetric())), partitions)
	check("franz-go fetched records", sumOf(fams, "kinfer_kafka_fetch_records_total", map[string]string{"topic": tp.in}), n)
	check("franz-go produced predictions", sumOf(fams, "kinfer_kafka_produce_records_total", map[string]string{"topic": tp.out}), float64(predicted))
	check("franz-go produced dead letters", sumOf(fams, "kinfer_kafka_produce_records_total", map[string]string{"topic": tp.dlq}), float64(dead))
	check("end-to-end latency samples", sumOf(fams, "kinfer_end_to_end_latency_seconds", nil), float64(predicted))
	check("queue wait samples", sumOf(fams, "kinfer_model_queue_wait_seconds", model), float64(predicted))
	check("rows in batches", histSum(fams, "kinfer_model_batch_size_rows"), float64(predicted))
	batches := sumOf(fams, "kinfer_model_batch_size_rows", model)
	check("inferences", sumOf(fams, "kinfer_model_inferences_total", model), batches)
	check("inference latency samples", sumOf(fams, "kinfer_model_inference_seconds", model), batches)
	check("padding samples", sumOf(fams, "kinfer_model_padding_ratio", model), batches)
	check("padding (fixed-shape model)", histSum(fams, "kinfer_model_padding_ratio"), 0)
	check("model failures", sumOf(fams, "kinfer_model_failures_total", model), 0)
	check("reloads refused", sumOf(fams, "kinfer_model_reload_refused_total", model), 0)
	check("in flight", sumOf(fams, "kinfer_in_flight_records", nil), 0)
	check("partition in flight", sumOf(fams, "kinfer_partition_in_flight_records", nil), 0)
	check("assigned partitions", sumOf(fams, "kinfer_rebalances_total", map[string]string{"event": "assigned"}), partitions)
	check("offset commit errors", sumOf(fams, "kinfer_offset_commits_total", map[string]string{"result": "error"}), 0)
	if sumOf(fams, "kinfer_offset_commits_total", map[string]string{"result": "ok"}) == 0 {
		t.Error("no offset commit counted")
	}
	if e2e := histSum(fams, "kinfer_end_to_end_latency_seconds"); e2e <= 0 {
		t.Errorf("end-to-end latency sum %v", e2e)
	}
	if batches == 0 || batches > float64(predicted) {
		t.Errorf("%v batches for %d rows", batches, predicted)
	}
	// Every histogram has samples in finite buckets, not only +Inf.
	for _, h := range []string{"kinfer_end_to_end_latency_seconds", "kinfer_model_batch_size_rows", "kinfer_model_queue_wait_seconds", "kinfer_model_inference_seconds", "kinfer_model_padding_ratio"} {
		var finite uint64
		for _, m := range fams[h].GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				finite = max(finite, b.GetCumulativeCount())
			}
		}
		if finite == 0 {
			t.Errorf("%s: no sample in any finite bucket", h)
		}
	}
	fi, err := os.Stat(filepath.Join(repoRoot(t), "testdata/models/fraud/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	check("model size bytes", sumOf(fams, "kinfer_model_size_bytes", model), float64(fi.Size()))
	if s := sumOf(fams, "kinfer_model_load_seconds", model); s <= 0 || s > 60 {
		t.Errorf("model load seconds %v", s)
	}
	var version string
	for _, m := range fams["kinfer_model_loaded_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "version" {
				version = l.GetValue()
			}
		}
	}
	dec := outputDecoder(t, cfgPath, nil)
	for _, recs := range out.byInput {
		if r := recs[0]; r.Topic == tp.out {
			got, err := dec.Decode(t.Context(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got.Native["model_version"] != version {
				t.Errorf("kinfer_model_loaded_info says version %q, predictions say %v", version, got.Native["model_version"])
			}
			break
		}
	}
	if code, body := get(t, addr, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof with --pprof: %d", code)
	}
	t.Logf("scraped: consumed %d, predicted %d, dead-lettered %d in %v batches; e2e latency mean %.1f ms",
		n, predicted, dead, batches, 1000*histSum(fams, "kinfer_end_to_end_latency_seconds")/float64(predicted))
}

// Scale-in: of two members sharing the input, one is stopped mid-stream
// (what KEDA does when lag falls). It drains, commits and leaves; the other
// takes its partitions over from the committed offsets. Every input ends
// with exactly one output — none lost, none redone — in input order, and
// the remaining member's metrics show the partitions it took over.
func TestIntegrationScaleInHandsPartitionsOver(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	orttest.Require(t)
	fix := loadFixture(t)
	tp := newTopics(t, brokers)
	cfgPath := writeConfig(t, brokers, tp, "")
	enableMetrics(t, cfgPath)
	const n = 12000
	prod := newProducer(t, brokers, tp, fix, nil)
	// The first records before the members start: the new topics then have
	// leaders, which kinfer checks at start-up.
	prod.produce(0, 100, nil, 0)
	produced := make(chan struct{})
	// About 8 s of input: 100 records every 60 ms.
	go func() { defer close(produced); prod.produce(100, n-100, nil, 60*time.Millisecond) }()

	addrA, stopA := runCmd(t, cfgPath)
	waitReady(t, addrA, time.Minute)
	addrB, stopB := runCmd(t, cfgPath)
	defer stopB()
	waitReady(t, addrB, time.Minute)
	owned := func(addr string) int { return len(scrapeHTTP(t, addr)["kinfer_consumer_lag_records"].GetMetric()) }
	deadline := time.Now().Add(time.Minute)
	for owned(addrA) == 0 || owned(addrB) == 0 || owned(addrA)+owned(addrB) != partitions {
		if time.Now().After(deadline) {
			t.Fatalf("the partitions never split: A owns %d, B %d", owned(addrA), owned(addrB))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ownedB := owned(addrB)
	t.Logf("split: A owns %d partitions, B %d", partitions-ownedB, ownedB)
	assignedB := sumOf(scrapeHTTP(t, addrB), "kinfer_rebalances_total", map[string]string{"event": "assigned"})
	stopped := time.Now()
	stopA()
	t.Logf("A drained, committed and left in %v", time.Since(stopped).Round(time.Millisecond))
	select {
	case <-produced:
		t.Fatal("the producer finished before scale-in: it was not mid-stream")
	default:
	}
	<-produced
	out := readOutputs(t, brokers, tp, n, 3*time.Minute)
	in := readInputs(t, brokers, tp, n)
	checkPredictions(t, fix, in, out, outputDecoder(t, cfgPath, nil), tp, nil, true)
	if out.n != n {
		t.Fatalf("%d outputs for %d inputs", out.n, n)
	}
	fams := scrapeHTTP(t, addrB)
	if got := len(fams["kinfer_consumer_lag_records"].GetMetric()); got != partitions {
		t.Fatalf("B owns %d partitions after scale-in, want %d", got, partitions)
	}
	if got := sumOf(fams, "kinfer_rebalances_total", map[string]string{"event": "assigned"}); got-assignedB != float64(partitions-ownedB) {
		t.Fatalf("B's assigned counter went from %v to %v; A handed over %d partitions", assignedB, got, partitions-ownedB)
	}
}
