package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/schema"
	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

// Prediction record fields that name the model.
const (
	FieldModelName    = "model_name"
	FieldModelVersion = "model_version"
)

// AvroCodec decodes Avro inputs (plain or Confluent wire format), maps
// fields to tensors, and encodes predictions as Avro.
type AvroCodec struct {
	dec     schema.Decoder
	mapper  *schema.Mapper
	builder *schema.OutputBuilder
	enc     *schema.Encoder
	// rows encodes predictions without building them as maps (nil: the
	// schema needs goavro); tensorAt finds a tensor field's From in the
	// steps' outputs.
	rows     *schema.RowEncoder
	tensorAt map[string]stepTensor
	// wireID is the registered output schema id; 0 writes plain Avro.
	wireID int
	// route are the field paths whose values pick per-key models.
	route []string
	// post are declared post-processing steps, in config order.
	post []*postOp
	// multiStep adds the models field; stepNames name the steps.
	multiStep bool
	stepNames []string
	// transform is applied to each decoded record before mapping (nil:
	// none); tplan describes its outputs, direct are the model inputs fed
	// by its tensor outputs, and transformVersion is stamped on
	// predictions.
	transform        *transform.Pipeline
	tplan            *transformPlan
	direct           []directInput
	transformVersion string
	// OutputSchema is the generated prediction schema (JSON).
	OutputSchema string
}

// registryRetry bounds the wait between attempts while the registry is
// unreachable.
const registryRetry = 2 * time.Second

// Decode decodes one record, applies the transform stages (if any) and
// maps the result to the model inputs. A row that a transform field policy
// dead-letters fails with the transform's reason; one whose policy is
// "error" fails with a *StopError, which stops the pipeline. While the
// schema registry is unreachable it waits and retries rather than
// dead-lettering good records; only ctx ends the wait.
func (c *AvroCodec) Decode(ctx context.Context, rec *kgo.Record) (Decoded, error) {
	var (
		r   schema.Record
		err error
	)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, registryRetry) {
		r, err = c.dec.Decode(ctx, rec.Value)
		if !errors.Is(err, schema.ErrRegistryUnavailable) {
			break
		}
		select {
		case <-ctx.Done():
			return Decoded{}, &RowError{Reason: ReasonUnavailable, Err: err}
		case <-time.After(wait):
		}
	}
	if err != nil {
		return Decoded{}, &RowError{Reason: schema.ReasonOf(err), Err: err}
	}
	row := r.Native
	if c.transform != nil {
		// The stages write their outputs into the row; the record itself
		// (pass-through fields, per-key routing) stays as received.
		row = maps.Clone(r.Native)
		if err := c.transform.Apply(row); err != nil {
			return Decoded{}, transformRowError(err)
		}
	}
	var inputs map[string]*tensor.Tensor
	if c.mapper != nil {
		if inputs, err = c.mapper.Map(row); err != nil {
			return Decoded{}, &RowError{Reason: schema.ReasonOf(err), Err: err}
		}
	} else {
		inputs = make(map[string]*tensor.Tensor, len(c.direct))
	}
	for i := range c.direct {
		t, err := c.direct[i].take(row)
		if err != nil {
			return Decoded{}, err
		}
		inputs[c.direct[i].key] = t
	}
	d := Decoded{Inputs: inputs, Meta: r.Native}
	if len(c.route) > 0 {
		d.Route = make(map[string]string, len(c.route))
		for _, f := range c.route {
			if v, ok := schema.PassThrough(r.Native, f); ok && v != nil {
				d.Route[f] = routeValue(v)
			}
		}
	}
	return d, nil
}

// routeValue renders a per-key field's value (a string or integer, maybe
// in a union) as the key.
func routeValue(v any) string {
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		for _, inner := range u {
			v = inner
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

// stepTensor is a step's output tensor by name.
type stepTensor struct {
	step int
	name string
}

// planRows sets up the map-free prediction encoder when the output schema
// allows it and every tensor field names a step's output as step/name.
func (c *AvroCodec) planRows() {
	rows := schema.NewRowEncoder(c.enc, c.builder)
	if rows == nil {
		return
	}
	at := map[string]stepTensor{}
	for _, from := range c.builder.TensorSources() {
		best := -1
		for i, name := range c.stepNames {
			if strings.HasPrefix(from, name+"/") && (best < 0 || len(name) > len(c.stepNames[best])) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		at[from] = stepTensor{step: best, name: from[len(c.stepNames[best])+1:]}
	}
	c.rows, c.tensorAt = rows, at
}

// Encode builds the prediction: pass-through fields from the decoded
// input, one field per model output, the model name and version.
func (c *AvroCodec) Encode(_ context.Context, d Decoded, res Result) ([]byte, error) {
	input, _ := d.Meta.(map[string]any)
	var natives map[string]any
	if len(c.post) > 0 || c.multiStep || c.transform != nil {
		natives = make(map[string]any, len(c.post)+2)
		if c.transform != nil {
			natives[FieldTransformVersion] = c.transformVersion
		}
		for _, p := range c.post {
			v, err := p.run(res)
			if err != nil {
				return nil, &RowError{Reason: ReasonEncode, Err: err}
			}
			natives[p.field] = v
		}
		if c.multiStep {
			refs := make([]any, len(res.Models))
			for i, m := range res.Models {
				refs[i] = map[string]any{"step": c.stepNames[i], "name": m.Name, "version": m.Version}
			}
			natives[FieldModels] = refs
		}
	}
	last := res.Models[len(res.Models)-1]
	if c.rows != nil {
		src := schema.RowSources{Input: input, Natives: natives, ModelName: last.Name, ModelVersion: last.Version,
			Tensor: func(from string) *tensor.Tensor {
				at, ok := c.tensorAt[from]
				if !ok || at.step >= len(res.Outputs) {
					return nil
				}
				return res.Outputs[at.step][at.name]
			}}
		if b, ok := c.rows.Encode(&src, c.wireID); ok {
			return b, nil
		}
		// A field that fails, or a value only goavro takes: the long way
		// below encodes it or names the problem.
	}
	outputs := map[string]*tensor.Tensor{}
	for i, outs := range res.Outputs {
		for name, t := range outs {
			outputs[c.stepNames[i]+"/"+name] = t
		}
	}
	native, err := c.builder.BuildRow(input, outputs, natives, last.Name, last.Version)
	if err != nil {
		return nil, &RowError{Reason: schema.ReasonOf(err), Err: err}
	}
	var b []byte
	if c.wireID > 0 {
		b, err = c.enc.EncodeWire(c.wireID, native)
	} else {
		b, err = c.enc.Encode(native)
	}
	if err != nil {
		return nil, &RowError{Reason: ReasonEncode, Err: err}
	}
	return b, nil
}

// passName is the output field name of a pass-through path: its last
// element.
func passName(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}
