package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/kinfer/kinfer/schema"
)

// Workload is one end-to-end benchmark case: an input schema, records,
// and the model section of a pipeline.yaml.
type Workload struct {
	// Name keys the workload in reports ("fnn", "fnn-raw", "text").
	Name string
	// Description says what runs, for the report.
	Description string
	// Schema is the input Avro schema.
	Schema string
	// Models is the pipeline.yaml model section (model: or models:) with
	// MODELS standing for testdata/models.
	Models string
	// Batch is the top-level batch section's extra keys (after max_size
	// and max_delay), e.g. padding; may be empty.
	Batch string
	// PredictionField is a field every prediction carries (checked).
	PredictionField string
	// values are distinct encoded record values, cycled.
	values [][]byte
}

// Sequence lengths and vocabulary of the text workload (textenc's range).
const (
	textMaxLen = 256
	textVocab  = 2000
)

// Text classes of textcls, for the argmax post-processing step.
const textLabels = "[sports, politics, tech, arts]"

const imageArraySchema = `{"type": "record", "name": "Image", "namespace": "kinfer.bench", "fields": [
  {"name": "id", "type": "long"},
  {"name": "pixels", "type": {"type": "array", "items": "float"}}]}`

const imageRawSchema = `{"type": "record", "name": "ImageRaw", "namespace": "kinfer.bench", "fields": [
  {"name": "id", "type": "long"},
  {"name": "pixels", "type": "bytes"}]}`

const textSchema = `{"type": "record", "name": "Text", "namespace": "kinfer.bench", "fields": [
  {"name": "id", "type": "long"},
  {"name": "tokens", "type": {"type": "array", "items": "long"}}]}`

// smallSchema is a record of 10 scalar fields: an id and nine features of
// mixed Avro types, for the stage split.
const smallSchema = `{"type": "record", "name": "Small", "namespace": "kinfer.bench", "fields": [
  {"name": "id", "type": "long"},
  {"name": "amount", "type": "double"},
  {"name": "risk", "type": "float"},
  {"name": "distance", "type": "float"},
  {"name": "hour", "type": "int"},
  {"name": "count_1h", "type": "int"},
  {"name": "age_days", "type": "int"},
  {"name": "foreign", "type": "int"},
  {"name": "avg_30d", "type": "double"},
  {"name": "score", "type": "long"}]}`

var smallFeatures = []string{"amount", "risk", "distance", "hour", "count_1h", "age_days", "foreign", "avg_30d", "score"}

