package config

import "strings"

// HasTransform reports whether the pipeline has preprocessing stages.
func (c *Config) HasTransform() bool { return len(c.Transform.Stages) > 0 }

// validateTransform checks the transform section on its own (stage
// options, field policies; see transform.Config.Validate) and
// transform_artifacts. Whether the artifacts exist and fit the stages,
// and whether the record fields the stages read exist in the Avro schema,
// is checked when the pipeline is built.
func (c *Config) validateTransform(v *validator) {
	t := &c.Transform
	if !c.HasTransform() {
		if t.Policy != "" || len(t.Fields) > 0 {
			v.add("transform.stages", "required: transform.policy and transform.fields apply to stages, and there are none")
		}
		if c.TransformArtifacts != "" {
			v.add("transform_artifacts", "set, but transform has no stages to apply the artifacts to")
		}
		return
	}
	err := t.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		// Messages start with the field: "transform.stages[3] (one_hot): ...".
		field, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok || !strings.HasPrefix(field, "transform") {
			field, msg = "transform", e.Error()
		}
		v.add(field, msg)
	}
}
