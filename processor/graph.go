package processor

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sync"

	"github.com/kinfer/kinfer/batch"
	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// Step is one position of the model graph. Every row passes through every
// step in order; a step runs one model for the row: its only model, the
// A/B variant the row's key hashes to, or the model its route field picks.
type Step struct {
	// Name identifies the step in "from" references and metrics.
	Name string
	// Batch is this step's batching (its own batcher per model).
	Batch batch.Config
	// Workers run this step's batches in parallel. Default 1.
	Workers int
	// Inputs build the model's inputs from a row. Nil: the decoded
	// inputs are used as they are (single-step engines built by
	// NewEngine).
	Inputs []StepInput
	// Models resolves which model serves a row.
	Models ModelSet
}

// StepInput builds one model input: from the decoded record (Key in
// Decoded.Inputs) or from an earlier step's output (FromStep, FromTensor).
type StepInput struct {
	Tensor     string
	Key        string
	FromStep   int
	FromTensor string
}

// ModelSet picks and provides a step's model for a row.
type ModelSet interface {
	// Route returns the variant that serves the row ("" when the step has
	// one model). An error dead-letters the row.
	Route(key []byte, d Decoded) (string, error)
	// Acquire returns the variant's model, loading it if needed; release
	// must be called when the batch is done.
	Acquire(ctx context.Context, variant string) (h handlers.ModelHandler, release func(), err error)
	// Close closes every model the set holds.
	Close() error
}

// ReasonNoModel dead-letters a row whose per-key model does not exist.
const ReasonNoModel = "no_model"

// SingleModel is a step with one model.
type SingleModel struct{ Model handlers.ModelHandler }

func (s SingleModel) Route([]byte, Decoded) (string, error) { return "", nil }
func (s SingleModel) Acquire(context.Context, string) (handlers.ModelHandler, func(), error) {
	return s.Model, func() {}, nil
}
func (s SingleModel) Close() error { return s.Model.Close() }

// ABModels splits keys between variants by weight. A key's variant is
// fixed by a hash of the key, so a key always sees the same variant (and
// records without a key all see the same one).
type ABModels struct {
	Names  []string
	Models []handlers.ModelHandler
	cum    []float64 // cumulative weight fractions, last = 1
}

// NewABModels builds a split; weights are relative.
func NewABModels(names []string, models []handlers.ModelHandler, weights []float64) (*ABModels, error) {
	if len(names) != len(models) || len(names) != len(weights) || len(names) < 2 {
		return nil, errors.New("A/B split: need at least two variants with a name, model and weight each")
	}
	total := 0.0
	for _, w := range weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("A/B split: weight %v is not positive", w)
		}
		total += w
	}
	ab := &ABModels{Names: names, Models: models}
	acc := 0.0
	for _, w := range weights {
		acc += w / total
		ab.cum = append(ab.cum, acc)
	}
	ab.cum[len(ab.cum)-1] = 1
	return ab, nil
}

