package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaSink writes records with a franz-go client. With the client's
// defaults (idempotent producer, acks=all) records to one partition land
// in the order they were written.
type KafkaSink struct {
	Client *kgo.Client
}

// Write implements Sink.
func (s KafkaSink) Write(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	s.Client.Produce(ctx, rec, done)
}

// StreamConfig configures a consumer-group run.
type StreamConfig struct {
	Group       string
	InputTopic  string
	StartOffset string // "earliest" or "latest"
	// CommitInterval is how often acknowledged offsets are committed.
	CommitInterval time.Duration
	// DrainTimeout bounds waiting for in-flight records on revocation and
	// at shutdown.
	DrainTimeout time.Duration
	// PollRecords is the most records taken per poll. Default 1000.
	PollRecords int
	// LagInterval is how often the input's end offsets are listed for the
	// lag gauges, on top of the high watermarks every fetch carries (which
	// stop arriving when the member is stuck). Default 10s.
	LagInterval time.Duration
	// BrokerTimeout is how long without a successful response from any
	// broker before ReadyErr reports the brokers unreachable. Default 30s.
	BrokerTimeout time.Duration
	// ExactlyOnce runs the member transactionally (see RunExactlyOnce):
	// CommitInterval is then the transaction cycle.
	ExactlyOnce bool
}

// Stream runs the engine as a member of a consumer group: at-least-once,
// committing each partition's watermark (the oldest record whose output is
// not yet acknowledged) periodically, on revocation and at shutdown.
type Stream struct {
	cfg    StreamConfig
	log    *slog.Logger
	engine *Engine
	client *kgo.Client
	m      *Metrics

	mu       sync.Mutex
	lanes    map[int32]*lane
	hwm      map[int32]int64 // owned partitions' newest known high watermark
	assigned bool

	// closing is set when Run starts draining: the member stops being ready.
	closing atomic.Bool
	// seen records when a broker last answered (a kgo hook).
	seen brokerSeen
	// newAssignment asks the lag loop to list end offsets now, so newly
	// owned partitions get lag gauges without waiting for LagInterval.
	newAssignment chan struct{}

	commitMu      sync.Mutex
	lastCommitted map[int32]int64

	// txnFailed holds the first write error of the current transaction
	// (exactly-once), which makes the cycle abort.
	txnFailed atomic.Pointer[error]
}

// GroupOpts returns the kgo options a Stream needs on its client: the
// group, cooperative-sticky balancing, manual commits and the rebalance
// callbacks. Create the client with these plus connection options, then
// call Run.
func (s *Stream) GroupOpts() []kgo.Opt {
	reset := kgo.NewOffset().AtStart()
	if s.cfg.StartOffset == "latest" {
		reset = kgo.NewOffset().AtEnd()
	}
	return []kgo.Opt{
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.InputTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.WithHooks(&s.seen),
	}
}

