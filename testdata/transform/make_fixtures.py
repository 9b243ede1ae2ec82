#!/usr/bin/env python3
"""Generate the parity fixtures for kinfer's transform package.

Reference implementations (scikit-learn, numpy, Hugging Face tokenizers) run
on fixed, seeded data sets; their inputs, fitted parameters and outputs are
written as JSON so that transform's Go tests can check that kinfer fits the
same artifacts and applies them to the same outputs.

Files written next to this script:
  numeric.json          StandardScaler, MinMaxScaler, KBinsDiscretizer
                        (quantile, inverted_cdf), QuantileTransformer
                        (normal) on a 1000-row table, applied to 200 rows
  quantiles_large.json  1,000,000 values from a documented generator (the Go
                        test regenerates them) and numpy's exact decile edges,
                        for the streaming quantile sketch's error bound
  text.json             TfidfVectorizer, CountVectorizer, HashingVectorizer
                        and murmurhash3_32 on a 400-document corpus, applied
                        to 60 held-out documents; vocabularies by frequency
  tokenizer/wordpiece.json, tokenizer/bpe.json
                        tokenizer files trained here with `tokenizers`
  tokenizer/corpus.txt  the training corpus (one line per document)
  tokenizer/expected.json
                        the reference tokenizer's ids, attention masks and
                        type ids for 40 sentences, with and without
                        truncation and padding

Everything is seeded; a rerun reproduces the same bytes. The script checks
its own outputs (sizes < 1 MB, no ties where scikit-learn's order would be
arbitrary) and exits non-zero if a check fails.

Regenerate (from the repository root):
  python3 -m venv .cache/transform-venv
  .cache/transform-venv/bin/pip install -r testdata/transform/requirements.txt
  .cache/transform-venv/bin/python testdata/transform/make_fixtures.py
"""

import json
import math
import os
import sys
import warnings

import numpy as np
import sklearn
import tokenizers
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, QuantileTransformer, StandardScaler
from sklearn.utils import murmurhash3_32
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BYTES = 1024 * 1024
FAILURES = []


def check(name, ok, msg):
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {msg}")
    if not ok:
        FAILURES.append(f"{name}: {msg}")


# ---------------------------------------------------------------- JSON output

def jfloat(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x} in a fixture")
    return x


def tolist(a):
    """numpy -> plain Python (floats stay float64, ints stay int)."""
    if isinstance(a, np.ndarray):
        a = a.tolist()
    if isinstance(a, (list, tuple)):
        return [tolist(v) for v in a]
    if isinstance(a, (np.floating, float)):
        return jfloat(a)
    if isinstance(a, (np.integer,)):
        return int(a)
    return a


def dump(path, obj):
    """One top-level key per line and one row per line: diffable, < 1 MB."""
    def enc(v, depth):
        if isinstance(v, dict):
            if depth >= 2:
                return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            inner = ",\n".join(f"{json.dumps(k, ensure_ascii=False)}:{enc(x, depth + 1)}" for k, x in v.items())
            return "{\n" + inner + "\n}"
        if isinstance(v, list) and v and isinstance(v[0], (list, dict)) and depth <= 3:
            return "[\n" + ",\n".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v) + "\n]"
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    text = enc(obj, 0) + "\n"
    json.loads(text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    size = os.path.getsize(path)
    check(os.path.relpath(path, HERE), size < MAX_BYTES, f"{size} bytes < {MAX_BYTES}")


# ---------------------------------------------------------------- numeric

NUMERIC_COLUMNS = ["amount", "age", "score", "flat"]


def numeric_table(rng, n, extremes):
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2)
    age = rng.integers(18, 80, n).astype(np.float64)   # integer-valued: repeated quantiles
    score = rng.normal(0.0, 1.0, n) * 3.5 + 1.25
    flat = np.full(n, 5.0)                              # constant column
    X = np.column_stack([amount, age, score, flat])
    if extremes:  # values outside the fitted range
        X[0] = [-1000.0, 5.0, -40.0, 5.0]
        X[1] = [1.0e6, 120.0, 40.0, 7.5]
        X[2] = [0.0, 18.0, 0.0, 4.0]
    return X


