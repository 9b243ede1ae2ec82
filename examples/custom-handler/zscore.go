package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Kind is the model kind this build adds; pipeline.yaml selects it with
// model.kind: zscore.
const Kind = "zscore"

// Tensor names of the zscore model.
const (
	inFeatures = "features"
	outScore   = "score"
	outAnomaly = "anomaly"
	outFeature = "feature"
)

// zscore is a model written in Go rather than exported to ONNX: an
// anomaly scorer that measures how far each feature of a row lies from
// its usual value, in standard deviations, against a mean and standard
// deviation per feature that were fitted offline and sit in pipeline.yaml.
// It reads features float32[?,N] and writes, per row:
//
//	score   float32  the largest |x_j - mean_j| / std_j over the features
//	anomaly int64    1 when score >= threshold, else 0
//	feature int64    j, the feature with that largest deviation (0-based,
//	                 in the order of the input mapping's fields)
//
// A row's result depends on that row alone, so batching never changes a
// prediction, and Infer is safe for concurrent use (it only reads h).
type zscore struct {
	name, version string
	mean, std     []float64
	threshold     float64
	closed        atomic.Bool
}

// openZScore is the handlers.Factory for Kind. model.options in
// pipeline.yaml carry the statistics:
//
//	mean:      comma-separated, one per feature (required)
//	std:       comma-separated, one per feature, each > 0 (required)
//	threshold: the score at which a row is an anomaly (default 3)
//
// The model's version is model.version, or else a hash of those three
// options, so that predictions made with other statistics say so. Unknown
// options (typos) and the fields for model files or hardware (path, url,
// provider, device_id, intra_op_threads) are errors.
func openZScore(_ context.Context, spec handlers.Spec) (handlers.ModelHandler, error) {
	o := spec.Opts()
	meanOpt := o.String("mean", "")
	stdOpt := o.String("std", "")
	threshold := o.Float("threshold", 3)
	if err := o.Err(); err != nil {
		return nil, err
	}
	switch {
	case spec.Path != "" || spec.URL != "":
		return nil, fmt.Errorf("model %s: kind %s has no model file or server (path, url): its statistics are options mean and std", spec.Name, Kind)
	case spec.Provider != "" || spec.DeviceID != 0 || spec.IntraOpThreads != 0:
		return nil, fmt.Errorf("model %s: provider, device_id and intra_op_threads are for ONNX models; kind %s runs in Go", spec.Name, Kind)
	}
	mean, err := floats("mean", meanOpt)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", spec.Name, err)
	}
	std, err := floats("std", stdOpt)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", spec.Name, err)
	}
	if len(mean) != len(std) {
		return nil, fmt.Errorf("model %s: options mean and std must list one number per feature: mean has %d, std %d", spec.Name, len(mean), len(std))
	}
	for j, s := range std {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("model %s: option std: feature %d has %v; each must be a positive number", spec.Name, j, s)
		}
	}
	if !(threshold > 0) || math.IsInf(threshold, 0) {
		return nil, fmt.Errorf("model %s: option threshold: %v is not a positive number", spec.Name, threshold)
	}
	h := &zscore{name: spec.Name, version: spec.Version, mean: mean, std: std, threshold: threshold}
	if h.version == "" {
		sum := sha256.Sum256([]byte(meanOpt + "|" + stdOpt + "|" + strconv.FormatFloat(threshold, 'g', -1, 64)))
		h.version = hex.EncodeToString(sum[:6])
	}
	return h, nil
}

// floats parses option key's comma-separated numbers; it needs at least one.
func floats(key, s string) ([]float64, error) {
	if s == "" {
		return nil, fmt.Errorf("option %s is required (comma-separated numbers, one per feature)", key)
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("option %s: %q is not a finite number", key, strings.TrimSpace(f))
		}
		out = append(out, v)
	}
	return out, nil
}

func (h *zscore) Name() string    { return h.name }
func (h *zscore) Version() string { return h.version }

func (h *zscore) Inputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{{Name: inFeatures, DType: tensor.Float32, Shape: []int64{-1, int64(len(h.mean))}}}
}

func (h *zscore) Outputs() []handlers.TensorSpec {
	return []handlers.TensorSpec{
		{Name: outScore, DType: tensor.Float32, Shape: []int64{-1}},
		{Name: outAnomaly, DType: tensor.Int64, Shape: []int64{-1}},
		{Name: outFeature, DType: tensor.Int64, Shape: []int64{-1}},
	}
}

func (h *zscore) Infer(ctx context.Context, in map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, handlers.ErrClosed
	}
	// Exactly the declared input, dtype and shape; the errors wrap
	// handlers.ErrInvalidInput, which the engine dead-letters rather
	// than retries.
	n, err := handlers.CheckInputs(h.Inputs(), in)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", h.name, err)
	}
	x := in[inFeatures].Data.([]float32)
	k := len(h.mean)
	score := make([]float32, n)
	anomaly := make([]int64, n)
	feature := make([]int64, n)
	for r := range n {
		best, at := 0.0, 0
		for j := range k {
			v := float64(x[r*k+j])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				// The engine splits the batch and dead-letters only this row.
				return nil, fmt.Errorf("model %s: %w: row %d: feature %d is %v", h.name, handlers.ErrInvalidInput, r, j, v)
			}
			if z := math.Abs(v-h.mean[j]) / h.std[j]; z > best {
				best, at = z, j
			}
		}
		score[r], feature[r] = float32(best), int64(at)
		if best >= h.threshold {
			anomaly[r] = 1
		}
	}
	return map[string]*tensor.Tensor{
		outScore:   {DType: tensor.Float32, Shape: []int64{int64(n)}, Data: score},
		outAnomaly: {DType: tensor.Int64, Shape: []int64{int64(n)}, Data: anomaly},
		outFeature: {DType: tensor.Int64, Shape: []int64{int64(n)}, Data: feature},
	}, nil
}

// Close is final: Infer then returns handlers.ErrClosed. It is safe to call
// twice, and an Infer already running finishes normally.
func (h *zscore) Close() error {
	h.closed.Store(true)
	return nil
}
