package kinfercmd

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// Hot reload through a running pipeline: a directory of numbered
// versions; a corrupt version 2 is refused (counted, version 1 keeps
// serving), a good version 3 is swapped in, every prediction names the
// version that made it, and no record is lost on the way.
func TestHotReloadRefusesBadVersionAndSwapsGoodOne(t *testing.T) {
	orttest.Require(t)
	root := repoRoot(t)
	models := t.TempDir()
	put := func(version string, src []byte) {
		dir := filepath.Join(models, "."+version) // staged, then renamed into place
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "model.onnx"), src, 0o644)
		if err := os.Rename(dir, filepath.Join(models, version)); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := os.ReadFile(filepath.Join(root, "testdata/models/fraud/model.onnx"))
	retrained, err := os.ReadFile(filepath.Join(root, "handlers/reload/testdata/fraud_retrained.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	put("1", good)

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "tx", "scores", "tx.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cfgText := string(must(os.ReadFile(exampleWith(t, "", ""))))
	cfgText = strings.Replace(cfgText, `brokers: ["127.0.0.1:9092"]`, `brokers: ["`+brokers[0]+`"]`, 1)
	cfgText = strings.NewReplacer("input_topic: transactions", "input_topic: tx", "output_topic: fraud-predictions", "output_topic: scores", "dead_letter_topic: transactions.dlq", "dead_letter_topic: tx.dlq").Replace(cfgText)
	cfgText = strings.Replace(cfgText, "  path: "+filepath.Join(root, "testdata/models/fraud/model.onnx"), "  path: "+models+"\n  reload: {interval: 20ms, settle: 20ms}", 1)
	cfgPath := filepath.Join(t.TempDir(), "pipeline.yaml")
	os.WriteFile(cfgPath, []byte(cfgText+"metrics: {disabled: true}\n"), 0o644)
	reg := prometheus.NewRegistry()
	m := processor.NewMetrics(reg)
	p, stop := startPipeline(t, cfgPath, modelLoader(quietLogger(), m), processor.RunOptions{Metrics: m, Registerer: reg})

	fix := loadFixture(t)
	enc, _ := schema.NewEncoder(string(must(os.ReadFile(filepath.Join(root, "examples/fraud/transaction.avsc")))))
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	defer prod.Close()
	dec, _ := schema.NewFileDecoder(p.Codec.OutputSchema)
	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("scores", "tx.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()

	// 50,000 records flow at a steady pace while the versions change.
	const n = 50000
	go func() {
		for i := range n {
			v, _ := enc.Encode(fix.native(i))
			prod.Produce(context.Background(), &kgo.Record{Topic: "tx", Value: v}, nil)
			if i%500 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	refused := func() float64 { return testutil.ToFloat64(m.ReloadRefused.WithLabelValues("fraud")) }
	reloads := func() float64 { return testutil.ToFloat64(m.Reloads.WithLabelValues("fraud")) }
	got := 0
	versions := map[string]int{}
	// seq[k] is the version sequence of input partition -> output
	// partition k, run-length encoded: a single switch 1 -> 3 is the only
	// acceptable shape.
	seq := map[string][]string{}
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer rcancel()
	for got < n {
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
			v := rec.Native["model_version"].(string)
			versions[v]++
			// Order holds per (output partition, input partition): records
			// without a key spread over output partitions.
			src, _ := processor.HeaderValue(r, processor.HeaderSourcePartition)
			k := src + "->" + strconv.Itoa(int(r.Partition))
			if s := seq[k]; len(s) == 0 || s[len(s)-1] != v {
				seq[k] = append(s, v)
			}
		})
		switch {
		case got > 10000 && refused() == 0 && versions["3"] == 0 && !staged(models, "2"):
			put("2", []byte("this is not an onnx model"))
		case got > 25000 && refused() == 1 && !staged(models, "3"):
			put("3", retrained)
		}
	}
	stop()
	if refused() != 1 || reloads() != 1 {
		t.Fatalf("refused %v, reloads %v: want the corrupt version refused once and the good one swapped in once", refused(), reloads())
	}
	for p, s := range seq {
		if strings.Join(s, ",") != "1,3" {
			t.Fatalf("partitions %s saw versions %v: want one switch from 1 to 3", p, s)
		}
	}
	t.Logf("%d records: versions %v; each partition switched once", n, versions)
}

// staged reports whether version dir v exists under models.
func staged(models, v string) bool {
	_, err := os.Stat(filepath.Join(models, v))
	return err == nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
