package processor

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/tensor"
	"github.com/kinfer/kinfer/schema"
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
	// wireID is the registered output schema id; 0 writes plain Avro.
	wireID int
	// OutputSchema is the generated prediction schema (JSON).
	OutputSchema string
}

// registryRetry bounds the wait between attempts while the registry is
// unreachable.
const registryRetry = 2 * time.Second

// Decode decodes and maps one record. While the schema registry is
// unreachable it waits and retries rather than dead-lettering good
// records; only ctx ends the wait.
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
	inputs, err := c.mapper.Map(r.Native)
	if err != nil {
		return Decoded{}, &RowError{Reason: schema.ReasonOf(err), Err: err}
	}
	return Decoded{Inputs: inputs, Meta: r.Native}, nil
}

// Encode builds the prediction: pass-through fields from the decoded
// input, one field per model output, the model name and version.
func (c *AvroCodec) Encode(_ context.Context, d Decoded, outputs map[string]*tensor.Tensor, info ModelInfo) ([]byte, error) {
	input, _ := d.Meta.(map[string]any)
	native, err := c.builder.Build(input, outputs, info.Name, info.Version)
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
