package kinfercmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

var kerrTopicExists = kerr.TopicAlreadyExists

// liveView reads the output and dead-letter topics back, counting them
// and keeping the latest prediction and dead letter to show.
type liveView struct {
	cl      *kgo.Client
	dec     *schema.RegistryDecoder
	out     string
	fields  []string // the prediction's fields, in schema order
	pred    atomic.Int64
	dl      atomic.Int64
	mu      sync.Mutex
	lastOut []byte
	lastDL  string
}

// newLiveView reads topics out and dlq; outSchema is the prediction
// schema (JSON), whose field order the samples follow.
func newLiveView(seeds []string, out, dlq, outSchema string, reg *sr.Client) (*liveView, error) {
	var sch struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(outSchema), &sch); err != nil {
		return nil, fmt.Errorf("reading the prediction schema: %w", err)
	}
	v := &liveView{dec: schema.NewRegistryDecoder(reg), out: out}
	for _, f := range sch.Fields {
		v.fields = append(v.fields, f.Name)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(out, dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	v.cl = cl
	return v, nil
}

func (v *liveView) consume(ctx context.Context) {
	for ctx.Err() == nil {
		fs := v.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == v.out {
				v.pred.Add(1)
				v.mu.Lock()
				v.lastOut = r.Value
				v.mu.Unlock()
				return
			}
			v.dl.Add(1)
			reason, _ := processor.HeaderValue(r, processor.HeaderReason)
			msg, _ := processor.HeaderValue(r, processor.HeaderError)
			v.mu.Lock()
			v.lastDL = fmt.Sprintf("%s (%s)", reason, msg)
			v.mu.Unlock()
		})
	}
}

func (v *liveView) counts() (pred, dl int64) { return v.pred.Load(), v.dl.Load() }

func (v *liveView) sample() string {
	v.mu.Lock()
	val, dl := v.lastOut, v.lastDL
	v.mu.Unlock()
	s := ""
	if val != nil {
		rec, err := v.dec.Decode(context.Background(), val)
		if err != nil {
			s = "undecodable prediction: " + err.Error()
		} else {
			s = v.format(rec.Native)
		}
	}
	if dl != "" {
		if len(dl) > 120 {
			dl = dl[:120] + "..."
		}
		s += "\n         last dead letter: " + dl
	}
	return s
}

// format shows a prediction as field=value pairs in schema order, the
// model that made it last: whatever fields the example's config writes.
func (v *liveView) format(n map[string]any) string {
	var b strings.Builder
	for _, f := range v.fields {
		if f == processor.FieldModelName || f == processor.FieldModelVersion {
			continue
		}
		fmt.Fprintf(&b, "%s=%v ", f, n[f])
	}
	if name, ok := n[processor.FieldModelName]; ok {
		fmt.Fprintf(&b, "(model %v %v)", name, n[processor.FieldModelVersion])
	}
	return strings.TrimSpace(b.String())
}

func (v *liveView) close() { v.cl.Close() }
