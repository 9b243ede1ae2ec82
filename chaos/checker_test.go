package chaos

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinfer/kinfer/internal/config"
)

// inputsOf makes n inputs on each of partitions 0..parts-1; sequence
// numbers run across partitions.
func inputsOf(parts int32, n int64) []Input {
	var in []Input
	seq := int64(0)
	for p := range parts {
		for off := range n {
			in = append(in, Input{Partition: p, Offset: off, Seq: seq, TxID: txID(seq)})
			seq++
		}
	}
	return in
}

// writes builds the outputs of one output partition (= input partition p)
// for the given input offsets, in that order.
func writes(in []Input, p int32, offs ...int64) []Output {
	var out []Output
	base := int64(0)
	for _, o := range in {
		if o.Partition == p && o.Offset == 0 {
			base = o.Seq
		}
	}
	for i, off := range offs {
		out = append(out, Output{Partition: p, Offset: int64(i), SrcPartition: p, SrcOffset: off, TxID: txID(base + off)})
	}
	return out
}

func span(from, to int64) []int64 {
	var s []int64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestCheck(t *testing.T) {
	in := inputsOf(2, 10)
	clean := append(writes(in, 0, span(0, 10)...), writes(in, 1, span(0, 10)...)...)
	replay := append(writes(in, 0, slices.Concat(span(0, 7), span(4, 10))...), writes(in, 1, span(0, 10)...)...)
	swapped := append(writes(in, 0, 0, 1, 3, 2, 4, 5, 6, 7, 8, 9), writes(in, 1, span(0, 10)...)...)
	lost := append(writes(in, 0, slices.Concat(span(0, 4), span(5, 10))...), writes(in, 1, span(0, 10)...)...)
	deadLetter := slices.Clone(clean)
	deadLetter[3] = Output{DeadLetter: true, Partition: 2, Offset: 0, SrcPartition: 0, SrcOffset: 3, TxID: txID(3), Reason: "inference_error"}
	phantom := append(slices.Clone(clean), Output{Partition: 0, Offset: 10, SrcPartition: 0, SrcOffset: 99})
	noHeaders := append(slices.Clone(clean), Output{Partition: 1, Offset: 10, Problem: "no kinfer.source.* headers"})
	wrongTx := slices.Clone(clean)
	wrongTx[5].TxID = txID(7)
	// A zombie's late first outputs interleaved with the new owner's
	// replay: 0..5 by the old owner, then the new one redoes 3..9 while
	// the old one's 6 lands after the new one's 7.
	zombie := append(writes(in, 0, 0, 1, 2, 3, 4, 5, 3, 4, 5, 7, 6, 8, 9), writes(in, 1, span(0, 10)...)...)

	type want struct {
		outputs, dead, missing, dup, ooo, unmatched, mismatched int64
		passALO, passEOS                                        bool
	}
	cases := []struct {
		name    string
		outputs []Output
		want    want
	}{
		{"exactly once, in order", clean, want{outputs: 20, passALO: true, passEOS: true}},
		{"replay after a crash", replay, want{outputs: 23, dup: 3, ooo: 0, passALO: true}},
		{"two outputs swapped", swapped, want{outputs: 20, ooo: 1, passALO: true}},
		{"one input lost", lost, want{outputs: 19, missing: 1}},
		{"a dead letter is an output", deadLetter, want{outputs: 20, dead: 1, passALO: true, passEOS: true}},
		{"output for an input that does not exist", phantom, want{outputs: 20, unmatched: 1}},
		{"output without source headers", noHeaders, want{outputs: 20, unmatched: 1}},
		{"output carrying another input's transaction_id", wrongTx, want{outputs: 20, mismatched: 1}},
		{"zombie outputs interleaved with a replay", zombie, want{outputs: 23, dup: 3, ooo: 1, passALO: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Output order must not depend on the order records were read
			// in: shuffle, the checker sorts by output partition and offset.
			outs := slices.Clone(tc.outputs)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(outs), func(i, j int) { outs[i], outs[j] = outs[j], outs[i] })
			for _, g := range []string{config.AtLeastOnce, config.ExactlyOnce} {
				v := Check(g, 20, in, outs)
				got := v.Totals
				w := tc.want
				if got.Inputs != 20 || got.Outputs != w.outputs || got.DeadLettered != w.dead || got.Missing != w.missing ||
					got.Duplicated != w.dup || got.Unmatched != w.unmatched || got.Mismatched != w.mismatched {
					t.Errorf("%s: totals %+v, want %+v", g, got, w)
				}
				wantOOO := w.ooo
				if g == config.ExactlyOnce && tc.name == "replay after a crash" {
					wantOOO = 2 // every output counts: 4 and 5 after 6
				}
				if g == config.ExactlyOnce && tc.name == "zombie outputs interleaved with a replay" {
					wantOOO = 3 // 3 and 4 after 5, 6 after 7
				}
				if got.OutOfOrder != wantOOO {
					t.Errorf("%s: out of order %d, want %d (samples %v)", g, got.OutOfOrder, wantOOO, v.Samples["out_of_order"])
				}
				wantPass := w.passALO
				if g == config.ExactlyOnce {
					wantPass = w.passEOS
				}
				if v.Pass() != wantPass {
					t.Errorf("%s: pass %v, want %v (failures %v)", g, v.Pass(), wantPass, v.Failures)
				}
			}
		})
	}
}

