package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Results of a run.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// Report is everything a run did and found. Its JSON form is the detail
// file; Summary is the one line CI reads.
type Report struct {
	Result    string   `json:"result"`
	Guarantee string   `json:"guarantee"`
	Seed      uint64   `json:"seed"`
	Failures  []string `json:"failures,omitempty"`
	Notes     []string `json:"notes,omitempty"`

	// What was asked.
	Records               int64   `json:"records"`
	Rate                  float64 `json:"rate_per_second"`
	PlannedKills          int     `json:"planned_kills"`
	PlannedBrokerRestarts int     `json:"planned_broker_restarts"`
	PlannedMembershipChgs int     `json:"planned_membership_changes"`
	StaticMembership      bool    `json:"static_membership"`
	SessionTimeoutSeconds float64 `json:"session_timeout_seconds"`
	// CommitIntervalSeconds is processing.commit_interval; 0: kinfer's
	// default for the guarantee.
	CommitIntervalSeconds   float64  `json:"commit_interval_seconds"`
	Brokers                 []string `json:"brokers"`
	OwnBroker               bool     `json:"own_broker"`
	InputTopic              string   `json:"input_topic"`
	OutputTopic             string   `json:"output_topic"`
	DeadLetterTopic         string   `json:"dead_letter_topic"`
	Group                   string   `json:"group"`
	Partitions              int32    `json:"partitions"`
	KinferBin               string   `json:"kinfer_bin"`
	WorkDir                 string   `json:"work_dir"`
	ProducerFailedToDeliver int64    `json:"producer_failed,omitempty"`

	// What happened.
	Kills             int `json:"kills"`
	BrokerRestarts    int `json:"broker_restarts"`
	MembershipChanges int `json:"membership_changes"`
	// UnexpectedExits counts instances that ended without being asked to
	// (or exited non-zero after SIGTERM); each was restarted.
	UnexpectedExits int     `json:"unexpected_exits"`
	Events          []Event `json:"events"`
	Exits           []Exit  `json:"exits"`

	// Timings, in seconds.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// ProduceSeconds is how long the producer took to write and have the
	// broker acknowledge the whole sequence.
	ProduceSeconds float64 `json:"produce_seconds"`
	// CatchUpSeconds is from the producer's last acknowledgement until the
	// group's committed offsets reached the input's end.
	CatchUpSeconds float64 `json:"catch_up_seconds"`
	// Settled says whether the committed offsets reached the input's end
	// before the bounded wait ran out.
	Settled        bool            `json:"settled"`
	CommittedAtEnd map[int32]int64 `json:"committed_at_end,omitempty"`
	InputEnd       map[int32]int64 `json:"input_end,omitempty"`
	OpenTxns       []string        `json:"open_transactions,omitempty"`
	Verdict        *Verdict        `json:"verdict,omitempty"`
}

// Event is one thing the harness did, at T seconds into the run, when the
// producer had handed over Produced records.
type Event struct {
	T        float64 `json:"t"`
	Produced int64   `json:"produced"`
	Kind     string  `json:"kind"`
	Slot     int     `json:"slot,omitempty"`
	PID      int     `json:"pid,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"` // how long it took (broker restarts)
	Detail   string  `json:"detail,omitempty"`
}

// Exit is how one instance process ended.
type Exit struct {
	T        float64 `json:"t"`
	Slot     int     `json:"slot"`
	N        int     `json:"n"`
	PID      int     `json:"pid"`
	Uptime   float64 `json:"uptime_seconds"`
	Asked    string  `json:"asked,omitempty"` // sigkill, sigterm, or "" (not asked to end)
	How      string  `json:"how"`
	Expected bool    `json:"expected"`
	Log      string  `json:"log"`
	LogTail  string  `json:"log_tail,omitempty"` // unexpected ends only
}

// Summary is the one line a run prints, for CI to read.
func (r *Report) Summary() string {
	var t Totals
	if r.Verdict != nil {
		t = r.Verdict.Totals
	}
	return fmt.Sprintf("chaos: guarantee=%s inputs=%d outputs=%d missing=%d duplicated=%d out_of_order=%d dead_lettered=%d "+
		"kills=%d broker_restarts=%d membership_changes=%d unexpected_exits=%d elapsed=%.1fs result=%s",
		r.Guarantee, t.Inputs, t.Outputs, t.Missing, t.Duplicated, t.OutOfOrder, t.DeadLettered,
		r.Kills, r.BrokerRestarts, r.MembershipChanges, r.UnexpectedExits, r.ElapsedSeconds, r.Result)
}

