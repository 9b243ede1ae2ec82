package chaos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/processor"
	"github.com/kinfer/kinfer/schema"
)

// readCommitted reads topics from their start to their last stable offsets
// with read_committed, calling fn for every data record. Control records
// (transaction markers) are fetched too, only to know when a partition's
// end has been reached: under read_committed a partition whose tail is a
// marker or an aborted batch never returns a data record at LSO-1.
func readCommitted(ctx context.Context, brokers []string, topics []string, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("listing last stable offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("listing last stable offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	type tp struct {
		t string
		p int32
	}
	left := map[tp]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[tp{o.Topic, o.Partition}] = o.Offset
		}
	})
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var where []string
			for k, end := range left {
				where = append(where, fmt.Sprintf("%s/%d (end %d)", k.t, k.p, end))
			}
			return fmt.Errorf("reading %s: %w before the end of %s", strings.Join(topics, ", "), err, strings.Join(where, ", "))
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			if end, ok := left[k]; ok && r.Offset+1 >= end {
				delete(left, k)
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// waitStable waits until no transaction is open on topics (every
// partition's last stable offset equals its high watermark), so that a
// read_committed reader sees everything that will ever be committed. A
// producer killed inside a transaction leaves it open until its
// transactional id is reused or the transaction times out. It returns the
// partitions still unstable when ctx ends.
func waitStable(ctx context.Context, brokers []string, topics ...string) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		hwm, err1 := adm.ListEndOffsets(ctx, topics...)
		lso, err2 := adm.ListCommittedOffsets(ctx, topics...)
		var open []string
		if err1 == nil && err2 == nil {
			hwm.Each(func(o kadm.ListedOffset) {
				if l, ok := lso.Lookup(o.Topic, o.Partition); !ok || l.Err != nil || l.Offset != o.Offset {
					open = append(open, fmt.Sprintf("%s/%d (stable %d, end %d)", o.Topic, o.Partition, l.Offset, o.Offset))
				}
			})
			if len(open) == 0 {
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			if len(open) == 0 {
				return nil, fmt.Errorf("listing offsets: %w", errors.Join(err1, err2, ctx.Err()))
			}
			return open, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// inputOf reads an input record: its sequence number from transaction_id.
func inputOf(dec *schema.FileDecoder, r *kgo.Record) Input {
	in := Input{Partition: r.Partition, Offset: r.Offset, Seq: -1}
	rec, err := dec.Decode(context.Background(), r.Value)
	if err != nil {
		return in
	}
	if id, ok := rec.Native["transaction_id"].(string); ok {
		in.TxID = id
		in.Seq = seqOf(id)
	}
	return in
}

// outputOf maps a prediction or dead letter back to the input it names.
// Predictions are decoded with the prediction schema for the passed-through
// transaction_id; dead letters carry the input value, decoded with the
// input schema.
func outputOf(pred, input *schema.FileDecoder, inputTopic string, deadLetter bool, r *kgo.Record) Output {
	o := Output{DeadLetter: deadLetter, Partition: r.Partition, Offset: r.Offset}
	st, ok1 := processor.HeaderValue(r, processor.HeaderSourceTopic)
	sp, ok2 := processor.HeaderValue(r, processor.HeaderSourcePartition)
	so, ok3 := processor.HeaderValue(r, processor.HeaderSourceOffset)
	if !ok1 || !ok2 || !ok3 {
		o.Problem = "no kinfer.source.* headers"
		return o
	}
	if st != inputTopic {
		o.Problem = fmt.Sprintf("source topic %q, not %q", st, inputTopic)
		return o
	}
	p, err1 := strconv.ParseInt(sp, 10, 32)
	off, err2 := strconv.ParseInt(so, 10, 64)
	if err1 != nil || err2 != nil {
		o.Problem = fmt.Sprintf("bad source headers partition=%q offset=%q", sp, so)
		return o
	}
	o.SrcPartition, o.SrcOffset = int32(p), off
	dec := pred
	if deadLetter {
		o.Reason, _ = processor.HeaderValue(r, processor.HeaderReason)
		dec = input
	}
	if dec == nil {
		return o
	}
	rec, err := dec.Decode(context.Background(), r.Value)
	if err != nil {
		if !deadLetter { // a dead letter may hold an undecodable input
			o.Problem = "prediction does not decode: " + err.Error()
		}
		return o
	}
	o.TxID, _ = rec.Native["transaction_id"].(string)
	return o
}

// seqOf parses a transaction_id written by the producer, -1 for others.
func seqOf(id string) int64 {
	s, ok := strings.CutPrefix(id, txPrefix)
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
