package transform

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"

	"github.com/kinfer/kinfer/tensor"
)

// tokenizeStage encodes text with a Hugging Face tokenizer.json through
// github.com/sugarme/tokenizer, a pure-Go port of the Rust tokenizers
// library: WordPiece and BPE models, the BERT and byte-level
// normalizers/pre-tokenizers and the BERT, RoBERTa and template
// post-processors.
type tokenizeStage struct {
	base
	stateless
	tk     *tokenizer.Tokenizer
	sha256 string // of the tokenizer file, part of the stage's fingerprint
	padID  int
}

func (s *tokenizeStage) bind(Artifact, []Stage) (Stage, error) { return s, nil }

// loadTokenizer reads a tokenizer.json and configures truncation from the
// stage (the file's own truncation and padding settings are ignored, so
// that pipeline.yaml alone says what the model gets).
func loadTokenizer(path string, cfg *StageConfig) (tk *tokenizer.Tokenizer, sum string, padID int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("tokenizer_file: %w", err)
	}
	h := sha256.Sum256(data)
	sum = hex.EncodeToString(h[:])
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, "", 0, fmt.Errorf("tokenizer_file %s: not JSON: %w", path, err)
	}
	if doc["normalizer"] != nil {
		doc["normalizer"] = patchNormalizer(doc["normalizer"])
	}
	filePad, _ := doc["padding"].(map[string]any)
	patched, err := json.Marshal(doc)
	if err != nil {
		return nil, "", 0, fmt.Errorf("tokenizer_file %s: %w", path, err)
	}
	// The library asserts JSON types without checking them; a malformed
	// file panics instead of failing.
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("unsupported or malformed tokenizer: %v", r)
			}
		}()
		tk, err = pretrained.FromReader(bytes.NewReader(patched))
	}()
	if err != nil {
		return nil, "", 0, fmt.Errorf("tokenizer_file %s: %w", path, err)
	}
	if tk.GetModel() == nil {
		return nil, "", 0, fmt.Errorf("tokenizer_file %s: no model", path)
	}
	tk.WithPadding(nil)
	tk.WithTruncation(nil)
	if cfg.MaxLength > 0 {
		tk.WithTruncation(&tokenizer.TruncationParams{MaxLength: cfg.MaxLength, Strategy: tokenizer.LongestFirst})
	}
	if cfg.Padding == "max_length" {
		padTok := cfg.PadToken
		if padTok == "" {
			if t, ok := filePad["pad_token"].(string); ok {
				padTok = t
			}
		}
		candidates := []string{padTok}
		if padTok == "" {
			candidates = []string{"[PAD]", "<pad>"}
		}
		found := false
		for _, c := range candidates {
			if id, ok := tk.TokenToId(c); ok {
				padID, found = id, true
				break
			}
		}
		if !found {
			return nil, "", 0, fmt.Errorf("tokenizer_file %s: padding: no pad token %q in the vocabulary (set pad_token)", path, candidates)
		}
	}
	return tk, sum, padID, nil
}

// patchNormalizer makes the library's BertNormalizer behave as Hugging
// Face's: strip_accents null means "as lowercase" (the library reads it as
// false), and stripping accents decomposes first (NFD, then drop nonspacing
// marks; the library only drops marks, so "é" written as one rune stays).
func patchNormalizer(n any) any {
	m, ok := n.(map[string]any)
	if !ok {
		return n
	}
	switch m["type"] {
	case "BertNormalizer":
		strip, isBool := m["strip_accents"].(bool)
		if !isBool {
			strip, _ = m["lowercase"].(bool)
		}
		m["strip_accents"] = strip
		if strip {
			return map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFD"}, m}}
		}
	case "Sequence":
		if items, ok := m["normalizers"].([]any); ok {
			for i, it := range items {
				items[i] = patchNormalizer(it)
			}
		}
	}
	return m
}

func (s *tokenizeStage) Apply(row map[string]any) error {
	text, err := s.text(row, 0)
	if err != nil {
		return err
	}
	enc, err := s.encode(text)
	if err != nil {
		return s.rowError(0, bad(ReasonTokenizer, "%v", err))
	}
	cfg := &s.p.cfg
	n := len(enc.Ids)
	if cfg.Padding == "max_length" && n < cfg.MaxLength {
		n = cfg.MaxLength
	}
	ids := make([]int64, n)
	mask := make([]int64, n)
	var types []int64
	if cfg.TypeIDsOutput != "" {
		types = make([]int64, n)
	}
	for k := range ids {
		if k >= len(enc.Ids) {
			ids[k] = int64(s.padID)
			continue
		}
		ids[k] = int64(enc.Ids[k])
		mask[k] = int64(enc.AttentionMask[k])
		if types != nil && k < len(enc.TypeIds) {
			types[k] = int64(enc.TypeIds[k])
		}
	}
	row[cfg.Outputs[0]] = idTensor(s.p.dtype, ids)
	row[cfg.MaskOutput] = idTensor(s.p.dtype, mask)
	if types != nil {
		row[cfg.TypeIDsOutput] = idTensor(s.p.dtype, types)
	}
	return nil
}

// validate reads the text as Apply does, for fit, which does not need the
// ids.
func (s *tokenizeStage) validate(row map[string]any) error {
	_, err := s.text(row, 0)
	return err
}

func (s *tokenizeStage) encode(text string) (enc *tokenizer.Encoding, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tokenizer panicked: %v", r)
		}
	}()
	enc, err = s.tk.EncodeSingle(text, *s.p.cfg.AddSpecialTokens)
	if err == nil && len(enc.AttentionMask) != len(enc.Ids) {
		err = fmt.Errorf("tokenizer returned %d ids and %d mask values", len(enc.Ids), len(enc.AttentionMask))
	}
	return enc, err
}

func idTensor(dt tensor.DType, vals []int64) *tensor.Tensor {
	if dt == tensor.Int32 {
		d := make([]int32, len(vals))
		for i, v := range vals {
			d[i] = int32(v)
		}
		return &tensor.Tensor{DType: dt, Shape: []int64{int64(len(vals))}, Data: d}
	}
	return &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(vals))}, Data: vals}
}