// NewStream prepares a group run. The engine's sink normally writes with
// the same client.
func NewStream(cfg StreamConfig, m *Metrics, log *slog.Logger) *Stream {
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.PollRecords <= 0 {
		cfg.PollRecords = 1000
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = 10 * time.Second
	}
	if cfg.BrokerTimeout <= 0 {
		cfg.BrokerTimeout = 30 * time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Stream{cfg: cfg, log: log, m: m, lanes: map[int32]*lane{}, hwm: map[int32]int64{}, lastCommitted: map[int32]int64{}, newAssignment: make(chan struct{}, 1)}
}

// Errors ReadyErr returns (wrapped) while the member is not ready.
var (
	// ErrNotJoined: the member has not yet joined the group and received
	// its first assignment (which may be empty).
	ErrNotJoined = errors.New("not yet joined the consumer group")
	// ErrBrokersUnreachable: no broker answered within
	// StreamConfig.BrokerTimeout.
	ErrBrokersUnreachable = errors.New("no broker answered recently")
	// ErrShuttingDown: the member is draining before it leaves the group.
	ErrShuttingDown = errors.New("shutting down")
)

// ReadyErr returns nil when the member has joined the group (received an
// assignment, possibly empty), a broker answered within BrokerTimeout, the
// engine has not failed and the member is not shutting down; otherwise an
// error saying which of these is not true.
func (s *Stream) ReadyErr() error {
	if s.closing.Load() {
		return ErrShuttingDown
	}
	s.mu.Lock()
	assigned, e := s.assigned, s.engine
	s.mu.Unlock()
	if e != nil {
		if err := e.Err(); err != nil {
			return fmt.Errorf("engine failed: %w", err)
		}
	}
	if !assigned {
		return ErrNotJoined
	}
	age, ok := s.seen.age()
	if !ok {
		return fmt.Errorf("%w (none yet)", ErrBrokersUnreachable)
	}
	if age > s.cfg.BrokerTimeout {
		return fmt.Errorf("%w (last answer %s ago, limit %s)", ErrBrokersUnreachable, age.Round(time.Millisecond), s.cfg.BrokerTimeout)
	}
	return nil
}

// Ready reports whether ReadyErr is nil.
func (s *Stream) Ready() bool { return s.ReadyErr() == nil }

// brokerSeen is a kgo hook that records the last successful read from any
// broker: fetches long-poll and heartbeats run every few seconds, so a
// member that hears nothing for long has lost its brokers.
type brokerSeen struct{ last atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (b *brokerSeen) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		b.last.Store(time.Now().UnixNano())
	}
}

// age returns how long ago a broker last answered, false if none ever did.
func (b *brokerSeen) age() (time.Duration, bool) {
	t := b.last.Load()
	if t == 0 {
		return 0, false
	}
	return time.Since(time.Unix(0, t)), true
}

func (s *Stream) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assigned = true
	for _, p := range assigned[s.cfg.InputTopic] {
		if _, ok := s.lanes[p]; ok {
			continue // cooperative rebalancing assigns only partitions we do not hold
		}
		s.lanes[p] = newLane(s.cfg.InputTopic, p)
		s.m.Rebalances.WithLabelValues("assigned").Inc()
	}
	s.log.Info("partitions assigned", "topic", s.cfg.InputTopic, "partitions", assigned[s.cfg.InputTopic])
	select {
	case s.newAssignment <- struct{}{}:
	default:
	}
}

// onRevoked finishes the revoked partitions' in-flight records within the
// drain deadline, commits their watermarks and abandons whatever did not
// finish, so another member resumes from the last durable offset and this
// one never commits past output it did not write.
//
// In exactly-once mode the revoked partitions are abandoned at once: the
// transaction session aborts the current transaction, so nothing of them
// is committed, and the next owner redoes them.
func (s *Stream) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	lanes := s.take(revoked[s.cfg.InputTopic])
	if len(lanes) == 0 {
		return
	}
	if s.cfg.ExactlyOnce {
		for _, l := range lanes {
			s.engine.abandonLane(l)
			s.m.Rebalances.WithLabelValues("revoked").Inc()
		}
		s.log.Info("partitions revoked; the current transaction will abort", "topic", s.cfg.InputTopic, "partitions", revoked[s.cfg.InputTopic])
		return
	}
	for _, l := range lanes {
		l.close()
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for _, l := range lanes {
		for l.inFlight() > 0 && time.Now().Before(deadline) && s.engine.Err() == nil && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
	}
	s.commit(ctx, cl, lanes)
	for _, l := range lanes {
		if n := l.inFlight(); n > 0 {
			s.log.Warn("abandoning in-flight records of a revoked partition; the next owner redoes them", "partition", l.partition, "records", n)
		}
		s.engine.abandonLane(l)
		s.m.Rebalances.WithLabelValues("revoked").Inc()
	}
	s.log.Info("partitions revoked", "topic", s.cfg.InputTopic, "partitions", revoked[s.cfg.InputTopic])
}

// onLost abandons lost partitions without committing: the group already
// gave them to someone else.
func (s *Stream) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	for _, l := range s.take(lost[s.cfg.InputTopic]) {
		s.engine.abandonLane(l)
		s.m.Rebalances.WithLabelValues("lost").Inc()
	}
	s.log.Warn("partitions lost", "topic", s.cfg.InputTopic, "partitions", lost[s.cfg.InputTopic])
}

