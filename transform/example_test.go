package transform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kinfer/kinfer/tensor"
	"github.com/kinfer/kinfer/transform"
)

// Fit on a bounded set of records, write the artifact directory, load it
// into the pipeline that serves, and transform a record.
func Example() {
	cfg := transform.Config{
		Fields: map[string]transform.FieldPolicy{
			"amount": {Policy: transform.PolicyDefault, Default: 0},
		},
		Stages: []transform.StageConfig{
			{Type: transform.TypeScaleToZScore, Fields: []string{"amount"}, Outputs: []string{"amount_z"}},
			{Type: transform.TypeVocabulary, Fields: []string{"merchant"}, Outputs: []string{"merchant_id"}},
			{Type: transform.TypeOneHot, Fields: []string{"merchant_id"}, Outputs: []string{"merchant_onehot"}},
		},
	}
	p, err := transform.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	history := []map[string]any{
		{"amount": 10.0, "merchant": "grocery"},
		{"amount": 30.0, "merchant": "travel"},
		{"amount": 20.0, "merchant": "grocery"},
	}
	arts, err := p.Fit(context.Background(), func(ctx context.Context, observe func(map[string]any) error) error {
		for _, r := range history {
			if err := observe(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	dir := filepath.Join(os.TempDir(), "kinfer-transform-example")
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	if err := transform.WriteArtifacts(dir, arts); err != nil {
		fmt.Println(err)
		return
	}

	serving, err := p.Load(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	row := map[string]any{"merchant": map[string]any{"string": "travel"}} // amount missing: default 0
	if err := serving.Apply(row); err != nil {
		fmt.Println(err)
		return
	}
	oh := row["merchant_onehot"].(*tensor.Tensor)
	fmt.Printf("amount_z=%.4f merchant_id=%d one-hot %v %v\n", row["amount_z"], row["merchant_id"], oh.Shape, oh.Data)

	err = serving.Apply(map[string]any{"amount": 5.0}) // merchant missing: dead letter
	fmt.Println(transform.IsDeadLetter(err), transform.ReasonOf(err), err)
	// Output:
	// amount_z=-2.4495 merchant_id=1 one-hot [2] [0 1]
	// true missing_field transform stage 1 (compute_and_apply_vocabulary): field "merchant": field is missing
}
