package processor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

// ModelLoader loads one model of the graph: m is its step's config with
// Name, Path, URL and Version set for the model to load (a variant, a
// per-key model). The command (package kinfercmd, cmd/) passes the
// handler registry; tests pass pure-Go models.
type ModelLoader func(ctx context.Context, m config.Model, path string) (handlers.ModelHandler, error)

// Pipeline is a pipeline.yaml made real: the model graph loaded and
// checked against the config, the codec built and checked against the
// schema.
type Pipeline struct {
	Config   *config.Config
	Steps    []*Step
	Codec    *AvroCodec
	Registry *sr.Client
	// Model is the model of a pipeline whose first step has a single
	// model (nil otherwise); Models lists every model loaded at start.
	Model  handlers.ModelHandler
	Models []handlers.ModelHandler
	// Transform is the preprocessing pipeline with its artifacts bound
	// (nil without a transform section); Codec applies it.
	Transform *transform.Pipeline
}

// BuildOptions adjust Build.
type BuildOptions struct {
	// Registry replaces the client built from schema.registry_url.
	Registry *sr.Client
	// RegisterOutput registers the output schema (wire encoding). Validate
	// leaves it false so that it changes nothing.
	RegisterOutput bool
	// OnLoad is told about each model loaded, at start and later (per-key
	// models), for metrics.
	OnLoad func(step string, h handlers.ModelHandler)
}

