package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/kinfer/kinfer/tensor"
)

// Model is one step of the model graph: one model, an A/B split between
// variants, or a model per key. Every row passes through every step, in
// order; a step's inputs come from record fields or from earlier steps'
// outputs.
type Model struct {
	// Name identifies the step in predictions, metrics and "from"
	// references. Required.
	Name string `yaml:"name"`
	// Kind is the handler that runs the model: "onnx" (default), "remote"
	// (Open Inference Protocol / KServe v2 over HTTP, at URL), or a custom
	// handler registered by name.
	Kind string `yaml:"kind"`
	// Path to the model file. Required for onnx unless Variants or PerKey
	// is set.
	Path string `yaml:"path"`
	// URL of a remote model server (kind: remote).
	URL string `yaml:"url"`
	// Options are passed to the handler as they are (custom handlers,
	// provider options).
	Options map[string]string `yaml:"options"`
	// Version stamped on predictions. Default: the first 12 hex digits of
	// the model file's sha256.
	Version string `yaml:"version"`
	// Copies is how many sessions run batches of this step in parallel.
	// Default 1.
	Copies int `yaml:"copies"`
	// IntraOpThreads is each session's thread pool size. Default 0: the
	// cores divided among the copies (GOMAXPROCS/copies, at least 1).
	IntraOpThreads int `yaml:"intra_op_threads"`
	// Provider is "cpu" (default), "cuda" or "tensorrt". A GPU provider
	// that is unavailable falls back to CPU with a warning.
	Provider string `yaml:"provider"`
	// DeviceID is the GPU ordinal for cuda/tensorrt. Default 0.
	DeviceID int `yaml:"device_id"`
	// Inputs map record fields, or earlier steps' outputs, to the model's
	// named input tensors. Every model input must be mapped (a generated
	// mask input excepted). Required.
	Inputs []Input `yaml:"inputs"`
	// Outputs choose which model outputs land in the prediction record and
	// under what field names. Default: every model output, named after the
	// tensor (one step) or "<step>_<tensor>" (several steps). An empty
	// list ("outputs: []") writes none (an intermediate step).
	Outputs []OutputTensor `yaml:"outputs"`
	// Post are post-processing steps on this step's outputs (softmax,
	// argmax, top_k, threshold), each adding a prediction field.
	Post []Post `yaml:"post"`
	// Variants make this step an A/B split: each key is routed by hash to
	// one variant, a fixed fraction of keys per variant by weight, so a
	// key always sees the same variant. Variants must share inputs and
	// outputs. Default: none.
	Variants []Variant `yaml:"variants"`
	// PerKey makes this step pick its model by a record field. Default:
	// none.
	PerKey *PerKey `yaml:"per_key"`
	// Batch overrides the top-level batch settings for this step (fields
	// left unset keep the top-level values).
	Batch *Batch `yaml:"batch"`
	// Reload watches Path (a file, or a directory of numbered versions)
	// and swaps in new versions that load and match the serving model's
	// inputs and outputs; a bad version is refused and the old one keeps
	// serving. Default: off.
	Reload *Reload `yaml:"reload"`
}

// Reload configures hot model reload.
type Reload struct {
	// Interval between checks of the path. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Settle is how long a new file must stay unchanged before it is
	// loaded (a copy in progress). Default: Interval.
	Settle time.Duration `yaml:"settle"`
	// SHA256 pins the accepted file content (hex). Default "": any.
	SHA256 string `yaml:"sha256"`
	// FileName is the model file inside a version directory. Default
	// model.onnx.
	FileName string `yaml:"file_name"`
}

// Input maps record fields, or an earlier step's output, to one model
// input tensor.
type Input struct {
	// Tensor is the model input name. Required.
	Tensor string `yaml:"tensor"`
	// Field is one record field (dotted path for nested records). Exactly
	// one of Field, Fields and From is required.
	Field string `yaml:"field"`
	// Fields are several scalar fields stacked into a vector, in order.
	Fields []string `yaml:"fields"`
	// From is an earlier step's output, "<step>.<tensor>" (a chain edge).
	From string `yaml:"from"`
	// Encoding is "value" (default: Avro scalars and nested arrays) or
	// "raw" (a bytes field holding a little-endian tensor).
	Encoding string `yaml:"encoding"`
	// DType of the tensor (float32, float64, int32, int64, uint8, int8,
	// bool). Required for fields; for From it defaults to the source's.
	DType string `yaml:"dtype"`
	// Shape is the per-row shape, without the batch dim; -1 marks a
	// dynamic dim. Default: [] for one scalar field, [len(fields)] for
	// several. Checked against the model.
	Shape []int64 `yaml:"shape"`
	// AllowNaN lets NaN through; by default a NaN dead-letters the record.
	AllowNaN bool `yaml:"allow_nan"`
}

