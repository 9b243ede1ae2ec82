package kinfercmd

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/kinfer/kinfer/internal/config"
)

// sourceFlags are the bounded-source flags that replay and fit share; each
// overrides its replay: field only when given.
type sourceFlags struct {
	topic, partitions, from, to, inputFiles *string
}

// addSourceFlags registers the flags; verb ("replay", "fit on") and toDoc
// (what "end" means for this command) shape their help.
func addSourceFlags(fs *flag.FlagSet, verb, toDoc string) *sourceFlags {
	return &sourceFlags{
		topic:      fs.String("topic", "", "topic to "+verb+" (replay.topic; default kafka.input_topic)"),
		partitions: fs.String("partitions", "", "comma-separated partitions (replay.partitions; default all)"),
		from:       fs.String("from", "", `slice start: earliest, an offset, partition:offset pairs "0:100,1:250", or an RFC 3339 time (replay.from)`),
		to:         fs.String("to", "", `slice end (exclusive): end (`+toDoc+`), an offset, partition:offset pairs, or an RFC 3339 time (replay.to)`),
		inputFiles: fs.String("input-files", "", "glob of Avro container files to read instead of a topic (replay.input_files)"),
	}
}

// flagsSet lists the flags given on the command line.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// apply writes the given flags over r.
func (sf *sourceFlags) apply(set map[string]bool, r *config.Replay) error {
	if set["topic"] {
		r.Topic = *sf.topic
	}
	if set["partitions"] {
		r.Partitions = nil
		for _, s := range splitList(*sf.partitions) {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return usageError{fmt.Errorf("--partitions: %q is not a partition number", s)}
			}
			r.Partitions = append(r.Partitions, int32(n))
		}
	}
	if set["from"] {
		r.From = *sf.from
	}
	if set["to"] {
		r.To = *sf.to
	}
	if set["input-files"] {
		a, err := filepath.Abs(*sf.inputFiles)
		if err != nil {
			return usageError{err}
		}
		r.InputFiles = a
	}
	return nil
}
