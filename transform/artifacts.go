package transform

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The artifact directory format.
const (
	// ArtifactFormat is manifest.json's "format".
	ArtifactFormat = "kinfer-transform-artifacts"
	// ArtifactFormatVersion is the version written; readers refuse others.
	ArtifactFormatVersion = 1
	// ManifestFile is the manifest's name in the directory.
	ManifestFile = "manifest.json"
)

// maxArtifactFileBytes bounds what ReadArtifacts reads per file.
const maxArtifactFileBytes = 1 << 30

// Artifacts are a pipeline's fitted state: the manifest and, per stage,
// its artifact (nil for stages that fit nothing).
type Artifacts struct {
	Manifest Manifest
	Stages   []Artifact
}

// Manifest is manifest.json: what was fitted, for which stages, and the
// checksum that ties the directory together.
type Manifest struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"format_version"`
	// Version is the first 12 hex digits of the checksum, a short name
	// for this fit (stamped next to predictions, like a model version).
	Version string `json:"version,omitempty"`
	// Checksum is "sha256:" and the hex digest of the manifest's canonical
	// JSON encoding (compact, field order as here) with Version and
	// Checksum empty. It covers every stage file through their sha256.
	Checksum string          `json:"checksum,omitempty"`
	Fit      FitStats        `json:"fit"`
	Stages   []ManifestStage `json:"stages"`
}

// ManifestStage describes one stage of the fitted pipeline.
type ManifestStage struct {
	Index  int      `json:"index"`
	Type   string   `json:"type"`
	Fields []string `json:"fields"`
	// Fingerprint is the stage's fingerprint ([Pipeline.Fingerprints]) and
	// Spec the options it covers, to say what differs on a mismatch.
	Fingerprint string          `json:"fingerprint"`
	Spec        json.RawMessage `json:"spec"`
	// File is the stage's artifact file, and SHA256 the hex digest of its
	// bytes; both empty for a stage that fits nothing.
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// stageFile is the content of one stage's artifact file.
type stageFile struct {
	Stage       int             `json:"stage"`
	Type        string          `json:"type"`
	Fingerprint string          `json:"fingerprint"`
	Artifact    json.RawMessage `json:"artifact"`
}

// manifest describes the pipeline's stages for artifacts fitted now.
func (p *Pipeline) manifest(stats FitStats) Manifest {
	m := Manifest{Format: ArtifactFormat, FormatVersion: ArtifactFormatVersion, Fit: stats}
	for i := range p.stages {
		sp := &p.plan.stages[i]
		m.Stages = append(m.Stages, ManifestStage{
			Index: i, Type: sp.cfg.Type, Fields: append([]string(nil), sp.cfg.Fields...),
			Fingerprint: p.fps[i], Spec: append(json.RawMessage(nil), p.specs[i]...),
		})
	}
	return m
}

// checksum computes the manifest's checksum (see Manifest.Checksum).
func (m Manifest) checksum() (string, error) {
	m.Version, m.Checksum = "", ""
	data, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:]), nil
}

// stageFileName is the artifact file of stage i.
func stageFileName(i int, typ string) string {
	return fmt.Sprintf("stage-%02d-%s.json", i, typ)
}

// WriteArtifacts writes a as a new directory dir: one indented JSON file
// per fitted stage and manifest.json with their sha256 and the checksum.
// The files are written to a temporary sibling directory that is renamed
// to dir at the end, so dir is either complete or absent. An existing dir
// is an error. The same fit of the same data writes the same bytes.
func WriteArtifacts(dir string, a *Artifacts) error {
	if a == nil {
		return errors.New("transform: writing artifacts: no artifacts")
	}
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("transform: writing artifacts: %s already exists; remove it or choose another directory", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	m := a.Manifest
	m.Stages = append([]ManifestStage(nil), a.Manifest.Stages...)
	if len(m.Stages) != len(a.Stages) {
		return fmt.Errorf("transform: writing artifacts: manifest lists %d stages, %d artifacts given", len(m.Stages), len(a.Stages))
	}
	for i, art := range a.Stages {
		ms := &m.Stages[i]
		ms.File, ms.SHA256 = "", ""
		if art == nil {
			continue
		}
		body, err := json.MarshalIndent(art, "  ", "  ")
		if err != nil {
			return fmt.Errorf("transform: writing artifacts: stage %d: %w", i, err)
		}
		data, err := json.MarshalIndent(stageFile{Stage: i, Type: ms.Type, Fingerprint: ms.Fingerprint, Artifact: body}, "", "  ")
		if err != nil {
			return fmt.Errorf("transform: writing artifacts: stage %d: %w", i, err)
		}
		data = append(data, '\n')
		ms.File = stageFileName(i, ms.Type)
		h := sha256.Sum256(data)
		ms.SHA256 = hex.EncodeToString(h[:])
		if err := os.WriteFile(filepath.Join(tmp, ms.File), data, 0o644); err != nil {
			return fmt.Errorf("transform: writing artifacts: %w", err)
		}
	}
	sum, err := m.checksum()
	if err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	m.Checksum = sum
	m.Version = strings.TrimPrefix(sum, "sha256:")[:12]
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("transform: writing artifacts: %w", err)
	}
	return nil
}

// ReadArtifacts reads an artifact directory written by [WriteArtifacts]
// and verifies it: the format and its version, the manifest checksum, each
// stage file's sha256, and that each file is the artifact the manifest
// says. Whether the artifacts fit a pipeline is [Pipeline.Bind]'s check.
func ReadArtifacts(dir string) (*Artifacts, error) {
	fail := func(format string, args ...any) (*Artifacts, error) {
		return nil, fmt.Errorf("artifact directory %s: "+format, append([]any{dir}, args...)...)
	}
	data, err := readLimited(filepath.Join(dir, ManifestFile))
	if err != nil {
		return fail("%v", err)
	}
	m, err := parseManifest(data)
	if err != nil {
		return fail("%s: %v", ManifestFile, err)
	}
	a := &Artifacts{Manifest: *m, Stages: make([]Artifact, len(m.Stages))}
	for i, ms := range m.Stages {
		if ms.File == "" {
			continue
		}
		body, err := readLimited(filepath.Join(dir, ms.File))
		if err != nil {
			return fail("stage %d: %v", i, err)
		}
		h := sha256.Sum256(body)
		if got := hex.EncodeToString(h[:]); got != ms.SHA256 {
			return fail("stage %d: %s has sha256 %s, the manifest says %s: the file was changed after fit", i, ms.File, got, ms.SHA256)
		}
		art, err := decodeStageFile(body, ms)
		if err != nil {
			return fail("stage %d: %s: %v", i, ms.File, err)
		}
		a.Stages[i] = art
	}
	return a, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxArtifactFileBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxArtifactFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxArtifactFileBytes)
	}
	return buf.Bytes(), nil
}

// parseManifest decodes and verifies manifest.json.
func parseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %w", err)
	}
	if m.Format != ArtifactFormat {
		return nil, fmt.Errorf("format %q, want %q", m.Format, ArtifactFormat)
	}
	if m.FormatVersion != ArtifactFormatVersion {
		return nil, fmt.Errorf("format_version %d, this kinfer reads version %d: fit again with this kinfer", m.FormatVersion, ArtifactFormatVersion)
	}
	want, err := m.checksum()
	if err != nil {
		return nil, err
	}
	if m.Checksum != want {
		return nil, fmt.Errorf("checksum %q does not match the content (%s): the manifest was changed after fit", m.Checksum, want)
	}
	if m.Version != strings.TrimPrefix(want, "sha256:")[:12] {
		return nil, fmt.Errorf("version %q does not match the checksum", m.Version)
	}
	for i, ms := range m.Stages {
		if ms.Index != i {
			return nil, fmt.Errorf("stages[%d] has index %d", i, ms.Index)
		}
		if ms.File != "" && (ms.File != filepath.Base(ms.File) || ms.File == "." || ms.File == ".." || ms.File == ManifestFile || strings.ContainsAny(ms.File, `/\`)) {
			return nil, fmt.Errorf("stages[%d]: file %q is not a plain file name", i, ms.File)
		}
		if (ms.File == "") != (ms.SHA256 == "") {
			return nil, fmt.Errorf("stages[%d]: file and sha256 must be set together", i)
		}
	}
	return &m, nil
}

// decodeStageFile decodes one stage file and checks it against the
// manifest entry.
func decodeStageFile(data []byte, ms ManifestStage) (Artifact, error) {
	var sf stageFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("not a valid stage artifact: %w", err)
	}
	if sf.Stage != ms.Index || sf.Type != ms.Type || sf.Fingerprint != ms.Fingerprint {
		return nil, fmt.Errorf("holds stage %d (%s, %s), the manifest lists stage %d (%s, %s)", sf.Stage, sf.Type, sf.Fingerprint, ms.Index, ms.Type, ms.Fingerprint)
	}
	return decodeArtifact(ms.Type, sf.Artifact)
}

// decodeArtifact decodes the artifact of a stage type, rejecting unknown
// keys.
func decodeArtifact(typ string, data []byte) (Artifact, error) {
	switch typ {
	case TypeScaleToZScore:
		return decodeAs[MomentsArtifact](data)
	case TypeScaleTo01, TypeScaleByMinMax:
		return decodeAs[MinMaxArtifact](data)
	case TypeScaleToGaussian:
		return decodeAs[QuantilesArtifact](data)
	case TypeBucketize:
		return decodeAs[BucketsArtifact](data)
	case TypeVocabulary, TypeBagOfWords, TypeTFIDF:
		return decodeAs[VocabularyArtifact](data)
	}
	return nil, fmt.Errorf("stage type %q has no artifact", typ)
}

// decodeAs decodes an artifact of type T strictly.
func decodeAs[T any, P interface {
	*T
	Artifact
}](data []byte) (Artifact, error) {
	a, err := decodeInto[T](data)
	if err != nil {
		return nil, err
	}
	return P(a), nil
}
