package schema

import (
	"errors"
	"fmt"
)

// Reasons carried by [Error]. They are stable strings meant for dead-letter
// headers and metric labels; do not change their values.
const (
	// ReasonBadMagic: the value is not in the Confluent wire format (too
	// short for the 5-byte header, or the magic byte is not 0).
	ReasonBadMagic = "bad_magic"
	// ReasonUnknownSchema: the schema id could not be resolved to a usable
	// Avro record schema (not registered, not AVRO, uses references, does
	// not compile, or the registry could not be reached).
	ReasonUnknownSchema = "unknown_schema"
	// ReasonDecode: the Avro body does not decode with its writer schema,
	// including trailing bytes after the record.
	ReasonDecode = "decode_error"
	// ReasonMissingField: a mapped field is absent from the record or null.
	ReasonMissingField = "missing_field"
	// ReasonWrongType: a value's Avro type cannot feed the tensor's dtype
	// (a float into an integer tensor, an out-of-range integer, a string).
	ReasonWrongType = "wrong_type"
	// ReasonShape: a value's shape does not match the configured shape
	// (fixed dim mismatch, ragged nested arrays, raw byte length).
	ReasonShape = "shape_mismatch"
	// ReasonNaN: a float value is NaN and the mapping does not allow NaN.
	ReasonNaN = "nan_forbidden"
	// ReasonEncode: an output record could not be built or encoded.
	ReasonEncode = "encode_error"
)

// reasonDefault is what ReasonOf reports for errors that carry no reason.
const reasonDefault = "error"

// Error is a per-record failure with a machine-readable Reason (one of the
// Reason constants). Err holds the human-readable detail.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Err is the detail: what failed, naming the field or schema id.
	Err error
}

// Error returns the detail message; the reason is available separately
// through Reason or [ReasonOf].
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Err.Error()
}

// Unwrap returns the detail error.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first [*Error] in err's chain, "error"
// when there is none, and "" for a nil err.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Reason != "" {
		return e.Reason
	}
	return reasonDefault
}

// errorf builds an *Error with a formatted detail; %w in format is honoured.
func errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}