// OutputTensor puts one model output into the prediction record.
type OutputTensor struct {
	// Tensor is the model output name. Required.
	Tensor string `yaml:"tensor"`
	// Field is the prediction record field. Default: see Model.Outputs.
	Field string `yaml:"field"`
}

// Post-processing operations.
const (
	PostSoftmax   = "softmax"
	PostArgmax    = "argmax"
	PostTopK      = "top_k"
	PostThreshold = "threshold"
)

// Post is one declared post-processing step on a per-row output vector.
type Post struct {
	// Op is softmax (a float vector), argmax (the index, a long, or its
	// label, a string, when labels are given), top_k (the k best as a list
	// of {label, score}) or threshold (a label: labels[1] when
	// scores[index] >= threshold, else labels[0]).
	Op string `yaml:"op"`
	// Tensor is the step's output to read. Required.
	Tensor string `yaml:"tensor"`
	// Field is the prediction field written. Required.
	Field string `yaml:"field"`
	// K for top_k. Default 5.
	K int `yaml:"k"`
	// Labels name the classes by index (argmax, top_k; threshold needs
	// two: below, at or above). LabelsFile reads them, one per line,
	// instead.
	Labels     []string `yaml:"labels"`
	LabelsFile string   `yaml:"labels_file"`
	// Threshold and Index for threshold: the score at Index (default 1,
	// the positive class) is compared with Threshold (default 0.5).
	Threshold *float64 `yaml:"threshold"`
	Index     *int     `yaml:"index"`
}

// Variant is one arm of an A/B split.
type Variant struct {
	// Name identifies the variant's model in predictions. Required.
	Name string `yaml:"name"`
	// Path to the variant's model file. Required for onnx.
	Path string `yaml:"path"`
	// URL of a remote variant.
	URL     string `yaml:"url"`
	Version string `yaml:"version"`
	// Weight is this variant's share of keys, relative to the others.
	// Required, positive.
	Weight float64 `yaml:"weight"`
}

// PerKey routes each row to a model chosen by a record field.
type PerKey struct {
	// Field whose value (a string or integer) picks the model. Required.
	Field string `yaml:"field"`
	// Path is the model file for a key, with "{key}" replaced by the
	// field's value, e.g. models/merchants/{key}/model.onnx. Required.
	Path string `yaml:"path"`
	// DefaultPath serves keys without a model file. Default "": such rows
	// are dead-lettered with reason no_model.
	DefaultPath string `yaml:"default_path"`
	// MaxLoaded caps models loaded at once; the least recently used is
	// unloaded. Default 8.
	MaxLoaded int `yaml:"max_loaded"`
}

// Steps returns the model graph: Models, or the single Model.
func (c *Config) Steps() []Model {
	if len(c.Models) > 0 {
		return c.Models
	}
	return []Model{c.Model}
}

// StepField names step i in error messages: "model" or "models[i]".
func (c *Config) StepField(i int) string {
	if len(c.Models) > 0 {
		return fmt.Sprintf("models[%d]", i)
	}
	return "model"
}

// StepBatch is step i's batch settings: the top-level batch section with
// the step's own batch section laid over it.
func (c *Config) StepBatch(i int) Batch {
	b := c.Batch
	o := c.Steps()[i].Batch
	if o == nil {
		return b
	}
	if o.MaxSize != 0 {
		b.MaxSize = o.MaxSize
	}
	if o.MaxDelay != 0 {
		b.MaxDelay = o.MaxDelay
	}
	if o.MaxBytes != 0 {
		b.MaxBytes = o.MaxBytes
	}
	if o.Pad != nil {
		b.Pad = o.Pad
	}
	if o.MaskInput != "" {
		b.MaskInput = o.MaskInput
	}
	if o.TrimOutputs != nil {
		b.TrimOutputs = o.TrimOutputs
	}
	return b
}

