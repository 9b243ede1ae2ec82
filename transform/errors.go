package transform

import (
	"errors"
	"fmt"
)

// Reasons carried by [Error]. They are stable strings meant for dead-letter
// headers and metric labels (the first three have the same values as the
// schema package's, so a dead letter reads the same whichever step found
// the problem); do not change their values.
const (
	// ReasonMissingField: a field a stage reads is absent from the row or
	// null.
	ReasonMissingField = "missing_field"
	// ReasonWrongType: a value's type cannot feed the stage (a string into
	// a scaling stage, a float into one_hot, a nested array).
	ReasonWrongType = "wrong_type"
	// ReasonShape: an array's length differs from the one the stage was
	// fitted on (elementwise scaling).
	ReasonShape = "shape_mismatch"
	// ReasonInvalidValue: a number is NaN or infinite.
	ReasonInvalidValue = "invalid_value"
	// ReasonTokenizer: the tokenizer library failed to encode the text.
	ReasonTokenizer = "tokenizer_error"
)

// Policies for a field whose value is missing or invalid; see
// [FieldPolicy].
const (
	// PolicyDefault substitutes the field's configured default value and
	// goes on: the row is transformed (and, in fit, observed) as if the
	// record held the default.
	PolicyDefault = "default"
	// PolicyDeadLetter fails the row with an [*Error] whose DeadLetter
	// method reports true: the engine writes the record to the dead-letter
	// topic with the Reason and goes on. In fit the row is skipped and
	// counted. It is the default policy.
	PolicyDeadLetter = "dead_letter"
	// PolicyError fails the row with an [*Error] whose DeadLetter method
	// reports false: the engine stops the pipeline (fit stops too). Use it
	// for fields that must never be missing.
	PolicyError = "error"
)

// ErrNotFitted is returned by [Pipeline.Apply] when the pipeline has stages
// that need fitted artifacts and none were bound ([Pipeline.Bind],
// [Pipeline.Load]).
var ErrNotFitted = errors.New("transform: pipeline has fitted stages but no artifacts are bound (run kinfer fit and load its artifact directory)")

// Error is a per-row failure of a stage on one field: the value was
// missing or invalid and the field's policy is dead_letter or error.
type Error struct {
	// Stage is the index of the stage in the pipeline (0-based).
	Stage int
	// Type is the stage type ("scale_to_z_score", ...).
	Type string
	// Field is the field the stage read.
	Field string
	// Reason is one of the Reason constants.
	Reason string
	// Policy is PolicyDeadLetter or PolicyError.
	Policy string
	// Err is the detail.
	Err error
}

// Error names the stage, the field and the problem.
func (e *Error) Error() string {
	return fmt.Sprintf("transform stage %d (%s): field %q: %v", e.Stage, e.Type, e.Field, e.Err)
}

// Unwrap returns the detail.
func (e *Error) Unwrap() error { return e.Err }

// DeadLetter reports whether the row should go to the dead-letter topic
// (policy dead_letter) rather than stop the pipeline (policy error).
func (e *Error) DeadLetter() bool { return e.Policy != PolicyError }

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
	return "error"
}

// IsDeadLetter reports whether err is a row failure that the field's policy
// sends to the dead-letter topic. Any other non-nil error (policy error,
// [ErrNotFitted], a bug) should stop the pipeline.
func IsDeadLetter(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.DeadLetter()
}