// Write writes the report as JSON to path and as Markdown beside it
// (path with .md instead of .json). It returns the Markdown file's path.
func (r *Report) Write(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	md := strings.TrimSuffix(path, filepath.Ext(path)) + ".md"
	if err := os.WriteFile(md, []byte(r.Markdown()), 0o644); err != nil {
		return "", err
	}
	return md, nil
}

// Markdown renders the report for people: the summary, per-partition
// counts, the timeline and anything that went wrong.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# kinfer chaos run: %s\n\n```\n%s\n```\n\n", r.Result, r.Summary())
	fmt.Fprintf(&b, "- guarantee `%s`, seed %d, %d records at %.0f/s over %d partitions\n", r.Guarantee, r.Seed, r.Records, r.Rate, r.Partitions)
	fmt.Fprintf(&b, "- brokers %s (%s)\n", strings.Join(r.Brokers, ","), map[bool]string{true: "started by the harness", false: "external: no broker restarts"}[r.OwnBroker])
	ci := "kinfer's default"
	if r.CommitIntervalSeconds > 0 {
		ci = fmt.Sprintf("%gs", r.CommitIntervalSeconds)
	}
	fmt.Fprintf(&b, "- session timeout %.0fs, commit interval %s, static membership %v\n", r.SessionTimeoutSeconds, ci, r.StaticMembership)
	fmt.Fprintf(&b, "- produce %.1fs, catch-up after the last input %.1fs, total %.1fs; settled: %v\n", r.ProduceSeconds, r.CatchUpSeconds, r.ElapsedSeconds, r.Settled)
	fmt.Fprintf(&b, "- topics %s → %s (dead letters %s), group %s\n", r.InputTopic, r.OutputTopic, r.DeadLetterTopic, r.Group)
	if len(r.Failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if v := r.Verdict; v != nil {
		b.WriteString("\n## Per input partition\n\n| partition | inputs | outputs | dead-lettered | missing | duplicated | out of order |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, p := range v.Partitions {
			fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d |\n", p.Partition, p.Inputs, p.Outputs, p.DeadLettered, p.Missing, p.Duplicated, p.OutOfOrder)
		}
		t := v.Totals
		fmt.Fprintf(&b, "| all | %d | %d | %d | %d | %d | %d |\n", t.Inputs, t.Outputs, t.DeadLettered, t.Missing, t.Duplicated, t.OutOfOrder)
		if t.Unmatched+t.Mismatched+t.SeqMissing+t.SeqDuplicated > 0 {
			fmt.Fprintf(&b, "\nunmatched %d, mismatched transaction_id %d, sequence numbers missing from the input %d, written twice %d\n",
				t.Unmatched, t.Mismatched, t.SeqMissing, t.SeqDuplicated)
		}
		if len(v.Samples) > 0 {
			b.WriteString("\n## Samples\n\n")
			kinds := make([]string, 0, len(v.Samples))
			for k := range v.Samples {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			for _, k := range kinds {
				fmt.Fprintf(&b, "- %s: %s\n", k, strings.Join(v.Samples[k], "; "))
			}
		}
	}
	b.WriteString("\n## Timeline\n\n| t (s) | produced | event | slot | pid | detail |\n| ---: | ---: | --- | ---: | ---: | --- |\n")
	for _, e := range r.Events {
		d := e.Detail
		if e.Seconds > 0 {
			d = strings.TrimSpace(fmt.Sprintf("took %.1fs %s", e.Seconds, d))
		}
		fmt.Fprintf(&b, "| %.1f | %d | %s | %s | %s | %s |\n", e.T, e.Produced, e.Kind, blankZero(e.Slot), blankZero(e.PID), d)
	}
	b.WriteString("\n## Instance processes\n\n| slot.n | pid | up (s) | asked | ended | expected |\n| --- | ---: | ---: | --- | --- | --- |\n")
	for _, x := range r.Exits {
		fmt.Fprintf(&b, "| %d.%02d | %d | %.1f | %s | %s | %v |\n", x.Slot, x.N, x.PID, x.Uptime, x.Asked, x.How, x.Expected)
	}
	for _, x := range r.Exits {
		if x.LogTail != "" {
			fmt.Fprintf(&b, "\n### slot %d.%02d (pid %d) ended unexpectedly: %s\n\n```\n%s\n```\n", x.Slot, x.N, x.PID, x.How, x.LogTail)
		}
	}
	return b.String()
}

func blankZero(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}
