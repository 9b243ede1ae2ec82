package remote

import (
	"math"
	"testing"
	"time"
)

// TestThrottleFormula checks p = max(0, (requests - K*accepts) /
// (requests + Padding)) and that history older than the window is
// forgotten, on a fake clock.
func TestThrottleFormula(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(ThrottleOptions{Window: 16 * time.Second})
	th.now = func() time.Time { return now }
	th.rand = func() float64 { return 0.999999 } // allow unless p ~ 1

	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	for range 10 {
		th.done(true)
	}
	for range 20 {
		th.done(false)
	}
	// 30 requests, 10 accepts: (30 - 20) / (30 + 8).
	if p := th.Probability(); !near(p, 10.0/38) {
		t.Fatalf("p = %v; want 10/38", p)
	}
	// Half the window later those counts still hold...
	now = now.Add(8 * time.Second)
	if p := th.Probability(); !near(p, 10.0/38) {
		t.Fatalf("after half the window p = %v; want 10/38", p)
	}
	// ...and new accepts bring p down: 40 requests, 20 accepts.
	for range 10 {
		th.done(true)
	}
	if p := th.Probability(); p != 0 {
		t.Fatalf("with half accepted p = %v; want 0", p)
	}
	// A full window after the first counts, only the accepts remain.
	now = now.Add(8*time.Second + time.Second)
	if p := th.Probability(); p != 0 {
		t.Fatalf("p = %v", p)
	}
	now = now.Add(20 * time.Second)
	for range 5 {
		th.done(false)
	}
	if p := th.Probability(); !near(p, 5.0/13) {
		t.Fatalf("after the window, 5 refusals: p = %v; want 5/13", p)
	}
	// A refused-locally request counts as a request.
	th.rand = func() float64 { return 0 }
	if th.allow() {
		t.Fatal("allow with rand 0 and p > 0")
	}
	if p := th.Probability(); !near(p, 6.0/14) {
		t.Fatalf("p = %v; want 6/14", p)
	}
	// Disabled: always allowed, p 0.
	off := newThrottle(ThrottleOptions{Disabled: true})
	off.done(false)
	if !off.allow() || off.Probability() != 0 {
		t.Fatal("disabled throttle refused")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0":                             0,
		"-1":                            0,
		"1.5":                           1500 * time.Millisecond,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	h := &Handler{opts: Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}}
	for n, ceil := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 30: 50 * time.Millisecond} {
		var top time.Duration
		for range 2000 {
			d := h.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v; want within [0, %v]", n, d, ceil)
			}
			top = max(top, d)
		}
		if top < ceil*8/10 {
			t.Errorf("backoff(%d) never came near its ceiling %v (max %v): no jitter range", n, ceil, top)
		}
	}
}
