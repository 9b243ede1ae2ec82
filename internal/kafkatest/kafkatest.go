// Package kafkatest finds a real Apache Kafka broker for integration tests
// (tests named TestIntegration...). Fast tests use franz-go's kfake instead.
//
// Brokers looks, in order, at:
//
//  1. KINFER_TEST_BROKERS (comma-separated host:port list), used as is;
//  2. a local broker on 127.0.0.1:$KAFKA_PORT (default 39092): reused when it
//     answers, otherwise started once per test run with deploy/kafka/kafka.sh
//     (Apache Kafka 4 from the Maven Central jars; needs Java 17+ and Maven);
//  3. a Kafka container via testcontainers-go, when a Docker engine is reachable.
//
// When none works the test is skipped, or fails when CI=true, naming what was
// tried. Packages with integration tests use Main as their TestMain so that a
// broker started for the run is stopped when the last test process leaves:
//
//	func TestMain(m *testing.M) { kafkatest.Main(m) }
package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/internal/repo"
)

// Environment variables read by this package.
const (
	// EnvBrokers, when set, is the comma-separated seed broker list to use;
	// nothing is started or stopped.
	EnvBrokers = "KINFER_TEST_BROKERS"
	// EnvPort is the local broker's client port, shared with kafka.sh.
	EnvPort = "KAFKA_PORT"
	// EnvCache is the cache root shared with kafka.sh (jars, data, run dirs).
	EnvCache = "KINFER_CACHE"
	// EnvImage overrides the container image used by the testcontainers fallback.
	EnvImage = "KINFER_TEST_KAFKA_IMAGE"
)

const (
	// DefaultPort is the local broker's client port when KAFKA_PORT is unset.
	DefaultPort = "39092"
	// DefaultImage is the container image for the testcontainers fallback. The
	// testcontainers Kafka module (v0.40) only knows how to start
	// confluent-local images.
	DefaultImage = "confluentinc/confluent-local:7.5.0"

	startedByUs  = "kafkatest" // KAFKA_STARTED_BY value kafka.sh records
	startTimeout = 10 * time.Minute
)

// state is what this test process found, computed once: every test in the
// process shares one broker, and a failed start is not retried per test.
var state struct {
	sync.Mutex
	done       bool
	brokers    []string
	tried      []string // one line per source tried, with why it failed
	mainActive bool
	local      *localBroker
	container  *tckafka.KafkaContainer
}

// Brokers returns seed brokers of a real Kafka cluster, or skips the test
// (fails it when CI=true) when none can be found or started. Under -short it
// skips without looking.
func Brokers(t testing.TB) []string {
	t.Helper()
	if s := os.Getenv(EnvBrokers); s != "" {
		return splitBrokers(s)
	}
	if testing.Short() {
		t.Skip("kafkatest: needs a Kafka broker; skipped under -short")
	}
	brokers, tried := find()
	if len(brokers) > 0 {
		return brokers
	}
	msg := "kafkatest: no Kafka broker available; tried:\n  " + strings.Join(tried, "\n  ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "\n(CI=true: failing instead of skipping)")
	}
	t.Skip(msg + "\n(set " + EnvBrokers + " to use an existing cluster)")
	return nil
}

// Main runs the package's tests and then releases what Brokers set up: a local
// broker that a test process started is stopped once no other test process
// (parallel packages under `go test ./...`) still uses it; a container is
// terminated. A broker that was already running, or that KINFER_TEST_BROKERS
// names, is left alone. Brokers starts a broker lazily, so test runs that need
// none pay nothing. Main calls os.Exit.
func Main(m *testing.M) {
	state.Lock()
	state.mainActive = true
	state.Unlock()
	code := m.Run()
	if err := release(); err != nil {
		fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
	}
	os.Exit(code)
}

