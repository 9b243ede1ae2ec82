package processor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

// The transform section of pipeline.yaml in the engine: AvroCodec.Decode
// decodes a record, applies the transform stages to (a shallow copy of) its
// native form, and builds the model inputs from the result. A model input
// names a transform output like a record field: a native output (a float
// or an id, or a flat array of them) goes through the schema mapper like
// any field (Build validates the mappings against the input schema with
// the native outputs added as fields), and a tensor output (one_hot,
// bag_of_words, tfidf, tokenize, a stage with dtype) feeds the input it
// names with `field:` directly.

// FieldTransformVersion is the prediction field that names the transform
// artifacts used (their version; for a transform that fits nothing, a
// digest of its stages), present when the pipeline has a transform.
const FieldTransformVersion = "transform_version"

// StopError is a row failure that stops the pipeline instead of
// dead-lettering the record: a transform field whose policy is "error"
// was missing or invalid. The record is not committed, so a restart meets
// it again until the data or the config changes.
type StopError struct {
	Reason string
	Err    error
}

func (e *StopError) Error() string {
	return fmt.Sprintf("%s: %v (the field's policy is %q: the pipeline stops)", e.Reason, e.Err, transform.PolicyError)
}

func (e *StopError) Unwrap() error { return e.Err }

// transformRowError turns a transform.Apply failure into the codec's
// error: a dead letter with the transform's reason, or a StopError.
func transformRowError(err error) error {
	if transform.IsDeadLetter(err) {
		return &RowError{Reason: transform.ReasonOf(err), Err: err}
	}
	return &StopError{Reason: transform.ReasonOf(err), Err: err}
}

// NewTransform compiles cfg's transform section without artifacts: the
// stages validated and the files they name (tokenizers) loaded. It returns
// nil, nil for a pipeline without a transform. Problems come back as a
// *config.Error.
func NewTransform(cfg *config.Config) (*transform.Pipeline, error) {
	if !cfg.HasTransform() {
		return nil, nil
	}
	base := "."
	if cfg.File != "" {
		base = cfg.Resolve(".")
	}
	tp, err := transform.New(cfg.Transform, transform.WithBaseDir(base))
	if err != nil {
		return nil, transformProblems(cfg, err)
	}
	return tp, nil
}

// LoadTransform is NewTransform with the artifact directory
// (transform_artifacts) verified and bound. It refuses to go on when the
// transform needs fitting and no directory is configured, or when the
// directory is missing, fails its checksums, or was fitted for other
// stages; the problem names the directory and the stage.
func LoadTransform(cfg *config.Config) (*transform.Pipeline, error) {
	tp, err := NewTransform(cfg)
	if err != nil || tp == nil {
		return tp, err
	}
	return bindArtifacts(cfg, tp)
}

func bindArtifacts(cfg *config.Config, tp *transform.Pipeline) (*transform.Pipeline, error) {
	dir := cfg.TransformArtifacts
	if dir == "" {
		if !tp.NeedsFit() {
			return tp, nil
		}
		return nil, problem(cfg, "transform_artifacts", fmt.Sprintf("required: %s fitted artifacts: run `kinfer fit --config %s --out DIR` and set transform_artifacts: DIR (or pass --transform-artifacts DIR)",
			fittedStages(tp), cfg.File))
	}
	dir = cfg.Resolve(dir)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, problem(cfg, "transform_artifacts", fmt.Sprintf("artifact directory %s does not exist: run `kinfer fit --config %s --out %s` first", dir, cfg.File, dir))
	}
	bound, err := tp.Load(dir)
	if err != nil {
		return nil, problem(cfg, "transform_artifacts", err.Error())
	}
	return bound, nil
}

// TransformVersion names the transform a pipeline applies: the artifact
// version, or for a transform that fits nothing the first 12 hex digits of
// the sha256 of its stage fingerprints. "" for nil.
func TransformVersion(tp *transform.Pipeline) string {
	if tp == nil {
		return ""
	}
	if a := tp.Artifacts(); a != nil {
		return a.Manifest.Version
	}
	h := sha256.Sum256([]byte(strings.Join(tp.Fingerprints(), "\n")))
	return hex.EncodeToString(h[:])[:12]
}

func fittedStages(tp *transform.Pipeline) string {
	var names []string
	for _, s := range tp.Stages() {
		if s.Fitted() {
			names = append(names, fmt.Sprintf("%d (%s)", s.Index(), s.Type()))
		}
	}
	if len(names) == 1 {
		return "transform stage " + names[0] + " needs"
	}
	return "transform stages " + strings.Join(names, ", ") + " need"
}

