package processor

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Entry states. An entry leaves pending exactly once, which is when its
// share of the in-flight budget is released.
const (
	entryPending uint8 = iota
	entryAcked
	entryAbandoned
)

// entry tracks one input record from submission to durable output.
type entry struct {
	offset int64
	epoch  int32
	bytes  int64
	state  uint8 // guarded by lane.ackMu
}

// lane is the engine's state for one input partition: the sequence numbers
// that restore input order in front of the sink (reorder), and the entries
// whose acknowledgement moves the commit watermark. Output for seq n is
// written only after n-1, and the committable offset never passes the
// oldest entry not yet acknowledged, whatever order batches finish in.
type lane struct {
	topic     string
	partition int32

	// Written only by the submitting goroutine (the poll loop).
	nextSeq uint64

	emitMu  sync.Mutex
	emitSeq uint64
	waiting map[uint64]*result

	ackMu      sync.Mutex
	entries    []*entry // input order; entries[head:] are live
	head       int
	pending    int
	lastOffset int64
	lastEpoch  int32
	closed     bool // no more submissions (revoked, lost, or shutting down)

	abandoned atomic.Bool

	// consumed is this partition's consumed-records counter, looked up
	// once (by the submitting goroutine) instead of per record.
	consumed prometheus.Counter
}

func newLane(topic string, partition int32) *lane {
	return &lane{topic: topic, partition: partition, waiting: map[uint64]*result{}, lastOffset: -1}
}

// track appends an entry for rec, or reports false if the lane is closed.
func (l *lane) track(rec *kgo.Record, size int64) (*entry, uint64, bool) {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	if l.closed {
		return nil, 0, false
	}
	e := &entry{offset: rec.Offset, epoch: rec.LeaderEpoch, bytes: size}
	l.entries = append(l.entries, e)
	l.pending++
	l.lastOffset, l.lastEpoch = rec.Offset, rec.LeaderEpoch
	seq := l.nextSeq
	l.nextSeq++
	return e, seq, true
}

// finish moves e out of pending. It returns false if e had already left
// pending (an abandoned lane's late acknowledgement).
func (l *lane) finish(e *entry, state uint8) bool {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	if e.state != entryPending {
		return false
	}
	e.state = state
	l.pending--
	return true
}

// watermark returns the offset to commit: the oldest unacknowledged entry's
// offset, or one past the last tracked record when all are acknowledged.
func (l *lane) watermark() (kgo.EpochOffset, bool) {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	for l.head < len(l.entries) && l.entries[l.head].state == entryAcked {
		l.entries[l.head] = nil
		l.head++
	}
	// Compact so the slice does not grow without bound.
	if l.head > 1024 && l.head*2 > len(l.entries) {
		n := copy(l.entries, l.entries[l.head:])
		clear(l.entries[n:])
		l.entries = l.entries[:n]
		l.head = 0
	}
	if l.lastOffset < 0 {
		return kgo.EpochOffset{}, false
	}
	if l.head < len(l.entries) {
		// A pending or abandoned entry holds the watermark: nothing at or
		// after it is committed.
		e := l.entries[l.head]
		return kgo.EpochOffset{Epoch: e.epoch, Offset: e.offset}, true
	}
	return kgo.EpochOffset{Epoch: l.lastEpoch, Offset: l.lastOffset + 1}, true
}

// close stops further submissions to the lane.
func (l *lane) close() {
	l.ackMu.Lock()
	l.closed = true
	l.ackMu.Unlock()
}

// inFlight is the number of entries not yet acknowledged or abandoned.
func (l *lane) inFlight() int {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	return l.pending
}

// abandon drops everything not yet durable: queued results are discarded
// and pending entries leave pending without being acknowledged, so the
// watermark stays at the first of them. It returns the entries it moved,
// so their budget can be released.
func (l *lane) abandon() []*entry {
	l.abandoned.Store(true)
	l.close()
	l.emitMu.Lock()
	clear(l.waiting)
	l.emitMu.Unlock()
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	var out []*entry
	for _, e := range l.entries[l.head:] {
		if e.state == entryPending {
			e.state = entryAbandoned
			l.pending--
			out = append(out, e)
		}
	}
	return out
}
