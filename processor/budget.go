package processor

import (
	"context"
	"sync"
)

// budget caps records and bytes in flight. acquire blocks while the cap is
// reached, which stops the poll loop and so stops fetching; nothing is
// dropped. One record larger than the byte cap is let through alone so it
// cannot wedge the pipeline.
type budget struct {
	mu       sync.Mutex
	cond     *sync.Cond
	maxRecs  int
	maxBytes int64
	recs     int
	bytes    int64
}

func newBudget(maxRecs int, maxBytes int64) *budget {
	b := &budget{maxRecs: maxRecs, maxBytes: maxBytes}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// fits reports whether n more bytes (one record) fit now. b.mu is held.
func (b *budget) fits(n int64) bool {
	return b.recs < b.maxRecs && (b.recs == 0 || b.bytes+n <= b.maxBytes)
}

// tryAcquire takes n if that needs no wait, and reports whether it did.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.fits(n) {
		return false
	}
	b.recs++
	b.bytes += n
	return true
}

func (b *budget) acquire(ctx context.Context, n int64) error {
	// Fast path: under the cap, take it without arming a context callback
	// (this runs once per record).
	if b.tryAcquire(n) {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.fits(n) {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.cond.Wait()
	}
	b.recs++
	b.bytes += n
	return nil
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.recs--
	b.bytes -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *budget) inFlight() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recs, b.bytes
}
