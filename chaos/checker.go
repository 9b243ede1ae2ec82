package chaos

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/kinfer/kinfer/internal/config"
)

// Input is one record of the input topic: where it sits and which number of
// the known sequence it carries.
type Input struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	// Seq is the sequence number encoded in the record's transaction_id;
	// -1 when the value could not be read.
	Seq  int64  `json:"seq"`
	TxID string `json:"transaction_id"`
}

// Output is one record read back (read_committed) from the output or the
// dead-letter topic, with the input position its headers name.
type Output struct {
	DeadLetter bool  `json:"dead_letter,omitempty"`
	Partition  int32 `json:"partition"`
	Offset     int64 `json:"offset"`
	// SrcPartition and SrcOffset come from the kinfer.source.partition and
	// kinfer.source.offset headers.
	SrcPartition int32 `json:"source_partition"`
	SrcOffset    int64 `json:"source_offset"`
	// TxID is the transaction_id a prediction passes through (for a dead
	// letter, the one in the input value it carries); "" when unknown.
	TxID   string `json:"transaction_id,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Problem says why the record could not be mapped to an input (missing
	// or bad headers, wrong source topic, undecodable value); "" when fine.
	Problem string `json:"problem,omitempty"`
}

// PartitionStats are the checker's counts for one input partition.
type PartitionStats struct {
	Partition int32 `json:"partition"`
	Inputs    int64 `json:"inputs"`
	// Outputs counts predictions and dead letters naming this partition.
	Outputs      int64 `json:"outputs"`
	DeadLettered int64 `json:"dead_lettered"`
	// Missing counts input offsets with no output at all.
	Missing int64 `json:"missing"`
	// Duplicated counts outputs beyond the first for an input offset.
	Duplicated int64 `json:"duplicated"`
	// OutOfOrder counts outputs that follow, in their output partition, an
	// output for a later offset of this input partition.
	OutOfOrder int64 `json:"out_of_order"`
}

// Totals are PartitionStats summed, plus what belongs to no partition.
type Totals struct {
	Inputs       int64 `json:"inputs"`
	Outputs      int64 `json:"outputs"`
	DeadLettered int64 `json:"dead_lettered"`
	Missing      int64 `json:"missing"`
	Duplicated   int64 `json:"duplicated"`
	OutOfOrder   int64 `json:"out_of_order"`
	// Unmatched counts outputs that name no input position that exists.
	Unmatched int64 `json:"unmatched"`
	// Mismatched counts outputs whose transaction_id is not the one of the
	// input at the position their headers name.
	Mismatched int64 `json:"mismatched"`
	// SeqMissing and SeqDuplicated compare the input topic with the known
	// sequence 0..produced-1: numbers never written, or written twice.
	SeqMissing    int64 `json:"seq_missing"`
	SeqDuplicated int64 `json:"seq_duplicated"`
}

// Verdict is what Check finds.
type Verdict struct {
	Guarantee  string           `json:"guarantee"`
	Totals     Totals           `json:"totals"`
	Partitions []PartitionStats `json:"partitions"`
	// Samples are a few examples of each kind of problem, to start a
	// diagnosis from ("3@1234": partition 3, offset 1234).
	Samples map[string][]string `json:"samples,omitempty"`
	// DeadLetterReasons counts dead letters by kinfer.reason.
	DeadLetterReasons map[string]int64 `json:"dead_letter_reasons,omitempty"`
	// Failures say why the run fails; empty when it passes.
	Failures []string `json:"failures,omitempty"`
}

// Pass reports whether the verdict has no failure.
func (v *Verdict) Pass() bool { return len(v.Failures) == 0 }

const maxSamples = 20

// Check compares what the processor wrote with what it read. produced is
// how many numbers of the known sequence (0..produced-1) the producer
// wrote; 0 skips that comparison.
//
// Out of order means: within one output partition, read in offset order,
// an output for input offset o of some input partition comes after an
// output for a later offset o' > o of the same input partition. For
// at-least-once only the first output of each input offset counts (a
// redelivery after a crash repeats older offsets by design); for
// exactly-once every output counts.
//
// Missing outputs always fail; for exactly-once so do duplicates and
// outputs out of order. Outputs that name no input, or carry another
// input's transaction_id, fail either way, and so does an input topic that
// lacks part of the known sequence (the run then proves nothing).
func Check(guarantee string, produced int64, inputs []Input, outputs []Output) *Verdict {
	v := &Verdict{Guarantee: guarantee, Samples: map[string][]string{}, DeadLetterReasons: map[string]int64{}}
	sample := func(kind, s string) {
		if len(v.Samples[kind]) < maxSamples {
			v.Samples[kind] = append(v.Samples[kind], s)
		}
	}
	type pos struct {
		p   int32
		off int64
	}
	stats := map[int32]*PartitionStats{}
	stat := func(p int32) *PartitionStats {
		s := stats[p]
		if s == nil {
			s = &PartitionStats{Partition: p}
			stats[p] = s
		}
		return s
	}

	// The input topic against the known sequence.
	in := make(map[pos]*Input, len(inputs))
	seqs := make(map[int64]int, len(inputs))
	for i := range inputs {
		r := &inputs[i]
		in[pos{r.Partition, r.Offset}] = r
		stat(r.Partition).Inputs++
		v.Totals.Inputs++
		if r.Seq >= 0 {
			seqs[r.Seq]++
			if seqs[r.Seq] == 2 {
				sample("seq_duplicated", fmt.Sprintf("seq %d (again at %d@%d)", r.Seq, r.Partition, r.Offset))
			}
		}
	}
	for _, n := range seqs {
		if n > 1 {
			v.Totals.SeqDuplicated += int64(n - 1)
		}
	}
	for s := int64(0); s < produced; s++ {
		if seqs[s] == 0 {
			v.Totals.SeqMissing++
			sample("seq_missing", fmt.Sprintf("seq %d", s))
		}
	}

	// Outputs, in the order a consumer of each output partition sees them.
	outs := slices.Clone(outputs)
	slices.SortStableFunc(outs, func(a, b Output) int {
		return cmp.Or(cmpBool(a.DeadLetter, b.DeadLetter), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	seen := make(map[pos]int64, len(inputs))
	type stream struct {
		deadLetter bool
		out, src   int32
	}
	maxFirst := map[stream]int64{} // newest input offset seen per stream
	exactlyOnce := guarantee == config.ExactlyOnce
	for _, o := range outs {
		at := fmt.Sprintf("%s %d@%d", topicKind(o.DeadLetter), o.Partition, o.Offset)
		if o.Problem != "" {
			v.Totals.Unmatched++
			sample("unmatched", at+": "+o.Problem)
			continue
		}
		src := pos{o.SrcPartition, o.SrcOffset}
		r, ok := in[src]
		if !ok {
			v.Totals.Unmatched++
			sample("unmatched", fmt.Sprintf("%s: names input %d@%d, which does not exist", at, src.p, src.off))
			continue
		}
		if o.TxID != "" && r.TxID != "" && o.TxID != r.TxID {
			v.Totals.Mismatched++
			sample("mismatched", fmt.Sprintf("%s: names input %d@%d (%s) but carries %s", at, src.p, src.off, r.TxID, o.TxID))
		}
		s := stat(src.p)
		s.Outputs++
		v.Totals.Outputs++
		if o.DeadLetter {
			s.DeadLettered++
			v.Totals.DeadLettered++
			v.DeadLetterReasons[o.Reason]++
			sample("dead_lettered", fmt.Sprintf("%s: input %d@%d: %s", at, src.p, src.off, o.Reason))
		}
		seen[src]++
		first := seen[src] == 1
		if !first {
			s.Duplicated++
			v.Totals.Duplicated++
			sample("duplicated", fmt.Sprintf("input %d@%d (again at %s)", src.p, src.off, at))
		}
		if !first && !exactlyOnce {
			continue
		}
		k := stream{o.DeadLetter, o.Partition, src.p}
		if prev, ok := maxFirst[k]; ok && src.off < prev {
			s.OutOfOrder++
			v.Totals.OutOfOrder++
			sample("out_of_order", fmt.Sprintf("%s: input %d@%d after input %d@%d", at, src.p, src.off, src.p, prev))
			continue
		}
		maxFirst[k] = src.off
	}
	for i := range inputs {
		r := &inputs[i]
		if seen[pos{r.Partition, r.Offset}] == 0 {
			stat(r.Partition).Missing++
			v.Totals.Missing++
			sample("missing", fmt.Sprintf("input %d@%d (%s)", r.Partition, r.Offset, r.TxID))
		}
	}
	for _, s := range stats {
		v.Partitions = append(v.Partitions, *s)
	}
	slices.SortFunc(v.Partitions, func(a, b PartitionStats) int { return cmp.Compare(a.Partition, b.Partition) })
	if len(v.DeadLetterReasons) == 0 {
		v.DeadLetterReasons = nil
	}
	if len(v.Samples) == 0 {
		v.Samples = nil
	}

	t := v.Totals
	fail := func(format string, args ...any) { v.Failures = append(v.Failures, fmt.Sprintf(format, args...)) }
	if t.Missing > 0 {
		fail("%d inputs have no output", t.Missing)
	}
	if exactlyOnce && t.Duplicated > 0 {
		fail("%d duplicated outputs under exactly-once", t.Duplicated)
	}
	if exactlyOnce && t.OutOfOrder > 0 {
		fail("%d outputs out of order under exactly-once", t.OutOfOrder)
	}
	if t.Unmatched > 0 {
		fail("%d outputs name no input position", t.Unmatched)
	}
	if t.Mismatched > 0 {
		fail("%d outputs carry another input's transaction_id", t.Mismatched)
	}
	if t.SeqMissing > 0 || t.SeqDuplicated > 0 {
		fail("the input topic does not hold the known sequence once (%d numbers missing, %d written twice)", t.SeqMissing, t.SeqDuplicated)
	}
	return v
}

func topicKind(deadLetter bool) string {
	if deadLetter {
		return "dead-letter"
	}
	return "output"
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
