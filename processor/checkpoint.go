package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"
)

// checkpointVersion is written into every checkpoint; a checkpoint of
// another version is refused rather than misread.
const checkpointVersion = 1

// replayCheckpoint is a replay job's progress, saved as JSON after each
// output part file is complete (file output) or periodically (topic
// output). Positions only ever cover records whose output is durable, so
// a resumed job starts from them and, with file output, writes each
// record exactly once.
type replayCheckpoint struct {
	Version int       `json:"version"`
	Job     replayJob `json:"job"`
	// Positions is, per partition (or input file index), the next offset
	// (or row) to process: every record before it has durable output.
	Positions map[int32]int64 `json:"positions"`
	// Parts are the complete output files, in order (file output).
	Parts []replayPart `json:"parts,omitempty"`
	// NextPart numbers the next output file.
	NextPart int `json:"next_part"`
	// Counts are the job's totals up to Positions (exact for file output;
	// for topic output, records after Positions that were written before
	// a crash may be counted again when they are redone).
	Counts ReplayCounts `json:"counts"`
	// Done is set once every record of the job has durable output.
	Done    bool      `json:"done"`
	Updated time.Time `json:"updated"`
}

// replayJob is what the job covers, fixed when it starts so that a resumed
// job replays the same slice even though the topic has grown since.
type replayJob struct {
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	// Source is "topic:NAME" or "files".
	Source string `json:"source"`
	// Ranges are, per partition or input file index, the offsets or rows
	// [start, end) to replay.
	Ranges map[int32]offsetRange `json:"ranges"`
	// Files are the input files, by index (file input).
	Files []inputFile `json:"files,omitempty"`
	// Output is "topic:NAME" or "dir:PATH".
	Output string `json:"output"`
	// DeadLetter is "topic:NAME" or "file".
	DeadLetter string    `json:"dead_letter"`
	Started    time.Time `json:"started"`
}

type offsetRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

type inputFile struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Records int64  `json:"records"`
}

// replayPart is one complete output file and its dead-letter file.
type replayPart struct {
	File         string `json:"file,omitempty"`
	DeadLetters  string `json:"dead_letters,omitempty"`
	Records      int64  `json:"records"`
	DeadLettered int64  `json:"dead_lettered"`
}

// total is the number of records in the job's ranges.
func (j *replayJob) total() int64 {
	var n int64
	for _, r := range j.Ranges {
		n += r.End - r.Start
	}
	return n
}

// remaining is the number of records not yet covered by positions.
func (c *replayCheckpoint) remaining() int64 {
	var n int64
	for p, r := range c.Job.Ranges {
		n += r.End - max(r.Start, c.Positions[p])
	}
	return n
}

func (c *replayCheckpoint) clone() *replayCheckpoint {
	cp := *c
	cp.Positions = maps.Clone(c.Positions)
	cp.Parts = append([]replayPart(nil), c.Parts...)
	cp.Counts = c.Counts.clone()
	return &cp
}

// readCheckpoint returns the checkpoint at path, or nil when there is none.
func readCheckpoint(path string) (*replayCheckpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	var c replayCheckpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is damaged: %w", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s has version %d; this kinfer reads version %d", path, c.Version, checkpointVersion)
	}
	if c.Positions == nil {
		c.Positions = map[int32]int64{}
	}
	return &c, nil
}

// writeCheckpoint saves c atomically: a crash leaves the previous
// checkpoint or this one, never a torn file.
func writeCheckpoint(path string, c *replayCheckpoint) error {
	c.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes renames and creations in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeCheckpointTemps deletes temporary checkpoint files a crash left.
func removeCheckpointTemps(path string) {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}