// OutputField is the prediction field for output tensor t of step i when
// the config does not name one.
func (c *Config) OutputField(i int, t string) string {
	if len(c.Steps()) == 1 {
		return t
	}
	return c.Steps()[i].Name + "_" + t
}

func (m *Model) applyDefaults() {
	if m.Kind == "" {
		m.Kind = "onnx"
	}
	if m.Copies == 0 {
		m.Copies = 1
	}
	if m.Provider == "" && m.Kind == "onnx" {
		m.Provider = "cpu"
	}
	for i := range m.Inputs {
		in := &m.Inputs[i]
		if in.Encoding == "" {
			in.Encoding = "value"
		}
		if in.Shape == nil && len(in.Fields) > 0 {
			in.Shape = []int64{int64(len(in.Fields))}
		}
	}
	for i := range m.Post {
		p := &m.Post[i]
		if p.Op == PostTopK && p.K == 0 {
			p.K = 5
		}
		if p.Op == PostThreshold {
			if p.Threshold == nil {
				t := 0.5
				p.Threshold = &t
			}
			if p.Index == nil {
				one := 1
				p.Index = &one
			}
		}
	}
	if m.Reload != nil && m.Reload.Interval == 0 {
		m.Reload.Interval = 5 * time.Second
	}
	if m.PerKey != nil && m.PerKey.MaxLoaded == 0 {
		m.PerKey.MaxLoaded = 8
	}
}

