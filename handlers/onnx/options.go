package onnx

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
)

// Execution providers accepted in Options.Provider and returned by
// Handler.ActiveProvider.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// ConfigAllowSpinning is ONNX Runtime's session config key that lets
// intra-op pool threads busy-wait for work; see Options.SessionConfig.
const ConfigAllowSpinning = "session.intra_op.allow_spinning"

// Options says which model to load and how to run it. The zero value of
// every field except Path means "use the default" given in its comment.
type Options struct {
	// Name identifies the model in predictions and logs. Default: the
	// model's folder name when the file is called model.onnx
	// (models/fraud/model.onnx -> "fraud"), else the file name without
	// its extension.
	Name string
	// Version is stamped on every prediction. Default: the first 12 hex
	// digits of the model file's SHA-256, so that a changed file is a new
	// version even when nobody bumps a number.
	Version string
	// Path is the .onnx file. Required. External data files
	// (model.onnx.data) are found relative to it.
	Path string
	// Copies is the number of ONNX Runtime sessions, that is how many
	// batches run at once; Infer waits for a free one. Default 1. Each copy
	// holds its own weights (and, on a GPU, its own device memory).
	Copies int
	// IntraOpThreads is the size of each session's thread pool, used to
	// split one operator (a MatMul) across cores. Default:
	// GOMAXPROCS/Copies, at least 1, so that all copies running at once use
	// about one thread per core instead of each claiming every core (ONNX
	// Runtime's own default), which oversubscribes the CPU as soon as
	// Copies > 1. Set it explicitly when the host runs other CPU-heavy
	// work.
	IntraOpThreads int
	// InterOpThreads is the size of each session's pool for running
	// independent graph branches in parallel. Sessions run in sequential
	// mode, where this pool is unused. Default 1.
	InterOpThreads int
	// Provider is the execution provider: "cpu" (default), "cuda" or
	// "tensorrt". When a GPU provider cannot be set up (no GPU, no CUDA
	// libraries, or an ONNX Runtime build without it) Load logs a warning
	// and falls back: tensorrt -> cuda -> cpu. ActiveProvider reports the
	// outcome. "tensorrt" registers CUDA after TensorRT for the nodes
	// TensorRT cannot run, as ONNX Runtime recommends.
	Provider string
	// DeviceID is the GPU ordinal for cuda and tensorrt. Default 0. It is
	// passed as the provider option device_id unless ProviderOptions sets
	// that key itself.
	DeviceID int
	// ProviderOptions are passed verbatim to the requested GPU provider
	// (CUDA or TensorRT provider options, e.g. "trt_fp16_enable": "1").
	// ONNX Runtime rejecting an option is a Load error, not a fallback.
	// They are not given to a fallback provider. Ignored, with a warning,
	// for cpu.
	ProviderOptions map[string]string
	// SessionConfig are ONNX Runtime session configuration entries
	// (AddSessionConfigEntry), e.g. "session.intra_op.allow_spinning".
	// kinfer sets "session.intra_op.allow_spinning" to "0" unless given:
	// ONNX Runtime's pool threads otherwise busy-wait after every operator,
	// taking cores that decoding, Kafka and the other copies need; set it
	// to "1" for a host that runs nothing but the model.
	SessionConfig map[string]string
	// Logger receives load-time information and fallback warnings.
	// Default slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and validates. It is the one place where
// defaults live.
func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		return o, fmt.Errorf("onnx: Options.Path is empty: no model file to load")
	}
	if o.Name == "" {
		o.Name = defaultName(o.Path)
	}
	if o.Copies < 0 {
		return o, fmt.Errorf("onnx: model %s: Copies is %d; want 1 or more (0 means 1)", o.Name, o.Copies)
	}
	if o.Copies == 0 {
		o.Copies = 1
	}
	if o.IntraOpThreads < 0 {
		return o, fmt.Errorf("onnx: model %s: IntraOpThreads is %d; want 1 or more (0 means GOMAXPROCS/Copies)", o.Name, o.IntraOpThreads)
	}
	if o.IntraOpThreads == 0 {
		o.IntraOpThreads = max(1, runtime.GOMAXPROCS(0)/o.Copies)
	}
	if o.InterOpThreads < 0 {
		return o, fmt.Errorf("onnx: model %s: InterOpThreads is %d; want 1 or more (0 means 1)", o.Name, o.InterOpThreads)
	}
	if o.InterOpThreads == 0 {
		o.InterOpThreads = 1
	}
	o.Provider = strings.ToLower(strings.TrimSpace(o.Provider))
	switch o.Provider {
	case "":
		o.Provider = ProviderCPU
	case ProviderCPU, ProviderCUDA, ProviderTensorRT:
	default:
		return o, fmt.Errorf("onnx: model %s: unknown provider %q (expected %s, %s or %s)",
			o.Name, o.Provider, ProviderCPU, ProviderCUDA, ProviderTensorRT)
	}
	if o.DeviceID < 0 {
		return o, fmt.Errorf("onnx: model %s: DeviceID is %d; want 0 or more", o.Name, o.DeviceID)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

func defaultName(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	base := filepath.Base(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	if strings.EqualFold(base, "model.onnx") {
		if dir := filepath.Base(filepath.Dir(path)); dir != "." && dir != string(filepath.Separator) {
			return dir
		}
	}
	return stem
}
