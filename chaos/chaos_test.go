//go:build chaos

// The fault harness against a real broker, sized for CI. Tagged: it takes
// minutes and starts its own broker, so `go test ./...` leaves it out.
//
//	go test -tags chaos -run TestIntegrationChaos -v -timeout 20m ./chaos/
//
// Environment: KINFER_CHAOS_BROKERS uses an existing cluster (no broker
// restart then); KINFER_CHAOS_RECORDS and KINFER_CHAOS_SEED resize and
// replay a run; KINFER_CHAOS_OUT is the folder for the reports (default
// .cache/chaos).
package chaos_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinfer/kinfer/chaos"
	"github.com/kinfer/kinfer/internal/config"
)

// Under at-least-once no input may lose its output; duplicates are
// counted and reported.
func TestIntegrationChaosAtLeastOnce(t *testing.T) { runChaos(t, config.AtLeastOnce) }

// Under exactly-once every input has exactly one output, in input order
// per partition, as a read_committed consumer sees them.
func TestIntegrationChaosExactlyOnce(t *testing.T) { runChaos(t, config.ExactlyOnce) }

func runChaos(t *testing.T, guarantee string) {
	if testing.Short() {
		t.Skip("the fault harness takes minutes; skipped under -short")
	}
	root, err := chaos.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var brokers []string
	for _, b := range strings.Split(os.Getenv("KINFER_CHAOS_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if _, err := exec.LookPath("java"); err != nil && len(brokers) == 0 {
		msg := "the harness starts its own broker and needs Java 17+ (or set KINFER_CHAOS_BROKERS)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bin := kinferBin(t, root)
	ok, why, err := chaos.GuaranteeSupported(t.Context(), bin, root, guarantee)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("kinfer rejects guarantee %s: %s", guarantee, why)
	}

	records := int64(30000)
	if s := os.Getenv("KINFER_CHAOS_RECORDS"); s != "" {
		if records, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("KINFER_CHAOS_RECORDS: %v", err)
		}
	}
	var seed uint64
	if s := os.Getenv("KINFER_CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("KINFER_CHAOS_SEED: %v", err)
		}
	}
	outDir := os.Getenv("KINFER_CHAOS_OUT")
	if outDir == "" {
		outDir = filepath.Join(root, ".cache", "chaos")
	}
	c := chaos.Config{
		KinferBin: bin, RepoRoot: root, Brokers: brokers, Guarantee: guarantee,
		// 30,000 records over a minute: every fault lands mid-stream, and
		// the whole run (broker start included) takes about 90s on 2 cores.
		Records: records, Duration: time.Minute,
		Kills: 10, BrokerRestarts: 1, MembershipChanges: 2, Seed: seed,
		Out: filepath.Join(outDir, "chaos-"+guarantee+".json"),
		Log: logWriter{t},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	// The line CI reads, unprefixed.
	fmt.Println(rep.Summary())
	t.Logf("detail: %s (and .md)", c.Out)
	if rep.Result != chaos.Pass {
		t.Fatalf("%s; configs and instance logs in %s", strings.Join(rep.Failures, "; "), rep.WorkDir)
	}
	v := rep.Verdict.Totals
	if v.Missing != 0 || v.Inputs != records {
		t.Fatalf("inputs %d (want %d), missing %d", v.Inputs, records, v.Missing)
	}
	if guarantee == config.ExactlyOnce && (v.Duplicated != 0 || v.OutOfOrder != 0 || v.Outputs != records) {
		t.Fatalf("exactly-once: %d outputs for %d inputs, %d duplicated, %d out of order", v.Outputs, records, v.Duplicated, v.OutOfOrder)
	}
	wantRestarts := 1
	if len(brokers) > 0 {
		wantRestarts = 0
	}
	if rep.Kills != 10 || rep.BrokerRestarts != wantRestarts || rep.MembershipChanges != 2 {
		t.Fatalf("faults: %d kills, %d broker restarts, %d membership changes", rep.Kills, rep.BrokerRestarts, rep.MembershipChanges)
	}
	if rep.UnexpectedExits > 0 {
		t.Logf("note: %d instance(s) ended by themselves and were restarted (see the report)", rep.UnexpectedExits)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.bin != "" {
		os.RemoveAll(filepath.Dir(build.bin))
	}
	os.Exit(code)
}

var build struct {
	once sync.Once
	bin  string
	err  error
}

// kinferBin builds cmd/kinfer once per test process.
func kinferBin(t *testing.T, root string) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "kinfer-chaos-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "kinfer")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/kinfer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/kinfer: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// logWriter sends the harness's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
