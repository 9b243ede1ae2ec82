package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/tensor"
)

// Codec turns record values into model inputs and per-row model outputs
// into record values. The engine owns ordering, batching and delivery; a
// Codec only converts. Implementations must be safe for concurrent use.
type Codec interface {
	// Decode maps one input record to the model's named input tensors
	// (per-row shapes, no batch dim). A returned error should be a
	// *RowError so the dead-letter record says why.
	Decode(ctx context.Context, rec *kgo.Record) (Decoded, error)
	// Encode builds the prediction value for one row from every step's
	// outputs.
	Encode(ctx context.Context, d Decoded, res Result) ([]byte, error)
}

// Result is what the model graph produced for one row: per step, the
// outputs (per-row tensors) and the model that served it.
type Result struct {
	Outputs []map[string]*tensor.Tensor
	Models  []ModelInfo
}

// Decoded is one decoded input row.
type Decoded struct {
	Inputs map[string]*tensor.Tensor
	// Meta is whatever the codec needs again in Encode (pass-through
	// field values, for example). The engine does not look at it.
	Meta any
	// Route holds the values of the fields that pick per-key models, by
	// field path.
	Route map[string]string
}

// ModelInfo names the model that produced a prediction.
type ModelInfo struct {
	Name, Version string
}

// Dead-letter reasons that the engine itself assigns. Codecs add their own
// (decode_error, unknown_schema, missing_field, ...).
const (
	ReasonInference  = "inference_error"
	ReasonEncode     = "encode_error"
	ReasonBatch      = "batch_rejected"
	ReasonProduce    = "produce_error"
	ReasonUnexpected = "error"
	// ReasonUnavailable marks a row abandoned because a dependency (the
	// schema registry) stayed down until shutdown; such rows are never
	// dead-lettered, they stay uncommitted and are redone.
	ReasonUnavailable = "unavailable"
)

// RowError is a failure of one row. Reason is a short machine-readable
// word that goes into the dead-letter header kinfer.reason.
type RowError struct {
	Reason string
	Err    error
}

func (e *RowError) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// ReasonOf returns the dead-letter reason carried by err, or "error".
func ReasonOf(err error) string {
	var re *RowError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	return ReasonUnexpected
}
