package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkEngine runs the engine alone (decode, map, batch of 64, a
// no-op model, order, encode; no Kafka) on the stage split's records: the
// per-record cost that `make bench` reports as "engine alone", in a form
// that -cpuprofile and -benchmem can take apart.
func BenchmarkEngine(b *testing.B) {
	cases, err := stageCases(repoRoot(b))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for _, c := range cases {
		w := c.w
		b.Run(stageRecordName(w.Name), func(b *testing.B) {
			schemaFile, err := writeSchema(dir, "engine-"+w.Name, w.Schema)
			if err != nil {
				b.Fatal(err)
			}
			yaml := w.pipelineYAML("", schemaFile, []string{"127.0.0.1:1"}, "engine", "in", "out", "in.dlq", 64, 5)
			p, err := buildPipeline(context.Background(), dir, "engine-"+w.Name+".yaml", yaml, noopLoader(c.model))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			const partitions = 4
			recs := make([]*kgo.Record, b.N)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "in", Partition: int32(i % partitions), Offset: int64(i / partitions),
					Key: []byte("k" + strconv.Itoa(i)), Value: w.values[i%len(w.values)], Timestamp: time.Now()}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if _, err := runEngine(context.Background(), p, recs, partitions, "in.dlq"); err != nil {
				b.Fatal(err)
			}
		})
	}
}