def make_numeric():
    print("numeric:")
    rng = np.random.default_rng(8)
    X_fit = numeric_table(rng, 1000, False)
    X_app = numeric_table(rng, 200, True)

    out = {
        "generator": f"numpy {np.__version__}, scikit-learn {sklearn.__version__}",
        "columns": NUMERIC_COLUMNS,
        "fit_rows": tolist(X_fit),
        "apply_rows": tolist(X_app),
    }

    ss = StandardScaler().fit(X_fit)
    out["standard_scaler"] = {
        "params": "StandardScaler()",
        "mean": tolist(ss.mean_), "var": tolist(ss.var_), "scale": tolist(ss.scale_),
        "n_samples_seen": int(ss.n_samples_seen_),
        "apply": tolist(ss.transform(X_app)),
    }

    mm = {}
    for name, kw in [("default", {}), ("range_m1_1_clip", {"feature_range": (-1.0, 1.0), "clip": True})]:
        s = MinMaxScaler(**kw).fit(X_fit)
        mm[name] = {
            "params": f"MinMaxScaler({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
            "feature_range": list(s.feature_range), "clip": bool(s.clip),
            "data_min": tolist(s.data_min_), "data_max": tolist(s.data_max_),
            "apply": tolist(s.transform(X_app)),
        }
    out["min_max_scaler"] = mm

    kb = {}
    for n_bins in (4, 10):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant column and merged bins warn
            s = KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="quantile",
                                 quantile_method="inverted_cdf", subsample=None).fit(X_fit)
        kb[str(n_bins)] = {
            "params": f"KBinsDiscretizer(n_bins={n_bins}, encode='ordinal', strategy='quantile', "
                      "quantile_method='inverted_cdf', subsample=None)",
            "bin_edges": [tolist(e) if np.all(np.isfinite(e)) else None for e in s.bin_edges_],
            "n_bins": tolist(s.n_bins_),
            "apply": tolist(s.transform(X_app).astype(np.int64)),
        }
        # the constant column gets [-inf, inf] edges: one bucket, written as null
    out["kbins_discretizer"] = kb

    qt = QuantileTransformer(n_quantiles=100, output_distribution="normal", subsample=None).fit(X_fit)
    out["quantile_transformer"] = {
        "params": "QuantileTransformer(n_quantiles=100, output_distribution='normal', subsample=None)",
        "quantiles": tolist(qt.quantiles_.T),   # one row per column
        "apply": tolist(qt.transform(X_app)),
    }
    from scipy.stats import norm
    ps = [1e-300, 1e-100, 1e-20, 1e-10, 1e-7 - np.spacing(1), 1e-5, 0.001, 0.01, 0.02425, 0.1,
          0.3, 0.075, 0.425, 0.5, 0.575, 0.9, 0.975, 0.999, 1 - (1e-7 - np.spacing(1)), 1 - 1e-12]
    out["norm_ppf"] = {"params": "scipy.stats.norm.ppf", "p": tolist(ps), "ppf": tolist(norm.ppf(ps))}
    dump(os.path.join(HERE, "numeric.json"), out)


# ---------------------------------------------------------------- large quantiles

LCG_MUL = 6364136223846793005
LCG_ADD = 1442695040888963407
LARGE_N = 1_000_000


def large_values(n, seed=1):
    """x_i = floor(u^3 * 100000) / 100 with u the top 53 bits of an LCG state:
    a skewed distribution on a 0.01 grid with many repeated values. Every step is
    exact IEEE-754 double arithmetic, so Go regenerates the same values."""
    s = seed
    out = np.empty(n, dtype=np.float64)
    mask = (1 << 64) - 1
    for i in range(n):
        s = (s * LCG_MUL + LCG_ADD) & mask
        u = float(s >> 11) * (2.0 ** -53)
        out[i] = math.floor(u * u * u * 100000.0) / 100.0
    return out


