package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release that scripts/fetch-ort.sh caches
// and LibraryPath looks for. onnxruntime_go v1.27.0 asks the library for C
// API version 24, which every release since 1.24 serves.
const ORTVersion = "1.30.0"

// Environment variables that locate the ONNX Runtime shared library.
const (
	// EnvLibrary is the full path of libonnxruntime.so; it wins over the
	// cache.
	EnvLibrary = "KINFER_ORT_LIB"
	// EnvCache is the cache folder scripts/fetch-ort.sh writes to (default
	// <repo>/.cache).
	EnvCache = "KINFER_CACHE"
)

// libraryRelPath is where scripts/fetch-ort.sh puts the library, relative to
// the cache folder.
var libraryRelPath = filepath.Join("ort", ORTVersion, "libonnxruntime.so")

// ErrLibraryNotFound is returned (wrapped) by LibraryPath, Init and Load when
// no ONNX Runtime shared library can be found. Its message says how to get
// one.
var ErrLibraryNotFound = errors.New("ONNX Runtime shared library not found: set " + EnvLibrary +
	" or run `make ort` (which runs scripts/fetch-ort.sh)")

// LibraryPath finds the ONNX Runtime shared library. In order:
//
//  1. $KINFER_ORT_LIB, which must name an existing file;
//  2. $KINFER_CACHE/ort/<ORTVersion>/libonnxruntime.so;
//  3. .cache/ort/<ORTVersion>/libonnxruntime.so in the working directory or
//     any directory above it (a checkout, where `make ort` put it);
//  4. the same path in the executable's directory or any directory above it
//     (an installed binary with its .cache beside it), and
//     libonnxruntime.so next to the executable.
//
// When none exists the error wraps ErrLibraryNotFound and lists the places
// it looked.
func LibraryPath() (string, error) {
	if p := os.Getenv(EnvLibrary); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("%s=%s: no such file: %w", EnvLibrary, p, ErrLibraryNotFound)
		}
		return p, nil
	}
	var searched []string
	if c := os.Getenv(EnvCache); c != "" {
		p := filepath.Join(c, libraryRelPath)
		if isFile(p) {
			return p, nil
		}
		searched = append(searched, p)
	}
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		exeDir = filepath.Dir(exe)
		roots = append(roots, exeDir)
	}
	for _, root := range roots {
		for dir := root; ; dir = filepath.Dir(dir) {
			if p := filepath.Join(dir, ".cache", libraryRelPath); isFile(p) {
				return p, nil
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
		searched = append(searched, filepath.Join(".cache", libraryRelPath)+" in "+root+" and its parents")
	}
	if exeDir != "" {
		p := filepath.Join(exeDir, "libonnxruntime.so")
		if isFile(p) {
			return p, nil
		}
		searched = append(searched, p)
	}
	return "", fmt.Errorf("%w (searched %s)", ErrLibraryNotFound, strings.Join(searched, "; "))
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

var (
	initOnce sync.Once
	initErr  error
)

// Init loads the ONNX Runtime library found by LibraryPath and creates the
// process-wide ONNX Runtime environment. It runs once per process: later
// calls return the first call's result, so a missing library is reported the
// same way every time. Load calls Init; call it yourself to fail fast at
// start-up. The environment lives until the process exits.
func Init() error {
	initOnce.Do(func() {
		if ort.IsInitialized() {
			// Another package in this process set ONNX Runtime up already;
			// share its environment.
			return
		}
		path, err := LibraryPath()
		if err != nil {
			initErr = fmt.Errorf("onnx: %w", err)
			return
		}
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(); err != nil {
			initErr = fmt.Errorf("onnx: initializing ONNX Runtime from %s: %w", path, err)
		}
	})
	return initErr
}
