package chaos

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// Fault and membership events.
const (
	EventKill          = "kill"           // SIGKILL a running instance; it restarts after a short delay
	EventBrokerRestart = "broker_restart" // kafka.sh restart: clean stop, start on the same data
	EventJoin          = "join"           // start an extra instance in the group
	EventLeave         = "leave"          // SIGTERM an extra instance: it drains, commits and leaves
)

// planned is an event of the schedule. It fires when the producer has
// handed At records to its client, so that however fast or slow the
// machine, every event lands while input is still arriving.
type planned struct {
	At   int64
	Kind string
	Slot int // join and leave: the instance slot (2 or 3)
}

// plan draws the schedule: kills anywhere between 3% and 97% of the
// input; broker restarts in the middle (30%..70%); and membership changes,
// each an extra instance that joins and later leaves. Changes come in
// pairs (slots 2 and 3) sharing a window of the run, so that three
// instances run at once in each window; slot 1 runs throughout.
func plan(rng *rand.Rand, records int64, kills, restarts, changes int) []planned {
	at := func(lo, hi float64) int64 {
		return int64((lo + (hi-lo)*rng.Float64()) * float64(records))
	}
	var ev []planned
	for range kills {
		ev = append(ev, planned{At: at(0.03, 0.97), Kind: EventKill})
	}
	for i := range restarts {
		w := 0.4 / float64(restarts)
		lo := 0.3 + w*float64(i)
		ev = append(ev, planned{At: at(lo, lo+w), Kind: EventBrokerRestart})
	}
	pairs := (changes + 1) / 2
	for i := range changes {
		w := 0.9 / float64(pairs)
		lo := 0.05 + w*float64(i/2)
		slot := 2 + i%2
		// Slot 2 joins in the window's first third, slot 3 a little later;
		// both leave in the last part, in either order.
		join := at(lo+w*(0.05+0.1*float64(i%2)), lo+w*(0.35+0.1*float64(i%2)))
		leave := at(lo+w*0.55, lo+w*0.95)
		ev = append(ev, planned{At: join, Kind: EventJoin, Slot: slot}, planned{At: leave, Kind: EventLeave, Slot: slot})
	}
	slices.SortStableFunc(ev, func(a, b planned) int { return cmp.Compare(a.At, b.At) })
	return ev
}
