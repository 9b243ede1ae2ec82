package kinfercmd

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/tensor"
)

// replayBenchModel is one benchmark model: how its records look in Avro
// and how they map to its input tensor.
type replayBenchModel struct {
	name  string
	batch int
	// path of model.onnx; default testdata/models/<name>/model.onnx.
	path string
	// block is the records per Avro block of the input file; default 1000.
	block int
	// batchBytes is batch.max_bytes and inFlightBytes
	// processing.max_in_flight_bytes (0: the defaults, 8MiB and 64MiB).
	batchBytes, inFlightBytes string
	// share divides the record count: heavy models get fewer records.
	share int
	// schema of the input records, the mapping (YAML), and record i.
	schema  string
	mapping string
	native  func(i int) map[string]any
	// row i as the model's input tensor, for the raw ceiling.
	input string
	row   func(i int) *tensor.Tensor
	// extra are further inputs of a ready batch of rows (nil: none).
	extra func(rows int) map[string]*tensor.Tensor
}

// textLen is the token count of textenc benchmark rows.
const textLen = 128

func replayBenchModels(b testing.TB) []replayBenchModel {
	fix := loadFixture(b)
	root := repoRoot(b)
	txn, err := os.ReadFile(filepath.Join(root, "examples/fraud/transaction.avsc"))
	if err != nil {
		b.Fatal(err)
	}
	var fnn struct {
		Inputs struct {
			Input [][]float32 `json:"input"`
		} `json:"inputs"`
	}
	raw, err := os.ReadFile(filepath.Join(root, "testdata/models/fnn/expected.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fnn); err != nil {
		b.Fatal(err)
	}
	pixels := make([][]byte, len(fnn.Inputs.Input))
	for i, row := range fnn.Inputs.Input {
		pixels[i] = make([]byte, 4*len(row))
		for j, v := range row {
			binary.LittleEndian.PutUint32(pixels[i][4*j:], math.Float32bits(v))
		}
	}
	rng := rand.New(rand.NewPCG(3, 5))
	tokens := make([][]int64, 64)
	for i := range tokens {
		tokens[i] = make([]int64, textLen)
		for j := range tokens[i] {
			tokens[i][j] = 1 + rng.Int64N(1999)
		}
	}
	fraudRow := func(i int) *tensor.Tensor {
		x := fix.Inputs.Features[i%len(fix.Inputs.Features)]
		d := make([]float32, len(x))
		for j, v := range x {
			d[j] = float32(v)
		}
		return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{int64(len(d))}, Data: d}
	}
	models := []replayBenchModel{
		{
			name: "fraud", batch: 256, share: 1, schema: string(txn),
			mapping: `    - tensor: features
      fields: [amount, merchant_risk, distance_km, hour_of_day, txn_count_1h, account_age_days, is_foreign, avg_amount_30d]
      dtype: float32
  outputs:
    - tensor: label
      field: fraud_label
    - tensor: probabilities
output:
  passthrough: [transaction_id]
`,
			native: fix.native, input: "features", row: fraudRow,
		},
		{
			// A small transformer encoder (one attention layer) on
			// 128-token rows: inference, not record handling, dominates.
			name: "textenc", batch: 32, share: 20,
			schema: `{"type": "record", "name": "Text", "fields": [{"name": "id", "type": "string"},
  {"name": "ids", "type": {"type": "array", "items": "long"}}, {"name": "mask", "type": {"type": "array", "items": "long"}}]}`,
			mapping: `    - tensor: input_ids
      field: ids
      dtype: int64
      shape: [128]
    - tensor: attention_mask
      field: mask
      dtype: int64
      shape: [128]
output:
  passthrough: [id]
`,
			native: func(i int) map[string]any {
				ids, mask := make([]any, textLen), make([]any, textLen)
				for j := range ids {
					ids[j], mask[j] = tokens[i%len(tokens)][j], int64(1)
				}
				return map[string]any{"id": "doc-" + strconv.Itoa(i), "ids": ids, "mask": mask}
			},
			input: "input_ids",
			row: func(i int) *tensor.Tensor {
				return &tensor.Tensor{DType: tensor.Int64, Shape: []int64{textLen}, Data: tokens[i%len(tokens)]}
			},
			extra: func(rows int) map[string]*tensor.Tensor {
				ones := make([]int64, rows*textLen)
				for j := range ones {
					ones[j] = 1
				}
				return map[string]*tensor.Tensor{"attention_mask": {DType: tensor.Int64, Shape: []int64{int64(rows), textLen}, Data: ones}}
			},
		},
		{
			name: "fnn", batch: 128, share: 2,
			schema: `{"type": "record", "name": "Image", "fields": [{"name": "id", "type": "string"}, {"name": "pixels", "type": "bytes"}]}`,
			mapping: `    - tensor: input
      field: pixels
      encoding: raw
      dtype: float32
      shape: [784]
output:
  passthrough: [id]
`,
			native: func(i int) map[string]any {
				return map[string]any{"id": "img-" + strconv.Itoa(i), "pixels": pixels[i%len(pixels)]}
			},
			input: "input",
			row: func(i int) *tensor.Tensor {
				return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{784}, Data: fnn.Inputs.Input[i%len(fnn.Inputs.Input)]}
			},
		},
	}
	if dir, ok, _ := orttest.ResNet50Dir(); ok {
		models = append(models, resnetBenchModel(filepath.Join(dir, "model.onnx")))
	}
	return models
}

