package handlers

import (
	"context"
	"errors"
)

// ErrUnavailable is wrapped by errors that say the model could not run the
// batch right now (a remote server overloaded or unreachable, throttled
// locally) while the batch itself is fine. The engine retries such
// batches with backoff instead of dead-lettering their rows.
var ErrUnavailable = errors.New("model temporarily unavailable")

// IsTransient reports whether err is worth retrying the same batch later:
// it wraps ErrUnavailable or context.DeadlineExceeded, or an error in its
// chain has a Temporary method that returns true.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
