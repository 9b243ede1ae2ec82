package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	assigned bool

	commitMu      sync.Mutex
	lastCommitted map[int32]int64
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
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Stream{cfg: cfg, log: log, m: m, lanes: map[int32]*lane{}, lastCommitted: map[int32]int64{}}
}

// Ready reports whether the member has joined the group and received an
// assignment at least once.
func (s *Stream) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assigned
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
}

// onRevoked finishes the revoked partitions' in-flight records within the
// drain deadline, commits their watermarks and abandons whatever did not
// finish, so another member resumes from the last durable offset and this
// one never commits past output it did not write.
func (s *Stream) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	lanes := s.take(revoked[s.cfg.InputTopic])
	if len(lanes) == 0 {
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
	s.engine = e
	s.client = cl
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
	committer.Add(1)
	go func() {
		defer committer.Done()
		t := time.NewTicker(s.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				s.commit(runCtx, cl, s.allLanes())
			}
		}
	}()

	pollErr := s.poll(runCtx, cl, e)

	// Drain: no more input; let every submitted record finish.
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
	commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
	s.commit(commitCtx, cl, s.allLanes())
	cancelCommit()
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
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
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
		var submitErr error
		fetches.EachRecord(func(rec *kgo.Record) {
			if submitErr != nil {
				return
			}
			l := s.lane(rec.Partition)
			if l == nil {
				return // revoked between fetch and now; the next owner reads it
			}
			if _, err := e.Submit(ctx, l, rec); err != nil {
				submitErr = err
			}
		})
		if submitErr != nil {
			return submitErr
		}
	}
}

func isFatalFetch(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.SaslAuthenticationFailed)
}
