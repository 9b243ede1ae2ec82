// Package orttest is for tests that need the ONNX Runtime shared library.
package orttest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/repo"
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

// ResNet50Dir is where testdata/models/make_resnet50.py put workload 3's
// model (`make resnet50`; 98 MB, so not committed): $KINFER_RESNET50_DIR,
// or .cache/models/resnet50 under the checkout. ok is false when it holds
// no model.onnx there.
func ResNet50Dir() (dir string, ok bool, err error) {
	dir = os.Getenv("KINFER_RESNET50_DIR")
	if dir == "" {
		root, err := repo.Root()
		if err != nil {
			return "", false, err
		}
		dir = filepath.Join(root, ".cache", "models", "resnet50")
	}
	_, statErr := os.Stat(filepath.Join(dir, "model.onnx"))
	return dir, statErr == nil, nil
}
