package kinfercmd

import (
	"context"
	"fmt"
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
	pred    atomic.Int64
	dl      atomic.Int64
	mu      sync.Mutex
	lastOut []byte
	lastDL  string
}

func newLiveView(seeds []string, out, dlq string, reg *sr.Client) (*liveView, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(out, dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	return &liveView{cl: cl, dec: schema.NewRegistryDecoder(reg), out: out}, nil
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
			n := rec.Native
			s = fmt.Sprintf("%v %v fraud_label=%v probabilities=%v (model %v %v)", n["transaction_id"], n["account_id"], n["fraud_label"], n["probabilities"], n["model_name"], n["model_version"])
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

func (v *liveView) close() { v.cl.Close() }
