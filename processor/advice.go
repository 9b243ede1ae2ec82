package processor

import "fmt"

// Advice lists settings of p that hold its batches back, in words for a
// log line or `kinfer validate`: a step whose rows are so large that
// batch.max_bytes cuts its batches below batch.max_size, and an in-flight
// byte budget that holds fewer than two full batches of the first step (so
// a batch fills only after the one before is written). Rows are counted
// at their models' fixed input shapes; steps with dynamic non-batch dims
// (sequences) or several models are not judged.
func (p *Pipeline) Advice() []string {
	var out []string
	for i, s := range p.Steps {
		sm, ok := s.Models.(SingleModel)
		if !ok || s.Batch.MaxSize <= 0 || s.Batch.MaxBytes <= 0 {
			continue
		}
		row := fixedRowBytes(sm)
		if row <= 0 {
			continue
		}
		rows := s.Batch.MaxSize
		if fit := s.Batch.MaxBytes / row; fit < rows {
			rows = max(fit, 1)
			out = append(out, fmt.Sprintf("step %q: a row's inputs take %s, so batch.max_bytes (%s) holds %d rows, "+
				"fewer than batch.max_size (%d): set batch.max_bytes to at least %s for full batches",
				s.Name, byteSize(row, false), byteSize(s.Batch.MaxBytes, false), rows, s.Batch.MaxSize, byteSize(s.Batch.MaxSize*row, true)))
		}
		if i > 0 || p.Config == nil {
			continue
		}
		// In-flight bytes count input records; a record is about as large
		// as its tensors (raw bytes, Avro arrays of floats).
		batchBytes, budget := rows*row, int64(p.Config.Processing.MaxInFlightBytes)
		if budget > 0 && budget < 2*int64(batchBytes) {
			out = append(out, fmt.Sprintf("processing.max_in_flight_bytes (%s) holds fewer than two full batches of step %q "+
				"(%s each), so the next batch fills only once one is written: set it to at least %s",
				byteSize(int(budget), false), s.Name, byteSize(batchBytes, false), byteSize(4*batchBytes, true)))
		}
	}
	return out
}

// fixedRowBytes is the bytes of one row of m's inputs, or 0 when a
// non-batch dim is dynamic.
func fixedRowBytes(m SingleModel) int {
	total := 0
	for _, spec := range m.Model.Inputs() {
		n := spec.DType.Size()
		for _, d := range spec.Shape[min(1, len(spec.Shape)):] {
			if d < 0 {
				return 0
			}
			n *= int(d)
		}
		total += n
	}
	return total
}

// byteSize writes n as pipeline.yaml would ("8MiB", "37.5MiB", "588KiB");
// up rounds up to a whole unit, for a setting to suggest.
func byteSize(n int, up bool) string {
	units := []struct {
		name string
		size int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n < u.size {
			continue
		}
		if up {
			return fmt.Sprintf("%d%s", (n+u.size-1)/u.size, u.name)
		}
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
		return fmt.Sprintf("%.1f%s", float64(n)/float64(u.size), u.name)
	}
	return fmt.Sprintf("%dB", n)
}