// fnnPixels reads the FNN fixture's 64 digit-like images (784 floats).
func fnnPixels(root string) ([][]float32, error) {
	b, err := os.ReadFile(filepath.Join(root, "testdata/models/fnn/expected.json"))
	if err != nil {
		return nil, err
	}
	var fix struct {
		Inputs struct {
			Input [][]float64 `json:"input"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(b, &fix); err != nil {
		return nil, fmt.Errorf("testdata/models/fnn/expected.json: %w", err)
	}
	out := make([][]float32, len(fix.Inputs.Input))
	for i, row := range fix.Inputs.Input {
		out[i] = make([]float32, len(row))
		for j, v := range row {
			out[i][j] = float32(v)
		}
	}
	if len(out) == 0 || len(out[0]) != 784 {
		return nil, fmt.Errorf("testdata/models/fnn/expected.json: want rows of 784 pixels")
	}
	return out, nil
}

// textTokens makes n token rows of uniformly random length 1..256.
func textTokens(n int, seed uint64) [][]int64 {
	rng := rand.New(rand.NewPCG(seed, 17))
	rows := make([][]int64, n)
	for i := range rows {
		ids := make([]int64, 1+rng.IntN(textMaxLen))
		for j := range ids {
			ids[j] = rng.Int64N(textVocab)
		}
		rows[i] = ids
	}
	return rows
}

func rawFloats(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func encodeAll(schemaJSON string, natives []map[string]any) ([][]byte, error) {
	enc, err := schema.NewEncoder(schemaJSON)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(natives))
	for i, n := range natives {
		if out[i], err = enc.Encode(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FNNWorkload is the Crayfish-style feed-forward network (784 -> 32 -> 10,
// 25,450 parameters) on 28x28 images; raw sends the pixels as
// little-endian float32 bytes instead of an Avro array of floats.
func FNNWorkload(root string, raw bool) (*Workload, error) {
	px, err := fnnPixels(root)
	if err != nil {
		return nil, err
	}
	w := &Workload{Name: "fnn", Schema: imageArraySchema, PredictionField: "digit",
		Description: "Crayfish-style FNN (784-32-10, 25,450 parameters), 28x28 image as an Avro array of 784 floats"}
	encoding := ""
	if raw {
		w.Name, w.Schema, encoding = "fnn-raw", imageRawSchema, ", encoding: raw"
		w.Description = "Crayfish-style FNN (784-32-10, 25,450 parameters), 28x28 image as 3,136 raw little-endian float32 bytes"
	}
	w.Models = fmt.Sprintf(`model:
  name: fnn
  path: MODELS/fnn/model.onnx
  inputs: [{tensor: input, field: pixels, dtype: float32, shape: [784]%s}]
  post: [{op: argmax, tensor: probabilities, field: digit}]
`, encoding)
	natives := make([]map[string]any, len(px))
	for i, p := range px {
		var v any = toAny(p)
		if raw {
			v = rawFloats(p)
		}
		natives[i] = map[string]any{"id": int64(i), "pixels": v}
	}
	w.values, err = encodeAll(w.Schema, natives)
	return w, err
}

// TextWorkload is a variable-length text encoder (textenc: lengths 1..256,
// one self-attention layer, 178,016 parameters) chained into a classifier
// (textcls), with padding buckets and a generated attention mask.
func TextWorkload(distinct int) (*Workload, error) {
	w := &Workload{Name: "text", Schema: textSchema, PredictionField: "label",
		Description: "text encoder (textenc, lengths 1..256, 178,016 parameters) -> classifier (textcls) chain, padding buckets 16..256 + attention mask",
		Models: `models:
  - name: encoder
    path: MODELS/textenc/model.onnx
    inputs: [{tensor: input_ids, field: tokens, dtype: int64, shape: [-1]}]
    outputs: []
    batch:
      pad: {input_ids: {axis: 0, buckets: [16, 32, 64, 128, 256]}}
      mask_input: attention_mask
  - name: classifier
    path: MODELS/textcls/model.onnx
    inputs: [{tensor: embedding, from: encoder.embedding}]
    outputs: [{tensor: probabilities, field: probabilities}]
    post: [{op: argmax, tensor: probabilities, field: label, labels: ` + textLabels + `}]
`}
	rows := textTokens(distinct, 7)
	natives := make([]map[string]any, len(rows))
	for i, r := range rows {
		natives[i] = map[string]any{"id": int64(i), "tokens": toAny(r)}
	}
	var err error
	w.values, err = encodeAll(w.Schema, natives)
	return w, err
}

// Value returns the encoded value of record i (the distinct values cycle).
func (w *Workload) Value(i int) []byte { return w.values[i%len(w.values)] }

// ValueBytes is the mean encoded value size.
func (w *Workload) ValueBytes() int {
	n := 0
	for _, v := range w.values {
		n += len(v)
	}
	return n / len(w.values)
}

// pipelineYAML is the pipeline.yaml for w at the given batch size and
// delay.
func (w *Workload) pipelineYAML(root, schemaFile string, brokers []string, group, in, out, dlq string, maxSize int, maxDelayMs float64) string {
	models := strings.ReplaceAll(w.Models, "MODELS", filepath.Join(root, "testdata/models"))
	return fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s
  input_topic: %s
  output_topic: %s
  dead_letter_topic: %s
  session_timeout: 10s
  rebalance_timeout: 40s
schema:
  input_schema_file: %s
%sbatch:
  max_size: %d
  max_delay: %gms
%soutput:
  passthrough: [id]
processing:
  commit_interval: 1s
  drain_timeout: 30s
metrics:
  disabled: true
`, brokers[0], group, in, out, dlq, schemaFile, models, maxSize, maxDelayMs, w.Batch)
}