// transformProblems turns transform.New's joined errors ("transform.stages[3]
// (one_hot): depth: ...") into one *config.Error.
func transformProblems(cfg *config.Config, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	ce := &config.Error{File: cfg.File}
	for _, e := range errs {
		field, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok || !strings.HasPrefix(field, "transform") {
			field, msg = "transform", e.Error()
		}
		ce.Problems = append(ce.Problems, config.Problem{Field: field, Message: msg})
	}
	return ce
}

// valueForm is the shape of a value in a transformed row.
type valueForm uint8

const (
	formOther   valueForm = iota // nothing a stage or the mapper can use
	formScalar                   // a number or a string
	formList                     // a flat array of them
	formNested                   // arrays of arrays
	formStrings                  // []string tokens (split, ngrams)
	formTensor                   // *tensor.Tensor
)

// rowValue is what a transformed row holds under one name.
type rowValue struct {
	form valueForm
	// avro is the element's Avro type of a native number ("double",
	// "long"); dtype and shape describe a tensor (per-row shape, -1 for a
	// dim that varies by row).
	avro  string
	dtype tensor.DType
	shape []int64
	stage int // the stage that writes it
}

// transformPlan is what the codec and Build need to know about a bound
// transform: the value each output name holds after Apply.
type transformPlan struct {
	tp   *transform.Pipeline
	outs map[string]rowValue
}

var avroName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// planTransform works out what each output of a bound transform holds,
// for records of the input schema.
func planTransform(tp *transform.Pipeline, schemaJSON string) *transformPlan {
	stages := tp.Stages()
	pl := &transformPlan{tp: tp, outs: map[string]rowValue{}}
	record := func(field string) rowValue {
		ft, err := schema.LookupField(schemaJSON, field)
		if err != nil {
			return rowValue{stage: -1}
		}
		return rowValue{form: recordForm(ft), stage: -1}
	}
	specs := tp.Outputs()
	for i := 0; i < len(specs); {
		// One stage at a time: a stage reads the row as the stages
		// before it left it.
		stage := specs[i].Stage
		before := pl.outs
		pl.outs = make(map[string]rowValue, len(before)+4)
		for k, v := range before {
			pl.outs[k] = v
		}
		cfg := stages[stage].Config()
		for ; i < len(specs) && specs[i].Stage == stage; i++ {
			o := specs[i]
			j := slices.Index(cfg.Outputs, o.Name)
			if j < 0 || j >= len(cfg.Fields) {
				j = 0 // tokenize's mask and type ids
			}
			in, ok := before[cfg.Fields[j]]
			if !ok {
				in = record(cfg.Fields[j])
			}
			pl.outs[o.Name] = outputValue(stages[stage].Type(), o, in)
		}
	}
	return pl
}

// recordForm is the form goavro gives a record field's values.
func recordForm(ft schema.FieldType) valueForm {
	switch ft.Kind {
	case "int", "long", "float", "double", "string", "enum":
		if !ft.Logical {
			return formScalar
		}
	case "array":
		if ft.Items != nil && ft.Items.Kind == "array" {
			return formNested
		}
		return formList
	}
	return formOther
}

// outputValue is what output o of a stage of type typ writes when the
// field it reads holds in.
func outputValue(typ string, o transform.OutputSpec, in rowValue) rowValue {
	v := rowValue{stage: o.Stage}
	switch o.Kind {
	case transform.OutputStrings:
		v.form = formStrings
	case transform.OutputFloat, transform.OutputInt:
		v.avro, v.dtype = "double", tensor.Float32
		if o.Kind == transform.OutputInt {
			v.avro, v.dtype = "long", tensor.Int64
		}
		switch in.form {
		case formScalar:
			v.form = formScalar
		case formList, formStrings:
			v.form = formList
		case formTensor:
			// A native stage keeps a tensor input a tensor.
			v.form, v.shape, v.avro = formTensor, slices.Clone(in.shape), ""
		}
	case transform.OutputTensor:
		v.form, v.dtype = formTensor, o.DType
		switch typ {
		case transform.TypeOneHot:
			d := int64(-1)
			if len(o.Shape) > 0 {
				d = o.Shape[0]
			}
			switch in.form {
			case formList:
				v.shape = []int64{-1, d}
			case formTensor:
				v.shape = append(slices.Clone(in.shape), d)
			default:
				v.shape = []int64{d}
			}
		case transform.TypeBagOfWords, transform.TypeTFIDF, transform.TypeTokenize:
			v.shape = slices.Clone(o.Shape)
		default: // a scaling or id stage with dtype: the input's form
			switch in.form {
			case formList, formStrings:
				v.shape = []int64{-1}
			case formTensor:
				v.shape = slices.Clone(in.shape)
			default:
				v.shape = []int64{}
			}
		}
	}
	return v
}

