package schema

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/sr"
)

// RegisterOutputSchema returns the id of schemaJSON (an Avro schema) under
// subject, registering it if needed. It is idempotent: when the subject
// already holds the same schema, its existing id is returned without a
// write, which also works against read-only registries.
func RegisterOutputSchema(ctx context.Context, client *sr.Client, subject, schemaJSON string) (int, error) {
	if _, err := compileCodec(schemaJSON); err != nil {
		return 0, fmt.Errorf("registering schema under subject %q: %w", subject, err)
	}
	s := sr.Schema{Schema: schemaJSON, Type: sr.TypeAvro}
	ss, err := client.LookupSchema(ctx, subject, s)
	if err == nil {
		return ss.ID, nil
	}
	if !isNotFound(err) {
		return 0, fmt.Errorf("looking up schema under subject %q: %w", subject, err)
	}
	id, err := client.RegisterSchema(ctx, subject, s, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("registering schema under subject %q: %w", subject, err)
	}
	return id, nil
}

// isNotFound reports whether err is a registry "not found" response.
func isNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || sr.IsNotFoundError(re.ErrorCode))
}