def make_large():
    print("quantiles_large:")
    x = large_values(LARGE_N)
    s = KBinsDiscretizer(n_bins=10, encode="ordinal", strategy="quantile",
                         quantile_method="inverted_cdf", subsample=None).fit(x.reshape(-1, 1))
    out = {
        "generator": "state = state*6364136223846793005 + 1442695040888963407 mod 2^64 (state_0 = 1); "
                     "u = (state >> 11) * 2^-53; x = floor(u*u*u*100000) / 100",
        "n": LARGE_N,
        "first": tolist(x[:8]),
        "sum": jfloat(math.fsum(x)),
        "distinct": int(len(np.unique(x))),
        "params": "KBinsDiscretizer(n_bins=10, encode='ordinal', strategy='quantile', "
                  "quantile_method='inverted_cdf', subsample=None)",
        "bin_edges": tolist(s.bin_edges_[0]),
    }
    dump(os.path.join(HERE, "quantiles_large.json"), out)


# ---------------------------------------------------------------- text

TOPICS = [
    "market price stock trade bank loan credit rate money fund invest profit share bond yield",
    "player team match goal score league coach season win ball field game cup",
    "cloud server kafka stream record topic broker partition offset batch model tensor",
    "river mountain forest lake valley trail summit camp snow rain wind storm",
    "recipe flour sugar butter oven bread cake coffee café naïve crème brûlée",
]
FILLER = "the a of and to in is it for on with as was at by an be this that from or are"
NOISE = ["2024", "x1", "user_id", "v2_0", "I", "A", "e-mail", "don't", "co-op", "100%", "$5"]


def doc(rng, topic_words, filler, n_words):
    words = []
    for _ in range(n_words):
        r = rng.random()
        if r < 0.35:
            w = filler[min(int(rng.zipf(1.6)) - 1, len(filler) - 1)]
        elif r < 0.93:
            w = topic_words[min(int(rng.zipf(1.3)) - 1, len(topic_words) - 1)]
        else:
            w = NOISE[int(rng.integers(len(NOISE)))]
        if rng.random() < 0.12:
            w = w.capitalize()
        if rng.random() < 0.04:
            w = w.upper()
        words.append(w)
    text = " ".join(words)
    if rng.random() < 0.5:
        text += rng.choice([".", "!", "?", "...", ";"])
    return text


def make_corpus():
    rng = np.random.default_rng(20)
    topics = [t.split() for t in TOPICS]
    filler = FILLER.split()
    fit_docs = [doc(rng, topics[i % len(topics)], filler, int(rng.integers(5, 26))) for i in range(400)]
    eval_docs = [doc(rng, topics[int(rng.integers(len(topics)))], filler, int(rng.integers(3, 30))) for _ in range(52)]
    eval_docs += [
        "",
        "!!! ... ???",
        "zebra quokka axolotl",                     # all out of vocabulary
        "Kafka KAFKA kafka stream-stream",          # case folding, hyphen split
        "café Café CAFÉ naïve",                     # accents
        "user_id v2_0 x1 2024 a I",                 # underscores, digits, 1-letter words
        "market " * 40,                             # one word many times
        "tensor\tbatch\nmodel  offset",             # tabs and newlines
    ]
    return fit_docs, eval_docs


def sparse_rows(M):
    """CSR matrix -> [[[index, value], ...] per row], indices ascending."""
    M = M.tocsr()
    M.sort_indices()
    rows = []
    for i in range(M.shape[0]):
        a, b = M.indptr[i], M.indptr[i + 1]
        rows.append([[int(j), jfloat(v)] for j, v in zip(M.indices[a:b], M.data[a:b])])
    return rows


def analyzer_tokens(docs):
    analyze = CountVectorizer().build_analyzer()
    return [analyze(d) for d in docs]


