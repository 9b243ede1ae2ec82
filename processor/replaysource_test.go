package processor

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kinfer/kinfer/schema"
)

// writeLongFile writes an Avro file of records 0..n-1 (a long each, Avro
// binary), blockSize records per block, snappy-compressed.
func writeLongFile(t *testing.T, path string, n, blockSize int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := schema.NewOCFWriter(f, `"long"`, schema.OCFSnappy, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Append(binary.AppendVarint(nil, int64(i))); err != nil {
			t.Fatal(err)
		}
		if (i+1)%blockSize == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestFileSourceReadsSliceInOrder: blocks are decompressed concurrently,
// but each file's records reach submit once each, in file order, exactly
// the slice [from, end), starting and ending inside blocks.
func TestFileSourceReadsSliceInOrder(t *testing.T) {
	dir := t.TempDir()
	var files []inputFile
	for i, n := range []int{1000, 35} {
		p := filepath.Join(dir, []string{"a.avro", "b.avro"}[i])
		writeLongFile(t, p, n, 7)
		files = append(files, inputFile{Path: p, Records: int64(n)})
	}
	src := &fileSource{files: files, parallel: 2,
		from: map[int32]int64{0: 12, 1: 0},
		end:  map[int32]int64{0: 989, 1: 35}}
	var mu sync.Mutex
	got := map[int32][]int64{}
	err := src.run(context.Background(), func(_ context.Context, p int32, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			v, n := binary.Varint(r.Value)
			if n != len(r.Value) || v != r.Offset || r.Partition != p || r.Topic != files[p].Path {
				t.Errorf("file %d: record %+v holds %d", p, r, v)
			}
			got[p] = append(got[p], r.Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		want := int64(src.from[int32(p)])
		for _, off := range got[int32(p)] {
			if off != want {
				t.Fatalf("file %d: offset %d where %d was due (got %v)", p, off, want, got[int32(p)])
			}
			want++
		}
		if want != src.end[int32(p)] {
			t.Errorf("file %d: read up to %d, want %d", p, want, src.end[int32(p)])
		}
	}
}

// TestFileSourceShortFile: a file with fewer records than the job saw
// when it started fails the read, naming the file.
func TestFileSourceShortFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "short.avro")
	writeLongFile(t, p, 20, 7)
	src := &fileSource{files: []inputFile{{Path: p, Records: 50}}, parallel: 1,
		from: map[int32]int64{0: 0}, end: map[int32]int64{0: 50}}
	n := 0
	err := src.run(context.Background(), func(_ context.Context, _ int32, recs []*kgo.Record) error {
		n += len(recs)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "ends after 20 records; it had 50") {
		t.Fatalf("err = %v, want the file's name and its shortfall", err)
	}
	if n != 20 {
		t.Errorf("%d records submitted before the error, want the 20 the file has", n)
	}
}
