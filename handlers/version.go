package handlers

import (
	"cmp"
	"context"
	"strings"

	"github.com/kinfer/kinfer/tensor"
)

// VersionInferer is implemented by handlers whose version can change while
// they serve: a hot-reloading handler (handlers/reload) swaps models
// between calls, and a model server (handlers/remote) may roll out a new
// version behind one name. Version() read before or after Infer may then
// name a different model than the one that ran the batch; InferVersion
// returns the version that produced exactly these outputs.
type VersionInferer interface {
	InferVersion(ctx context.Context, inputs map[string]*tensor.Tensor) (outputs map[string]*tensor.Tensor, version string, err error)
}

// InferVersion runs a batch and returns the version of the model that ran
// it: h.InferVersion when h is a VersionInferer, else h.Infer and
// h.Version(). The engine stamps predictions with this version.
func InferVersion(ctx context.Context, h ModelHandler, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, string, error) {
	if v, ok := h.(VersionInferer); ok {
		return v.InferVersion(ctx, inputs)
	}
	out, err := h.Infer(ctx, inputs)
	if err != nil {
		return nil, "", err
	}
	return out, h.Version(), nil
}

// CompareVersions orders version names the way people number them: runs
// of digits compare as numbers ("9" < "10", "v2" < "v10", "1.9.3" <
// "1.10.0"), everything else byte by byte. It returns -1, 0 or +1. Equal
// numbers written differently ("01" and "1") order by length, so the
// order is total.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			ta, tb := trimZeros(na), trimZeros(nb)
			if len(ta) != len(tb) {
				return cmp.Compare(len(ta), len(tb))
			}
			if ta != tb {
				return strings.Compare(ta, tb)
			}
			if len(na) != len(nb) {
				return cmp.Compare(len(na), len(nb))
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return cmp.Compare(int(a[0]), int(b[0]))
		default:
			a, b = a[1:], b[1:]
		}
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}
