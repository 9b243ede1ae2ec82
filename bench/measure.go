package bench

import (
	"math"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// Cost is what one stage costs per record: CPU time of the whole process
// (every goroutine, the garbage collector and cgo included), wall time,
// and heap allocations.
type Cost struct {
	CPUNsPerRecord  float64 `json:"cpu_ns_per_record"`
	WallNsPerRecord float64 `json:"wall_ns_per_record"`
	AllocsPerRecord float64 `json:"allocs_per_record"`
	BytesPerRecord  float64 `json:"alloc_bytes_per_record"`
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type sample struct {
	cpu    time.Duration
	wall   time.Time
	allocs uint64
	bytes  uint64
}

func takeSample() sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{cpu: cpuTime(), wall: time.Now(), allocs: ms.Mallocs, bytes: ms.TotalAlloc}
}

// measure runs run once to warm up, then repeats times, and returns the
// median of each per-record figure. run returns how many records it
// processed. A garbage collection before each repeat keeps one repeat's
// garbage from being charged to the next.
func measure(repeats int, run func() (int, error)) (Cost, error) {
	if _, err := run(); err != nil {
		return Cost{}, err
	}
	var cpu, wall, allocs, bytes []float64
	for range max(repeats, 1) {
		runtime.GC()
		a := takeSample()
		n, err := run()
		b := takeSample()
		if err != nil {
			return Cost{}, err
		}
		if n <= 0 {
			continue
		}
		f := float64(n)
		cpu = append(cpu, float64(b.cpu-a.cpu)/f)
		wall = append(wall, float64(b.wall.Sub(a.wall))/f)
		allocs = append(allocs, float64(b.allocs-a.allocs)/f)
		bytes = append(bytes, float64(b.bytes-a.bytes)/f)
	}
	return Cost{CPUNsPerRecord: median(cpu), WallNsPerRecord: median(wall), AllocsPerRecord: median(allocs), BytesPerRecord: median(bytes)}, nil
}

// median of xs (0 when empty: reports are JSON, which has no NaN).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted xs (nearest rank; 0 when empty), q in [0, 1].
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