// resnetBenchModel is workload 3, ResNet-50 (path) on 3x224x224 images as
// raw float32 bytes (602 KB a record), where make_resnet50.py made it
// (orttest.ResNet50Dir): for GPU runs (scripts/gpu-check.sh), at a
// fiftieth of the records.
func resnetBenchModel(path string) replayBenchModel {
	const size = 3 * 224 * 224
	rng := rand.New(rand.NewPCG(7, 11))
	images := make([][]float32, 8)
	raw := make([][]byte, len(images))
	for i := range images {
		images[i] = make([]float32, size)
		raw[i] = make([]byte, 4*size)
		for j := range images[i] {
			images[i][j] = rng.Float32()
			binary.LittleEndian.PutUint32(raw[i][4*j:], math.Float32bits(images[i][j]))
		}
	}
	return replayBenchModel{
		name: "resnet50", path: path, batch: 64, share: 50, block: 16,
		// A batch of 64 images is 38.5 MB: the default batch.max_bytes
		// (8MiB) would cut batches at 13 rows, and the default in-flight
		// bytes (64MiB) would hold fewer than two batches.
		batchBytes: "64MiB", inFlightBytes: "1GiB",
		schema: `{"type": "record", "name": "Image", "fields": [{"name": "id", "type": "string"}, {"name": "pixels", "type": "bytes"}]}`,
		mapping: `    - tensor: pixels
      field: pixels
      encoding: raw
      dtype: float32
      shape: [3, 224, 224]
output:
  passthrough: [id]
`,
		native: func(i int) map[string]any {
			return map[string]any{"id": "img-" + strconv.Itoa(i), "pixels": raw[i%len(raw)]}
		},
		input: "pixels",
		row: func(i int) *tensor.Tensor {
			return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3, 224, 224}, Data: images[i%len(images)]}
		},
	}
}

// BenchmarkReplay measures, in one run per model, the raw ONNX Runtime
// ceiling (each session calling Infer back to back on a ready batch of
// the pipeline's batch size) and a files-to-files replay of the same
// model with that batch size and session options, and reports both and
// their ratio:
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 1x ./cmd/
//
// KINFER_BENCH_RECORDS (default 200000 for fraud, half for fnn, a
// twentieth for textenc, a fiftieth for resnet50, which runs where
// `make resnet50` made it), KINFER_BENCH_ROUNDS (3), KINFER_BENCH_COPIES
// (1), KINFER_BENCH_BATCH (each model's own), KINFER_BENCH_PROVIDER
// (cpu; cuda on a GPU machine, where a fallback to the CPU fails the
// benchmark) and KINFER_BENCH_OPTIONS (the model's options as YAML flow
// pairs, e.g. "provider.cudnn_conv_algo_search: HEURISTIC") adjust it.
func BenchmarkReplay(b *testing.B) {
	orttest.Require(b)
	records := 200000
	if s := os.Getenv("KINFER_BENCH_RECORDS"); s != "" {
		records, _ = strconv.Atoi(s)
	}
	for _, m := range replayBenchModels(b) {
		if n, _ := strconv.Atoi(os.Getenv("KINFER_BENCH_BATCH")); n > 0 {
			m.batch = n
		}
		b.Run(m.name, func(b *testing.B) {
			dir := b.TempDir()
			writeBenchInput(b, filepath.Join(dir, "in.avro"), m, max(records/m.share, 1))
			cfg := benchConfig(b, dir, m)
			// Ceiling and replay alternate, and the medians are compared:
			// on a shared machine any single measurement may be disturbed.
			var raws, rates []float64
			for b.Loop() {
				for range benchRounds() {
					raws = append(raws, rawCeiling(b, cfg, m))
					rates = append(rates, replayOnce(b, cfg, dir))
				}
			}
			raw, rate := median(raws), median(rates)
			b.ReportMetric(raw, "raw_rows/s")
			b.ReportMetric(rate, "replay_rows/s")
			b.ReportMetric(rate/raw, "ratio")
			b.Logf("%s batch %d, %d copies on %s: raw ONNX Runtime %.0f rows/s, replay %.0f records/s (%.0f%% of raw)",
				m.name, m.batch, cfg.Model.Copies, cfg.Model.Provider, raw, rate, 100*rate/raw)
		})
	}
}

