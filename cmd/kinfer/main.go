// Command kinfer is a Kafka-native streaming inference processor: it reads
// Avro records from a topic, runs ONNX models on them in shape-keyed
// micro-batches, and writes one prediction per record to another topic.
//
// The command line lives in package kinfercmd (github.com/kinfer/kinfer/cmd),
// so that a build with custom model kinds is this file plus one import;
// see examples/custom-handler.
package main

import (
	"os"

	kinfercmd "github.com/kinfer/kinfer/cmd"
)

// version is set at build time with -ldflags "-X main.version=..."
// (deploy/Dockerfile does).
var version = "dev"

func main() {
	kinfercmd.Version = version
	os.Exit(kinfercmd.Main())
}
