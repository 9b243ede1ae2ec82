package onnx

import (
	"context"
	"fmt"

	"github.com/kinfer/kinfer/handlers"
)

// Kind is the name this package registers its handler under: import it
// (blank import is enough) and handlers.Open(ctx, onnx.Kind, spec) loads
// spec.Path with ONNX Runtime.
const Kind = "onnx"

func init() { handlers.Register(Kind, open) }

// open is the handlers.Factory for Kind. spec maps onto Options: Name,
// Version, Path, Copies, IntraOpThreads, Provider and DeviceID as they
// are; the options
//
//	inter_op_threads: Options.InterOpThreads (default 1)
//	provider.<key>:   Options.ProviderOptions[<key>], e.g. provider.trt_fp16_enable: "1"
//	session.<key>:    Options.SessionConfig["session.<key>"], e.g. session.intra_op.allow_spinning: "1"
//
// and nothing else (an unknown option is an error).
func open(ctx context.Context, spec handlers.Spec) (handlers.ModelHandler, error) {
	o := spec.Opts()
	opts := Options{
		Name:            spec.Name,
		Version:         spec.Version,
		Path:            spec.Path,
		Copies:          spec.Copies,
		IntraOpThreads:  spec.IntraOpThreads,
		InterOpThreads:  o.Int("inter_op_threads", 0),
		Provider:        spec.Provider,
		DeviceID:        spec.DeviceID,
		ProviderOptions: o.Prefixed("provider."),
		SessionConfig:   sessionConfig(o.Prefixed("session.")),
		Logger:          spec.Logger,
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	if spec.URL != "" {
		return nil, fmt.Errorf("model %s: url %s is set, but the onnx handler loads a local file (path); use kind remote for a model server", spec.Name, spec.URL)
	}
	h, err := Load(ctx, opts)
	if err != nil {
		return nil, err // not h: a nil *Handler in an interface is not nil
	}
	return h, nil
}

// sessionConfig puts back the "session." prefix that ONNX Runtime's
// config keys carry.
func sessionConfig(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out["session."+k] = v
	}
	return out
}
