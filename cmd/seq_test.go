package kinfercmd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
)

const seqSchema = `{"type": "record", "name": "Text", "namespace": "kinfer.test", "fields": [
  {"name": "id", "type": "long"},
  {"name": "tokens", "type": {"type": "array", "items": "long"}}]}`

// seqFixture is testdata/models/seqpool/expected.json: rows of lengths
// 1..300 with numpy's outputs for each row run alone.
type seqFixture struct {
	Inputs struct {
		InputIDs [][]int64 `json:"input_ids"`
	} `json:"inputs"`
	Outputs struct {
		Logits      [][]float64 `json:"logits"`
		TokenScores [][]float64 `json:"token_scores"`
	} `json:"outputs"`
}

func loadSeqFixture(t *testing.T) *seqFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata/models/seqpool/expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f seqFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func seqConfig(t *testing.T, brokers []string, batchYAML string) string {
	t.Helper()
	dir := t.TempDir()
	sch := filepath.Join(dir, "text.avsc")
	if err := os.WriteFile(sch, []byte(seqSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`kafka: {brokers: [%q], group: seq, input_topic: text, output_topic: scores, dead_letter_topic: text.dlq}
schema: {input_schema_file: %s}
model:
  name: seqpool
  path: %s
  inputs:
    - {tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}
%s
output: {passthrough: [id]}
processing: {commit_interval: 100ms}
metrics: {disabled: true}
`, brokers[0], sch, filepath.Join(repoRoot(t), "testdata/models/seqpool/model.onnx"), batchYAML)
	p := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Rows of random sequence lengths 1..300 through a model with a dynamic
// sequence axis: shape-bucketed batches with padding and a generated
// attention mask predict every row exactly as running it alone does
// (within 1e-5), per-token outputs trimmed to each row's length, order
// kept per partition. Stacking the same rows naively fails with the
// equal-size error that Dataflow ML users hit.
func TestVariableLengthRowsBatchedByShape(t *testing.T) {
	orttest.Require(t)
	runSeq(t, `batch:
  max_size: 32
  max_delay: 2ms
  pad:
    input_ids: {axis: 0, buckets: [16, 32, 64, 128, 256, 320]}
  mask_input: attention_mask`, 0)
}

// A row longer than the largest bucket is dead-lettered with reason
// row_too_long; the rest of the stream is predicted.
func TestRowLongerThanLargestBucketDeadLettered(t *testing.T) {
	orttest.Require(t)
	runSeq(t, `batch:
  max_size: 32
  max_delay: 2ms
  pad:
    input_ids: {axis: 0, buckets: [64, 128, 256]}
  mask_input: attention_mask`, 256)
}

// runSeq streams variable-length rows through seqpool with the given
// batch section. Rows longer than tooLong (if > 0) must be dead-lettered.
func runSeq(t *testing.T, batchYAML string, tooLong int) {
	fix := loadSeqFixture(t)
	rows := make([]*tensor.Tensor, len(fix.Inputs.InputIDs))
	for i, ids := range fix.Inputs.InputIDs {
		rows[i] = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(ids))}, Data: ids}
	}
	if _, err := tensor.Stack(rows); err == nil || !strings.Contains(err.Error(), "stack expects each tensor to be equal size") {
		t.Fatalf("naive stacking of mixed lengths: %v", err)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "text", "scores", "text.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cfgPath := seqConfig(t, brokers, batchYAML)

	enc, err := schema.NewEncoder(seqSchema)
	if err != nil {
		t.Fatal(err)
	}
	prod, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer prod.Close()
	const n = 3000
	rng := rand.New(rand.NewPCG(1, 2))
	which := make([]int, n)
	for i := range n {
		which[i] = rng.IntN(len(rows))
		ids := fix.Inputs.InputIDs[which[i]]
		v, err := enc.Encode(map[string]any{"id": int64(i), "tokens": toAny(ids)})
		if err != nil {
			t.Fatal(err)
		}
		prod.Produce(context.Background(), &kgo.Record{Topic: "text", Key: []byte(strconv.Itoa(i % 13)), Value: v}, nil)
	}
	if err := prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	p, stop := startPipeline(t, cfgPath, modelLoader(nil, nil), processor.RunOptions{})

	dec, err := schema.NewFileDecoder(p.Codec.OutputSchema)
	if err != nil {
		t.Fatal(err)
	}
	cons, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("scores", "text.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	lastID := map[string]int64{} // per input partition
	got := 0
	deadline, cancelRead := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelRead()
	var worst float64
	dead := 0
	for got < n {
		fs := cons.PollFetches(deadline)
		if deadline.Err() != nil {
			t.Fatalf("%d of %d predictions", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Topic != "scores" {
				msg, _ := processor.HeaderValue(r, processor.HeaderError)
				in, err := schema.NewFileDecoder(seqSchema)
				if err != nil {
					t.Fatal(err)
				}
				orig, err := in.Decode(context.Background(), r.Value)
				if err != nil {
					t.Fatal(err)
				}
				l := len(numbers(t, orig.Native["tokens"]))
				if tooLong == 0 || l <= tooLong || processor.ReasonOfRecord(r) != "row_too_long" {
					t.Fatalf("dead letter for a row of %d tokens: %s %s", l, processor.ReasonOfRecord(r), msg)
				}
				dead++
				return
			}
			rec, err := dec.Decode(context.Background(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			id := rec.Native["id"].(int64)
			if tooLong > 0 && len(fix.Inputs.InputIDs[which[id]]) > tooLong {
				t.Fatalf("id %d with %d tokens predicted despite the largest bucket %d", id, len(fix.Inputs.InputIDs[which[id]]), tooLong)
			}
			src, _ := processor.HeaderValue(r, processor.HeaderSourcePartition)
			if last, ok := lastID[src+"/"+strconv.Itoa(int(r.Partition))]; ok && id <= last {
				t.Fatalf("partition %s: id %d after %d", src, id, last)
			}
			lastID[src+"/"+strconv.Itoa(int(r.Partition))] = id
			row := which[id]
			logits := numbers(t, rec.Native["logits"])
			for j, want := range fix.Outputs.Logits[row] {
				worst = max(worst, math.Abs(logits[j]-want))
			}
			scores := numbers(t, rec.Native["token_scores"])
			if len(scores) != len(fix.Outputs.TokenScores[row]) {
				t.Fatalf("id %d: %d token scores for a row of %d tokens (padding not trimmed)", id, len(scores), len(fix.Outputs.TokenScores[row]))
			}
			for j, want := range fix.Outputs.TokenScores[row] {
				worst = max(worst, math.Abs(scores[j]-want))
			}
		})
	}
	stop()
	if worst > 1e-5 {
		t.Fatalf("max difference from running each row alone: %g", worst)
	}
	if tooLong > 0 && dead == 0 {
		t.Fatal("no row was longer than the largest bucket: the test proves nothing")
	}
	t.Logf("%d variable-length rows: %d predicted, %d dead-lettered as too long; max difference from row-alone outputs %.2g", n, n-dead, dead, worst)
}

func toAny(xs []int64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
