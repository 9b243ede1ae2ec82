package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrUnsupported is returned (wrapped) by Run and GuaranteeSupported when
// `kinfer validate` rejects the guarantee as not implemented yet.
var ErrUnsupported = errors.New("guarantee not supported by this kinfer")

// pipeline is what the generated pipeline.yaml needs.
type pipeline struct {
	brokers                 []string
	group, in, out, dlq     string
	model, schema           string
	guarantee               string
	instanceID              string
	sessionTimeout          time.Duration
	commitInterval          time.Duration
	drainTimeout, rebalance time.Duration
}

// yaml renders a pipeline.yaml for the fraud model.
func (p pipeline) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by kinfer-chaos.\nkafka:\n  brokers: [%s]\n", quoteList(p.brokers))
	fmt.Fprintf(&b, "  group: %s\n  input_topic: %s\n  output_topic: %s\n  dead_letter_topic: %s\n", p.group, p.in, p.out, p.dlq)
	fmt.Fprintf(&b, "  client_id: kinfer-chaos\n  start_offset: earliest\n  session_timeout: %s\n  rebalance_timeout: %s\n", p.sessionTimeout, p.rebalance)
	if p.instanceID != "" {
		fmt.Fprintf(&b, "  instance_id: %s\n", p.instanceID)
	}
	fmt.Fprintf(&b, "schema:\n  input_schema_file: %q\n", p.schema)
	fmt.Fprintf(&b, `model:
  name: fraud
  path: %q
  inputs:
    - tensor: features
      fields: [amount, merchant_risk, distance_km, hour_of_day, txn_count_1h, account_age_days, is_foreign, avg_amount_30d]
      dtype: float32
      shape: [8]
  outputs:
    - tensor: label
      field: fraud_label
    - tensor: probabilities
batch:
  max_size: 64
  max_delay: 5ms
output:
  passthrough: [transaction_id, account_id]
`, p.model)
	fmt.Fprintf(&b, "processing:\n  guarantee: %s\n  drain_timeout: %s\n", p.guarantee, p.drainTimeout)
	if p.commitInterval > 0 {
		fmt.Fprintf(&b, "  commit_interval: %s\n", p.commitInterval)
	}
	b.WriteString("metrics:\n  disabled: true\n")
	return b.String()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// validate runs `kinfer validate` on a config and returns the prediction
// schema it prints. A guarantee rejected as "not implemented yet" wraps
// ErrUnsupported.
func validate(ctx context.Context, kinferBin, cfgPath string) (predictionSchema string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kinferBin, "validate", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + stdout.String())
		if strings.Contains(msg, "not implemented yet") {
			return "", fmt.Errorf("%w: kinfer validate: %s", ErrUnsupported, msg)
		}
		return "", fmt.Errorf("kinfer validate --config %s: %w\n%s", cfgPath, err, msg)
	}
	_, after, ok := strings.Cut(stdout.String(), "prediction schema:")
	if !ok {
		return "", fmt.Errorf("kinfer validate printed no prediction schema:\n%s", stdout.String())
	}
	return strings.TrimSpace(after), nil
}

// GuaranteeSupported reports whether kinferBin accepts guarantee
// (at_least_once or exactly_once), by running `kinfer validate` on a fraud
// pipeline that uses it. It returns (false, reason, nil) when validation
// rejects the guarantee as not implemented yet, and an error when
// validation fails for any other reason.
func GuaranteeSupported(ctx context.Context, kinferBin, repoRoot, guarantee string) (bool, string, error) {
	dir, err := os.MkdirTemp("", "kinfer-chaos-validate-")
	if err != nil {
		return false, "", err
	}
	defer os.RemoveAll(dir)
	p := pipeline{
		brokers: []string{"127.0.0.1:9092"}, group: "g", in: "in", out: "out", dlq: "dlq",
		model:     filepath.Join(repoRoot, DefaultModel),
		schema:    filepath.Join(repoRoot, DefaultSchema),
		guarantee: guarantee, sessionTimeout: 6 * time.Second,
		drainTimeout: 10 * time.Second, rebalance: 20 * time.Second,
	}
	cfg := filepath.Join(dir, "pipeline.yaml")
	if err := writeFile(cfg, p.yaml()); err != nil {
		return false, "", err
	}
	if _, err := validate(ctx, kinferBin, cfg); err != nil {
		if errors.Is(err, ErrUnsupported) {
			return false, err.Error(), nil
		}
		return false, "", err
	}
	return true, "", nil
}