// Per-partition counts land on the input partition the outputs name.
func TestCheckPerPartition(t *testing.T) {
	in := inputsOf(3, 4)
	outs := slices.Concat(writes(in, 0, 0, 1, 2, 3), writes(in, 1, 0, 1, 2, 3, 2, 3), writes(in, 2, 0, 2, 1))
	v := Check(config.AtLeastOnce, 12, in, outs)
	want := []PartitionStats{
		{Partition: 0, Inputs: 4, Outputs: 4},
		{Partition: 1, Inputs: 4, Outputs: 6, Duplicated: 2},
		{Partition: 2, Inputs: 4, Outputs: 3, Missing: 1, OutOfOrder: 1},
	}
	if !slices.Equal(v.Partitions, want) {
		t.Fatalf("partitions\n got %+v\nwant %+v", v.Partitions, want)
	}
	if v.Pass() || len(v.Failures) != 1 || !strings.Contains(v.Failures[0], "1 inputs have no output") {
		t.Fatalf("failures %v", v.Failures)
	}
	if s := v.Samples["missing"]; len(s) != 1 || !strings.Contains(s[0], "2@3") {
		t.Fatalf("missing samples %v", s)
	}
}

// The input topic must hold the known sequence exactly once, else the run
// proves nothing.
func TestCheckKnownSequence(t *testing.T) {
	in := inputsOf(1, 5)
	outs := writes(in, 0, span(0, 5)...)
	if v := Check(config.ExactlyOnce, 5, in, outs); !v.Pass() {
		t.Fatalf("complete sequence failed: %v", v.Failures)
	}
	v := Check(config.ExactlyOnce, 6, in, outs)
	if v.Pass() || v.Totals.SeqMissing != 1 {
		t.Fatalf("a sequence number never written: totals %+v failures %v", v.Totals, v.Failures)
	}
	twice := append(slices.Clone(in), Input{Partition: 0, Offset: 5, Seq: 2, TxID: txID(2)})
	v = Check(config.AtLeastOnce, 5, twice, append(outs, Output{Partition: 0, Offset: 5, SrcPartition: 0, SrcOffset: 5, TxID: txID(2)}))
	if v.Pass() || v.Totals.SeqDuplicated != 1 {
		t.Fatalf("a sequence number written twice: totals %+v failures %v", v.Totals, v.Failures)
	}
}

func TestSeqOf(t *testing.T) {
	for in, want := range map[string]int64{txID(0): 0, txID(123456789): 123456789, "tx-000000000001": -1, "chaos-x": -1, "": -1} {
		if got := seqOf(in); got != want {
			t.Errorf("seqOf(%q) = %d, want %d", in, got, want)
		}
	}
}

// The schedule: the asked number of each event, inside the input, and
// every extra slot joining before it leaves, with at most one run of a slot
// at a time.
func TestPlan(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		const records = 30000
		ev := plan(rand.New(rand.NewPCG(seed, 0)), records, 10, 1, 4)
		count := map[string]int{}
		in := map[int]bool{}
		prev := int64(-1)
		for _, e := range ev {
			count[e.Kind]++
			if e.At < prev || e.At < 0 || e.At >= records {
				t.Fatalf("seed %d: event %+v out of order or outside the input", seed, e)
			}
			prev = e.At
			switch e.Kind {
			case EventJoin:
				if in[e.Slot] || e.Slot < 2 || e.Slot > 3 {
					t.Fatalf("seed %d: slot %d joins twice or is not an extra slot", seed, e.Slot)
				}
				in[e.Slot] = true
			case EventLeave:
				if !in[e.Slot] {
					t.Fatalf("seed %d: slot %d leaves before joining", seed, e.Slot)
				}
				in[e.Slot] = false
			case EventBrokerRestart:
				if e.At < records*3/10 || e.At > records*7/10 {
					t.Fatalf("seed %d: broker restart at %d, outside the middle", seed, e.At)
				}
			}
		}
		if count[EventKill] != 10 || count[EventBrokerRestart] != 1 || count[EventJoin] != 4 || count[EventLeave] != 4 {
			t.Fatalf("seed %d: events %v", seed, count)
		}
	}
}