def make_text(fit_docs, eval_docs):
    print("text:")
    out = {
        "generator": f"scikit-learn {sklearn.__version__}",
        "fit_docs": fit_docs,
        "eval_docs": eval_docs,
        # sklearn's default analyzer: lowercase, token_pattern (?u)\b\w\w+\b
        "eval_tokens": analyzer_tokens(eval_docs),
    }

    tfidf = {}
    configs = [
        ("default", {}),
        ("bigrams", {"ngram_range": (1, 2), "min_df": 2, "max_features": 148,
                     "sublinear_tf": True, "smooth_idf": False, "norm": "l1"}),
        ("raw", {"norm": None, "use_idf": True}),
    ]
    for name, kw in configs:
        v = TfidfVectorizer(**kw).fit(fit_docs)
        vocab = sorted(v.vocabulary_, key=v.vocabulary_.get)
        if "max_features" in kw:
            cv = CountVectorizer(ngram_range=kw["ngram_range"], min_df=kw["min_df"]).fit(fit_docs)
            tf = np.asarray(cv.transform(fit_docs).sum(axis=0)).ravel()
            counts = np.sort(tf)[::-1]
            k = kw["max_features"]
            check(f"tfidf {name}", counts[k - 1] != counts[k],
                  f"no tie at the max_features cut ({counts[k - 1]} vs {counts[k]})")
        tfidf[name] = {
            "params": f"TfidfVectorizer({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
            "vocabulary": vocab,
            "idf": tolist(v.idf_),
            "apply": sparse_rows(v.transform(eval_docs)),
        }
    out["tfidf_vectorizer"] = tfidf

    cv = CountVectorizer().fit(fit_docs)
    out["count_vectorizer"] = {
        "params": "CountVectorizer()",
        "vocabulary": sorted(cv.vocabulary_, key=cv.vocabulary_.get),
        "apply": sparse_rows(cv.transform(eval_docs)),
    }

    hv = {}
    for name, kw in [("signed_l2", {"n_features": 64}),
                     ("counts", {"n_features": 1024, "alternate_sign": False, "norm": None})]:
        h = HashingVectorizer(**kw)
        hv[name] = {
            "params": f"HashingVectorizer({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
            "n_features": kw["n_features"],
            "alternate_sign": kw.get("alternate_sign", True),
            "norm": kw.get("norm", "l2"),
            "apply": sparse_rows(h.transform(eval_docs)),
        }
    out["hashing_vectorizer"] = hv

    words = sorted({t for toks in analyzer_tokens(fit_docs + eval_docs) for t in toks})
    words += ["", "a", "ü", "日本語", "emoji 🙂", "x" * 33]
    out["murmurhash3_32"] = {
        "params": "sklearn.utils.murmurhash3_32(s, seed=0, positive=False) on the UTF-8 bytes",
        "strings": words,
        "hashes": [int(murmurhash3_32(w, seed=0, positive=False)) for w in words],
    }

    # TFT-style vocabulary: order by total count descending, ties by token
    # ascending (the definition kinfer documents; plain Python is the reference).
    tok_fit = analyzer_tokens(fit_docs)
    counts, dfs = {}, {}
    for toks in tok_fit:
        for t in toks:
            counts[t] = counts.get(t, 0) + 1
        for t in set(toks):
            dfs[t] = dfs.get(t, 0) + 1
    by_freq = sorted(counts, key=lambda t: (-counts[t], t))
    out["frequency_vocabulary"] = {
        "params": "all tokens of fit_docs (sklearn's analyzer), ordered by count desc then token asc",
        "vocabulary": by_freq,
        "counts": [counts[t] for t in by_freq],
        "document_frequency": [dfs[t] for t in by_freq],
        "top_k_10_threshold_3": [t for t in by_freq if counts[t] >= 3][:10],
    }
    dump(os.path.join(HERE, "text.json"), out)


# ---------------------------------------------------------------- tokenizers

TOKENIZER_SENTENCES = [
    "The broker stores every record of a topic partition in order.",
    "Kafka streams feed the model; the model scores each transaction.",
    "Hello, world!",
    "",
    "   leading and trailing spaces   ",
    "UPPER lower MiXeD CaSe",
    "Café crème brûlée is naïve.",
    "Numbers: 3.14159, 2024-11-25 and 1,000,000.",
    "emoji 🙂 and symbols ™ © ½",
    "日本語のテキスト and 中文",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn while the storm rolls in.",
    "tab\tseparated\tvalues\nand a newline",
    "don't won't can't it's",
    "user_id=42&topic=payments.v2",
    "offset offset offset offset offset offset offset offset offset offset offset offset offset offset offset offset offset offset",
]


