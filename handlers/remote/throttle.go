package remote

import (
	"math/rand/v2"
	"sync"
	"time"
)

// ThrottleOptions configure adaptive client-side throttling, the
// algorithm of the Google SRE book ("Handling Overload", client-side
// throttling) with the parameters of gRPC's adaptive throttler (used by
// its RLS load balancer).
//
// Over a sliding window the client counts requests, every attempt the
// handler wanted to make, including those it refused itself, and accepts,
// the attempts the server did not refuse for overload. (A sent attempt is
// counted when its outcome is known, so that a burst of requests still in
// flight does not look like refusals.) Before each attempt it refuses
// locally, with probability
//
//	p = max(0, (requests - K*accepts) / (requests + Padding))
//
// returning ErrThrottled without touching the network. While the server
// accepts at least 1/K of the requests, p is 0 and nothing changes. When
// it is overloaded and refuses most of them, p rises towards 1 and the
// requests that still reach it are about K times the ones it can accept:
// an overloaded server spends its time on work, not on refusing clients.
// Refusals older than Window fall out of the counts, and each accept
// lowers p, so the client recovers by itself when the server does.
//
// An attempt counts as refused for overload when the server answers 429,
// 502, 503 or 504, or does not answer (connection error, timeout); any
// other answer, errors such as 400 included, is an accept.
type ThrottleOptions struct {
	// Disabled turns throttling off: every attempt goes to the server.
	Disabled bool
	// K is how many requests per accept the client keeps sending. Lower is
	// more aggressive. Default 2 (the SRE book's and gRPC's value); must be
	// at least 1.
	K float64
	// Padding keeps a few refusals among few requests from throttling:
	// one refused request out of one gives p = 1/(1+Padding). Default 8
	// (gRPC's requests_padding).
	Padding float64
	// Window is how far back requests and accepts count. Default 30s
	// (gRPC's lookback); a server that recovers is fully trusted again
	// after at most this long.
	Window time.Duration
}

func (o ThrottleOptions) withDefaults() ThrottleOptions {
	if o.K == 0 {
		o.K = 2
	}
	if o.Padding == 0 {
		o.Padding = 8
	}
	if o.Window == 0 {
		o.Window = 30 * time.Second
	}
	return o
}

// throttleBuckets is how many slices the window is cut into: the counts
// forget a window's worth of history in steps of Window/throttleBuckets.
const throttleBuckets = 16

// throttle is the state of ThrottleOptions' algorithm. It is safe for
// concurrent use.
type throttle struct {
	opts  ThrottleOptions
	width time.Duration // of one bucket
	now   func() time.Time
	rand  func() float64

	mu sync.Mutex
	// buckets[i] covers [start of bucket epoch e, +width) where e ≡ i mod
	// throttleBuckets; epoch is the newest epoch touched.
	buckets [throttleBuckets]struct{ requests, accepts float64 }
	epoch   int64
}

func newThrottle(o ThrottleOptions) *throttle {
	o = o.withDefaults()
	return &throttle{
		opts:  o,
		width: max(o.Window/throttleBuckets, time.Nanosecond),
		now:   time.Now,
		rand:  rand.Float64,
	}
}

// advance moves the window to now, zeroing the buckets that fell out of
// it. mu must be held.
func (t *throttle) advance() *struct{ requests, accepts float64 } {
	e := t.now().UnixNano() / int64(t.width)
	if e > t.epoch {
		if e-t.epoch >= throttleBuckets {
			t.buckets = [throttleBuckets]struct{ requests, accepts float64 }{}
		} else {
			for x := t.epoch + 1; x <= e; x++ {
				t.buckets[x%throttleBuckets] = struct{ requests, accepts float64 }{}
			}
		}
		t.epoch = e
	}
	return &t.buckets[t.epoch%throttleBuckets]
}

// probability is the current p. mu must be held and advance called.
func (t *throttle) probability() float64 {
	var req, acc float64
	for _, b := range t.buckets {
		req += b.requests
		acc += b.accepts
	}
	return max(0, (req-t.opts.K*acc)/(req+t.opts.Padding))
}

// allow says whether to send a request. A refused request is counted at
// once; one that is sent is counted by done when its outcome is known, so
// that a burst of requests in flight does not look like refusals.
func (t *throttle) allow() bool {
	if t.opts.Disabled {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.advance()
	if p := t.probability(); p > 0 && t.rand() < p {
		b.requests++
		return false
	}
	return true
}

// done counts a request that allow let through, and whether the server
// accepted it.
func (t *throttle) done(accepted bool) {
	if t.opts.Disabled {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.advance()
	b.requests++
	if accepted {
		b.accepts++
	}
}

// Probability is the chance that the next attempt is refused locally.
func (t *throttle) Probability() float64 {
	if t.opts.Disabled {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return t.probability()
}
