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
	return appendSourceHeaders(make([]kgo.RecordHeader, 0, 3), in, nil)
}

// appendSourceHeaders appends the source headers to h, their values cut
// from buf (grown when short).
func appendSourceHeaders(h []kgo.RecordHeader, in *kgo.Record, buf []byte) []kgo.RecordHeader {
	if cap(buf)-len(buf) < len(in.Topic)+2*20 {
		buf = make([]byte, 0, len(in.Topic)+2*20)
	}
	cut := func(from int) []byte { return buf[from:len(buf):len(buf)] }
	at := len(buf)
	buf = append(buf, in.Topic...)
	topic := cut(at)
	at = len(buf)
	buf = strconv.AppendInt(buf, int64(in.Partition), 10)
	partition := cut(at)
	at = len(buf)
	buf = strconv.AppendInt(buf, in.Offset, 10)
	return append(h,
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: topic},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: partition},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: cut(at)})
}

// predictionHeaders are a prediction's headers: the source headers and the
// model's name and version, in two allocations instead of six.
func predictionHeaders(in *kgo.Record, model, version string) []kgo.RecordHeader {
	buf := make([]byte, 0, len(in.Topic)+2*20+len(model)+len(version))
	buf = append(buf, model...)
	name := buf[0:len(buf):len(buf)]
	at := len(buf)
	buf = append(buf, version...)
	ver := buf[at:len(buf):len(buf)]
	h := appendSourceHeaders(make([]kgo.RecordHeader, 0, 5), in, buf)
	return append(h, kgo.RecordHeader{Key: HeaderModel, Value: name}, kgo.RecordHeader{Key: HeaderModelVersion, Value: ver})
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
