package processor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exactly-once (processing.guarantee: exactly_once) runs the group member
// as a franz-go GroupTransactSession (KIP-447): predictions, dead letters
// and the input offsets of one flush cycle commit in one Kafka
// transaction. Every CommitInterval the poll loop stops taking records,
// waits until everything taken has been written (inside the transaction),
// and ends the transaction; the session commits the offsets of exactly
// the records polled, which are then all written. A transaction that
// cannot commit (a rebalance revoked partitions during it, a write
// failed) is aborted: its outputs are never visible to read_committed
// consumers, the session rewinds to the committed offsets, and the
// records are processed again.

// txnSink writes inside the session's transaction. A failed write does not
// go to the dead-letter topic (that write would be aborted too): it marks
// the transaction for abort, and the records are redone.
type txnSink struct {
	cl     *kgo.Client
	failed *atomic.Pointer[error]
}

func (s txnSink) Write(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	s.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			s.failed.CompareAndSwap(nil, &err)
		}
		// Durability is the transaction's commit, not this ack: report
		// the row done so the cycle can end; an abort redoes it.
		done(r, nil)
	})
}

// NewTxnSink returns the sink an exactly-once engine writes through.
func (s *Stream) NewTxnSink(cl *kgo.Client) Sink { return txnSink{cl: cl, failed: &s.txnFailed} }

// runTxn is the exactly-once poll loop: poll and submit until the cycle
// is due, then end the transaction and begin the next.
func (s *Stream) runTxn(ctx context.Context, sess *kgo.GroupTransactSession, e *Engine) error {
	if err := sess.Begin(); err != nil {
		return beginError(fmt.Errorf("beginning a transaction: %w", err))
	}
	cl := sess.Client()
	next := time.Now().Add(s.cfg.CommitInterval)
	for {
		pctx, cancel := context.WithDeadline(ctx, next)
		fetches := cl.PollRecords(pctx, s.cfg.PollRecords)
		cancel()
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.handleFetches(ctx, fetches, e); err != nil {
			return err
		}
		if time.Now().Before(next) {
			continue
		}
		endErr := s.endTxn(ctx, sess, e, true)
		if endErr != nil && !errors.As(endErr, new(errTxnNotCommitted)) {
			return endErr
		}
		if endErr != nil {
			if err := s.abortOpenTxn(ctx, cl); err != nil {
				return &sessionLostError{err}
			}
		}
		if err := sess.Begin(); err != nil {
			return beginError(fmt.Errorf("beginning a transaction after the last one ended: %w", err))
		}
		next = time.Now().Add(s.cfg.CommitInterval)
	}
}

// endTxn waits until every record taken in this cycle is written, then
// commits the transaction (or aborts it when commit is false, a write
// failed, or the writes did not finish within the drain timeout). After an
// abort every lane starts afresh: the session rewound the consumer to the
// committed offsets. An error here is fatal (fenced, unauthorized, or the
// transaction state is lost).
func (s *Stream) endTxn(ctx context.Context, sess *kgo.GroupTransactSession, e *Engine, commit bool) error {
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for n, _ := e.InFlight(); n > 0; n, _ = e.InFlight() {
		if e.Err() != nil || time.Now().After(deadline) {
			s.log.Warn("records of this transaction did not finish in time; aborting it", "records", n)
			commit = false
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	if p := s.txnFailed.Swap(nil); p != nil {
		s.log.Warn("a write in this transaction failed; aborting it", "err", *p)
		commit = false
	}
	// The end must not be cut short by shutdown: an interrupted EndTxn
	// leaves its outcome unknown.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DrainTimeout+30*time.Second)
	defer cancel()
	committed, err := sess.End(endCtx, kgo.TransactionEndTry(commit))
	if err != nil {
		s.m.Transactions.WithLabelValues("error").Inc()
		if fatalTxn(err) {
			return fmt.Errorf("ending the transaction: %w (another instance with the same transactional id fenced this one, or the principal lacks authorization)", err)
		}
		// Not committed, and the session rewound to the committed
		// offsets: like an abort, the records are redone. The caller
		// decides whether a new transaction can begin.
		s.log.Warn("the transaction did not commit; its records will be redone", "err", err)
		s.resetLanes(e)
		return errTxnNotCommitted{err}
	}
	if committed {
		s.m.Transactions.WithLabelValues("committed").Inc()
		s.m.Commits.WithLabelValues("ok").Inc()
		return nil
	}
	s.m.Transactions.WithLabelValues("aborted").Inc()
	s.log.Info("transaction aborted; redoing its records from the committed offsets")
	s.resetLanes(e)
	return nil
}

// resetLanes replaces every lane with a fresh one after an abort: rows
// still in flight (none after a drain) are dropped, and the re-polled
// records get new sequence numbers.
func (s *Stream) resetLanes(e *Engine) {
	s.mu.Lock()
	old := s.lanes
	s.lanes = make(map[int32]*lane, len(old))
	for p := range old {
		s.lanes[p] = newLane(s.cfg.InputTopic, p)
	}
	s.mu.Unlock()
	for _, l := range old {
		e.abandonLane(l)
	}
}

// errTxnNotCommitted says a transaction ended without committing for a
// reason that leaves the producer usable (a rebalance raced the commit,
// an epoch bump): nothing of it is visible, and its records are redone.
type errTxnNotCommitted struct{ err error }

func (e errTxnNotCommitted) Error() string { return "transaction not committed: " + e.err.Error() }
func (e errTxnNotCommitted) Unwrap() error { return e.err }

// abortOpenTxn aborts a transaction that a failed end left open on the
// client (its outcome unconfirmed: a transport error cut the EndTxn off,
// as a broker restart does). franz-go's documented recovery is to retry
// EndTransaction with TryAbort, which bumps the producer epoch and
// fence-aborts what the broker still holds. It retries with backoff for
// the drain timeout; an error means the session could not be recovered.
func (s *Stream) abortOpenTxn(ctx context.Context, cl *kgo.Client) error {
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DrainTimeout)
		err := cl.AbortBufferedRecords(actx)
		if err == nil {
			err = cl.EndTransaction(actx, kgo.TryAbort)
		}
		cancel()
		if err == nil {
			s.log.Info("aborted the transaction a failed end left open; its records will be redone")
			return nil
		}
		if fatalTxn(err) || time.Now().Add(wait).After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("aborting the transaction a failed end left open: %w", err)
		}
		s.log.Warn("aborting the transaction a failed end left open; retrying", "err", err, "wait", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// beginError classifies a failed Begin. Fenced or unauthorized is fatal;
// anything else (the client still inside a transaction a broker restart
// cut off, a producer id that could not be initialised while the broker
// was away) leaves this session unusable but not the next one.
func beginError(err error) error {
	if fatalTxn(err) {
		return err
	}
	return &sessionLostError{err}
}

// sessionLostError ends a member whose transactional session cannot begin
// another transaction after one failed to end; RunStream starts a new
// member (client, engine, stream) in its place.
type sessionLostError struct{ err error }

func (e *sessionLostError) Error() string { return "exactly-once session lost: " + e.err.Error() }
func (e *sessionLostError) Unwrap() error { return e.err }

// fatalTxn reports errors after which this producer cannot go on: it was
// fenced by a newer instance, or it is not authorized.
func fatalTxn(err error) bool {
	for _, k := range []error{kerr.ProducerFenced, kerr.TransactionalIDAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.InvalidTxnState} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
