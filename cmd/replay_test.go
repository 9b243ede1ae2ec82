package kinfercmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// replayInput describes generated input files: record i is fixture row
// i%len, transaction "tx-i"; bad records have a NaN amount and must be
// dead-lettered (nan_forbidden).
type replayInput struct {
	paths []string
	n     int
	bad   map[string]bool // transaction ids
	file  map[string]int  // transaction id -> file index
	row   map[string]int  // transaction id -> row in its file
}

// writeReplayInputs writes n records round-robin over files of the given
// codecs (as goavro writes them), with every badEvery-th (if > 0) bad.
func writeReplayInputs(t testing.TB, dir string, fix *fraudFixture, n, badEvery int, codecs ...string) *replayInput {
	t.Helper()
	sch, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/fraud/transaction.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	in := &replayInput{n: n, bad: map[string]bool{}, file: map[string]int{}, row: map[string]int{}}
	recs := make([][]any, len(codecs))
	for i := range n {
		rec := fix.native(i)
		id := rec["transaction_id"].(string)
		if badEvery > 0 && i%badEvery == badEvery-1 {
			rec["amount"] = math.NaN()
			in.bad[id] = true
		}
		f := i % len(codecs)
		in.file[id], in.row[id] = f, len(recs[f])
		recs[f] = append(recs[f], rec)
	}
	for f, c := range codecs {
		p := filepath.Join(dir, fmt.Sprintf("in-%02d-%s.avro", f, c))
		fh, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: fh, Codec: codec, CompressionName: c})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(recs[f]); i += 500 {
			if err := w.Append(recs[f][i:min(i+500, len(recs[f]))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := fh.Close(); err != nil {
			t.Fatal(err)
		}
		in.paths = append(in.paths, p)
	}
	return in
}

// replayFileConfig writes a pipeline.yaml for the fraud model that needs
// no broker when input and output are files.
func replayFileConfig(t testing.TB, replay string) string {
	t.Helper()
	root := repoRoot(t)
	yaml := fmt.Sprintf(`kafka:
  brokers: ["127.0.0.1:1"]
  group: replay-test
  input_topic: transactions
  output_topic: predictions
schema:
  input_schema_file: %s
model:
  name: fraud
  path: %s
  inputs:
    - tensor: features
      fields: [amount, merchant_risk, distance_km, hour_of_day, txn_count_1h, account_age_days, is_foreign, avg_amount_30d]
      dtype: float32
  outputs:
    - tensor: label
      field: fraud_label
    - tensor: probabilities
batch:
  max_size: 64
output:
  passthrough: [transaction_id, account_id]
metrics:
  disabled: true
replay:
%s`, filepath.Join(root, "examples/fraud/transaction.avsc"), filepath.Join(root, "testdata/models/fraud/model.onnx"), replay)
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readOCF reads every record of an Avro container file with goavro.
func readOCF(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := goavro.NewOCFReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []map[string]any
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v.(map[string]any))
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// boxArrays returns v with package schema's typed numeric slices
// ([]float32, []int64, ...) turned into goavro's []any, in maps and arrays
// at any depth, so that records from both decoders compare equal.
func boxArrays(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = boxArrays(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = boxArrays(x)
		}
		return out
	case []float32:
		return boxed(v)
	case []float64:
		return boxed(v)
	case []int32:
		return boxed(v)
	case []int64:
		return boxed(v)
	}
	return v
}

func boxed[T any](s []T) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// replayOutputs is what a file-output replay left in its directory.
type replayOutputs struct {
	preds []map[string]any // in file order
	dead  []map[string]any
	parts int
	temps []string
}

func readReplayOutputs(t testing.TB, dir string) *replayOutputs {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // not yet made: a kill right at start-up
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	o := &replayOutputs{}
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".tmp"):
			o.temps = append(o.temps, n)
		case strings.HasPrefix(n, "part-"):
			o.parts++
			o.preds = append(o.preds, readOCF(t, filepath.Join(dir, n))...)
		case strings.HasPrefix(n, "dead-letters-"):
			o.dead = append(o.dead, readOCF(t, filepath.Join(dir, n))...)
		}
	}
	return o
}