def tokenizer_corpus(fit_docs):
    rng = np.random.default_rng(30)
    extra = [
        "The broker stores records in partitions and the consumer reads them in order.",
        "A model turns a batch of tensors into predictions, one per record.",
        "Streaming inference keeps latency low while the batch fills.",
        "Preprocessing must be identical in training and in serving.",
        "Tokenizers split text into words and words into subword pieces.",
    ]
    lines = list(fit_docs) + extra * 3
    rng.shuffle(lines)
    return lines


WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(lines):
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                      strip_accents=None, lowercase=True)
    # The trainer numbers new "##c" pieces in hash-map order, and merge ties
    # are broken by those numbers, so a plain run is not reproducible. Giving
    # every "##c" piece a fixed number up front (as a trainer special token)
    # makes it so; the final tokenizer is then rebuilt from the vocabulary
    # with only the real special tokens.
    chars = sorted({c for line in lines for c in norm.normalize_str(line) if not c.isspace()})
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer = norm
    draft.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, min_frequency=2, show_progress=False,
                                        special_tokens=WORDPIECE_SPECIALS + ["##" + c for c in chars])
    draft.train_from_iterator(lines, trainer)

    tok = Tokenizer(models.WordPiece(vocab=draft.get_vocab(), unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = norm
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(WORDPIECE_SPECIALS)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def train_bpe(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=500, min_frequency=2, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def encode_all(path, pad_token, sentences):
    """Reference encodings from the saved file, so the file is what is tested."""
    res = {}
    variants = [
        ("full", None, False),
        ("truncate_16", 16, False),
        ("pad_16", 16, True),
    ]
    for name, max_len, pad in variants:
        tok = Tokenizer.from_file(path)
        if max_len:
            tok.enable_truncation(max_length=max_len)
        if pad:
            tok.enable_padding(length=max_len, pad_id=tok.token_to_id(pad_token), pad_token=pad_token)
        encs = tok.encode_batch(sentences)
        res[name] = {
            "max_length": max_len or 0,
            "padding": "max_length" if pad else "none",
            "ids": [e.ids for e in encs],
            "attention_mask": [e.attention_mask for e in encs],
            "type_ids": [e.type_ids for e in encs],
            "tokens": [e.tokens for e in encs],
        }
    return res


def make_tokenizers(fit_docs):
    print("tokenizer:")
    folder = os.path.join(HERE, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    lines = tokenizer_corpus(fit_docs)
    with open(os.path.join(folder, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    out = {
        "generator": f"tokenizers {tokenizers.__version__}",
        "sentences": TOKENIZER_SENTENCES,
    }
    for name, train, pad in [("wordpiece", train_wordpiece, "[PAD]"), ("bpe", train_bpe, "<pad>")]:
        tok = train(lines)
        path = os.path.join(folder, f"{name}.json")
        tok.save(path, pretty=True)
        size = os.path.getsize(path)
        check(f"tokenizer/{name}.json", size < MAX_BYTES, f"{size} bytes, vocab {tok.get_vocab_size()}")
        out[name] = encode_all(path, pad, TOKENIZER_SENTENCES)
        lens = [len(x) for x in out[name]["full"]["ids"]]
        check(f"tokenizer {name}", max(lens) > 16 and min(lens) <= 2,
              f"sentence lengths {min(lens)}..{max(lens)} cover truncation and short rows")
    dump(os.path.join(folder, "expected.json"), out)


def main():
    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, tokenizers {tokenizers.__version__}")
    make_numeric()
    make_large()
    fit_docs, eval_docs = make_corpus()
    make_text(fit_docs, eval_docs)
    make_tokenizers(fit_docs)
    if FAILURES:
        print("FAILED CHECKS:")
        for f in FAILURES:
            print("  " + f)
        sys.exit(1)


if __name__ == "__main__":
    main()
