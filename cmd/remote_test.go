package kinfercmd

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/handlers/remote/remotetest"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// A model served over the Open Inference Protocol (KServe v2) joins the
// pipeline with kind: remote. Predictions equal scikit-learn's, and a
// server that refuses requests for a while (503) delays the stream but
// loses or dead-letters nothing.
func TestRemoteModelInPipeline(t *testing.T) {
	orttest.Require(t)
	root := repoRoot(t)
	h, err := onnx.Load(context.Background(), onnx.Options{Path: filepath.Join(root, "testdata/models/fraud/model.onnx"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := remotetest.NewServer(h)
	defer srv.Close()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "tx", "scores", "tx.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cfgPath := filepath.Join(t.TempDir(), "pipeline.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`kafka: {brokers: [%q], group: g, input_topic: tx, output_topic: scores, dead_letter_topic: tx.dlq}
schema: {input_schema_file: %s/examples/fraud/transaction.avsc}
model:
  name: fraud
  kind: remote
  url: %s
  options: {timeout: 2s, backoff_base: 5ms, backoff_max: 50ms, max_attempts: 2, throttle_window: 500ms}
  inputs:
    - tensor: features
      fields: [amount, merchant_risk, distance_km, hour_of_day, txn_count_1h, account_age_days, is_foreign, avg_amount_30d]
      dtype: float32
batch: {max_size: 32, max_delay: 2ms}
output: {passthrough: [transaction_id]}
metrics: {disabled: true}
`, brokers[0], root, srv.URL)), 0o644)
	p, stop := startPipeline(t, cfgPath, modelLoader(quietLogger(), nil), processor.RunOptions{})

	fix := loadFixture(t)
	enc, _ := schema.NewEncoder(string(must(os.ReadFile(filepath.Join(root, "examples/fraud/transaction.avsc")))))
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer prod.Close()
	// The server refuses the next 12 requests: more than one call's
	// attempts, so the engine's own backoff has to carry the batch.
	srv.FailNext(12, 503, "0")
	const n = 600
	for i := range n {
		v, _ := enc.Encode(fix.native(i))
		prod.Produce(context.Background(), &kgo.Record{Topic: "tx", Value: v}, nil)
	}
	prod.Flush(context.Background())
	dec, _ := schema.NewFileDecoder(p.Codec.OutputSchema)
	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("scores", "tx.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	var worst float64
	for got := 0; got < n; {
		fs := cons.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("%d of %d outputs", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Topic != "scores" {
				msg, _ := processor.HeaderValue(r, processor.HeaderError)
				t.Fatalf("dead letter: %s", msg)
			}
			rec, _ := dec.Decode(context.Background(), r.Value)
			var i int
			fmt.Sscanf(rec.Native["transaction_id"].(string), "tx-%d", &i)
			row := i % len(fix.Inputs.Features)
			if rec.Native["label"].(int64) != fix.Outputs.Label[row] {
				t.Fatalf("tx-%d: label %v", i, rec.Native["label"])
			}
			for j, w := range fix.Outputs.Probabilities[row] {
				worst = max(worst, math.Abs(numbers(t, rec.Native["probabilities"])[j]-w))
			}
		})
	}
	stop()
	if worst > 1e-5 {
		t.Fatalf("max difference from scikit-learn %g", worst)
	}
	if srv.Refused() < 12 {
		t.Fatalf("the server refused %d requests; the test wanted 12", srv.Refused())
	}
}