// checkExactlyOnce asserts that every input has exactly one output (a
// prediction matching scikit-learn's, or a dead letter for a bad one),
// and that predictions from one input file are in its order.
func checkExactlyOnce(t testing.TB, fix *fraudFixture, in *replayInput, out *replayOutputs) {
	t.Helper()
	if len(out.temps) > 0 {
		t.Fatalf("temporary files left: %v", out.temps)
	}
	seen := map[string]int{}
	lastRow := map[int]int{}
	for _, p := range out.preds {
		id := p["transaction_id"].(string)
		seen[id]++
		if in.bad[id] {
			t.Fatalf("bad input %s was predicted", id)
		}
		f, row := in.file[id], in.row[id]
		if last, ok := lastRow[f]; ok && row <= last {
			t.Fatalf("file %d: %s (row %d) after row %d: order not kept", f, id, row, last)
		}
		lastRow[f] = row
		i, _ := strconv.Atoi(id[3:])
		r := i % len(fix.Inputs.Features)
		if lbl := p["fraud_label"].(int64); lbl != fix.Outputs.Label[r] {
			t.Fatalf("%s: label %d, scikit-learn says %d", id, lbl, fix.Outputs.Label[r])
		}
		for j, want := range fix.Outputs.Probabilities[r] {
			if d := math.Abs(numbers(t, p["probabilities"])[j] - want); d > 1e-5 {
				t.Fatalf("%s: probability %d off by %v", id, j, d)
			}
		}
	}
	for _, d := range out.dead {
		var v struct {
			TransactionID string `json:"transaction_id"`
		}
		js := d["value_json"].(map[string]any)["string"].(string)
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			t.Fatalf("dead letter value_json %q: %v", js, err)
		}
		seen[v.TransactionID]++
		if !in.bad[v.TransactionID] || d["reason"] != "nan_forbidden" {
			t.Fatalf("%s dead-lettered with reason %v (%v)", v.TransactionID, d["reason"], d["error"])
		}
		f, row := in.file[v.TransactionID], in.row[v.TransactionID]
		if d["partition"].(int32) != int32(f) || d["offset"].(int64) != int64(row) || d["source"] != in.paths[f] {
			t.Fatalf("%s: dead letter says %v/%v/%v, want %s/%d/%d", v.TransactionID, d["source"], d["partition"], d["offset"], in.paths[f], f, row)
		}
	}
	for i := range in.n {
		id := "tx-" + strconv.Itoa(i)
		if seen[id] != 1 {
			t.Fatalf("input %s has %d outputs", id, seen[id])
		}
	}
	if len(seen) != in.n {
		t.Fatalf("%d distinct outputs for %d inputs", len(seen), in.n)
	}
}