// checkTransformInputs checks each record field a stage reads against the
// Avro schema: it exists and its values are what the stage reads.
func checkTransformInputs(tp *transform.Pipeline, schemaJSON string) []config.Problem {
	stages := tp.Stages()
	var probs []config.Problem
	for _, in := range tp.Inputs() {
		field := fmt.Sprintf("transform.stages[%d] (%s)", in.Stage, stages[in.Stage].Type())
		ft, err := schema.LookupField(schemaJSON, in.Field)
		if err != nil {
			probs = append(probs, config.Problem{Field: field, Message: fmt.Sprintf("field %q: %v", in.Field, err)})
			continue
		}
		if msg := inputMismatch(in.Kind, ft); msg != "" {
			probs = append(probs, config.Problem{Field: field, Message: fmt.Sprintf("field %q: Avro type %s %s", in.Field, ft.Describe, msg)})
		}
	}
	return probs
}

// inputMismatch says why values of type ft cannot feed a stage reading
// kind, or "".
func inputMismatch(kind string, ft schema.FieldType) string {
	var scalar []string
	var want string
	switch kind {
	case transform.InputNumber:
		scalar, want = []string{"int", "long", "float", "double"}, "a number (int, long, float, double) or an array of numbers"
	case transform.InputInteger:
		scalar, want = []string{"int", "long"}, "an integer (int, long) or an array of integers"
	case transform.InputString:
		scalar, want = []string{"string", "enum", "int", "long"}, "a string (or enum, int, long) or an array of them"
	case transform.InputText:
		scalar, want = []string{"string", "enum"}, "a string"
	default:
		return ""
	}
	ok := func(t *schema.FieldType, wrapped bool) bool {
		// goavro wraps a nullable enum as {"ns.Name": value}, which the
		// stages do not unwrap.
		return slices.Contains(scalar, t.Kind) && !t.Logical && !(wrapped && t.Kind == "enum")
	}
	switch {
	case ok(&ft, ft.Nullable):
		return ""
	case ft.Kind == "array" && kind != transform.InputText && ft.Items != nil:
		it := ft.Items
		if it.Kind == "array" {
			return "nests arrays; a stage reads " + want
		}
		if it.Nullable || it.Kind == "union" {
			return "has nullable elements; a stage reads " + want
		}
		if ok(it, false) {
			return ""
		}
	}
	return "cannot feed the stage, which reads " + want
}