// Bucket maps a key to [0, 1) deterministically: FNV-1a, then the
// splitmix64 finalizer so that keys differing only in their last bytes
// (user-1, user-2) spread over the whole range, then the top 53 bits.
func Bucket(key []byte) float64 {
	h := fnv.New64a()
	h.Write(key)
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (ab *ABModels) Route(key []byte, _ Decoded) (string, error) {
	u := Bucket(key)
	for i, c := range ab.cum {
		if u < c {
			return ab.Names[i], nil
		}
	}
	return ab.Names[len(ab.Names)-1], nil
}

func (ab *ABModels) Acquire(_ context.Context, variant string) (handlers.ModelHandler, func(), error) {
	for i, n := range ab.Names {
		if n == variant {
			return ab.Models[i], func() {}, nil
		}
	}
	return nil, nil, fmt.Errorf("A/B split has no variant %q", variant)
}

func (ab *ABModels) Close() error {
	var errs []error
	for _, m := range ab.Models {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// PerKeyModels picks a model by a routed field's value and keeps at most
// MaxLoaded models loaded, unloading the least recently used one that no
// batch is using.
type PerKeyModels struct {
	// Field is the Decoded.Route key carrying the value.
	Field string
	// Load loads the model for a key value. It returns ErrNoModel (wrapped)
	// when the key has no model and no default.
	Load      func(ctx context.Context, key string) (handlers.ModelHandler, error)
	MaxLoaded int
	// OnEvict is told when a model is unloaded (metrics, logs).
	OnEvict func(key string)

	mu      sync.Mutex
	entries map[string]*keyedModel
	lru     *list.List // front: most recently used; values are *keyedModel
}

// ErrNoModel is returned by a PerKeyModels loader for a key with no model.
var ErrNoModel = errors.New("no model for this key")

type keyedModel struct {
	key   string
	h     handlers.ModelHandler
	err   error
	ready chan struct{}
	users int
	elem  *list.Element
}

func (pk *PerKeyModels) Route(_ []byte, d Decoded) (string, error) {
	v, ok := d.Route[pk.Field]
	if !ok || v == "" {
		return "", &RowError{Reason: ReasonNoModel, Err: fmt.Errorf("route field %q is missing or empty", pk.Field)}
	}
	return v, nil
}

// Acquire returns the key's model, loading it once even when several
// workers ask at the same time.
func (pk *PerKeyModels) Acquire(ctx context.Context, key string) (handlers.ModelHandler, func(), error) {
	pk.mu.Lock()
	if pk.entries == nil {
		pk.entries, pk.lru = map[string]*keyedModel{}, list.New()
	}
	e, ok := pk.entries[key]
	if !ok {
		e = &keyedModel{key: key, ready: make(chan struct{})}
		pk.entries[key] = e
		e.elem = pk.lru.PushFront(e)
		e.users++
		pk.mu.Unlock()
		e.h, e.err = pk.Load(ctx, key)
		close(e.ready)
		pk.mu.Lock()
		if e.err != nil {
			// Do not cache failures: the model may appear later.
			pk.lru.Remove(e.elem)
			delete(pk.entries, key)
		}
		pk.evictLocked()
		pk.mu.Unlock()
	} else {
		e.users++
		pk.lru.MoveToFront(e.elem)
		pk.mu.Unlock()
		<-e.ready
	}
	release := func() {
		pk.mu.Lock()
		e.users--
		pk.evictLocked() // only idle models are evicted, so this may be the moment
		pk.mu.Unlock()
	}
	if e.err != nil {
		release()
		if errors.Is(e.err, ErrNoModel) {
			return nil, nil, &RowError{Reason: ReasonNoModel, Err: e.err}
		}
		return nil, nil, e.err
	}
	return e.h, release, nil
}

// evictLocked unloads least recently used idle models over the cap.
func (pk *PerKeyModels) evictLocked() {
	for el := pk.lru.Back(); el != nil && pk.lru.Len() > pk.MaxLoaded; {
		prev := el.Prev()
		e := el.Value.(*keyedModel)
		select {
		case <-e.ready:
		default:
			el = prev
			continue // still loading
		}
		if e.users == 0 {
			pk.lru.Remove(el)
			delete(pk.entries, e.key)
			if e.h != nil {
				go e.h.Close()
			}
			if pk.OnEvict != nil {
				pk.OnEvict(e.key)
			}
		}
		el = prev
	}
}

// Loaded is the number of models loaded now.
func (pk *PerKeyModels) Loaded() int {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if pk.lru == nil {
		return 0
	}
	return pk.lru.Len()
}

func (pk *PerKeyModels) Close() error {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	var errs []error
	for _, e := range pk.entries {
		if e.h != nil {
			errs = append(errs, e.h.Close())
		}
	}
	pk.entries, pk.lru = map[string]*keyedModel{}, list.New()
	return errors.Join(errs...)
}

// stepInputs builds a step's model inputs for one row.
func (s *Step) inputsFor(r *row) (map[string]*tensor.Tensor, error) {
	if s.Inputs == nil {
		return r.dec.Inputs, nil
	}
	in := make(map[string]*tensor.Tensor, len(s.Inputs))
	for _, si := range s.Inputs {
		if si.Key != "" {
			t, ok := r.dec.Inputs[si.Key]
			if !ok {
				return nil, fmt.Errorf("step %q: decoded record has no tensor %q", s.Name, si.Key)
			}
			in[si.Tensor] = t
			continue
		}
		t, ok := r.outs[si.FromStep][si.FromTensor]
		if !ok {
			return nil, fmt.Errorf("step %q: input %q: the earlier step gave no output %q", s.Name, si.Tensor, si.FromTensor)
		}
		in[si.Tensor] = t
	}
	return in, nil
}