// Build loads the models and schema and checks that they fit the config:
// every model input mapped from fields of the right Avro types (or from
// transform outputs) or from an earlier step's output of the same dtype
// and a compatible shape, with the model's dtype and shape; every
// configured output present. With a transform section it also loads and
// verifies the artifact directory (LoadTransform) and checks the record
// fields the stages read against the schema. Problems come back as one
// *config.Error naming the file and fields.
func Build(ctx context.Context, cfg *config.Config, load ModelLoader, opts BuildOptions) (_ *Pipeline, err error) {
	p := &Pipeline{Config: cfg, Registry: opts.Registry}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.Registry == nil && cfg.Schema.RegistryURL != "" {
		cl, err := sr.NewClient(sr.URLs(cfg.Schema.RegistryURL))
		if err != nil {
			return nil, problem(cfg, "schema.registry_url", err.Error())
		}
		p.Registry = cl
	}
	inSchema, err := inputSchema(ctx, cfg, p.Registry)
	if err != nil {
		return nil, err
	}
	steps := cfg.Steps()
	// outSpecs[i] describes step i's outputs, for edges and the schema.
	outSpecs := make([][]handlers.TensorSpec, len(steps))
	var maps []schema.InputMapping
	var fields []schema.OutputField
	codec := &AvroCodec{}
	// The mapper validates against the input schema, plus the transform's
	// native outputs as fields.
	mapSchema := inSchema
	var tplan *transformPlan
	var tprobs []config.Problem
	var direct map[[2]int]*directInput // by step and input index
	if cfg.HasTransform() {
		tp, err := NewTransform(cfg)
		if err != nil {
			return nil, err
		}
		// The record fields the stages read, then the artifacts.
		if probs := checkTransformInputs(tp, inSchema); len(probs) > 0 {
			return nil, &config.Error{File: cfg.File, Problems: probs}
		}
		if tp, err = bindArtifacts(cfg, tp); err != nil {
			return nil, err
		}
		p.Transform = tp
		tplan = planTransform(tp, inSchema)
		if mapSchema, err = tplan.extendSchema(inSchema); err != nil {
			return nil, problem(cfg, "schema.input_schema_file", err.Error())
		}
		codec.transform, codec.tplan, codec.transformVersion = tp, tplan, TransformVersion(tp)
		// Model inputs that read transform outputs, checked before any
		// model loads: a mistake there is about the transform.
		direct = map[[2]int]*directInput{}
		for i, m := range cfg.Steps() {
			for j, in := range m.Inputs {
				fs := in.Fields
				if in.Field != "" {
					fs = []string{in.Field}
				}
				if in.From != "" {
					continue
				}
				d, probs := tplan.modelInput(fmt.Sprintf("%s.inputs[%d]", cfg.StepField(i), j), in, fs)
				tprobs = append(tprobs, probs...)
				if d != nil {
					direct[[2]int{i, j}] = d
				}
			}
		}
		if len(tprobs) > 0 {
			return nil, &config.Error{File: cfg.File, Problems: tprobs}
		}
	}
	for _, path := range cfg.Output.PassThrough {
		fields = append(fields, schema.OutputField{Name: passName(path), Source: schema.SourcePassthrough, From: path})
	}
	for i, m := range steps {
		sf := cfg.StepField(i)
		step := &Step{Name: m.Name, Workers: m.Copies}
		var ref handlers.ModelHandler // describes the step's inputs and outputs
		check := func(h handlers.ModelHandler) error { return CheckStep(cfg, i, h, outSpecs) }
		loadOne := func(mc config.Model, field string) (handlers.ModelHandler, error) {
			path := cfg.Resolve(mc.Path)
			h, err := load(ctx, mc, path)
			if errors.Is(err, handlers.ErrUnknownKind) {
				return nil, problem(cfg, sf+".kind", err.Error())
			}
			if err != nil {
				return nil, problem(cfg, field, fmt.Sprintf("loading %s: %v", orURL(path, mc.URL), err))
			}
			p.Models = append(p.Models, h)
			if opts.OnLoad != nil {
				opts.OnLoad(m.Name, h)
			}
			return h, check(h)
		}
		switch {
		case len(m.Variants) > 0:
			var names []string
			var models []handlers.ModelHandler
			var weights []float64
			for j, v := range m.Variants {
				mc := m
				mc.Name, mc.Path, mc.URL, mc.Version = v.Name, v.Path, v.URL, v.Version
				h, err := loadOne(mc, fmt.Sprintf("%s.variants[%d].path", sf, j))
				if err != nil {
					return nil, err
				}
				if ref != nil && (!slices.EqualFunc(ref.Inputs(), h.Inputs(), specEqual) || !slices.EqualFunc(ref.Outputs(), h.Outputs(), specEqual)) {
					return nil, problem(cfg, fmt.Sprintf("%s.variants[%d]", sf, j), fmt.Sprintf("variant %q has inputs %s and outputs %s, but %q has %s and %s: A/B variants must be interchangeable",
						v.Name, specNames(h.Inputs()), specNames(h.Outputs()), m.Variants[0].Name, specNames(ref.Inputs()), specNames(ref.Outputs())))
				}
				if ref == nil {
					ref = h
				}
				names, models, weights = append(names, v.Name), append(models, h), append(weights, v.Weight)
			}
			ab, err := NewABModels(names, models, weights)
			if err != nil {
				return nil, problem(cfg, sf+".variants", err.Error())
			}
			step.Models = ab
		case m.PerKey != nil:
			pk, defModel, err := perKeyModels(ctx, cfg, i, load, check, opts)
			if err != nil {
				return nil, err
			}
			if defModel != nil {
				ref = defModel
				p.Models = append(p.Models, defModel)
			}
			step.Models = pk
			codec.route = append(codec.route, m.PerKey.Field)
		default:
			h, err := loadOne(m, sf+".path")
			if err != nil {
				return nil, err
			}
			ref = h
			step.Models = SingleModel{Model: h}
			if i == 0 {
				p.Model = h
			}
		}
		p.Steps = append(p.Steps, step)
		if ref == nil {
			// A per-key step without a default model: its specs come from
			// the config alone.
			if len(m.Outputs) == 0 || hasFromEdge(steps[i+1:], m.Name) {
				return nil, problem(cfg, sf+".per_key.default_path", "needed to describe the step's outputs (to list them by default, or to check edges from this step)")
			}
		}
		// Inputs: record fields (keyed "<step>/<tensor>") and edges.
		for j, in := range m.Inputs {
			if in.From != "" {
				src, tname, _ := strings.Cut(in.From, ".")
				step.Inputs = append(step.Inputs, StepInput{Tensor: in.Tensor, FromStep: stepIndex(steps, src), FromTensor: tname})
				continue
			}
			key := in.Tensor
			if len(steps) > 1 {
				key = m.Name + "/" + in.Tensor
			}
			dt, _ := tensor.ParseDType(in.DType)
			fs := in.Fields
			if in.Field != "" {
				fs = []string{in.Field}
			}
			if d := direct[[2]int{i, j}]; d != nil {
				d.key = key
				codec.direct = append(codec.direct, *d)
				step.Inputs = append(step.Inputs, StepInput{Tensor: in.Tensor, Key: key})
				continue
			}
			maps = append(maps, schema.InputMapping{Tensor: key, Fields: fs, Encoding: in.Encoding, DType: dt, Shape: in.Shape, AllowNaN: in.AllowNaN})
			step.Inputs = append(step.Inputs, StepInput{Tensor: in.Tensor, Key: key})
		}
		// Outputs into the prediction record.
		if ref != nil {
			outSpecs[i] = ref.Outputs()
		}
		for _, o := range stepOutputs(cfg, i, outSpecs[i]) {
			spec, ok := specOK(outSpecs[i], o.Tensor)
			if !ok && ref == nil {
				return nil, problem(cfg, sf+".outputs", fmt.Sprintf("output %q of a per-key step without default_path: its dtype and shape are unknown", o.Tensor))
			}
			fields = append(fields, schema.OutputField{Name: o.Field, Source: schema.SourceTensor, From: m.Name + "/" + o.Tensor, DType: spec.DType, Shape: rowShape(spec.Shape)})
		}
		for j, pc := range m.Post {
			op, err := newPostOp(cfg, i, pc, outSpecs[i])
			if err != nil {
				return nil, problem(cfg, fmt.Sprintf("%s.post[%d]", sf, j), err.Error())
			}
			codec.post = append(codec.post, op)
			fields = append(fields, schema.OutputField{Name: pc.Field, Source: schema.SourceNative, AvroType: op.avroType})
		}
		var trim map[string]int
		if ref != nil {
			trim = TrimAxes(cfg.StepBatch(i), ref)
		}
		step.Batch = batchConfig(cfg.StepBatch(i), trim)
		if _, err := batch.New(step.Batch); err != nil {
			return nil, problem(cfg, sf+".batch", err.Error())
		}
	}
	fields = append(fields,
		schema.OutputField{Name: FieldModelName, Source: schema.SourceModelName},
		schema.OutputField{Name: FieldModelVersion, Source: schema.SourceModelVersion})
	if len(steps) > 1 {
		fields = append(fields, schema.OutputField{Name: FieldModels, Source: schema.SourceNative, AvroType: modelsAvroType})
	}
	if tplan != nil {
		fields = append(fields, schema.OutputField{Name: FieldTransformVersion, Source: schema.SourceNative, AvroType: "string"})
	}
	// Every input may come from transform tensors: then nothing is mapped.
	if len(maps) > 0 || tplan == nil {
		mapper, err := schema.NewMapper(mapSchema, maps)
		if err != nil {
			field := "model.inputs"
			if len(steps) > 1 {
				field = "models[].inputs"
			}
			return nil, problem(cfg, field, err.Error())
		}
		codec.mapper = mapper
	}
	outSchema, err := schema.BuildOutputSchema(cfg.Schema.OutputRecordName, cfg.Schema.OutputNamespace, inSchema, fields)
	if err != nil {
		return nil, problem(cfg, "output", err.Error())
	}
	codec.OutputSchema = outSchema
	if codec.enc, err = schema.NewEncoder(outSchema); err != nil {
		return nil, problem(cfg, "output", err.Error())
	}
	if codec.builder, err = schema.NewOutputBuilder(outSchema, fields); err != nil {
		return nil, problem(cfg, "output", err.Error())
	}
	codec.multiStep = len(steps) > 1
	codec.stepNames = make([]string, len(steps))
	for i, m := range steps {
		codec.stepNames[i] = m.Name
	}
	codec.planRows()
	if cfg.Schema.RegistryURL != "" || opts.Registry != nil {
		codec.dec = schema.NewRegistryDecoder(p.Registry)
	} else {
		codec.dec, err = schema.NewFileDecoder(inSchema)
		if err != nil {
			return nil, problem(cfg, "schema.input_schema_file", err.Error())
		}
	}
	if cfg.Schema.OutputEncoding == "wire" && opts.RegisterOutput {
		id, err := schema.RegisterOutputSchema(ctx, p.Registry, cfg.Schema.OutputSubject, outSchema)
		if err != nil {
			return nil, fmt.Errorf("registering the output schema under %q: %w", cfg.Schema.OutputSubject, err)
		}
		codec.wireID = id
	}
	p.Codec = codec
	return p, nil
}

