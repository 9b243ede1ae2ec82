package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// artifactPipeline has a stage of every artifact type and some that fit
// nothing.
func artifactConfig() Config {
	return Config{
		Fields: map[string]FieldPolicy{"amount": {Policy: PolicyDefault, Default: 0}},
		Stages: []StageConfig{
			{Type: TypeScaleToZScore, Fields: []string{"amount"}, Outputs: []string{"amount_z"}},
			{Type: TypeScaleByMinMax, Fields: []string{"amount"}, Outputs: []string{"amount_mm"}, OutputMin: ptr(-1.0), OutputMax: ptr(1.0)},
			{Type: TypeScaleToGaussian, Fields: []string{"amount"}, Outputs: []string{"amount_g"}, NumQuantiles: 20},
			{Type: TypeBucketize, Fields: []string{"amount"}, Outputs: []string{"amount_b"}, NumBuckets: 4},
			{Type: TypeSplit, Fields: []string{"text"}, Outputs: []string{"words"}},
			{Type: TypeVocabulary, Fields: []string{"words"}, Outputs: []string{"word_ids"}, TopK: 5},
			{Type: TypeTFIDF, Fields: []string{"words"}, Outputs: []string{"tfidf"}},
			{Type: TypeHashStrings, Fields: []string{"words"}, Outputs: []string{"hashed"}, HashBuckets: 16},
		},
	}
}

func artifactRows() []map[string]any {
	texts := []string{"kafka streams records", "the model scores records", "records in topics", "a broker holds topics", "stream the records"}
	var rows []map[string]any
	for i := range 40 {
		rows = append(rows, map[string]any{"amount": float64(i*i%37) + 0.5, "text": texts[i%len(texts)]})
	}
	return rows
}

func TestArtifactsRoundTrip(t *testing.T) {
	p := mustNew(t, artifactConfig())
	a, err := p.Fit(context.Background(), rowsSource(artifactRows()))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "artifacts", "v1")
	if err := WriteArtifacts(dir, a); err != nil {
		t.Fatal(err)
	}
	if err := WriteArtifacts(dir, a); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwriting: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"manifest.json", "stage-00-scale_to_z_score.json", "stage-01-scale_by_min_max.json", "stage-02-scale_to_gaussian.json",
		"stage-03-bucketize.json", "stage-05-compute_and_apply_vocabulary.json", "stage-06-tfidf.json"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}

	loaded, err := p.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := loaded.Artifacts().Manifest
	if m.FormatVersion != ArtifactFormatVersion || len(m.Version) != 12 || !strings.HasPrefix(m.Checksum, "sha256:"+m.Version) {
		t.Errorf("manifest %+v", m)
	}
	inMemory, err := p.Bind(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range artifactRows()[:10] {
		if x, y := apply(t, inMemory, r), apply(t, loaded, r); !reflect.DeepEqual(x, y) {
			t.Errorf("loaded artifacts apply differently:\n%v\n%v", x, y)
		}
	}

	// The same fit of the same data writes the same bytes.
	a2, _ := p.Fit(context.Background(), rowsSource(artifactRows()))
	dir2 := filepath.Join(t.TempDir(), "again")
	if err := WriteArtifacts(dir2, a2); err != nil {
		t.Fatal(err)
	}
	for _, n := range want {
		x, _ := os.ReadFile(filepath.Join(dir, n))
		y, _ := os.ReadFile(filepath.Join(dir2, n))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two fits", n)
		}
	}
	// Human-readable: indented JSON with named fields.
	body, _ := os.ReadFile(filepath.Join(dir, "stage-03-bucketize.json"))
	if !bytes.Contains(body, []byte(`"boundaries": [`)) || !bytes.Contains(body, []byte("\n  \"artifact\": {")) {
		t.Errorf("bucketize artifact not readable:\n%s", body)
	}
}

