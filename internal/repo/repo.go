// Package repo finds the kinfer checkout the code runs in, for tests, the
// benchmark and chaos harnesses and the test broker, which all need files
// from it (testdata, deploy/kafka).
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrNoRoot is returned when no folder above the working directory holds
// go.mod.
var ErrNoRoot = errors.New("go.mod not found above the working directory")

// Root returns the nearest folder at or above the working directory (a
// package's folder under go test) that holds go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRoot
		}
		dir = parent
	}
}
