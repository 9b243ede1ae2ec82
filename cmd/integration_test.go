package kinfercmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/kafkatest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/schema/memregistry"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

const partitions = 6

// fraudFixture is testdata/models/fraud/expected.json: inputs and
// scikit-learn's own predictions.
type fraudFixture struct {
	FeatureNames []string `json:"feature_names"`
	Inputs       struct {
		Features [][]float64 `json:"features"`
	} `json:"inputs"`
	Outputs struct {
		Label         []int64     `json:"label"`
		Probabilities [][]float64 `json:"probabilities"`
	} `json:"outputs"`
}

func loadFixture(t testing.TB) *fraudFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata/models/fraud/expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fraudFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// native builds the Avro record for input i from fixture row i%len.
func (f *fraudFixture) native(i int) map[string]any {
	x := f.Inputs.Features[i%len(f.Inputs.Features)]
	return map[string]any{
		"transaction_id":   "tx-" + strconv.Itoa(i),
		"account_id":       "acct-" + strconv.Itoa(i%37),
		"amount":           x[0],
		"merchant_risk":    float32(x[1]),
		"distance_km":      float32(x[2]),
		"hour_of_day":      int32(x[3]),
		"txn_count_1h":     int32(x[4]),
		"account_age_days": int32(x[5]),
		"is_foreign":       int32(x[6]),
		"avg_amount_30d":   x[7],
		"event_time":       time.UnixMilli(1_700_000_000_000 + int64(i)).UTC(),
	}
}

// topics creates the input, output and dead-letter topics, uniquely named.
type topics struct{ in, out, dlq string }

func newTopics(t *testing.T, brokers []string) topics {
	t.Helper()
	base := fmt.Sprintf("it-%s-%d", sanitize(t.Name()), time.Now().UnixNano()%1e9)
	tp := topics{in: base + "-in", out: base + "-out", dlq: base + "-dlq"}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	resp, err := adm.CreateTopics(context.Background(), partitions, 1, nil, tp.in, tp.out, tp.dlq)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			t.Fatalf("creating %s: %v", r.Topic, r.Err)
		}
	}
	t.Cleanup(func() { adm.DeleteTopics(context.Background(), tp.in, tp.out, tp.dlq) })
	return tp
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	return string(b)
}