func writeFitted(t *testing.T) (string, *Pipeline) {
	t.Helper()
	p := mustNew(t, artifactConfig())
	a, err := p.Fit(context.Background(), rowsSource(artifactRows()))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "art")
	if err := WriteArtifacts(dir, a); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func editJSON(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestArtifactsRefused(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		cfg  func(c *Config)
		want string
	}{
		{"stage file changed", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "stage-03-bucketize.json"), func(m map[string]any) {
				m["artifact"].(map[string]any)["fields"].([]any)[0].(map[string]any)["boundaries"] = []any{1, 2, 3}
			})
		}, nil, "stage 3: stage-03-bucketize.json has sha256"},
		{"manifest changed", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, ManifestFile), func(m map[string]any) { m["fit"].(map[string]any)["rows"] = 7 })
		}, nil, "manifest.json: checksum"},
		{"newer format", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, ManifestFile), func(m map[string]any) { m["format_version"] = 2 })
		}, nil, "format_version 2, this kinfer reads version 1"},
		{"missing file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "stage-06-tfidf.json"))
		}, nil, "stage 6:"},
		{"file outside the directory", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, ManifestFile), func(m map[string]any) {
				m["stages"].([]any)[0].(map[string]any)["file"] = "../x.json"
			})
		}, nil, "manifest.json"},
		{"option changed", nil, func(c *Config) { c.Stages[3].NumBuckets = 5 },
			`transform stage 3 (bucketize on ["amount"]): the artifacts were fitted with other options (num_buckets: fitted 4, configured 5): run kinfer fit again`},
		{"policy changed", nil, func(c *Config) { c.Fields["amount"] = FieldPolicy{Policy: PolicyDefault, Default: 1} },
			`policies: fitted {"amount":{"default":0,"policy":"default"}}, configured {"amount":{"default":1,"policy":"default"}}`},
		{"stage added", nil, func(c *Config) {
			c.Stages = append(c.Stages, StageConfig{Type: TypeHashStrings, Fields: []string{"text"}, HashBuckets: 2})
		}, "the artifacts were fitted for 8 stages, the pipeline has 9"},
		{"stage type changed", nil, func(c *Config) {
			c.Stages[0] = StageConfig{Type: TypeScaleTo01, Fields: []string{"amount"}, Outputs: []string{"amount_z"}}
		}, "transform stage 0: the artifacts were fitted for a scale_to_z_score stage, the pipeline has scale_to_0_1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, p := writeFitted(t)
			if c.edit != nil {
				c.edit(t, dir)
			}
			if c.cfg != nil {
				cfg := artifactConfig()
				c.cfg(&cfg)
				p = mustNew(t, cfg)
			}
			_, err := p.Load(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: %v\nwant an error containing %q", err, c.want)
			}
		})
	}
	// The output dtype is not part of the fingerprint: a refit is not needed.
	dir, _ := writeFitted(t)
	cfg := artifactConfig()
	cfg.Stages[0].DType = "float32"
	if _, err := mustNew(t, cfg).Load(dir); err != nil {
		t.Errorf("dtype change refused: %v", err)
	}
}

func TestBindChecksArtifacts(t *testing.T) {
	p := mustNew(t, Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: []string{"x"}, NumBuckets: 4}}})
	a, err := p.Fit(context.Background(), rowsSource(numRows(1.0, 2.0, 3.0, 4.0, 5.0)))
	if err != nil {
		t.Fatal(err)
	}
	a.Stages[0].(*BucketsArtifact).Fields[0].Boundaries = []float64{3, 2}
	if _, err := p.Bind(a); err == nil || !strings.Contains(err.Error(), "boundaries[1] 2 is not above boundaries[0] 3") {
		t.Errorf("unsorted boundaries: %v", err)
	}
}

// FuzzReadArtifacts feeds arbitrary bytes as a manifest and a stage file:
// reading must fail cleanly or produce artifacts that Bind checks without
// panicking.
func FuzzReadArtifacts(f *testing.F) {
	dir, p := writeFittedF(f)
	manifest, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	stage, _ := os.ReadFile(filepath.Join(dir, "stage-05-compute_and_apply_vocabulary.json"))
	f.Add(manifest, stage)
	f.Add([]byte(`{"format":"kinfer-transform-artifacts","format_version":1}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, manifest, stage []byte) {
		if m, err := parseManifest(manifest); err == nil {
			_ = p.matches(m, "fuzz")
		}
		for _, ty := range []string{TypeScaleToZScore, TypeScaleTo01, TypeScaleToGaussian, TypeBucketize, TypeVocabulary} {
			var sf stageFile
			if json.Unmarshal(stage, &sf) != nil {
				continue
			}
			art, err := decodeArtifact(ty, sf.Artifact)
			if err != nil {
				continue
			}
			for _, s := range p.Stages() {
				if s.Type() == ty || (ty == TypeScaleTo01 && s.Type() == TypeScaleByMinMax) {
					if art.check(s.plan()) == nil {
						if b, err := s.bind(art, p.Stages()[:s.Index()]); err == nil {
							_ = b.Apply(map[string]any{"amount": 1.0, "text": "kafka records", "words": []string{"kafka"}})
						}
					}
				}
			}
		}
	})
}

func writeFittedF(f *testing.F) (string, *Pipeline) {
	p, err := New(artifactConfig())
	if err != nil {
		f.Fatal(err)
	}
	a, err := p.Fit(context.Background(), rowsSource(artifactRows()))
	if err != nil {
		f.Fatal(err)
	}
	dir := filepath.Join(f.TempDir(), "art")
	if err := WriteArtifacts(dir, a); err != nil {
		f.Fatal(err)
	}
	return dir, p
}

// TestArtifactOfAndBindAs: an unfitted stage has no artifact (a nil
// interface, not a nil pointer in one), and binding an artifact of
// another stage's type names both types.
func TestArtifactOfAndBindAs(t *testing.T) {
	var unfitted *MomentsArtifact
	if a := artifactOf(unfitted); a != nil {
		t.Errorf("artifactOf(nil pointer) = %#v, want a nil interface", a)
	}
	m := &MomentsArtifact{}
	if a := artifactOf(m); a != Artifact(m) {
		t.Errorf("artifactOf(m) = %#v", a)
	}
	if got, err := bindAs[*MomentsArtifact](m); err != nil || got != m {
		t.Errorf("bindAs(m) = %v, %v", got, err)
	}
	_, err := bindAs[*MomentsArtifact](&BucketsArtifact{})
	if err == nil || err.Error() != "artifact *transform.BucketsArtifact, want *MomentsArtifact" {
		t.Errorf("bindAs(buckets) error %v", err)
	}
}
