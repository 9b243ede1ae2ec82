package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plot writes one throughput-vs-batch-size and one latency-vs-load PNG
// per workload into dir and returns their file names.
func (r *Report) plot(dir string) ([]string, error) {
	var files []string
	for _, w := range r.Workloads {
		name := "throughput_vs_batch_" + w.Name + ".png"
		if err := throughputPlot(w, filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("plotting %s: %w", name, err)
		}
		files = append(files, name)
	}
	for _, w := range r.Workloads {
		if len(w.Latency) == 0 {
			continue
		}
		name := "latency_vs_load_" + w.Name + ".png"
		if err := latencyPlot(w, r.MaxDelayMs, filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("plotting %s: %w", name, err)
		}
		files = append(files, name)
	}
	return files, nil
}

// positive keeps the points a log axis can show.
func positive(xys plotter.XYs) plotter.XYs {
	var out plotter.XYs
	for _, p := range xys {
		if p.X > 0 && p.Y > 0 {
			out = append(out, p)
		}
	}
	return out
}

func throughputPlot(w WorkloadReport, path string) error {
	p := plot.New()
	p.Title.Text = w.Name + ": throughput against batch size"
	p.X.Label.Text = "batch size (max_size)"
	p.Y.Label.Text = "records/s (log)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	var ticks []plot.Tick
	var ort, e2e plotter.XYs
	lo, hi := 1.0, 1.0
	for _, pt := range w.ORT {
		ticks = append(ticks, plot.Tick{Value: float64(pt.BatchSize), Label: strconv.Itoa(pt.BatchSize)})
		ort = append(ort, plotter.XY{X: float64(pt.BatchSize), Y: pt.RowsPerSec})
		hi = max(hi, float64(pt.BatchSize))
	}
	for _, s := range w.Sweep {
		e2e = append(e2e, plotter.XY{X: float64(s.BatchSize), Y: s.RecordsPerSec})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.YOffs = -vg.Points(14)
	// Room above the lines for the legend (the Y axis is logarithmic).
	lowY, highY := math.Inf(1), w.Kafka.RecordsPerSec
	for _, xy := range append(positive(ort), positive(e2e)...) {
		lowY, highY = min(lowY, xy.Y), max(highY, xy.Y)
	}
	if w.Kafka.RecordsPerSec > 0 {
		lowY = min(lowY, w.Kafka.RecordsPerSec)
	}
	if !math.IsInf(lowY, 0) && highY > 0 {
		p.Y.Min, p.Y.Max = lowY/2, highY*8
	}
	if err := plotutil.AddLinePoints(p, "ONNX Runtime alone", positive(ort), "kinfer end to end", positive(e2e)); err != nil {
		return err
	}
	if w.Kafka.RecordsPerSec > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: w.Kafka.RecordsPerSec}, {X: hi, Y: w.Kafka.RecordsPerSec}})
		if err != nil {
			return err
		}
		l.Color = color.RGBA{R: 120, G: 120, B: 120, A: 255}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("Kafka pass-through", l)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

func latencyPlot(w WorkloadReport, maxDelayMs float64, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: latency against offered load (max_size %d)", w.Name, w.EndToEnd.BatchSize)
	p.X.Label.Text = "offered load, records/s"
	p.Y.Label.Text = "send to prediction, ms (log)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	var p50, p95, p99 plotter.XYs
	lo, hi := w.Latency[0].OfferedPerSec, w.Latency[0].OfferedPerSec
	for _, l := range w.Latency {
		p50 = append(p50, plotter.XY{X: l.OfferedPerSec, Y: l.P50Ms})
		p95 = append(p95, plotter.XY{X: l.OfferedPerSec, Y: l.P95Ms})
		p99 = append(p99, plotter.XY{X: l.OfferedPerSec, Y: l.P99Ms})
		lo, hi = min(lo, l.OfferedPerSec), max(hi, l.OfferedPerSec)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.YOffs = -vg.Points(14)
	if err := plotutil.AddLinePoints(p, "kinfer p50", positive(p50), "kinfer p95", positive(p95), "kinfer p99", positive(p99)); err != nil {
		return err
	}
	var k50, k99 plotter.XYs
	for _, l := range w.KafkaLatency {
		k50 = append(k50, plotter.XY{X: l.OfferedPerSec, Y: l.P50Ms})
		k99 = append(k99, plotter.XY{X: l.OfferedPerSec, Y: l.P99Ms})
	}
	for i, xys := range []plotter.XYs{positive(k50), positive(k99)} {
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = color.RGBA{R: 90, G: 90, B: 90, A: 255}
		l.Dashes = []vg.Length{vg.Points(1), vg.Points(2 + 2*float64(i))}
		p.Add(l)
		p.Legend.Add([]string{"pass-through p50", "pass-through p99"}[i], l)
	}
	p50 = append(p50, append(k50, k99...)...)
	l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: maxDelayMs}, {X: hi, Y: maxDelayMs}})
	if err != nil {
		return err
	}
	l.Color = color.RGBA{R: 120, G: 120, B: 120, A: 255}
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(fmt.Sprintf("batch.max_delay (%g ms)", maxDelayMs), l)
	bottom, top := maxDelayMs, maxDelayMs
	for _, xy := range append(positive(p50), positive(p99)...) {
		bottom, top = min(bottom, xy.Y), max(top, xy.Y)
	}
	p.Y.Min, p.Y.Max = bottom/2, top*8 // room for the legend
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// logTicks marks 1, 2 and 5 times each power of ten, labelled (1k, 20k,
// 5M), with unlabelled minor ticks between.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	if lo <= 0 || hi <= lo {
		return ts
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = shortNum(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// shortNum writes 2000 as 2k and 5000000 as 5M.
func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
