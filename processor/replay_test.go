package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
)

const replayInSchema = `{"type": "record", "name": "In", "fields": [
  {"name": "id", "type": "string"},
  {"name": "x", "type": {"type": "array", "items": "float"}}]}`

var replayInCodec = func() *goavro.Codec {
	c, err := goavro.NewCodec(replayInSchema)
	if err != nil {
		panic(err)
	}
	return c
}()

// replayModel is a pure-Go model, y = 2x + 1 on x [-1, 4]; a batch holding
// 666 fails (the engine isolates the row: inference_error).
type replayModel struct {
	delay time.Duration
	calls atomic.Int64
}

func (m *replayModel) Name() string    { return "twice" }
func (m *replayModel) Version() string { return "v1" }
func (m *replayModel) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}}
}
func (m *replayModel) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 4}}}
}
func (m *replayModel) Close() error { return nil }
func (m *replayModel) Infer(_ context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	m.calls.Add(1)
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	x := in["x"]
	xs := x.Data.([]float32)
	ys := make([]float32, len(xs))
	for i, v := range xs {
		if v == 666 {
			return nil, errors.New("poison")
		}
		ys[i] = 2*v + 1
	}
	return map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: x.Shape, Data: ys}}, nil
}

// replayTestPipeline builds a pipeline for replayModel with the given
// replay section.
func replayTestPipeline(t *testing.T, brokers []string, replay string, model handlers.ModelHandler) *Pipeline {
	t.Helper()
	dir := t.TempDir()
	sch := filepath.Join(dir, "in.avsc")
	if err := os.WriteFile(sch, []byte(replayInSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: g
  input_topic: in
  output_topic: out
schema:
  input_schema_file: %s
model:
  name: twice
  path: model.onnx
  inputs:
    - tensor: x
      field: x
      dtype: float32
      shape: [4]
batch:
  max_size: 16
output:
  passthrough: [id]
processing:
  drain_timeout: 5s
  max_in_flight_records: 200
metrics:
  disabled: true
replay:
%s`, strings.Join(brokers, ","), sch, replay)
	cfg, err := config.Parse(filepath.Join(dir, "pipeline.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(t.Context(), cfg, func(context.Context, config.Model, string) (handlers.ModelHandler, error) { return model, nil }, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// replayValue is record id with x = [v, 0, 0, 0]; v 666 poisons the model.
func replayValue(t testing.TB, id string, v float32) []byte {
	b, err := replayInCodec.BinaryFromNative(nil, map[string]any{"id": id, "x": []any{v, float32(0), float32(0), float32(0)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replayInputKind says what input i of a partition is: "" good,
// "corrupt" (decode_error) or "poison" (inference_error).
func replayInputKind(i int) string {
	switch {
	case i%50 == 7:
		return "corrupt"
	case i%77 == 5:
		return "poison"
	}
	return ""
}

// produceReplayInputs writes n records to each partition of topic in;
// record i of partition p has id "p-i" and, if ts is set, timestamp ts(i).
func produceReplayInputs(t *testing.T, addrs []string, partitions, n int, ts func(i int) time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range partitions {
		for i := range n {
			v := replayValue(t, fmt.Sprintf("%d-%d", p, i), float32(i)+0.5)
			switch replayInputKind(i) {
			case "corrupt":
				v = []byte{0xff, 0xff, 0xff}
			case "poison":
				v = replayValue(t, fmt.Sprintf("%d-%d", p, i), 666)
			}
			r := &kgo.Record{Topic: "in", Partition: int32(p), Key: []byte(fmt.Sprint(i)), Value: v}
			if ts != nil {
				r.Timestamp = ts(i)
			}
			cl.Produce(t.Context(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	if err := cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func replayCluster(t *testing.T, partitions int) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), "in", "out", "in.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// fileOutputs reads a replay's output directory: predictions and dead
// letters, in file order.
func fileOutputs(t *testing.T, dir string) (preds, dead []map[string]any, parts int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			t.Fatalf("temporary file %s left", n)
		}
		if !strings.HasSuffix(n, ".avro") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		r, err := goavro.NewOCFReader(f)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if strings.HasPrefix(n, "part-") {
				preds = append(preds, v.(map[string]any))
			} else {
				dead = append(dead, v.(map[string]any))
			}
		}
		f.Close()
		if strings.HasPrefix(n, "part-") {
			parts++
		}
	}
	return preds, dead, parts
}

// checkSlice asserts that the outputs hold exactly records [from, to) of
// every partition once, predictions in partition order with y = 2x+1, and
// bad records dead-lettered with their reason.
func checkSlice(t *testing.T, preds, dead []map[string]any, partitions, from, to int) {
	t.Helper()
	seen := map[string]int{}
	last := map[int]int{}
	for _, p := range preds {
		id := p["id"].(string)
		var part, i int
		fmt.Sscanf(id, "%d-%d", &part, &i)
		seen[id]++
		if replayInputKind(i) != "" {
			t.Fatalf("bad input %s was predicted", id)
		}
		if l, ok := last[part]; ok && i <= l {
			t.Fatalf("partition %d: %d after %d", part, i, l)
		}
		last[part] = i
		if y := p["y"].([]any)[0].(float32); y != 2*(float32(i)+0.5)+1 {
			t.Fatalf("%s: y[0] = %v", id, y)
		}
	}
	for _, d := range dead {
		id := fmt.Sprintf("%d-%d", d["partition"], d["offset"])
		seen[id]++
		want := map[string]string{"corrupt": "decode_error", "poison": "inference_error"}[replayInputKind(int(d["offset"].(int64)))]
		if d["reason"] != want || d["source"] != "in" {
			t.Fatalf("dead letter %s: reason %v source %v, want %s", id, d["reason"], d["source"], want)
		}
		if want == "inference_error" {
			if d["value_json"] == nil || !strings.Contains(d["value_json"].(map[string]any)["string"].(string), `"id":"`+id+`"`) {
				t.Fatalf("dead letter %s: value_json %v", id, d["value_json"])
			}
		}
	}
	for p := range partitions {
		for i := range 2 * to {
			id := fmt.Sprintf("%d-%d", p, i)
			want := 0
			if i >= from && i < to {
				want = 1
			}
			if seen[id] != want {
				t.Fatalf("record %s has %d outputs, want %d", id, seen[id], want)
			}
		}
	}
}

func readTestCheckpoint(t *testing.T, path string) *replayCheckpoint {
	t.Helper()
	c, err := readCheckpoint(path)
	if err != nil || c == nil {
		t.Fatalf("checkpoint %s: %v", path, err)
	}
	return c
}

// A slice given as per-partition offsets, from a topic into size-capped
// files: exactly the slice, once, in partition order, bad records in
// dead-letter files, and the checkpoint says done at the slice's end.
func TestReplayTopicSliceToFiles(t *testing.T) {
	addrs := replayCluster(t, 3)
	produceReplayInputs(t, addrs, 3, 400, nil)
	out := filepath.Join(t.TempDir(), "out")
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  from: \"0:100,1:100,2:100\"\n  to: \"300\"\n  output_dir: %s\n  output_file_max_bytes: 2KiB\n  output_codec: snappy\n", out), &replayModel{})
	sum, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Total != 600 || sum.Run.Done() != 600 || sum.Run.In != 600 {
		t.Fatalf("summary %+v", sum)
	}
	preds, dead, parts := fileOutputs(t, out)
	checkSlice(t, preds, dead, 3, 100, 300)
	if parts < 5 {
		t.Fatalf("%d part files; 2KiB parts should make more", parts)
	}
	ck := readTestCheckpoint(t, filepath.Join(out, "_kinfer_checkpoint.json"))
	for part := range int32(3) {
		if r := ck.Job.Ranges[part]; r.Start != 100 || r.End != 300 || ck.Positions[part] != 300 {
			t.Fatalf("partition %d: range %+v position %d", part, r, ck.Positions[part])
		}
	}
	if !ck.Done || len(ck.Parts) != len(sum.Parts) || ck.Counts.Done() != 600 {
		t.Fatalf("checkpoint: done %v, %d parts (summary %d), counts %+v", ck.Done, len(ck.Parts), len(sum.Parts), ck.Counts)
	}
	if sum.Run.Reasons["decode_error"] == 0 || sum.Run.Reasons["inference_error"] == 0 {
		t.Fatalf("reasons %v", sum.Run.Reasons)
	}
}

// From a topic to the output and dead-letter topics: every record of the
// default slice (earliest to the end seen at start) once, nothing after
// it, and the checkpoint's positions at the end.
func TestReplayTopicToTopic(t *testing.T) {
	addrs := replayCluster(t, 2)
	produceReplayInputs(t, addrs, 2, 300, nil)
	ck := filepath.Join(t.TempDir(), "ck.json")
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  checkpoint: %s\n  checkpoint_interval: 10ms\n", ck), &replayModel{})
	sum, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Run.Done() != 600 {
		t.Fatalf("summary %+v", sum)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("out", "in.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for n := 0; n < 600; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 600 outputs", n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sp, _ := HeaderValue(r, HeaderSourcePartition)
			so, _ := HeaderValue(r, HeaderSourceOffset)
			seen[sp+"-"+so]++
			n++
		})
	}
	for part := range 2 {
		for i := range 300 {
			if seen[fmt.Sprintf("%d-%d", part, i)] != 1 {
				t.Fatalf("record %d-%d has %d outputs", part, i, seen[fmt.Sprintf("%d-%d", part, i)])
			}
		}
	}
	c := readTestCheckpoint(t, ck)
	if !c.Done || c.Positions[0] != 300 || c.Positions[1] != 300 {
		t.Fatalf("checkpoint done %v positions %v", c.Done, c.Positions)
	}
}

// A slice given by record times covers the records stamped in [from, to).
func TestReplayTimeRange(t *testing.T) {
	addrs := replayCluster(t, 1)
	base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	produceReplayInputs(t, addrs, 1, 200, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	out := filepath.Join(t.TempDir(), "out")
	from, to := base.Add(20*time.Second).Format(time.RFC3339), base.Add(150*time.Second).Format(time.RFC3339)
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  from: %q\n  to: %q\n  output_dir: %s\n", from, to, out), &replayModel{})
	if _, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()}); err != nil {
		t.Fatal(err)
	}
	preds, dead, _ := fileOutputs(t, out)
	checkSlice(t, preds, dead, 1, 20, 150)
}

// Stopped mid-job (ctx cancelled, as by SIGINT), a replay saves what is
// durable and says so; resumed, it finishes, and the files hold every
// record exactly once.
func TestReplayInterruptResume(t *testing.T) {
	addrs := replayCluster(t, 3)
	produceReplayInputs(t, addrs, 3, 1000, nil)
	out := filepath.Join(t.TempDir(), "out")
	replay := fmt.Sprintf("  output_dir: %s\n  output_file_max_bytes: 4KiB\n", out)
	model := &replayModel{delay: 2 * time.Millisecond}
	p := replayTestPipeline(t, addrs, replay, model)
	ctx, cancel := context.WithCancel(t.Context())
	var counts func() ReplayCounts
	started := make(chan struct{})
	go func() {
		<-started
		for counts().Done() < 600 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := RunReplay(ctx, p, ReplayOptions{Logger: quietLog(), Progress: func(total int64, c func() ReplayCounts) {
		if total != 3000 {
			t.Errorf("total %d, want 3000", total)
		}
		counts = c
		close(started)
	}})
	if !errors.Is(err, ErrReplayInterrupted) || sum == nil || sum.Complete || sum.Run.Done() >= 3000 {
		t.Fatalf("interrupted run: %v, %+v", err, sum)
	}
	ck := readTestCheckpoint(t, filepath.Join(out, "_kinfer_checkpoint.json"))
	if ck.Done || ck.Counts.Done() == 0 {
		t.Fatalf("checkpoint after the interruption: done %v counts %+v", ck.Done, ck.Counts)
	}
	// Starting it again without --resume is refused.
	if _, err := RunReplay(t.Context(), replayTestPipeline(t, addrs, replay, &replayModel{}), ReplayOptions{Logger: quietLog()}); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("restart without resume: %v", err)
	}
	sum, err = RunReplay(t.Context(), replayTestPipeline(t, addrs, replay, &replayModel{}), ReplayOptions{Logger: quietLog(), Resume: true})
	if err != nil || !sum.Complete || !sum.Resumed || sum.Job.Done() != 3000 {
		t.Fatalf("resume: %v, %+v", err, sum)
	}
	preds, dead, _ := fileOutputs(t, out)
	checkSlice(t, preds, dead, 3, 0, 1000)
}

// Predictions into files, dead letters into the dead-letter topic: a cut
// waits for the dead letters' acknowledgements, and every record has one
// output across the two.
func TestReplayFilesWithTopicDeadLetters(t *testing.T) {
	addrs := replayCluster(t, 2)
	produceReplayInputs(t, addrs, 2, 500, nil)
	out := filepath.Join(t.TempDir(), "out")
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  output_dir: %s\n  dead_letter: topic\n  output_file_max_bytes: 2KiB\n", out), &replayModel{})
	sum, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()})
	if err != nil || !sum.Complete {
		t.Fatalf("%v %+v", err, sum)
	}
	preds, dead, _ := fileOutputs(t, out)
	if len(dead) != 0 {
		t.Fatalf("%d dead letters in files", len(dead))
	}
	if int64(len(preds)) != sum.Run.Predicted || sum.Run.DeadLettered == 0 || len(preds)+int(sum.Run.DeadLettered) != 1000 {
		t.Fatalf("%d predictions in files, summary %+v", len(preds), sum.Run)
	}
}

// Input files (each one "partition" of row offsets) into the output topic.
func TestReplayFilesToTopic(t *testing.T) {
	addrs := replayCluster(t, 1)
	dir := t.TempDir()
	for f := range 3 {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("in-%d.avro", f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: fh, Codec: replayInCodec, CompressionName: schema.OCFCodecs()[f]})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 250 {
			if err := w.Append([]any{map[string]any{"id": fmt.Sprintf("%d-%d", f, i), "x": []any{float32(i), float32(0), float32(0), float32(0)}}}); err != nil {
				t.Fatal(err)
			}
		}
		fh.Close()
	}
	ck := filepath.Join(dir, "ck.json")
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  input_files: %s\n  checkpoint: %s\n", filepath.Join(dir, "in-*.avro"), ck), &replayModel{})
	sum, err := RunReplay(t.Context(), p, ReplayOptions{Logger: quietLog()})
	if err != nil || !sum.Complete || sum.Run.Predicted != 750 {
		t.Fatalf("%v %+v", err, sum)
	}
	c := readTestCheckpoint(t, ck)
	if c.Job.Source != "files" || len(c.Job.Files) != 3 || c.Positions[2] != 250 || !c.Done {
		b, _ := json.Marshal(c)
		t.Fatalf("checkpoint %s", b)
	}
}

// RecoverOutputDir completes the renames a crash interrupted (the
// checkpoint lists the file, which is still under its temporary name),
// deletes unfinished temporary files, and refuses part files the
// checkpoint does not know.
func TestRecoverOutputDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("part-00000.avro")
	write(".part-00001.avro.tmp")         // committed, not yet renamed
	write(".dead-letters-00001.avro.tmp") // committed, not yet renamed
	write(".part-00002.avro.tmp")         // unfinished
	write("notes.txt")
	parts := []replayPart{{File: "part-00000.avro"}, {File: "part-00001.avro", DeadLetters: "dead-letters-00001.avro"}}
	if err := RecoverOutputDir(dir, parts); err != nil {
		t.Fatal(err)
	}
	names, _ := outputFilesIn(dir)
	if strings.Join(names, " ") != "dead-letters-00001.avro part-00000.avro part-00001.avro" {
		t.Fatalf("after recovery: %v", names)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("recovery removed a file that is not ours")
	}
	write("part-00002.avro")
	if err := RecoverOutputDir(dir, parts); err == nil || !strings.Contains(err.Error(), "not in the checkpoint") {
		t.Fatalf("unknown part file: %v", err)
	}
	os.Remove(filepath.Join(dir, "part-00001.avro"))
	if err := RecoverOutputDir(dir, parts[:2]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing listed file: %v", err)
	}
}

// The sink has Commit record a cut before the files get their final
// names, with positions one past the last record written per partition.
func TestFileSinkCommitsBeforeRename(t *testing.T) {
	dir := t.TempDir()
	schemaJSON := `{"type": "record", "name": "P", "fields": [{"name": "v", "type": "long"}]}`
	codec, _ := goavro.NewCodec(schemaJSON)
	var cuts []FileCut
	var s *AvroFileSink
	s, err := NewAvroFileSink(FileSinkConfig{
		Dir: dir, DeadLetterTopic: "dlq", Schema: schemaJSON, Codec: schema.OCFDeflate, MaxBytes: 1024,
		Commit: func(c FileCut) error {
			if c.Part.File != "" {
				if _, err := os.Stat(filepath.Join(dir, c.Part.File)); err == nil {
					t.Errorf("%s has its final name before the commit", c.Part.File)
				}
				if _, err := os.Stat(filepath.Join(dir, "."+c.Part.File+".tmp")); err != nil {
					t.Errorf("%s: temporary file missing at commit: %v", c.Part.File, err)
				}
			}
			cuts = append(cuts, c)
			return nil
		},
	}, map[int32]int64{1: 500})
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	for i := range 2000 {
		v, _ := codec.BinaryFromNative(nil, map[string]any{"v": int64(i)})
		rec := &kgo.Record{Topic: "out", Value: v, Headers: sourceHeaders(&kgo.Record{Topic: "in", Partition: int32(i % 2), Offset: int64(i / 2)})}
		if i%100 == 99 {
			rec = deadLetter("dlq", &kgo.Record{Topic: "in", Partition: int32(i % 2), Offset: int64(i / 2), Value: []byte("bad")}, "decode_error", errors.New("boom"))
		}
		s.Write(t.Context(), rec, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			written++
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if written != 2000 || len(cuts) < 3 || !cuts[len(cuts)-1].Final {
		t.Fatalf("%d acknowledged, %d cuts", written, len(cuts))
	}
	last := cuts[len(cuts)-1]
	if last.Positions[0] != 1000 || last.Positions[1] != 1000 {
		t.Fatalf("final positions %v", last.Positions)
	}
	var records, dead int64
	for _, c := range cuts {
		records += c.Part.Records
		dead += c.Part.DeadLettered
	}
	if records != 1980 || dead != 20 {
		t.Fatalf("cuts cover %d predictions and %d dead letters", records, dead)
	}
	// A write after Close fails rather than landing in no file.
	s.Write(t.Context(), &kgo.Record{Topic: "out", Headers: sourceHeaders(&kgo.Record{})}, func(_ *kgo.Record, err error) {
		if err == nil {
			t.Error("write after Close succeeded")
		}
	})
}

// A transactional input: each partition ends in a commit marker, and an
// aborted transaction sits in the middle. The replay reads the committed
// records only, still ends, and reports the job done.
func TestReplayTransactionalInput(t *testing.T) {
	addrs := replayCluster(t, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("replay-test"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	txn := func(from, n int, commit bool) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			for i := from; i < from+n; i++ {
				cl.Produce(t.Context(), &kgo.Record{Topic: "in", Partition: p, Value: replayValue(t, fmt.Sprintf("%d-%d", p, i), float32(i)+0.5)}, nil)
			}
		}
		if err := cl.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(t.Context(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(0, 100, true)
	txn(100, 50, false) // aborted: never replayed
	txn(150, 100, true)
	out := filepath.Join(t.TempDir(), "out")
	p := replayTestPipeline(t, addrs, fmt.Sprintf("  output_dir: %s\n", out), &replayModel{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sum, err := RunReplay(ctx, p, ReplayOptions{Logger: quietLog()})
	if err != nil || !sum.Complete {
		t.Fatalf("%v %+v", err, sum)
	}
	preds, dead, _ := fileOutputs(t, out)
	if len(dead) != 0 || len(preds) != 400 {
		t.Fatalf("%d predictions, %d dead letters; want the 400 committed records", len(preds), len(dead))
	}
	for _, pr := range preds {
		var part, i int
		fmt.Sscanf(pr["id"].(string), "%d-%d", &part, &i)
		if i >= 100 && i < 150 {
			t.Fatalf("aborted record %s was replayed", pr["id"])
		}
	}
	ck := readTestCheckpoint(t, filepath.Join(out, "_kinfer_checkpoint.json"))
	for part, r := range ck.Job.Ranges {
		if ck.Positions[part] != r.End {
			t.Fatalf("partition %d at %d, range %+v", part, ck.Positions[part], r)
		}
	}
}

// TestNativeJSON: dead-letter descriptions survive NaN in either array
// form the decoder produces.
func TestNativeJSON(t *testing.T) {
	nan := math.NaN()
	got := nativeJSON(map[string]any{"a": []float32{1, float32(nan)}, "b": []any{2.5, nan}, "c": []float64{math.Inf(-1)}})
	if want := `{"a":[1,"NaN"],"b":[2.5,"NaN"],"c":["-Infinity"]}`; got != want {
		t.Fatalf("nativeJSON = %s, want %s", got, want)
	}
}
