package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The deployment runs kinfer with garbage-collector settings of its own
// (deploy/k8s/deployment.yaml: GOGC and GOMEMLIMIT in the container's env).
// The harness runs kinfer in its own process, so by default it applies the
// same settings to itself: the figures are kinfer's as deployed, and the
// ceilings (in the same process) run under the same settings.

// deploymentFile is the manifest whose container env holds the settings.
const deploymentFile = "deploy/k8s/deployment.yaml"

// GCSettings are the garbage-collector settings a run used.
type GCSettings struct {
	GOGC       string `json:"gogc"`       // "100" (Go's default) or as set
	GOMEMLIMIT string `json:"gomemlimit"` // "" when none
	// Source says where they came from: "environment", deploymentFile or
	// "Go's defaults".
	Source string `json:"source"`
}

func (g GCSettings) String() string {
	s := "GOGC=" + g.GOGC
	if g.GOMEMLIMIT != "" {
		s += ", GOMEMLIMIT=" + g.GOMEMLIMIT
	}
	return s + " (" + g.Source + ")"
}

// deployGC reads GOGC and GOMEMLIMIT from the kinfer container of the
// deployment manifest under root.
func deployGC(root string) (gogc, memlimit string, err error) {
	path := filepath.Join(root, deploymentFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string `yaml:"name"`
						Env  []struct {
							Name  string `yaml:"name"`
							Value string `yaml:"value"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &d); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "kinfer" {
			continue
		}
		for _, e := range c.Env {
			switch e.Name {
			case "GOGC":
				gogc = e.Value
			case "GOMEMLIMIT":
				memlimit = e.Value
			}
		}
		return gogc, memlimit, nil
	}
	return "", "", fmt.Errorf("%s: no container named kinfer", path)
}

// ApplyGC sets this process's garbage-collector settings for a run. With
// asDeployed it takes GOGC and GOMEMLIMIT from deploy/k8s/deployment.yaml,
// unless the environment sets either (then the environment's stand, as the
// runtime already applied them); without it the process keeps what it has.
func ApplyGC(root string, asDeployed bool) (GCSettings, error) {
	envGOGC, envLimit := os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT")
	switch {
	case envGOGC != "" || envLimit != "":
		return GCSettings{GOGC: orDefault(envGOGC, "100"), GOMEMLIMIT: envLimit, Source: "environment"}, nil
	case !asDeployed:
		return GCSettings{GOGC: "100", Source: "Go's defaults"}, nil
	}
	gogc, limit, err := deployGC(root)
	if err != nil {
		return GCSettings{}, err
	}
	switch pct, err := strconv.Atoi(gogc); {
	case gogc == "":
	case gogc == "off":
		debug.SetGCPercent(-1)
	case err != nil:
		return GCSettings{}, fmt.Errorf("%s: GOGC %q is not a number or off", deploymentFile, gogc)
	default:
		debug.SetGCPercent(pct)
	}
	if limit != "" {
		n, err := parseMemLimit(limit)
		if err != nil {
			return GCSettings{}, fmt.Errorf("%s: GOMEMLIMIT: %w", deploymentFile, err)
		}
		debug.SetMemoryLimit(n)
	}
	return GCSettings{GOGC: orDefault(gogc, "100"), GOMEMLIMIT: limit, Source: deploymentFile}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseMemLimit reads a GOMEMLIMIT value: a byte count with an optional
// B, KiB, MiB, GiB or TiB suffix, as the runtime does.
func parseMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a byte count like 1GiB or 512MiB", s)
	}
	return n << shift, nil
}
