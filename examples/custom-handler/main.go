// Command kinfer-custom is kinfer with one more model kind, "zscore": an
// anomaly scorer written in Go (zscore.go). It is the whole recipe for a
// custom build: register the kind, then hand over to kinfercmd.Main, which
// is the stock kinfer command line (run, replay, fit, validate, demo),
// with the onnx and remote kinds as well.
//
//	go build -o kinfer-custom ./examples/custom-handler
//	./kinfer-custom validate --config examples/custom-handler/pipeline.yaml
//
// A handler kept in a package of its own registers itself in that
// package's init instead, and main only blank-imports it.
package main

import (
	"os"

	kinfercmd "github.com/kinfer/kinfer/cmd"
	"github.com/kinfer/kinfer/handlers"
)

func init() {
	// Before Main runs, so that every subcommand knows the kind.
	handlers.Register(Kind, openZScore)
}

func main() {
	os.Exit(kinfercmd.Main())
}