// Close releases every model (handlers' Close is idempotent, and a model
// may be both in Models and in a step's set).
func (p *Pipeline) Close() error {
	var errs []error
	for _, h := range p.Models {
		errs = append(errs, h.Close())
	}
	for _, s := range p.Steps {
		if s.Models != nil {
			errs = append(errs, s.Models.Close())
		}
	}
	return errors.Join(errs...)
}

// perKeyModels builds step i's per-key model set; the default model, if
// configured, is loaded now and describes the step.
func perKeyModels(ctx context.Context, cfg *config.Config, i int, load ModelLoader, check func(handlers.ModelHandler) error, opts BuildOptions) (*PerKeyModels, handlers.ModelHandler, error) {
	m := cfg.Steps()[i]
	sf := cfg.StepField(i)
	pk := m.PerKey
	var def handlers.ModelHandler
	if pk.DefaultPath != "" {
		mc := m
		mc.Name, mc.Path, mc.Version = m.Name+"/default", pk.DefaultPath, ""
		h, err := load(ctx, mc, cfg.Resolve(pk.DefaultPath))
		if err != nil {
			return nil, nil, problem(cfg, sf+".per_key.default_path", fmt.Sprintf("loading %s: %v", cfg.Resolve(pk.DefaultPath), err))
		}
		if err := check(h); err != nil {
			h.Close()
			return nil, nil, err
		}
		def = h
	}
	set := &PerKeyModels{Field: pk.Field, MaxLoaded: pk.MaxLoaded}
	set.Load = func(ctx context.Context, key string) (handlers.ModelHandler, error) {
		if strings.ContainsAny(key, "/\\") || key == "." || key == ".." {
			return nil, fmt.Errorf("%w: key %q is not a safe path element", ErrNoModel, key)
		}
		path := cfg.Resolve(strings.ReplaceAll(pk.Path, "{key}", key))
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if def == nil {
				return nil, fmt.Errorf("%w: %s does not exist and %s.per_key.default_path is not set", ErrNoModel, path, sf)
			}
			return sharedModel{def}, nil
		}
		mc := m
		mc.Name, mc.Path, mc.Version = m.Name+"/"+key, path, ""
		h, err := load(ctx, mc, path)
		if err != nil {
			return nil, fmt.Errorf("loading the model for key %q from %s: %w", key, path, err)
		}
		if err := check(h); err != nil {
			h.Close()
			return nil, fmt.Errorf("the model for key %q (%s) does not fit the pipeline: %w", key, path, err)
		}
		if opts.OnLoad != nil {
			opts.OnLoad(m.Name, h)
		}
		return h, nil
	}
	return set, def, nil
}

