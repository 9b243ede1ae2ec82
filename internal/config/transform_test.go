package config

import (
	"strings"
	"testing"

	"github.com/kinfer/kinfer/transform"
)

const withTransform = minimal + `
transform:
  policy: dead_letter
  fields:
    a: {policy: default, default: 0}
  stages:
    - type: scale_to_z_score
      fields: [a]
      outputs: [a_z]
    - {type: bucketize, fields: [b], outputs: [b_bucket], num_buckets: 4}
    - {type: compute_and_apply_vocabulary, fields: [c], outputs: [c_id], num_oov_buckets: 1}
    - {type: one_hot, fields: [c_id], outputs: [c_onehot]}
transform_artifacts: arts/v1
`

// The transform section decodes into transform.Config (unknown keys are
// errors, as everywhere in pipeline.yaml) and transform_artifacts resolves
// relative to the config file.
func TestTransformSection(t *testing.T) {
	c, err := Parse("dir/p.yaml", []byte(withTransform))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasTransform() || len(c.Transform.Stages) != 4 || c.Transform.Stages[1].NumBuckets != 4 || c.Transform.Stages[3].Type != transform.TypeOneHot {
		t.Fatalf("transform %+v", c.Transform)
	}
	if fp := c.Transform.Fields["a"]; fp.Policy != transform.PolicyDefault || fp.Default != 0 {
		t.Fatalf("field policy %+v", fp)
	}
	if got := c.Resolve(c.TransformArtifacts); got != "dir/arts/v1" {
		t.Fatalf("artifacts resolve to %q", got)
	}
	if _, err := Parse("p.yaml", []byte(strings.Replace(withTransform, "num_buckets: 4", "num_bucket: 4", 1))); err == nil || !strings.Contains(err.Error(), "num_bucket") {
		t.Fatalf("unknown stage key: %v", err)
	}
	if c, err := Parse("p.yaml", []byte(minimal)); err != nil || c.HasTransform() {
		t.Fatalf("no transform: %v %v", err, c.HasTransform())
	}
}

// Transform problems are config problems: file, the stage or field, and
// what was expected, every one at once.
func TestTransformValidation(t *testing.T) {
	bad := strings.NewReplacer(
		"num_buckets: 4", "num_buckets: 1",
		"{type: one_hot, fields: [c_id], outputs: [c_onehot]}", "{type: one_hot, fields: [b], outputs: [c_onehot]}",
		"a: {policy: default, default: 0}", `a: {policy: default, default: "zero"}`,
	).Replace(withTransform)
	_, err := Parse("p.yaml", []byte(bad))
	ce, ok := AsError(err)
	if !ok {
		t.Fatalf("%v, want a config error", err)
	}
	fields := map[string]string{}
	for _, p := range ce.Problems {
		fields[p.Field] = p.Message
	}
	for field, want := range map[string]string{
		"transform.stages[1] (bucketize)": "num_buckets",
		"transform.stages[3] (one_hot)":   "depth: required",
	} {
		if !strings.Contains(fields[field], want) {
			t.Errorf("%s: %q, want it to say %q (all: %v)", field, fields[field], want, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "p.yaml: transform.stages[") {
		t.Errorf("error %q does not start with the file and field", err)
	}

	for _, tc := range []struct{ yaml, field, want string }{
		{minimal + "transform_artifacts: arts\n", "transform_artifacts", "no stages"},
		{minimal + "transform:\n  policy: error\n", "transform.stages", "required"},
		{strings.Replace(withTransform, `a: {policy: default, default: 0}`, `a: {policy: default, default: "zero"}`, 1), "transform.fields.a", "default"},
	} {
		_, err := Parse("p.yaml", []byte(tc.yaml))
		ce, ok := AsError(err)
		if !ok || ce.Problems[0].Field != tc.field || !strings.Contains(ce.Problems[0].Message, tc.want) {
			t.Errorf("%v, want %s: ...%s...", err, tc.field, tc.want)
		}
	}
}
