package remote

import (
	"context"
	"fmt"

	"github.com/kinfer/kinfer/handlers"
)

// Kind is the name this package registers its handler under: import it
// (blank import is enough) and handlers.Open(ctx, remote.Kind, spec)
// connects to the model spec.Name at spec.URL.
const Kind = "remote"

func init() { handlers.Register(Kind, open) }

// open is the handlers.Factory for Kind. spec.URL is Options.URL,
// spec.Name Options.Name, spec.Version Options.Version, spec.Copies
// Options.Concurrency; the options (model.options in pipeline.yaml) are
//
//	model:            Options.Model (default: spec.Name)
//	model_version:    Options.ModelVersion
//	timeout:          Options.Timeout, e.g. 2s
//	max_attempts:     Options.MaxAttempts
//	backoff_base:     Options.BackoffBase
//	backoff_max:      Options.BackoffMax
//	max_retry_after:  Options.MaxRetryAfter
//	binary:           Options.Binary (true/false)
//	throttle:         false turns adaptive throttling off
//	throttle_k:       Options.Throttle.K
//	throttle_padding: Options.Throttle.Padding
//	throttle_window:  Options.Throttle.Window
//	header.<Name>:    Options.Headers[<Name>], e.g. header.Authorization
//
// Unknown options, a spec.Path, and the local-hardware fields
// (IntraOpThreads, Provider, DeviceID) are errors: the server decides
// where the model runs.
func open(ctx context.Context, spec handlers.Spec) (handlers.ModelHandler, error) {
	o := spec.Opts()
	opts := Options{
		URL:           spec.URL,
		Model:         o.String("model", spec.Name),
		ModelVersion:  o.String("model_version", ""),
		Name:          spec.Name,
		Version:       spec.Version,
		Timeout:       o.Duration("timeout", 0),
		MaxAttempts:   o.Int("max_attempts", 0),
		BackoffBase:   o.Duration("backoff_base", 0),
		BackoffMax:    o.Duration("backoff_max", 0),
		MaxRetryAfter: o.Duration("max_retry_after", 0),
		Binary:        o.Bool("binary", false),
		Throttle: ThrottleOptions{
			Disabled: !o.Bool("throttle", true),
			K:        o.Float("throttle_k", 0),
			Padding:  o.Float("throttle_padding", 0),
			Window:   o.Duration("throttle_window", 0),
		},
		Concurrency: spec.Copies,
		Headers:     o.Prefixed("header."),
		Logger:      spec.Logger,
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	switch {
	case spec.URL == "":
		return nil, fmt.Errorf("model %s: no url: the remote handler calls a model server (url: http://host:port)", spec.Name)
	case spec.Path != "":
		return nil, fmt.Errorf("model %s: path %s is set, but the remote handler calls a server (url); use kind onnx for a local file", spec.Name, spec.Path)
	case spec.Provider != "" || spec.DeviceID != 0 || spec.IntraOpThreads != 0:
		return nil, fmt.Errorf("model %s: provider, device_id and intra_op_threads are for local models; the server decides where a remote model runs", spec.Name)
	}
	h, err := Load(ctx, opts)
	if err != nil {
		return nil, err // not h: a nil *Handler in an interface is not nil
	}
	return h, nil
}