// CI reads the summary line: its fields and their order are a contract.
func TestSummaryLine(t *testing.T) {
	in := inputsOf(1, 3)
	r := &Report{Guarantee: config.AtLeastOnce, Result: Pass, Kills: 10, BrokerRestarts: 1, MembershipChanges: 2, ElapsedSeconds: 95.34,
		Verdict: Check(config.AtLeastOnce, 3, in, writes(in, 0, 0, 1, 2, 1, 2))}
	want := "chaos: guarantee=at_least_once inputs=3 outputs=5 missing=0 duplicated=2 out_of_order=0 dead_lettered=0 " +
		"kills=10 broker_restarts=1 membership_changes=2 unexpected_exits=0 elapsed=95.3s result=PASS"
	if got := r.Summary(); got != want {
		t.Fatalf("summary\n got %s\nwant %s", got, want)
	}
	md := r.Markdown()
	for _, s := range []string{want, "| 0 | 3 | 5 | 0 | 0 | 2 | 0 |"} {
		if !strings.Contains(md, s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md)
		}
	}
}

// The generated pipeline.yaml passes kinfer's config validation and says
// what the harness means: the guarantee, a short session, static
// membership only when asked, kinfer's own commit interval unless set.
func TestPipelineYAML(t *testing.T) {
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{config.AtLeastOnce, config.ExactlyOnce} {
		p := pipeline{
			brokers: []string{"127.0.0.1:39792"}, group: "g", in: "in", out: "out", dlq: "dlq",
			model: filepath.Join(root, DefaultModel), schema: filepath.Join(root, DefaultSchema),
			guarantee: g, instanceID: "chaos-slot-2", sessionTimeout: 6 * time.Second,
			drainTimeout: 10 * time.Second, rebalance: 20 * time.Second,
		}
		c, err := config.Parse(filepath.Join(t.TempDir(), "pipeline.yaml"), []byte(p.yaml()))
		if err != nil {
			if strings.Contains(err.Error(), "not implemented yet") {
				t.Logf("%s: %v", g, err)
				continue
			}
			t.Fatalf("%s: %v\n%s", g, err, p.yaml())
		}
		def := &config.Config{Processing: config.Processing{Guarantee: g}}
		def.ApplyDefaults()
		if c.Processing.Guarantee != g || c.Kafka.SessionTimeout != 6*time.Second || c.Kafka.InstanceID != "chaos-slot-2" ||
			c.Kafka.Group != "g" || c.Processing.CommitInterval != def.Processing.CommitInterval || !c.Metrics.Disabled {
			t.Fatalf("%s: config %+v %+v", g, c.Kafka, c.Processing)
		}
		p.commitInterval = 250 * time.Millisecond
		if c, err = config.Parse("pipeline.yaml", []byte(p.yaml())); err != nil || c.Processing.CommitInterval != p.commitInterval {
			t.Fatalf("%s: commit interval: %v", g, err)
		}
	}
}

// The exactly-once test skips itself only on validate's "not implemented
// yet"; any other validation failure is an error, and success is support.
func TestGuaranteeSupported(t *testing.T) {
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fake := func(script string) string {
		p := filepath.Join(t.TempDir(), "kinfer")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := t.Context()
	ok, why, err := GuaranteeSupported(ctx, fake(`echo 'kinfer: p.yaml: processing.guarantee: "exactly_once" is not implemented yet; expected "at_least_once"' >&2; exit 2`), root, config.ExactlyOnce)
	if ok || err != nil || !strings.Contains(why, "not implemented yet") {
		t.Fatalf("not implemented: ok=%v why=%q err=%v", ok, why, err)
	}
	if ok, _, err = GuaranteeSupported(ctx, fake(`echo 'kinfer: p.yaml: model.path: no such file' >&2; exit 2`), root, config.ExactlyOnce); ok || err == nil {
		t.Fatalf("another validation failure: ok=%v err=%v", ok, err)
	}
	if ok, _, err = GuaranteeSupported(ctx, fake(`printf 'p.yaml: valid\n  prediction schema:\n{"type":"record","name":"P","fields":[]}\n'`), root, config.ExactlyOnce); !ok || err != nil {
		t.Fatalf("accepted: ok=%v err=%v", ok, err)
	}
}