// runReplay runs `kinfer replay` in this process.
func runReplay(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(append([]string{"replay", "--progress", "log", "--log-level", "warn"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// Three files (null, deflate, snappy codecs) to size-capped output files:
// every record once, good ones predicted like scikit-learn, bad ones in
// dead-letter files with the reason and the input; a finished job refuses
// to start again and --resume says it is complete.
func TestReplayFilesToFiles(t *testing.T) {
	orttest.Require(t)
	fix := loadFixture(t)
	dir := t.TempDir()
	in := writeReplayInputs(t, dir, fix, 6000, 97, "null", "deflate", "snappy")
	out := filepath.Join(dir, "out")
	cfg := replayFileConfig(t, fmt.Sprintf("  input_files: %s\n  output_dir: %s\n  output_file_max_bytes: 64KiB\n  progress_interval: 1ms\n", filepath.Join(dir, "in-*.avro"), out))
	code, stdout, stderr := runReplay(t, "--config", cfg, "--log-level", "info")
	if code != 0 {
		t.Fatalf("replay exited %d:\n%s\n%s", code, stdout, stderr)
	}
	t.Log(stdout)
	// Not a terminal: progress comes as log lines with rate and counts.
	if !strings.Contains(stderr, "replay progress") || !strings.Contains(stderr, "records_per_second=") || !strings.Contains(stderr, "total=6000") {
		t.Fatalf("no progress lines in the log:\n%s", stderr)
	}
	o := readReplayOutputs(t, out)
	if o.parts < 3 {
		t.Fatalf("%d part files; the 64KiB cap should make several", o.parts)
	}
	checkExactlyOnce(t, fix, in, o)
	if len(o.dead) != 6000/97 {
		t.Fatalf("%d dead letters, want %d", len(o.dead), 6000/97)
	}
	for _, want := range []string{"replay complete", "records in:     6000", fmt.Sprintf("dead-lettered:  %d (nan_forbidden %d)", 6000/97, 6000/97)} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr := runReplay(t, "--config", cfg); code != 1 || !strings.Contains(stderr, "--resume") {
		t.Fatalf("second start: exit %d, %s", code, stderr)
	}
	if code, stdout, _ := runReplay(t, "--config", cfg, "--resume"); code != 0 || !strings.Contains(stdout, "replay complete") {
		t.Fatalf("resume of a complete job: exit %d, %s", code, stdout)
	}
}

// More dead letters than --max-failures stop the job early with exit 1;
// raising the limit and resuming finishes it, still exactly once.
func TestReplayMaxFailures(t *testing.T) {
	orttest.Require(t)
	fix := loadFixture(t)
	dir := t.TempDir()
	in := writeReplayInputs(t, dir, fix, 20000, 50, "snappy")
	out := filepath.Join(dir, "out")
	cfg := replayFileConfig(t, fmt.Sprintf("  input_files: %s\n  output_dir: %s\n  output_file_max_bytes: 32KiB\n", filepath.Join(dir, "in-*.avro"), out))
	code, stdout, stderr := runReplay(t, "--config", cfg, "--max-failures", "20")
	if code != 1 || !strings.Contains(stderr, "too many records dead-lettered") || !strings.Contains(stdout, "INCOMPLETE") {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
	}
	if o := readReplayOutputs(t, out); len(o.preds)+len(o.dead) >= in.n {
		t.Fatalf("the job did not stop early: %d outputs", len(o.preds)+len(o.dead))
	}
	if code, stdout, stderr := runReplay(t, "--config", cfg, "--resume"); code != 0 {
		t.Fatalf("resume: exit %d:\n%s\n%s", code, stdout, stderr)
	}
	checkExactlyOnce(t, fix, in, readReplayOutputs(t, out))
}

// The built binary replays files to files and is killed with SIGKILL at
// three random points (the first anywhere from start-up on, the others a
// random number of output files later plus a random delay, so they land
// inside a file being written), restarted with --resume after each: the
// output files end up holding every record exactly once, with no
// temporary file left.
func TestReplaySigkillResume(t *testing.T) {
	orttest.Require(t)
	fix := loadFixture(t)
	bin := buildKinfer(t)
	dir := t.TempDir()
	const n = 150000
	in := writeReplayInputs(t, dir, fix, n, 101, "deflate", "snappy", "null", "deflate")
	out := filepath.Join(dir, "out")
	cfg := replayFileConfig(t, fmt.Sprintf("  input_files: %s\n  output_dir: %s\n  output_file_max_bytes: 64KiB\n  parallel_files: 2\n", filepath.Join(dir, "in-*.avro"), out))
	start := func() (*exec.Cmd, *bytes.Buffer, chan error) {
		// Always --resume: it starts the job when no checkpoint exists yet.
		cmd := exec.Command(bin, "replay", "--config", cfg, "--resume", "--progress", "none", "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, &logs, exited
	}
	parts := func() int {
		b, err := os.ReadFile(filepath.Join(out, "_kinfer_checkpoint.json"))
		if err != nil {
			return 0
		}
		var ck struct {
			Parts []json.RawMessage `json:"parts"`
		}
		if json.Unmarshal(b, &ck) != nil {
			return 0
		}
		return len(ck.Parts)
	}
	for kill := 1; kill <= 3; kill++ {
		cmd, logs, exited := start()
		what := ""
		if kill == 1 {
			// Anywhere from start-up (before the first checkpoint, even)
			// to about a quarter of the job, however fast the machine.
			d := time.Duration(rand.IntN(800)) * time.Millisecond
			t0 := time.Now()
			for time.Since(t0) < d && parts() < 25 {
				time.Sleep(2 * time.Millisecond)
			}
			what = fmt.Sprintf("%v after start", time.Since(t0).Round(time.Millisecond))
		} else {
			target := parts() + 1 + rand.IntN(3)
			deadline := time.Now().Add(2 * time.Minute)
			for parts() < target {
				select {
				case err := <-exited:
					t.Fatalf("kill %d: the job ended (%v) before %d parts:\n%s", kill, err, target, logs)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("kill %d: no progress to %d parts:\n%s", kill, target, logs)
				}
				time.Sleep(5 * time.Millisecond)
			}
			d := time.Duration(rand.IntN(60)) * time.Millisecond
			time.Sleep(d)
			what = fmt.Sprintf("%v after part %d", d, target)
		}
		select {
		case err := <-exited:
			t.Fatalf("kill %d: the job already ended (%v):\n%s", kill, err, logs)
		default:
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		o := readReplayOutputs(t, out)
		t.Logf("kill %d %s: %d part files, %d predictions, %d dead letters, temporary files %v",
			kill, what, o.parts, len(o.preds), len(o.dead), o.temps)
		if len(o.preds)+len(o.dead) >= n {
			t.Fatalf("kill %d came after the job finished", kill)
		}
	}
	_, logs, exited := start()
	if err := <-exited; err != nil {
		t.Fatalf("final resume: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), "replay complete") {
		t.Fatalf("final resume did not complete:\n%s", logs)
	}
	o := readReplayOutputs(t, out)
	checkExactlyOnce(t, fix, in, o)
	t.Logf("after the final resume: %d part files, %d predictions, %d dead letters", o.parts, len(o.preds), len(o.dead))
}

// replayPositions writes offsets as a --from/--to value.
func replayPositions(offs map[int32]int64) string {
	var parts []string
	for p := range int32(partitions) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, offs[p]))
	}
	return strings.Join(parts, ",")
}

// outputTotal is the number of records in the output and dead-letter
// topics (their end offsets), retried while the broker reports errors.
func outputTotal(t *testing.T, brokers []string, tp topics) int {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	for try := 0; ; try++ {
		ends, err := adm.ListEndOffsets(t.Context(), tp.out, tp.dlq)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			n := 0
			ends.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
			return n
		}
		if try == 20 {
			t.Fatalf("listing end offsets: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// keepProducing appends records from index from until stop is closed, and
// reports how many it wrote.
func keepProducing(prod *producer, from int, stop <-chan struct{}) <-chan int {
	n := make(chan int, 1)
	go func() {
		i := from
		for {
			select {
			case <-stop:
				n <- i - from
				return
			default:
			}
			prod.produce(i, 200, nil, 0)
			i += 200
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return n
}

// A replay of a 200,000-record slice (per-partition offsets) while a
// producer keeps appending: exactly the records in the slice are
// predicted, once each, in per-partition order, the job ends while the
// producer is still writing, and no consumer group commits anything.
// Then a replay with the defaults (earliest to the end offsets seen at
// start) ends too and covers exactly what was there when it started.
func TestIntegrationReplaySlice(t *testing.T) {
	orttest.Require(t)
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	tp := newTopics(t, brokers)
	cfgPath := writeConfig(t, brokers, tp, "")
	prod := newProducer(t, brokers, tp, fix, nil)
	const before, n = 5000, 200000
	prod.produce(0, before, nil, 0)
	from := endOffsetsOf(t, brokers, tp.in)
	prod.produce(before, n, nil, 0)
	to := endOffsetsOf(t, brokers, tp.in)
	stop := make(chan struct{})
	extra := keepProducing(prod, before+n, stop)
	time.Sleep(200 * time.Millisecond) // the producer is appending past the slice

	start := time.Now()
	code, stdout, stderr := runReplay(t, "--config", cfgPath, "--from", replayPositions(from), "--to", replayPositions(to),
		"--checkpoint", filepath.Join(t.TempDir(), "ck.json"))
	elapsed := time.Since(start)
	close(stop)
	appended := <-extra
	if code != 0 {
		t.Fatalf("replay exited %d:\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("replayed %d records in %v while %d more were appended\n%s", n, elapsed, appended, stdout)
	if appended == 0 {
		t.Fatal("the producer appended nothing during the replay")
	}
	out := readOutputs(t, brokers, tp, n, 3*time.Minute)
	if total := outputTotal(t, brokers, tp); total != n {
		t.Fatalf("%d outputs, want exactly %d", total, n)
	}
	dec := outputDecoder(t, cfgPath, nil)
	ids := map[string]bool{}
	for key, recs := range out.byInput {
		var p int32
		var off int64
		fmt.Sscanf(key, "%d@%d", &p, &off)
		if off < from[p] || off >= to[p] {
			t.Fatalf("output for %s, outside the slice [%d, %d)", key, from[p], to[p])
		}
		if len(recs) != 1 || recs[0].Topic != tp.out {
			t.Fatalf("input %s has %d outputs (first in %s)", key, len(recs), recs[0].Topic)
		}
		got, err := dec.Decode(t.Context(), recs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		id := got.Native["transaction_id"].(string)
		i, _ := strconv.Atoi(id[3:])
		if i < before || i >= before+n || ids[id] {
			t.Fatalf("%s predicted from %s: outside the slice or twice", id, key)
		}
		ids[id] = true
		if lbl := got.Native["fraud_label"].(int64); lbl != fix.Outputs.Label[i%len(fix.Inputs.Features)] {
			t.Fatalf("%s: label %d", id, lbl)
		}
	}
	for k, offs := range out.order {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("output partition %d: inputs of partition %d out of order", k[0], k[1])
			}
		}
	}
	groups, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(groups.Groups(), tp.in+"-group") {
		t.Fatalf("the replay joined the pipeline's consumer group (groups: %v)", groups.Groups())
	}

	t.Run("to-end-seen-at-start", func(t *testing.T) {
		tp2 := newTopics(t, brokers)
		cfg2 := writeConfig(t, brokers, tp2, "")
		prod2 := newProducer(t, brokers, tp2, fix, nil)
		prod2.produce(0, 20000, nil, 0)
		stop := make(chan struct{})
		extra := keepProducing(prod2, 20000, stop)
		time.Sleep(300 * time.Millisecond)
		ck := filepath.Join(t.TempDir(), "ck.json")
		code, stdout, stderr := runReplay(t, "--config", cfg2, "--checkpoint", ck)
		close(stop)
		appended := <-extra
		if code != 0 {
			t.Fatalf("replay exited %d:\n%s\n%s", code, stdout, stderr)
		}
		var cp struct {
			Job struct {
				Ranges map[string]struct{ Start, End int64 } `json:"ranges"`
			} `json:"job"`
			Done bool `json:"done"`
		}
		b, _ := os.ReadFile(ck)
		if err := json.Unmarshal(b, &cp); err != nil || !cp.Done {
			t.Fatalf("checkpoint %s: %v", b, err)
		}
		want := 0
		for _, r := range cp.Job.Ranges {
			if r.Start != 0 {
				t.Fatalf("ranges %v do not start at the earliest offset", cp.Job.Ranges)
			}
			want += int(r.End)
		}
		if want < 20000 || appended == 0 {
			t.Fatalf("the slice holds %d records (20000 were there before), %d appended meanwhile", want, appended)
		}
		o := readOutputs(t, brokers, tp2, want, 2*time.Minute)
		if total := outputTotal(t, brokers, tp2); total != want {
			t.Fatalf("%d outputs for a slice of %d", total, want)
		}
		for key := range o.byInput {
			var p int32
			var off int64
			fmt.Sscanf(key, "%d@%d", &p, &off)
			if off >= cp.Job.Ranges[strconv.Itoa(int(p))].End {
				t.Fatalf("output for %s, past the end seen at start", key)
			}
		}
		t.Logf("slice of %d records (end offsets at start) replayed while %d were appended", want, appended)
	})
}

// A replay from Avro files to Avro files gives, record for record, the
// same prediction values (bit for bit) as the streaming run on the same
// records and model, and dead-letters the same records for the same
// reasons.
func TestIntegrationReplayFilesMatchStreaming(t *testing.T) {
	orttest.Require(t)
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	const n, badEvery = 12000, 97
	dir := t.TempDir()
	in := writeReplayInputs(t, dir, fix, n, badEvery, "null", "deflate", "snappy")

	// The streaming run, on the same records in a topic. Batches of one
	// row: ONNX Runtime may round a row's result differently in its last
	// bit depending on where the row sits in a batch (in streaming as much
	// as in a replay), and single rows take that away, so the two runs
	// must agree bit for bit.
	tp := newTopics(t, brokers)
	cfgPath := writeConfig(t, brokers, tp, "")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), "max_size: 64", "max_size: 1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(t, brokers, tp, fix, nil)
	cl := kafkatest.Client(t, brokers)
	for i := range n {
		rec := fix.native(i)
		if i%badEvery == badEvery-1 {
			rec["amount"] = math.NaN()
		}
		v, err := prod.enc.Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		cl.Produce(t.Context(), &kgo.Record{Topic: tp.in, Key: []byte("acct-" + strconv.Itoa(i%37)), Value: v}, nil)
	}
	if err := cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := runInProcess(t, cfgPath)
	streamed := readOutputs(t, brokers, tp, n, 3*time.Minute)
	stop()
	dec := outputDecoder(t, cfgPath, nil)
	want := map[string]map[string]any{}
	wantDead := map[string]string{}
	avsc, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/fraud/transaction.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	srcDec, err := schema.NewFileDecoder(string(avsc))
	if err != nil {
		t.Fatal(err)
	}
	for _, recs := range streamed.byInput {
		r := recs[0]
		if r.Topic == tp.dlq {
			src, err := srcDec.Decode(t.Context(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			wantDead[src.Native["transaction_id"].(string)] = processor.ReasonOfRecord(r)
			continue
		}
		got, err := dec.Decode(t.Context(), r.Value)
		if err != nil {
			t.Fatal(err)
		}
		want[got.Native["transaction_id"].(string)] = got.Native
	}
	if len(want)+len(wantDead) != n || len(wantDead) != n/badEvery {
		t.Fatalf("streaming: %d predictions and %d dead letters for %d records", len(want), len(wantDead), n)
	}

	// The replay of the same records from files.
	out := filepath.Join(dir, "out")
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "replay:\n  input_files: %s\n  output_dir: %s\n  output_file_max_bytes: 128KiB\n", filepath.Join(dir, "in-*.avro"), out)
	f.Close()
	if code, stdout, stderr := runReplay(t, "--config", cfgPath); code != 0 {
		t.Fatalf("replay exited %d:\n%s\n%s", code, stdout, stderr)
	}
	o := readReplayOutputs(t, out)
	checkExactlyOnce(t, fix, in, o)
	for _, p := range o.preds {
		id := p["transaction_id"].(string)
		if !reflect.DeepEqual(p, boxArrays(want[id])) {
			t.Fatalf("%s: replay predicted\n  %v\nstreaming predicted\n  %v", id, p, want[id])
		}
	}
	for _, d := range o.dead {
		var v struct {
			ID string `json:"transaction_id"`
		}
		json.Unmarshal([]byte(d["value_json"].(map[string]any)["string"].(string)), &v)
		if wantDead[v.ID] != d["reason"] {
			t.Fatalf("%s: replay dead-lettered it for %v, streaming for %q", v.ID, d["reason"], wantDead[v.ID])
		}
	}
	if len(o.preds) != len(want) || len(o.dead) != len(wantDead) {
		t.Fatalf("replay: %d predictions, %d dead letters; streaming %d, %d", len(o.preds), len(o.dead), len(want), len(wantDead))
	}
	t.Logf("%d predictions and %d dead letters identical to the streaming run's", len(o.preds), len(o.dead))
}