// Client returns a kgo client seeded with brokers, closed at test cleanup.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NewTopic creates a topic with a unique name derived from the test's name,
// with the given partition count and replication factor 1, waits until every
// partition has a leader, and deletes the topic at test cleanup.
func NewTopic(t testing.TB, brokers []string, partitions int) string {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("kafkatest: NewTopic: partitions = %d, want >= 1", partitions)
	}
	name := topicName(t.Name())
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, int32(partitions), 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("kafkatest: creating topic %s: %v", name, err)
	}
	// Registered after Client's Close, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resps, err := adm.DeleteTopics(ctx, name)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			t.Logf("kafkatest: deleting topic %s: %v", name, err)
		}
	})
	// CreateTopics returns once the controller has the topic; wait until the
	// broker serves it too, so the first produce does not race it.
	for {
		tds, err := adm.ListTopics(ctx, name)
		if err == nil {
			td := tds[name]
			if td.Err == nil && len(td.Partitions) == partitions && allLed(td) {
				return name
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafkatest: topic %s: partitions not ready: %v", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(td kadm.TopicDetail) bool {
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// topicName makes a valid, unique Kafka topic name (at most 249 characters of
// [a-zA-Z0-9._-]) that still says which test made it.
func topicName(testName string) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	base := b.String()
	if len(base) > 200 {
		base = base[:200]
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return "kinfer-test-" + base + "-" + hex.EncodeToString(rnd[:])
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// find resolves the brokers once per process.
func find() ([]string, []string) {
	state.Lock()
	defer state.Unlock()
	if state.done {
		return state.brokers, state.tried
	}
	state.done = true
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	lb, err := useLocal(ctx)
	if err == nil {
		state.local = lb
		state.brokers = []string{lb.addr}
		if lb.startedHere && !state.mainActive {
			fmt.Fprintf(os.Stderr, "kafkatest: started a broker on %s and leaving it running "+
				"(use kafkatest.Main in TestMain to stop it; stop by hand: %s stop)\n", lb.addr, lb.script)
		}
		return state.brokers, nil
	}
	state.tried = append(state.tried, "local broker: "+err.Error())

	c, brokers, err := useContainer(ctx)
	if err == nil {
		state.container = c
		state.brokers = brokers
		return state.brokers, nil
	}
	state.tried = append(state.tried, "testcontainers: "+err.Error())
	return nil, state.tried
}

func release() error {
	state.Lock()
	defer state.Unlock()
	var errs []error
	if state.local != nil {
		errs = append(errs, state.local.release())
		state.local = nil
	}
	if state.container != nil {
		errs = append(errs, testcontainers.TerminateContainer(state.container))
		state.container = nil
	}
	return errors.Join(errs...)
}

// --- local broker (deploy/kafka/kafka.sh) -------------------------------------

// localBroker is this process's use of the local broker. Each test process
// that uses it holds a lease file (named by its pid) in the broker's run dir;
// the last process to leave stops a broker that a test process started.
type localBroker struct {
	addr        string
	script      string
	runDir      string
	lease       string
	startedHere bool
}

func useLocal(ctx context.Context) (*localBroker, error) {
	port := os.Getenv(EnvPort)
	if port == "" {
		port = DefaultPort
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	cache := os.Getenv(EnvCache)
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	lb := &localBroker{
		addr:   net.JoinHostPort("127.0.0.1", port),
		script: filepath.Join(root, "deploy", "kafka", "kafka.sh"),
		runDir: filepath.Join(cache, "kafka", "run", port),
	}
	if err := os.MkdirAll(filepath.Join(lb.runDir, "leases"), 0o755); err != nil {
		return nil, err
	}
	// Serializes test processes (parallel packages); kafka.sh has its own lock.
	unlock, err := lockFile(filepath.Join(lb.runDir, "kafkatest.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	if pingErr := ping(ctx, lb.addr); pingErr != nil {
		if err := lb.start(ctx); err != nil {
			return nil, fmt.Errorf("nothing answers on %s (%v); starting one: %w", lb.addr, pingErr, err)
		}
		if err := ping(ctx, lb.addr); err != nil {
			return nil, fmt.Errorf("started a broker on %s but it does not answer: %w", lb.addr, err)
		}
	}
	lb.lease = filepath.Join(lb.runDir, "leases", strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(lb.lease, nil, 0o644); err != nil {
		return nil, err
	}
	return lb, nil
}

func (lb *localBroker) start(ctx context.Context) error {
	for _, tool := range []string{"bash", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (the local broker needs Java 17+ and Maven)", tool)
		}
	}
	if _, err := os.Stat(lb.script); err != nil {
		return err
	}
	out, err := lb.run(ctx, "start")
	if err != nil {
		return err
	}
	lb.startedHere = !bytes.Contains(out, []byte("already running"))
	return nil
}

func (lb *localBroker) run(ctx context.Context, sub string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", lb.script, sub)
	cmd.Env = append(os.Environ(), "KAFKA_STARTED_BY="+startedByUs)
	// The broker is detached with its output in a file, but never hang on a
	// pipe some grandchild kept open.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", lb.script, sub, err, tail(out, 40))
	}
	return out, nil
}

// release drops this process's lease and stops the broker if a test process
// started it and no other live test process holds a lease on it.
func (lb *localBroker) release() error {
	unlock, err := lockFile(filepath.Join(lb.runDir, "kafkatest.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	_ = os.Remove(lb.lease)
	by, _ := os.ReadFile(filepath.Join(lb.runDir, "started-by"))
	if strings.TrimSpace(string(by)) != startedByUs {
		return nil
	}
	if liveLeases(filepath.Join(lb.runDir, "leases")) > 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = lb.run(ctx, "stop")
	return err
}

// liveLeases counts lease files whose process is still alive, removing the
// rest (test binaries killed by a timeout never release).
func liveLeases(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid > 0 {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				n++
				continue
			}
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
	return n
}

// ping checks that addr is a Kafka broker answering metadata requests.
func ping(ctx context.Context, addr string) error {
	// A refused connection fails at once; kgo would retry until the deadline.
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata request to %s: %w", addr, err)
	}
	if len(md.Brokers) == 0 {
		return fmt.Errorf("metadata from %s lists no brokers", addr)
	}
	return nil
}

// repoRoot walks up from the working directory (the package dir under go
// test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := repo.Root()
	if err != nil {
		return "", fmt.Errorf("%w, cannot find deploy/kafka/kafka.sh", err)
	}
	return dir, nil
}

func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file drops the lock
}

func tail(b []byte, lines int) string {
	s := strings.TrimRight(string(b), "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// --- testcontainers fallback ---------------------------------------------------

func useContainer(ctx context.Context) (c *tckafka.KafkaContainer, brokers []string, err error) {
	if err := dockerReachable(ctx); err != nil {
		return nil, nil, err
	}
	// testcontainers panics on some Docker set-ups it cannot parse.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	img := os.Getenv(EnvImage)
	if img == "" {
		img = DefaultImage
	}
	c, err = tckafka.Run(ctx, img, tckafka.WithClusterID("kinfer-test"))
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return nil, nil, fmt.Errorf("starting %s: %w", img, err)
	}
	brokers, err = c.Brokers(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, nil, err
	}
	return c, brokers, nil
}

// dockerReachable looks for a Docker engine the cheap way first, so machines
// without one do not pay for (or log) testcontainers' own discovery.
func dockerReachable(ctx context.Context) (err error) {
	if os.Getenv("DOCKER_HOST") == "" && os.Getenv("TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE") == "" {
		home, _ := os.UserHomeDir()
		found := false
		for _, sock := range []string{
			"/var/run/docker.sock",
			filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "docker.sock"),
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"),
			filepath.Join(home, ".testcontainers.properties"),
		} {
			if _, err := os.Stat(sock); err == nil {
				found = true
				break
			}
		}
		if !found {
			return errors.New("no Docker engine (DOCKER_HOST unset, no docker.sock)")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("no Docker engine: %w", err)
	}
	defer p.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Health(hctx); err != nil {
		return fmt.Errorf("Docker engine not healthy: %w", err)
	}
	return nil
}