// sharedModel lends the default model to keys without their own; closing
// the loan does not close the default (the pipeline does).
type sharedModel struct{ handlers.ModelHandler }

func (sharedModel) Close() error { return nil }

func hasFromEdge(steps []config.Model, src string) bool {
	for _, m := range steps {
		for _, in := range m.Inputs {
			if s, _, _ := strings.Cut(in.From, "."); s == src {
				return true
			}
		}
	}
	return false
}

func stepIndex(steps []config.Model, name string) int {
	for i, m := range steps {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// stepOutputs lists the outputs step i writes into the prediction: the
// configured ones, or every output the model declares.
func stepOutputs(cfg *config.Config, i int, specs []handlers.TensorSpec) []config.OutputTensor {
	m := cfg.Steps()[i]
	if m.Outputs != nil && len(m.Outputs) == 0 {
		return nil // "outputs: []": an intermediate step writes nothing
	}
	if len(m.Outputs) > 0 {
		out := slices.Clone(m.Outputs)
		for j := range out {
			if out[j].Field == "" {
				out[j].Field = cfg.OutputField(i, out[j].Tensor)
			}
		}
		return out
	}
	var out []config.OutputTensor
	for _, s := range specs {
		out = append(out, config.OutputTensor{Tensor: s.Name, Field: cfg.OutputField(i, s.Name)})
	}
	return out
}

func orURL(path, url string) string {
	if url != "" {
		return url
	}
	return path
}

func batchConfig(b config.Batch, trim map[string]int) batch.Config {
	var pads map[string]batch.PadSpec
	if len(b.Pad) > 0 {
		pads = make(map[string]batch.PadSpec, len(b.Pad))
		for name, p := range b.Pad {
			pads[name] = batch.PadSpec{Axis: p.Axis, Buckets: p.Buckets, Value: p.Value, Truncate: p.Truncate}
		}
	}
	return batch.Config{MaxSize: b.MaxSize, MaxDelay: b.MaxDelay, MaxBytes: int(b.MaxBytes), Pad: pads, MaskInput: b.MaskInput, TrimAxis: trim}
}

func inputSchema(ctx context.Context, cfg *config.Config, reg *sr.Client) (string, error) {
	if f := cfg.Schema.InputSchemaFile; f != "" {
		b, err := os.ReadFile(cfg.Resolve(f))
		if err != nil {
			return "", problem(cfg, "schema.input_schema_file", err.Error())
		}
		return string(b), nil
	}
	subject := cfg.Kafka.InputTopic + "-value"
	ss, err := reg.SchemaByVersion(ctx, subject, -1)
	if err != nil {
		return "", problem(cfg, "schema.registry_url", fmt.Sprintf("fetching the latest schema of subject %q to validate against (or set schema.input_schema_file): %v", subject, err))
	}
	return ss.Schema.Schema, nil
}

// CheckStep checks step i's config against a model that serves it: input
// mappings (fields and edges from earlier steps' outputs, outSpecs[j]),
// the generated mask, padding, and the configured outputs.
func CheckStep(cfg *config.Config, i int, model handlers.ModelHandler, outSpecs [][]handlers.TensorSpec) error {
	m := cfg.Steps()[i]
	sf := cfg.StepField(i)
	b := cfg.StepBatch(i)
	var probs []config.Problem
	add := func(field, msg string) { probs = append(probs, config.Problem{Field: field, Message: msg}) }
	mapped := map[string]bool{}
	for j, in := range m.Inputs {
		f := fmt.Sprintf("%s.inputs[%d]", sf, j)
		mapped[in.Tensor] = true
		spec, ok := specOK(model.Inputs(), in.Tensor)
		if !ok {
			add(f+".tensor", fmt.Sprintf("model %q has no input %q (it has: %s)", model.Name(), in.Tensor, specNames(model.Inputs())))
			continue
		}
		if in.From != "" {
			src, tname, _ := strings.Cut(in.From, ".")
			si := stepIndex(cfg.Steps(), src)
			if si < 0 || si >= i || outSpecs[si] == nil {
				continue // reported by config validation, or unknowable (per-key source)
			}
			out, ok := specOK(outSpecs[si], tname)
			if !ok {
				add(f+".from", fmt.Sprintf("step %q has no output %q (it has: %s)", src, tname, specNames(outSpecs[si])))
				continue
			}
			if out.DType != spec.DType {
				add(f+".from", fmt.Sprintf("%s is %v but model input %q expects %v", in.From, out.DType, in.Tensor, spec.DType))
			}
			if msg := edgeShapeMismatch(rowShape(out.Shape), rowShape(spec.Shape)); msg != "" {
				add(f+".from", fmt.Sprintf("%s has per-row shape %s but model input %q takes %s: %s", in.From, tensor.ShapeString(rowShape(out.Shape)), in.Tensor, tensor.ShapeString(rowShape(spec.Shape)), msg))
			}
			continue
		}
		dt, _ := tensor.ParseDType(in.DType)
		if dt != spec.DType {
			add(f+".dtype", fmt.Sprintf("model input %q expects %v, found %v", in.Tensor, spec.DType, dt))
		}
		if msg := shapeMismatch(spec.Shape, in.Shape, b.MaxSize); msg != "" {
			add(f+".shape", fmt.Sprintf("model input %q is %s: %s", in.Tensor, tensor.ShapeString(spec.Shape), msg))
		}
	}
	if mi := b.MaskInput; mi != "" {
		spec, ok := specOK(model.Inputs(), mi)
		switch {
		case !ok:
			add(sf+".batch.mask_input", fmt.Sprintf("model %q has no input %q (it has: %s)", model.Name(), mi, specNames(model.Inputs())))
		case spec.DType != tensor.Int64:
			add(sf+".batch.mask_input", fmt.Sprintf("model input %q is %v; a generated mask is int64", mi, spec.DType))
		}
		mapped[mi] = true
	}
	for name, pd := range b.Pad {
		var in *config.Input
		for j := range m.Inputs {
			if m.Inputs[j].Tensor == name {
				in = &m.Inputs[j]
			}
		}
		f := sf + ".batch.pad." + name
		shape := []int64(nil)
		if in != nil {
			shape = in.Shape
			if in.From != "" {
				if spec, ok := specOK(model.Inputs(), name); ok {
					shape = rowShape(spec.Shape)
				}
			}
		}
		switch {
		case in == nil:
			add(f, fmt.Sprintf("%q is not a mapped model input", name))
		case pd.Axis >= len(shape):
			add(f+".axis", fmt.Sprintf("input %q has per-row shape %s; axis %d does not exist", name, tensor.ShapeString(shape), pd.Axis))
		case shape[pd.Axis] != -1:
			add(f+".axis", fmt.Sprintf("input %q has a fixed dim %d at axis %d; padding needs a dynamic (-1) dim", name, shape[pd.Axis], pd.Axis))
		}
	}
	for _, s := range model.Inputs() {
		if !mapped[s.Name] {
			add(sf+".inputs", fmt.Sprintf("model input %s is not mapped from any field or step", s))
		}
	}
	for j, o := range m.Outputs {
		if _, ok := specOK(model.Outputs(), o.Tensor); !ok {
			add(fmt.Sprintf("%s.outputs[%d].tensor", sf, j), fmt.Sprintf("model %q has no output %q (it has: %s)", model.Name(), o.Tensor, specNames(model.Outputs())))
		}
	}
	for j, pc := range m.Post {
		if _, ok := specOK(model.Outputs(), pc.Tensor); !ok {
			add(fmt.Sprintf("%s.post[%d].tensor", sf, j), fmt.Sprintf("model %q has no output %q (it has: %s)", model.Name(), pc.Tensor, specNames(model.Outputs())))
		}
	}
	if len(probs) > 0 {
		return &config.Error{File: cfg.File, Problems: probs}
	}
	return nil
}

// shapeMismatch compares a model's batched input shape with a config's
// per-row shape.
func shapeMismatch(model, row []int64, maxBatch int) string {
	if len(model) == 0 {
		return "the model takes a scalar; kinfer needs a leading batch dim"
	}
	if b := model[0]; b > 0 && (b != 1 || maxBatch != 1) {
		return fmt.Sprintf("its batch dim is fixed at %d; export the model with a dynamic batch dim or set batch.max_size: 1 for a batch dim of 1", b)
	}
	want := model[1:]
	if len(want) != len(row) {
		return fmt.Sprintf("expected a per-row shape of rank %d like %s, found %s", len(want), tensor.ShapeString(want), tensor.ShapeString(row))
	}
	for i := range want {
		if want[i] > 0 && row[i] != want[i] {
			return fmt.Sprintf("expected per-row dim %d to be %d, found %d", i, want[i], row[i])
		}
	}
	return ""
}

// edgeShapeMismatch compares the per-row shapes of an output and the
// input it feeds; dynamic dims fit anything.
func edgeShapeMismatch(out, in []int64) string {
	if len(out) != len(in) {
		return fmt.Sprintf("rank %d vs %d", len(out), len(in))
	}
	for i := range out {
		if out[i] > 0 && in[i] > 0 && out[i] != in[i] {
			return fmt.Sprintf("dim %d is %d vs %d", i, out[i], in[i])
		}
	}
	return ""
}

// TrimAxes says, per model output, which per-row axis Split trims back to
// each row's true length: the config's trim_outputs, else the output's one
// dynamic per-row dim, else never (-1). Outputs with several dynamic
// per-row dims are left to the batcher's shape rule. Nil without padding.
func TrimAxes(b config.Batch, model handlers.ModelHandler) map[string]int {
	if len(b.Pad) == 0 {
		return nil
	}
	out := map[string]int{}
	for _, s := range model.Outputs() {
		if ax, ok := b.TrimOutputs[s.Name]; ok {
			out[s.Name] = ax
			continue
		}
		var dyn []int
		for i, d := range rowShape(s.Shape) {
			if d < 0 {
				dyn = append(dyn, i)
			}
		}
		switch len(dyn) {
		case 0:
			out[s.Name] = -1
		case 1:
			out[s.Name] = dyn[0]
		}
	}
	return out
}

func rowShape(batched []int64) []int64 {
	if len(batched) == 0 {
		return nil
	}
	return slices.Clone(batched[1:])
}

func specEqual(a, b handlers.TensorSpec) bool {
	return a.Name == b.Name && a.DType == b.DType && slices.Equal(a.Shape, b.Shape)
}

func specOK(specs []handlers.TensorSpec, name string) (handlers.TensorSpec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return handlers.TensorSpec{}, false
}

func specNames(specs []handlers.TensorSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

func problem(cfg *config.Config, field, msg string) error {
	return &config.Error{File: cfg.File, Problems: []config.Problem{{Field: field, Message: msg}}}
}