func (s *Stream) take(ps []int32) []*lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*lane
	for _, p := range ps {
		if l, ok := s.lanes[p]; ok {
			out = append(out, l)
			delete(s.lanes, p)
		}
		delete(s.hwm, p)
		s.m.dropPartition(s.cfg.InputTopic, p)
		s.commitMu.Lock()
		delete(s.lastCommitted, p)
		s.commitMu.Unlock()
	}
	return out
}

func (s *Stream) lane(p int32) *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lanes[p]
}

func (s *Stream) allLanes() []*lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*lane, 0, len(s.lanes))
	for _, l := range s.lanes {
		out = append(out, l)
	}
	return out
}

// commit commits the watermarks of lanes that moved since the last commit.
func (s *Stream) commit(ctx context.Context, cl *kgo.Client, lanes []*lane) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, l := range lanes {
		wm, ok := l.watermark()
		if !ok {
			continue
		}
		if last, seen := s.lastCommitted[l.partition]; seen && last >= wm.Offset {
			continue
		}
		offsets[l.partition] = wm
	}
	if len(offsets) == 0 {
		return
	}
	var commitErr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.cfg.InputTopic: offsets}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					commitErr = errors.Join(commitErr, fmt.Errorf("partition %d: %w", p.Partition, perr))
				}
			}
		}
	})
	if commitErr != nil {
		s.m.Commits.WithLabelValues("error").Inc()
		s.log.Warn("offset commit failed; will retry", "err", commitErr)
		return
	}
	s.m.Commits.WithLabelValues("ok").Inc()
	for p, wm := range offsets {
		s.lastCommitted[p] = wm.Offset
	}
}

// Run consumes until ctx is cancelled or the engine fails, then drains:
// stops fetching, lets in-flight records finish within the drain timeout,
// commits, and closes the client (which leaves the group). It returns nil
// after a clean shutdown.
func (s *Stream) Run(ctx context.Context, cl *kgo.Client, e *Engine) error {
	return s.run(ctx, cl, e, func(ctx context.Context) error { return s.poll(ctx, cl, e) }, func() {
		commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
		s.commit(commitCtx, cl, s.allLanes())
		cancelCommit()
	})
}

// RunExactlyOnce is Run for processing.guarantee exactly_once: the engine
// must write through NewTxnSink(sess.Client()). Outputs, dead letters and
// offsets commit in one transaction per CommitInterval; at shutdown the
// last transaction commits after the drain (or aborts when the drain
// times out).
func (s *Stream) RunExactlyOnce(ctx context.Context, sess *kgo.GroupTransactSession, e *Engine) error {
	var endErr error
	err := s.run(ctx, sess.Client(), e, func(ctx context.Context) error { return s.runTxn(ctx, sess, e) }, func() {
		endErr = s.endTxn(context.Background(), sess, e, e.Err() == nil)
		if errors.As(endErr, new(errTxnNotCommitted)) {
			endErr = nil // shutting down: the next owner redoes those records
		}
	})
	if err == nil {
		err = endErr
	}
	return err
}