// writeConfig writes a pipeline.yaml for the fraud model.
func writeConfig(t *testing.T, brokers []string, tp topics, registry string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	schemaLine := fmt.Sprintf("  input_schema_file: %s\n", filepath.Join(root, "examples/fraud/transaction.avsc"))
	if registry != "" {
		schemaLine += fmt.Sprintf("  registry_url: %s\n", registry)
	}
	yaml := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s-group
  input_topic: %s
  output_topic: %s
  dead_letter_topic: %s
  session_timeout: 6s
schema:
%smodel:
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
  max_delay: 2ms
output:
  passthrough: [transaction_id, account_id]
processing:
  commit_interval: 200ms
  drain_timeout: 20s
metrics:
  disabled: true
`, brokers[0], tp.in, tp.in, tp.out, tp.dlq, schemaLine, filepath.Join(root, "testdata/models/fraud/model.onnx"))
	p := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// producer writes fixture records in one of the two encodings.
type producer struct {
	t    *testing.T
	cl   *kgo.Client
	tp   topics
	enc  *schema.Encoder
	fix  *fraudFixture
	wire int // schema id; 0 = plain Avro
}

func newProducer(t *testing.T, brokers []string, tp topics, fix *fraudFixture, reg *sr.Client) *producer {
	t.Helper()
	sch, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/fraud/transaction.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schema.NewEncoder(string(sch))
	if err != nil {
		t.Fatal(err)
	}
	p := &producer{t: t, cl: kafkatest.Client(t, brokers, kgo.ProducerLinger(2*time.Millisecond)), tp: tp, enc: enc, fix: fix}
	if reg != nil {
		if p.wire, err = schema.RegisterOutputSchema(context.Background(), reg, tp.in+"-value", string(sch)); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// value encodes record i; kind "" is good, "corrupt" a damaged payload,
// "unknown" a wire-format value with a schema id nobody registered.
func (p *producer) value(i int, kind string) []byte {
	n := p.fix.native(i)
	var v []byte
	var err error
	if p.wire > 0 {
		v, err = p.enc.EncodeWire(p.wire, n)
	} else {
		v, err = p.enc.Encode(n)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	switch kind {
	case "corrupt":
		h := 0
		if p.wire > 0 {
			h = 5
		}
		v = append(v[:h:h], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	case "unknown":
		v = append([]byte{0, 0x7f, 0, 0, 1}, v[5:]...)
	}
	return v
}

func (p *producer) produce(from, n int, kindOf func(int) string, pace time.Duration) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := from; i < from+n; i++ {
		kind := ""
		if kindOf != nil {
			kind = kindOf(i)
		}
		wg.Add(1)
		p.cl.Produce(context.Background(), &kgo.Record{Topic: p.tp.in, Key: []byte("acct-" + strconv.Itoa(i%37)), Value: p.value(i, kind)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
		if pace > 0 && i%100 == 0 {
			time.Sleep(pace)
		}
	}
	wg.Wait()
	if first != nil {
		p.t.Fatal(first)
	}
}

// outputs is what the output and dead-letter topics hold, by input position.
type outputs struct {
	byInput map[string][]*kgo.Record
	order   map[[2]int32][]int64 // (output partition, input partition) -> input offsets
	n       int
}

func pos(p int32, off int64) string { return fmt.Sprintf("%d@%d", p, off) }

// readOutputs reads the output and dead-letter topics from the start until
// at least want records (or, with want < 0, everything a read_committed
// consumer can see now: until nothing new arrives for a second; end offsets
// would overcount, as transaction markers and aborted records take
// offsets too).
func readOutputs(t *testing.T, brokers []string, tp topics, want int, timeout time.Duration) *outputs {
	t.Helper()
	if want < 0 {
		return readAllOutputs(t, brokers, tp, 0, timeout)
	}
	return readOutputsUntil(t, brokers, tp, want, false, timeout)
}

// readAllOutputs reads everything a read_committed consumer can see, as
// readOutputs does with want < 0, but goes idle only after at least
// atLeast records: a loaded machine can leave a poll empty for a second
// mid-read, which must not end the read early.
func readAllOutputs(t *testing.T, brokers []string, tp topics, atLeast int, timeout time.Duration) *outputs {
	t.Helper()
	return readOutputsUntil(t, brokers, tp, atLeast, true, timeout)
}

func readOutputsUntil(t *testing.T, brokers []string, tp topics, want int, drain bool, timeout time.Duration) *outputs {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(tp.out, tp.dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	o := &outputs{byInput: map[string][]*kgo.Record{}, order: map[[2]int32][]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for drain || o.n < want {
		idle := drain && o.n >= want
		pctx, cancelIdle := ctx, context.CancelFunc(func() {})
		if idle {
			pctx, cancelIdle = context.WithTimeout(ctx, time.Second)
		}
		fs := cl.PollFetches(pctx)
		cancelIdle()
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d outputs before the deadline", o.n, want)
		}
		if idle && pctx.Err() != nil && fs.NumRecords() == 0 {
			break // idle: everything visible has been read
		}
		fs.EachRecord(func(r *kgo.Record) {
			sp, _ := processor.HeaderValue(r, processor.HeaderSourcePartition)
			so, _ := processor.HeaderValue(r, processor.HeaderSourceOffset)
			p, _ := strconv.Atoi(sp)
			off, _ := strconv.ParseInt(so, 10, 64)
			o.byInput[pos(int32(p), off)] = append(o.byInput[pos(int32(p), off)], r)
			o.n++
			if r.Topic == tp.out {
				k := [2]int32{r.Partition, int32(p)}
				o.order[k] = append(o.order[k], off)
			}
		})
	}
	return o
}

// inputs reads the input topic back so tests know which record sits at
// which position.
func readInputs(t *testing.T, brokers []string, tp topics, want int) map[string]*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(tp.in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	in := map[string]*kgo.Record{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(in) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d inputs", len(in), want)
		}
		fs.EachRecord(func(r *kgo.Record) { in[pos(r.Partition, r.Offset)] = r })
	}
	return in
}

func committedOffsets(t *testing.T, brokers []string, group string) map[int32]int64 {
	t.Helper()
	offs, err := kadm.NewClient(kafkatest.Client(t, brokers)).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// checkPredictions asserts one prediction per good input matching
// scikit-learn's within 1e-5, the key kept, per-partition order kept, and
// bad inputs dead-lettered with their reason.
func checkPredictions(t *testing.T, fix *fraudFixture, in map[string]*kgo.Record, out *outputs, dec schema.Decoder, tp topics, reasonOf func(txIndex int) string, exactlyOne bool) {
	t.Helper()
	var predicted, dead int
	for p, rec := range in {
		outs := out.byInput[p]
		if len(outs) == 0 {
			t.Fatalf("input %s has no output", p)
		}
		if exactlyOne && len(outs) != 1 {
			t.Fatalf("input %s has %d outputs", p, len(outs))
		}
		r := outs[0]
		if !bytes.Equal(r.Key, rec.Key) {
			t.Fatalf("input %s: key %q became %q", p, rec.Key, r.Key)
		}
		if r.Topic == tp.dlq {
			dead++
			if reasonOf == nil {
				t.Fatalf("input %s dead-lettered: %s", p, processor.ReasonOfRecord(r))
			}
			continue
		}
		predicted++
		got, err := dec.Decode(context.Background(), r.Value)
		if err != nil {
			t.Fatalf("decoding prediction for %s: %v", p, err)
		}
		n := got.Native
		i, _ := strconv.Atoi(n["transaction_id"].(string)[3:])
		if reasonOf != nil && reasonOf(i) != "" {
			t.Fatalf("bad input tx-%d was predicted", i)
		}
		row := i % len(fix.Inputs.Features)
		if lbl := n["fraud_label"].(int64); lbl != fix.Outputs.Label[row] {
			t.Fatalf("tx-%d: label %d, scikit-learn says %d", i, lbl, fix.Outputs.Label[row])
		}
		probs := numbers(t, n["probabilities"])
		for j, want := range fix.Outputs.Probabilities[row] {
			if d := math.Abs(probs[j] - want); d > 1e-5 {
				t.Fatalf("tx-%d: probability %d is %v, scikit-learn says %v", i, j, probs[j], want)
			}
		}
		if n["model_name"] != "fraud" || n["model_version"] == "" {
			t.Fatalf("model fields %v %v", n["model_name"], n["model_version"])
		}
	}
	for k, offs := range out.order {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] && exactlyOne {
				t.Fatalf("output partition %d: inputs of partition %d out of order (%d after %d)", k[0], k[1], offs[i], offs[i-1])
			}
		}
	}
	t.Logf("%d inputs: %d predicted, %d dead-lettered", len(in), predicted, dead)
}

// runInProcess runs `kinfer run` in this process until stop is called.
func runInProcess(t *testing.T, cfgPath string) (stop func() string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Error(err)
			done <- 2
			return
		}
		log, _ := newLogger(&stderr, "warn", false)
		p, err := processor.Build(ctx, cfg, modelLoader(log, nil), processor.BuildOptions{RegisterOutput: true})
		if err != nil {
			t.Error(err)
			done <- 2
			return
		}
		defer p.Close()
		done <- exitCode(processor.RunStream(ctx, p, processor.RunOptions{Logger: log}), &stderr)
	}()
	return func() string {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("run exited %d: %s", code, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatal("run did not stop")
		}
		_ = stdout
		return stderr.String()
	}
}

// 20,000 records across 6 partitions, in the Schema Registry wire format
// and in plain Avro: every input yields exactly one prediction equal to
// scikit-learn's within 1e-5, keys and per-partition order kept, and the
// committed offsets reach the end after a clean shutdown.
func TestIntegrationEndToEnd(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	for _, enc := range []string{"wire", "plain"} {
		t.Run(enc, func(t *testing.T) {
			const n = 20000
			tp := newTopics(t, brokers)
			var reg *sr.Client
			var regURL string
			if enc == "wire" {
				url, stopReg := memregistry.New().Start()
				t.Cleanup(stopReg)
				regURL = url
				var err error
				if reg, err = sr.NewClient(sr.URLs(url)); err != nil {
					t.Fatal(err)
				}
			}
			cfgPath := writeConfig(t, brokers, tp, regURL)
			prod := newProducer(t, brokers, tp, fix, reg)
			prod.produce(0, n, nil, 0)
			start := time.Now()
			stop := runInProcess(t, cfgPath)
			out := readOutputs(t, brokers, tp, n, 3*time.Minute)
			elapsed := time.Since(start)
			stop()
			t.Logf("%s: %d records predicted in %v (%.0f records/s, including start-up)", enc, n, elapsed, n/elapsed.Seconds())
			dec := outputDecoder(t, cfgPath, reg)
			in := readInputs(t, brokers, tp, n)
			checkPredictions(t, fix, in, out, dec, tp, nil, true)
			ends := endOffsetsOf(t, brokers, tp.in)
			if got := committedOffsets(t, brokers, tp.in+"-group"); fmt.Sprint(got) != fmt.Sprint(ends) {
				t.Fatalf("committed %v, end offsets %v", got, ends)
			}
		})
	}
}

func endOffsetsOf(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	ends, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// outputDecoder decodes predictions: through the registry for the wire
// format, else with the prediction schema validate prints.
func outputDecoder(t *testing.T, cfgPath string, reg *sr.Client) schema.Decoder {
	t.Helper()
	if reg != nil {
		return schema.NewRegistryDecoder(reg)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Build(context.Background(), cfg, modelLoader(nil, nil), processor.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d, err := schema.NewFileDecoder(p.Codec.OutputSchema)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// 1% corrupted payloads and 1% unknown schema ids: every good record is
// predicted, every bad one is in the dead-letter topic with the right
// reason, none lost.
func TestIntegrationBadRecordsDeadLettered(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	const n = 10000
	tp := newTopics(t, brokers)
	url, stopReg := memregistry.New().Start()
	t.Cleanup(stopReg)
	reg, _ := sr.NewClient(sr.URLs(url))
	cfgPath := writeConfig(t, brokers, tp, url)
	kind := func(i int) string {
		switch i % 100 {
		case 17:
			return "corrupt"
		case 71:
			return "unknown"
		}
		return ""
	}
	newProducer(t, brokers, tp, fix, reg).produce(0, n, kind, 0)
	stop := runInProcess(t, cfgPath)
	out := readOutputs(t, brokers, tp, n, 3*time.Minute)
	stop()
	in := readInputs(t, brokers, tp, n)
	checkPredictions(t, fix, in, out, schema.NewRegistryDecoder(reg), tp, kind, true)
	// Each dead letter carries the input's value unchanged; decode which
	// record it was from that and check the reason header.
	reasons := map[string]int{}
	for p, rec := range in {
		r := out.byInput[p][0]
		if r.Topic != tp.dlq {
			continue
		}
		if !bytes.Equal(r.Value, rec.Value) {
			t.Fatalf("dead letter for %s does not carry the input value", p)
		}
		reason := processor.ReasonOfRecord(r)
		reasons[reason]++
		want := "decode_error"
		if rec.Value[1] == 0x7f {
			want = "unknown_schema"
		}
		if reason != want {
			errText, _ := processor.HeaderValue(r, processor.HeaderError)
			t.Fatalf("dead letter for %s: reason %q (%s), want %q", p, reason, errText, want)
		}
		if st, _ := processor.HeaderValue(r, processor.HeaderSourceTopic); st != tp.in {
			t.Fatalf("source topic header %q", st)
		}
	}
	if reasons["decode_error"] != n/100 || reasons["unknown_schema"] != n/100 {
		t.Fatalf("dead-letter reasons %v, want %d of each", reasons, n/100)
	}
}

// The processor is killed with SIGKILL twice mid-stream and restarted.
// After each kill the committed offsets never run ahead of the outputs
// that exist; at the end every input has at least one output.
func TestIntegrationSigkillRestart(t *testing.T) { sigkillRun(t, "at_least_once") }

// Exactly-once through the same two SIGKILLs: read_committed consumers see
// exactly one output per input, in order, and committed offsets never run
// ahead of committed outputs.
func TestIntegrationExactlyOnceSigkill(t *testing.T) { sigkillRun(t, "exactly_once") }

func sigkillRun(t *testing.T, guarantee string) {
	brokers := kafkatest.Brokers(t)
	fix := loadFixture(t)
	bin := buildKinfer(t)
	const n = 20000
	tp := newTopics(t, brokers)
	cfgPath := writeConfig(t, brokers, tp, "")
	if guarantee == "exactly_once" {
		raw, _ := os.ReadFile(cfgPath)
		os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), "processing:\n", "processing:\n  guarantee: exactly_once\n  transactional_id: "+tp.in+"-txn\n", 1)), 0o644)
	}
	group := tp.in + "-group"
	prod := newProducer(t, brokers, tp, fix, nil)
	produced := make(chan struct{})
	// About 20 s of input, so both kills land mid-stream.
	go func() { defer close(produced); prod.produce(0, n, nil, 100*time.Millisecond) }()

	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &logs
	}
	outputsNow := func() int {
		ends, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListEndOffsets(context.Background(), tp.out, tp.dlq)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		ends.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
		return n
	}
	checkCommitted := func(when string) {
		committed := committedOffsets(t, brokers, group)
		// Every input below a committed offset has an output (the check).
		atLeast := 0
		for _, c := range committed {
			atLeast += int(c)
		}
		out := readAllOutputs(t, brokers, tp, atLeast, time.Minute)
		for p, c := range committed {
			for off := int64(0); off < c; off++ {
				if len(out.byInput[pos(p, off)]) == 0 {
					t.Fatalf("%s: partition %d committed at %d but offset %d has no output", when, p, c, off)
				}
			}
		}
		t.Logf("%s: committed %v, %d outputs so far", when, committed, out.n)
	}
	for kill := 1; kill <= 2; kill++ {
		before := outputsNow()
		cmd, logs := start()
		// Kill only once this instance is predicting: a restarted member
		// waits for the dead one's session to time out first.
		deadline := time.Now().Add(90 * time.Second)
		for outputsNow() < before+300 {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d made no progress:\n%s", kill, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		select {
		case <-produced:
			t.Fatalf("the producer finished before kill %d: the kill was not mid-stream", kill)
		default:
		}
		checkCommitted(fmt.Sprintf("after kill %d", kill))
	}
	cmd, logs := start()
	<-produced
	out := readOutputs(t, brokers, tp, n, 3*time.Minute)
	// Let the last commit land, then stop cleanly.
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kinfer run after SIGTERM: %v\n%s", err, logs.String())
	}
	checkCommitted("after SIGTERM")
	in := readInputs(t, brokers, tp, n)
	out = readAllOutputs(t, brokers, tp, n, time.Minute)
	exactly := guarantee == "exactly_once"
	checkPredictions(t, fix, in, out, outputDecoder(t, cfgPath, nil), tp, nil, exactly)
	dups := out.n - n
	t.Logf("%s: %d duplicates visible to read_committed consumers after 2 kills", guarantee, dups)
	if exactly && dups != 0 {
		t.Fatalf("exactly-once: %d duplicates", dups)
	}
	ends := endOffsetsOf(t, brokers, tp.in)
	if got := committedOffsets(t, brokers, group); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("after SIGTERM committed %v, end offsets %v", got, ends)
	}
}
