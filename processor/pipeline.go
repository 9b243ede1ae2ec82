package processor

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/tensor"
	"github.com/kinfer/kinfer/schema"
)

// ModelLoader loads the configured model. cmd/kinfer passes the ONNX
// Runtime loader; tests pass pure-Go models.
type ModelLoader func(ctx context.Context, m config.Model, path string) (handlers.ModelHandler, error)

// Pipeline is a pipeline.yaml made real: the model loaded and checked
// against the config, and the codec built and checked against the schema.
type Pipeline struct {
	Config   *config.Config
	Model    handlers.ModelHandler
	Codec    *AvroCodec
	Registry *sr.Client
}

// BuildOptions adjust Build.
type BuildOptions struct {
	// Registry replaces the client built from schema.registry_url.
	Registry *sr.Client
	// RegisterOutput registers the output schema (wire encoding). Validate
	// leaves it false so that it changes nothing.
	RegisterOutput bool
}

// Build loads the model and schema and checks that they fit the config:
// every model input mapped from fields of the right Avro types with the
// model's dtype and shape, every configured output present. Problems come
// back as one *config.Error naming the file and fields.
func Build(ctx context.Context, cfg *config.Config, load ModelLoader, opts BuildOptions) (*Pipeline, error) {
	p := &Pipeline{Config: cfg, Registry: opts.Registry}
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
	model, err := load(ctx, cfg.Model, cfg.Resolve(cfg.Model.Path))
	if err != nil {
		return nil, problem(cfg, "model.path", fmt.Sprintf("loading %s: %v", cfg.Resolve(cfg.Model.Path), err))
	}
	p.Model = model
	fail := func(err error) (*Pipeline, error) {
		model.Close()
		return nil, err
	}
	if err := CheckModel(cfg, model); err != nil {
		return fail(err)
	}
	maps := make([]schema.InputMapping, len(cfg.Model.Inputs))
	for i, in := range cfg.Model.Inputs {
		dt, _ := tensor.ParseDType(in.DType)
		fields := in.Fields
		if in.Field != "" {
			fields = []string{in.Field}
		}
		maps[i] = schema.InputMapping{Tensor: in.Tensor, Fields: fields, Encoding: in.Encoding, DType: dt, Shape: in.Shape, AllowNaN: in.AllowNaN}
	}
	mapper, err := schema.NewMapper(inSchema, maps)
	if err != nil {
		return fail(problem(cfg, "model.inputs", err.Error()))
	}
	codec := &AvroCodec{mapper: mapper}
	var fields []schema.OutputField
	for _, path := range cfg.Output.PassThrough {
		fields = append(fields, schema.OutputField{Name: passName(path), Source: schema.SourcePassthrough, From: path})
	}
	for _, o := range outputsOf(cfg, model) {
		spec := specByName(model.Outputs(), o.Tensor)
		fields = append(fields, schema.OutputField{Name: o.Field, Source: schema.SourceTensor, From: o.Tensor, DType: spec.DType, Shape: rowShape(spec.Shape)})
	}
	fields = append(fields,
		schema.OutputField{Name: FieldModelName, Source: schema.SourceModelName},
		schema.OutputField{Name: FieldModelVersion, Source: schema.SourceModelVersion})
	outSchema, err := schema.BuildOutputSchema(cfg.Schema.OutputRecordName, cfg.Schema.OutputNamespace, inSchema, fields)
	if err != nil {
		return fail(problem(cfg, "output", err.Error()))
	}
	codec.OutputSchema = outSchema
	if codec.enc, err = schema.NewEncoder(outSchema); err != nil {
		return fail(problem(cfg, "output", err.Error()))
	}
	if codec.builder, err = schema.NewOutputBuilder(outSchema, fields); err != nil {
		return fail(problem(cfg, "output", err.Error()))
	}
	if cfg.Schema.RegistryURL != "" || opts.Registry != nil {
		codec.dec = schema.NewRegistryDecoder(p.Registry)
	} else {
		codec.dec, err = schema.NewFileDecoder(inSchema)
		if err != nil {
			return fail(problem(cfg, "schema.input_schema_file", err.Error()))
		}
	}
	if cfg.Schema.OutputEncoding == "wire" && opts.RegisterOutput {
		id, err := schema.RegisterOutputSchema(ctx, p.Registry, cfg.Schema.OutputSubject, outSchema)
		if err != nil {
			return fail(fmt.Errorf("registering the output schema under %q: %w", cfg.Schema.OutputSubject, err))
		}
		codec.wireID = id
	}
	p.Codec = codec
	return p, nil
}

// Close releases the model.
func (p *Pipeline) Close() error { return p.Model.Close() }

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

// CheckModel checks the config's input and output mappings against the
// model's declared inputs and outputs.
func CheckModel(cfg *config.Config, model handlers.ModelHandler) error {
	var probs []config.Problem
	add := func(field, msg string) { probs = append(probs, config.Problem{Field: field, Message: msg}) }
	mapped := map[string]bool{}
	for i, in := range cfg.Model.Inputs {
		f := fmt.Sprintf("model.inputs[%d]", i)
		mapped[in.Tensor] = true
		spec, ok := specOK(model.Inputs(), in.Tensor)
		if !ok {
			add(f+".tensor", fmt.Sprintf("model %q has no input %q (it has: %s)", cfg.Model.Name, in.Tensor, specNames(model.Inputs())))
			continue
		}
		dt, _ := tensor.ParseDType(in.DType)
		if dt != spec.DType {
			add(f+".dtype", fmt.Sprintf("model input %q expects %v, found %v", in.Tensor, spec.DType, dt))
		}
		if msg := shapeMismatch(spec.Shape, in.Shape, cfg.Batch.MaxSize); msg != "" {
			add(f+".shape", fmt.Sprintf("model input %q is %s: %s", in.Tensor, tensor.ShapeString(spec.Shape), msg))
		}
	}
	for _, s := range model.Inputs() {
		if !mapped[s.Name] {
			add("model.inputs", fmt.Sprintf("model input %s is not mapped from any field", s))
		}
	}
	for i, o := range cfg.Model.Outputs {
		if _, ok := specOK(model.Outputs(), o.Tensor); !ok {
			add(fmt.Sprintf("model.outputs[%d].tensor", i), fmt.Sprintf("model %q has no output %q (it has: %s)", cfg.Model.Name, o.Tensor, specNames(model.Outputs())))
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

func outputsOf(cfg *config.Config, model handlers.ModelHandler) []config.OutputTensor {
	if len(cfg.Model.Outputs) > 0 {
		return cfg.Model.Outputs
	}
	var out []config.OutputTensor
	for _, s := range model.Outputs() {
		out = append(out, config.OutputTensor{Tensor: s.Name, Field: s.Name})
	}
	return out
}

func rowShape(batched []int64) []int64 {
	if len(batched) == 0 {
		return nil
	}
	return slices.Clone(batched[1:])
}

func specOK(specs []handlers.TensorSpec, name string) (handlers.TensorSpec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return handlers.TensorSpec{}, false
}

func specByName(specs []handlers.TensorSpec, name string) handlers.TensorSpec {
	s, _ := specOK(specs, name)
	return s
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