// run is the shared body of Run and RunExactlyOnce: loop consumes until
// ctx ends or it fails; then the engine drains and final commits.
func (s *Stream) run(ctx context.Context, cl *kgo.Client, e *Engine, loop func(context.Context) error, final func()) error {
	s.mu.Lock()
	s.engine = e
	s.client = cl
	s.mu.Unlock()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.Fatal():
			cancel()
		case <-runCtx.Done():
		}
	}()

	var committer sync.WaitGroup
	committer.Add(2)
	go func() {
		defer committer.Done()
		if s.cfg.ExactlyOnce {
			return // offsets commit inside the transactions
		}
		t := time.NewTicker(s.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				s.commit(runCtx, cl, s.allLanes())
				s.updateGauges(cl)
			}
		}
	}()
	go func() {
		defer committer.Done()
		t := time.NewTicker(s.cfg.LagInterval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				s.listEndOffsets(runCtx, cl)
			case <-s.newAssignment:
				s.listEndOffsets(runCtx, cl)
			}
		}
	}()

	pollErr := loop(runCtx)

	// Drain: no more input; let every submitted record finish.
	s.closing.Store(true)
	cancel()
	committer.Wait()
	for _, l := range s.allLanes() {
		l.close()
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	drained := make(chan struct{})
	go func() { e.Close(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.cfg.DrainTimeout):
	}
	for {
		n, _ := e.InFlight()
		if n == 0 || e.Err() != nil {
			break
		}
		if time.Now().After(deadline) {
			e.Abort()
			s.log.Warn("drain timeout: records left uncommitted; they will be redone", "records", n)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	final()
	s.updateGauges(cl)
	if err := e.Err(); err != nil {
		return err
	}
	if pollErr != nil && !errors.Is(pollErr, context.Canceled) {
		return pollErr
	}
	return nil
}

func (s *Stream) poll(ctx context.Context, cl *kgo.Client, e *Engine) error {
	for {
		fetches := cl.PollRecords(ctx, s.cfg.PollRecords)
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.handleFetches(ctx, fetches, e); err != nil {
			return err
		}
	}
}

// handleFetches submits polled records to their lanes, notes high
// watermarks for lag, and returns a fatal fetch error.
func (s *Stream) handleFetches(ctx context.Context, fetches kgo.Fetches, e *Engine) error {
	var fatal error
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		s.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		if isFatalFetch(err) {
			fatal = fmt.Errorf("fetching %s/%d: %w", topic, p, err)
		}
	})
	if fatal != nil {
		return fatal
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err == nil && p.Topic == s.cfg.InputTopic {
			s.noteHighWatermark(p.Partition, p.HighWatermark)
		}
	})
	var submitErr error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if submitErr != nil || len(p.Records) == 0 {
			return
		}
		l := s.lane(p.Partition)
		if l == nil {
			return // revoked between fetch and now; the next owner reads it
		}
		// A partition's records in one hand-over; a lane revoked midway
		// takes the first part, and the next owner reads the rest.
		if _, err := e.SubmitAll(ctx, l, p.Records); err != nil {
			submitErr = err
		}
	})
	return submitErr
}

func (s *Stream) noteHighWatermark(p int32, hwm int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, owned := s.lanes[p]; !owned {
		return
	}
	if cur, known := s.hwm[p]; !known || hwm > cur {
		s.hwm[p] = hwm // known from the first answer, even 0 (empty partition)
	}
}

// listEndOffsets refreshes the owned partitions' high watermarks from the
// broker, so lag keeps growing on the dashboard while this member is stuck
// and fetches no more.
func (s *Stream) listEndOffsets(ctx context.Context, cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LagInterval)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, s.cfg.InputTopic)
	if err != nil {
		s.log.Debug("listing end offsets for lag", "err", err)
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			s.noteHighWatermark(o.Partition, o.Offset)
		}
	})
	s.updateGauges(cl)
}

// updateGauges sets each owned partition's lag and in-flight gauges. Lag
// is the high watermark minus the offset this member would commit now;
// before the first record of a partition that is the group's committed
// offset, or, without one, where start_offset says consumption begins.
// It runs under s.mu so that a revoked partition's series, once deleted,
// cannot come back.
func (s *Stream) updateGauges(cl *kgo.Client) {
	committed := cl.CommittedOffsets()[s.cfg.InputTopic]
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, l := range s.lanes {
		hwm, known := s.hwm[p]
		if !known {
			continue
		}
		var pos int64
		if wm, ok := l.watermark(); ok {
			pos = wm.Offset
		} else if c, ok := committed[p]; ok && c.Offset >= 0 {
			pos = c.Offset
		} else if s.cfg.StartOffset == "latest" {
			pos = hwm
		}
		s.m.partitionGauges(s.cfg.InputTopic, p, max(hwm-pos, 0), l.inFlight())
	}
}

func isFatalFetch(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.SaslAuthenticationFailed)
}
