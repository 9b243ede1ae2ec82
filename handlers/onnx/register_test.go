package onnx_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/handlers/onnx"
	"github.com/kinfer/kinfer/internal/orttest"
)

func TestOpen(t *testing.T) {
	orttest.Require(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	h, err := handlers.Open(context.Background(), onnx.Kind, handlers.Spec{
		Name: "scorer", Version: "7", Path: modelPath(t, "fraud"),
		Copies: 2, IntraOpThreads: 1, Provider: "cpu",
		Options: map[string]string{"inter_op_threads": "1"},
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	oh, ok := h.(*onnx.Handler)
	if !ok {
		t.Fatalf("Open returned %T; want *onnx.Handler", h)
	}
	if oh.Name() != "scorer" || oh.Version() != "7" || oh.Copies() != 2 || oh.ActiveProvider() != "cpu" {
		t.Errorf("name %q version %q copies %d provider %q", oh.Name(), oh.Version(), oh.Copies(), oh.ActiveProvider())
	}

	for _, c := range []struct {
		spec handlers.Spec
		want string
	}{
		{handlers.Spec{Name: "m", Path: modelPath(t, "fraud"), Options: map[string]string{"copies": "2"}}, "unknown option copies"},
		{handlers.Spec{Name: "m", Path: modelPath(t, "fraud"), Options: map[string]string{"inter_op_threads": "x"}}, "is not an integer"},
		{handlers.Spec{Name: "m", Path: modelPath(t, "fraud"), URL: "http://triton:8000"}, "use kind remote"},
		{handlers.Spec{Name: "m", Path: modelPath(t, "fraud"), Provider: "tpu"}, `unknown provider "tpu"`},
		{handlers.Spec{Name: "m"}, "Path is empty"},
	} {
		c.spec.Logger = log
		h, err := handlers.Open(context.Background(), onnx.Kind, c.spec)
		if err == nil {
			h.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v; want an error saying %q", c.spec, err, c.want)
		}
	}
}
