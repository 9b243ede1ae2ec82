// Package orttest is for tests that need the ONNX Runtime shared library.
package orttest

import (
	"errors"
	"os"
	"testing"

	"github.com/kinfer/kinfer/handlers/onnx"
)

// Require loads ONNX Runtime (onnx.Init) or ends the test: a skip when the
// library is not installed, except under CI=true, where the tests that
// need it must run, so a missing library fails them. Any other load error
// fails the test.
func Require(tb testing.TB) {
	tb.Helper()
	err := onnx.Init()
	if err == nil {
		return
	}
	if errors.Is(err, onnx.ErrLibraryNotFound) && os.Getenv("CI") != "true" {
		tb.Skipf("skipping, ONNX Runtime is not installed (run `make ort`): %v", err)
	}
	tb.Fatal(err)
}