// validateGraph checks every step and the edges between them.
func (c *Config) validateGraph(v *validator) {
	if len(c.Models) > 0 && (c.Model.Name != "" || c.Model.Path != "" || len(c.Model.Inputs) > 0) {
		v.add("model", "set either model (one model) or models (a graph), not both")
	}
	steps := c.Steps()
	names := map[string]int{}
	fields := map[string]string{}
	useField := func(f, name, where string) {
		if prev, ok := fields[name]; ok {
			v.add(f, fmt.Sprintf("prediction field %q is also written by %s", name, prev))
		}
		fields[name] = where
	}
	for _, p := range c.Output.PassThrough {
		useField("output.passthrough", passName(p), "output.passthrough")
	}
	for i, m := range steps {
		sf := c.StepField(i)
		v.required(sf+".name", m.Name)
		if j, dup := names[m.Name]; dup && m.Name != "" {
			v.add(sf+".name", fmt.Sprintf("%q is also the name of %s", m.Name, c.StepField(j)))
		}
		names[m.Name] = i
		modes := 0
		if m.Path != "" || m.URL != "" {
			modes++
		}
		if len(m.Variants) > 0 {
			modes++
		}
		if m.PerKey != nil {
			modes++
		}
		switch {
		case modes > 1:
			v.add(sf, "set one of path/url (one model), variants (A/B) and per_key")
		case modes == 0 && m.Kind == "onnx":
			v.add(sf+".path", "required (or variants, or per_key)")
		case modes == 0 && m.Kind == "remote":
			v.add(sf+".url", "required for kind remote")
		}
		if m.Kind == "remote" && m.URL == "" && len(m.Variants) == 0 {
			v.add(sf+".url", "required for kind remote")
		}
		v.positive(sf+".copies", m.Copies)
		if m.IntraOpThreads < 0 {
			v.add(sf+".intra_op_threads", fmt.Sprintf("must not be negative, found %d", m.IntraOpThreads))
		}
		if m.Provider != "" {
			v.oneOf(sf+".provider", m.Provider, "cpu", "cuda", "tensorrt")
		}
		total := 0.0
		for j, vr := range m.Variants {
			vf := fmt.Sprintf("%s.variants[%d]", sf, j)
			v.required(vf+".name", vr.Name)
			if vr.Path == "" && vr.URL == "" {
				v.add(vf+".path", "required (or url)")
			}
			if vr.Weight <= 0 {
				v.add(vf+".weight", fmt.Sprintf("must be positive, found %v", vr.Weight))
			}
			total += vr.Weight
		}
		if len(m.Variants) == 1 {
			v.add(sf+".variants", "an A/B split needs at least two variants")
		}
		if r := m.Reload; r != nil {
			if r.Interval < 0 || r.Settle < 0 {
				v.add(sf+".reload.interval", "interval and settle must not be negative")
			}
			if len(m.Variants) > 0 || m.PerKey != nil {
				v.add(sf+".reload", "reload watches path; it cannot be combined with variants or per_key")
			}
			if m.Version != "" {
				v.add(sf+".version", "leave version empty with reload: each new file gets its own version (its sha256, or its version directory's name)")
			}
		}
		if pk := m.PerKey; pk != nil {
			v.required(sf+".per_key.field", pk.Field)
			if !strings.Contains(pk.Path, "{key}") {
				v.add(sf+".per_key.path", fmt.Sprintf("must contain {key}, found %q", pk.Path))
			}
			v.positive(sf+".per_key.max_loaded", pk.MaxLoaded)
		}
		if len(m.Inputs) == 0 {
			v.add(sf+".inputs", "at least one input mapping is required")
		}
		seen := map[string]bool{}
		for j, in := range m.Inputs {
			f := fmt.Sprintf("%s.inputs[%d]", sf, j)
			v.required(f+".tensor", in.Tensor)
			if seen[in.Tensor] {
				v.add(f+".tensor", fmt.Sprintf("%q is mapped twice", in.Tensor))
			}
			seen[in.Tensor] = true
			set := 0
			for _, ok := range []bool{in.Field != "", len(in.Fields) > 0, in.From != ""} {
				if ok {
					set++
				}
			}
			if set != 1 {
				v.add(f, "set exactly one of field, fields and from")
			}
			if in.From != "" {
				src, _, ok := strings.Cut(in.From, ".")
				if j, known := names[src]; !ok || !known || j >= i {
					v.add(f+".from", fmt.Sprintf("expected \"<step>.<output>\" naming an earlier step, found %q", in.From))
				}
				if in.DType != "" {
					if _, err := tensor.ParseDType(in.DType); err != nil {
						v.add(f+".dtype", err.Error())
					}
				}
				continue
			}
			if _, err := tensor.ParseDType(in.DType); err != nil {
				v.add(f+".dtype", err.Error())
			}
			v.oneOf(f+".encoding", in.Encoding, "value", "raw")
			if in.Encoding == "raw" && len(in.Fields) > 0 {
				v.add(f+".encoding", `"raw" reads one bytes field; use field, not fields`)
			}
			if len(in.Fields) > 0 && (len(in.Shape) != 1 || in.Shape[0] != int64(len(in.Fields))) {
				v.add(f+".shape", fmt.Sprintf("expected [%d] for %d stacked fields, found %v", len(in.Fields), len(in.Fields), in.Shape))
			}
			dyn := 0
			for _, d := range in.Shape {
				if d == -1 {
					dyn++
				} else if d <= 0 {
					v.add(f+".shape", fmt.Sprintf("dims must be positive or -1 (dynamic), found %d", d))
				}
			}
			if in.Encoding == "raw" && dyn > 1 {
				v.add(f+".shape", "a raw tensor may have at most one dynamic (-1) dim")
			}
		}
		for j, o := range m.Outputs {
			f := fmt.Sprintf("%s.outputs[%d]", sf, j)
			v.required(f+".tensor", o.Tensor)
			if o.Field != "" {
				useField(f+".field", o.Field, f)
			}
		}
		for j, p := range m.Post {
			f := fmt.Sprintf("%s.post[%d]", sf, j)
			v.oneOf(f+".op", p.Op, PostSoftmax, PostArgmax, PostTopK, PostThreshold)
			v.required(f+".tensor", p.Tensor)
			v.required(f+".field", p.Field)
			if p.Field != "" {
				useField(f+".field", p.Field, f)
			}
			if len(p.Labels) > 0 && p.LabelsFile != "" {
				v.add(f, "set labels or labels_file, not both")
			}
			switch p.Op {
			case PostTopK:
				v.positive(f+".k", p.K)
			case PostThreshold:
				if len(p.Labels) != 2 && p.LabelsFile == "" {
					v.add(f+".labels", fmt.Sprintf("threshold needs two labels (below, at or above), found %d", len(p.Labels)))
				}
			}
		}
		b := c.StepBatch(i)
		v.batch(sf+".batch", b)
		for _, in := range m.Inputs {
			if b.MaskInput != "" && in.Tensor == b.MaskInput {
				v.add(sf+".batch.mask_input", fmt.Sprintf("%q is generated by the batcher; remove its mapping from %s.inputs", in.Tensor, sf))
			}
		}
	}
}

// passName is the prediction field of a pass-through path: its last
// element.
func passName(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}