// benchRounds is how many times ceiling and replay are each measured:
// KINFER_BENCH_ROUNDS, default 3.
func benchRounds() int {
	n, _ := strconv.Atoi(os.Getenv("KINFER_BENCH_ROUNDS"))
	if n <= 0 {
		return 3
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchCopies is the model sessions (and inference workers) the benchmark
// uses: KINFER_BENCH_COPIES, default 1.
func benchCopies() int {
	n, _ := strconv.Atoi(os.Getenv("KINFER_BENCH_COPIES"))
	return max(n, 1)
}

func writeBenchInput(b testing.TB, path string, m replayBenchModel, n int) {
	codec, err := goavro.NewCodec(m.schema)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: f, Codec: codec, CompressionName: "snappy"})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]any, 0, cmp.Or(m.block, 1000))
	for i := range n {
		chunk = append(chunk, m.native(i))
		if len(chunk) == cap(chunk) || i == n-1 {
			if err := w.Append(chunk); err != nil {
				b.Fatal(err)
			}
			chunk = chunk[:0]
		}
	}
}

// benchProvider is the execution provider the benchmark's models run on:
// KINFER_BENCH_PROVIDER, default cpu.
func benchProvider() string {
	if p := os.Getenv("KINFER_BENCH_PROVIDER"); p != "" {
		return p
	}
	return "cpu"
}

func benchConfig(b testing.TB, dir string, m replayBenchModel) *config.Config {
	path := m.path
	if path == "" {
		path = filepath.Join(repoRoot(b), "testdata/models", m.name, "model.onnx")
	}
	extra := ""
	if m.batchBytes != "" {
		extra += "  max_bytes: " + m.batchBytes + "\n"
	}
	if m.inFlightBytes != "" {
		extra += "processing:\n  max_in_flight_bytes: " + m.inFlightBytes + "\n"
	}
	sch := filepath.Join(dir, "input.avsc")
	if err := os.WriteFile(sch, []byte(m.schema), 0o644); err != nil {
		b.Fatal(err)
	}
	yaml := fmt.Sprintf(`kafka:
  group: bench
  input_topic: in
  output_topic: out
schema:
  input_schema_file: %s
model:
  name: %s
  copies: %d
  provider: %s
  options: {%s}
  path: %s
  inputs:
%sbatch:
  max_size: %d
%smetrics:
  disabled: true
replay:
  input_files: %s
  output_codec: snappy
`, sch, m.name, benchCopies(), benchProvider(), os.Getenv("KINFER_BENCH_OPTIONS"), path, m.mapping, m.batch, extra, filepath.Join(dir, "in.avro"))
	cfg, err := config.Parse(filepath.Join(dir, "pipeline.yaml"), []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// rawCeiling is ONNX Runtime alone, with the pipeline's session options,
// on a ready batch: rows per second over about a second.
func rawCeiling(b *testing.B, cfg *config.Config, m replayBenchModel) float64 {
	h, err := modelLoader(quietLogger(), nil)(context.Background(), cfg.Model, cfg.Resolve(cfg.Model.Path))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if p, ok := h.(interface{ ActiveProvider() string }); ok && p.ActiveProvider() != cfg.Model.Provider {
		b.Fatalf("%s runs on %s, not on the requested %s", m.name, p.ActiveProvider(), cfg.Model.Provider)
	}
	rows := make([]*tensor.Tensor, m.batch)
	for i := range rows {
		rows[i] = m.row(i)
	}
	x, err := tensor.Stack(rows)
	if err != nil {
		b.Fatal(err)
	}
	in := map[string]*tensor.Tensor{m.input: x}
	if m.extra != nil {
		for k, v := range m.extra(m.batch) {
			in[k] = v
		}
	}
	ctx := context.Background()
	infer := func(h handlers.ModelHandler) {
		if _, err := h.Infer(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	for range 20 {
		infer(h)
	}
	// As many callers as the model has sessions (copies), like the
	// engine's inference workers.
	start := time.Now()
	var calls atomic.Int64
	var wg sync.WaitGroup
	for range max(cfg.Model.Copies, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < time.Second {
				infer(h)
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(calls.Load()*int64(m.batch)) / time.Since(start).Seconds()
}

// replayOnce replays the input file into a fresh output directory and
// returns records per second (model load excluded, everything else in).
func replayOnce(b *testing.B, cfg *config.Config, dir string) float64 {
	c := *cfg
	out, err := os.MkdirTemp(dir, "out-")
	if err != nil {
		b.Fatal(err)
	}
	c.Replay.OutputDir = out
	p, err := processor.Build(context.Background(), &c, modelLoader(quietLogger(), nil), processor.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	sum, err := processor.RunReplay(context.Background(), p, processor.ReplayOptions{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if sum.Run.Predicted != sum.Total {
		b.Fatalf("replay predicted %d of %d records (dead letters: %v)", sum.Run.Predicted, sum.Total, sum.Run.Reasons)
	}
	os.RemoveAll(out)
	return sum.Rate()
}