// modelInput resolves a model input's fields against the transform's
// outputs: direct is set when the input is a tensor output fed as it is
// (field: <output>); otherwise the fields go to the mapper (record fields
// and native outputs). Problems name the input.
func (pl *transformPlan) modelInput(f string, in config.Input, fields []string) (direct *directInput, probs []config.Problem) {
	add := func(field, msg string) { probs = append(probs, config.Problem{Field: field, Message: msg}) }
	var tensors []string
	for _, name := range fields {
		v, ok := pl.outs[name]
		if !ok {
			continue
		}
		where := fmt.Sprintf("transform output %q (transform.stages[%d])", name, v.stage)
		switch v.form {
		case formTensor:
			tensors = append(tensors, name)
		case formStrings:
			add(f, fmt.Sprintf("%s is a list of tokens for later text stages; a model input reads numbers (add a vocabulary, bag_of_words, tfidf or hash stage)", where))
		case formScalar, formList:
			if !avroName.MatchString(name) {
				add(f, fmt.Sprintf("%s cannot be mapped by this name (a path into a nested record reads the record's own field): name the stage's output with outputs: [NAME]", where))
			}
		default:
			add(f, fmt.Sprintf("%s holds nothing a model input can read (its input is %s)", where, "not a number or flat array"))
		}
	}
	if len(tensors) == 0 {
		return nil, probs
	}
	name := tensors[0]
	v := pl.outs[name]
	where := fmt.Sprintf("transform output %q is a %v tensor of per-row shape %s", name, v.dtype, tensor.ShapeString(v.shape))
	if len(fields) != 1 || in.Field == "" {
		add(f+".fields", where+": a tensor output feeds a model input on its own (field: "+name+"), not stacked with other fields")
		return nil, probs
	}
	if in.Encoding != "" && in.Encoding != schema.EncodingValue {
		add(f+".encoding", where+": encoding raw reads bytes fields")
	}
	if dt, _ := tensor.ParseDType(in.DType); dt != v.dtype {
		add(f+".dtype", fmt.Sprintf("%s: expected dtype %v, found %q", where, v.dtype, in.DType))
	}
	shape := in.Shape
	if shape == nil {
		shape = []int64{}
	}
	if msg := directShapeMismatch(v.shape, shape); msg != "" {
		add(f+".shape", fmt.Sprintf("%s: expected shape %s, found %s: %s", where, tensor.ShapeString(v.shape), tensor.ShapeString(shape), msg))
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return &directInput{output: name, shape: slices.Clone(shape)}, nil
}

// directShapeMismatch compares a tensor output's per-row shape with the
// shape configured for the model input it feeds: a dim that varies by
// row must be -1 in the config.
func directShapeMismatch(out, cfg []int64) string {
	if len(out) != len(cfg) {
		return fmt.Sprintf("rank %d vs %d", len(out), len(cfg))
	}
	for i := range out {
		switch {
		case out[i] < 0 && cfg[i] >= 0:
			return fmt.Sprintf("dim %d varies by row, so it must be -1", i)
		case out[i] >= 0 && cfg[i] >= 0 && out[i] != cfg[i]:
			return fmt.Sprintf("dim %d is %d vs %d", i, out[i], cfg[i])
		}
	}
	return ""
}

// directInput is a model input fed by a transform tensor output as it is.
type directInput struct {
	key    string  // the Decoded.Inputs key
	output string  // the row entry
	shape  []int64 // the configured per-row shape (-1: any length)
}

func (d *directInput) take(row map[string]any) (*tensor.Tensor, error) {
	t, ok := row[d.output].(*tensor.Tensor)
	if !ok {
		return nil, &RowError{Reason: transform.ReasonWrongType, Err: fmt.Errorf("transform output %q is not a tensor", d.output)}
	}
	fits := len(t.Shape) == len(d.shape)
	for i := 0; fits && i < len(d.shape); i++ {
		fits = d.shape[i] < 0 || t.Shape[i] == d.shape[i]
	}
	if !fits {
		return nil, &RowError{Reason: transform.ReasonShape, Err: fmt.Errorf("transform output %q has shape %s, input %q takes %s", d.output, tensor.ShapeString(t.Shape), d.key, tensor.ShapeString(d.shape))}
	}
	return t, nil
}

// extendSchema returns the record schema with the transform's native
// outputs added as fields (an output named like a field replaces it; the
// old field stays, renamed, so that named types it defines remain
// defined), for validating the mappings that read them.
func (pl *transformPlan) extendSchema(schemaJSON string) (string, error) {
	var names []string
	for name, v := range pl.outs {
		if (v.form == formScalar || v.form == formList) && avroName.MatchString(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return schemaJSON, nil
	}
	slices.Sort(names)
	dec := json.NewDecoder(strings.NewReader(schemaJSON))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return "", fmt.Errorf("the input schema is not a JSON object: %w", err)
	}
	fields, ok := root["fields"].([]any)
	if !ok {
		return "", errors.New("the input schema is not a record")
	}
	fields = slices.Clone(fields)
	taken := map[string]bool{}
	for _, f := range fields {
		if m, ok := f.(map[string]any); ok {
			n, _ := m["name"].(string)
			taken[n] = true
		}
	}
	shadow := 0
	for _, name := range names {
		v := pl.outs[name]
		for i, f := range fields {
			m, ok := f.(map[string]any)
			if !ok || m["name"] != name {
				continue
			}
			cp := make(map[string]any, len(m))
			for k, x := range m {
				cp[k] = x
			}
			for {
				shadow++
				n := fmt.Sprintf("__kinfer_replaced_%d", shadow)
				if !taken[n] {
					cp["name"], taken[n] = n, true
					break
				}
			}
			delete(cp, "aliases")
			fields[i] = cp
		}
		var typ any = v.avro
		if v.form == formList {
			typ = map[string]any{"type": "array", "items": v.avro}
		}
		fields = append(fields, map[string]any{"name": name, "type": typ})
	}
	out := make(map[string]any, len(root))
	for k, x := range root {
		out[k] = x
	}
	out["fields"] = fields
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return "", err
	}
	return b.String(), nil
}

// fitsWriterSchema checks that records of another writer schema (an input
// file's) can be transformed and mapped as the pipeline's own.
func (c *AvroCodec) fitsWriterSchema(sch string) error {
	mapSchema := sch
	if c.tplan != nil {
		if probs := checkTransformInputs(c.tplan.tp, sch); len(probs) > 0 {
			var msgs []string
			for _, p := range probs {
				msgs = append(msgs, p.Field+": "+p.Message)
			}
			return errors.New(strings.Join(msgs, "; "))
		}
		var err error
		if mapSchema, err = c.tplan.extendSchema(sch); err != nil {
			return err
		}
	}
	if c.mapper == nil {
		return nil
	}
	_, err := schema.NewMapper(mapSchema, c.mapper.Inputs())
	return err
}
