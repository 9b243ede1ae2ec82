package batch

import "strconv"

// Reasons a row is rejected by Add. They are stable strings, meant for the
// dead-letter reason header and metric labels.
const (
	// ReasonRowTooLong: a padded input is longer than the largest bucket
	// and its PadSpec does not allow truncation.
	ReasonRowTooLong = "row_too_long"
	// ReasonBadShape: the row cannot be stacked at all: no inputs, a nil or
	// inconsistent tensor, a padded input whose rank does not reach its
	// PadSpec.Axis, padded inputs of different lengths when a mask is
	// generated, or an input named like the generated mask.
	ReasonBadShape = "bad_shape"
)

// RowError is returned by Batcher.Add for a row that cannot be batched.
// The row is not added; the engine should dead-letter it with Reason.
type RowError struct {
	Reason string // ReasonRowTooLong or ReasonBadShape
	Input  string // the input at fault; "" when it is the row as a whole
	Detail string // what was wrong, for people
}

func (e *RowError) Error() string {
	if e.Input == "" {
		return "batch: row rejected (" + e.Reason + "): " + e.Detail
	}
	return "batch: row rejected (" + e.Reason + "): input " + strconv.Quote(e.Input) + ": " + e.Detail
}
