package processor

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys on dead-letter records and on predictions. Dead-letter records
// carry the input's key, value and headers unchanged, plus these.
const (
	HeaderReason          = "kinfer.reason"
	HeaderError           = "kinfer.error"
	HeaderSourceTopic     = "kinfer.source.topic"
	HeaderSourcePartition = "kinfer.source.partition"
	HeaderSourceOffset    = "kinfer.source.offset"
	HeaderModel           = "kinfer.model"
	HeaderModelVersion    = "kinfer.model.version"
)

// maxErrorHeader bounds the error text copied into a header.
const maxErrorHeader = 4096

func sourceHeaders(in *kgo.Record) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderSourceTopic, Value: []byte(in.Topic)},
		{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(in.Partition), 10)},
		{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, in.Offset, 10)},
	}
}

// deadLetter builds the dead-letter record for in.
func deadLetter(topic string, in *kgo.Record, reason string, err error) *kgo.Record {
	msg := err.Error()
	if len(msg) > maxErrorHeader {
		msg = msg[:maxErrorHeader]
	}
	h := make([]kgo.RecordHeader, 0, len(in.Headers)+5)
	h = append(h, in.Headers...)
	h = append(h, kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)}, kgo.RecordHeader{Key: HeaderError, Value: []byte(msg)})
	h = append(h, sourceHeaders(in)...)
	return &kgo.Record{Topic: topic, Key: in.Key, Value: in.Value, Headers: h}
}

// HeaderValue returns the value of the first header named key.
func HeaderValue(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
