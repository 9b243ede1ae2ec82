#!/usr/bin/env python3
"""Make testdata/transform/pipeline/: a model trained on TRANSFORMED features,
the data split into a fit slice and a stream slice, and the reference: the
same transforms done here in Python with the fit slice's statistics, then the
model's predictions on the stream slice.

kinfer's end-to-end test (cmd/kinfer, TestIntegrationTransformFitThenStream)
produces the fit slice to a topic, runs `kinfer fit` on it, produces the
stream slice, runs `kinfer run` with the artifacts, and compares every
prediction with `reference.probabilities` here.

The transform (pipeline/transform.json, the `transform:` section kinfer runs):

  scale_to_z_score  amount, risk -> amount_z, risk_z   (risk: policy default 0)
  bucketize         amount_z     -> amount_bucket      (3 quantile buckets of the
                                                        z-score: a second fit pass)
  bucketize         age          -> age_bucket         (4 quantile buckets)
  one_hot           age_bucket   -> age_onehot         (float32 [4])
  compute_and_apply_vocabulary category -> category_id (1 OOV bucket)
  one_hot           category_id  -> category_onehot    (float32 [V+1])

The references: numpy mean and population std (scikit-learn StandardScaler's
definition), KBinsDiscretizer(strategy="quantile",
quantile_method="inverted_cdf") for the boundaries (exact quantiles: the fit
slice is far under kinfer's exact_limit), a vocabulary ordered by frequency,
ties by token, counted in plain Python, and scikit-learn LogisticRegression's
predict_proba (float64) for the predictions. A row whose amount is null is
dead-lettered (policy dead_letter: skipped by the fit, sent to the
dead-letter topic in streaming); a null risk becomes 0 (policy default),
also in the fit.

The model (model.onnx, built with onnx.helper from the fitted coefficients):
inputs numeric float32 [N,3] (amount_z, risk_z, amount_bucket), age float32
[N,4], category float32 [N,V+1]; Concat, MatMul, Add, Softmax -> probabilities
float32 [N,2], equal to predict_proba. The script checks onnxruntime on the
float32 features against predict_proba (within 1e-6) and exits non-zero when
a check fails.

Deterministic: a seeded generator, no downloads. Run from the repository root:

  python3 -m venv .cache/fixtures-venv
  .cache/fixtures-venv/bin/pip install -r testdata/transform/pipeline-requirements.txt
  .cache/fixtures-venv/bin/python testdata/transform/make_pipeline_fixture.py
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import KBinsDiscretizer

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "pipeline")
SEED = 20250811
N_FIT, N_STREAM = 400, 200
CATEGORIES = ["grocery", "travel", "electronics", "fuel", "dining", "pharmacy"]
CAT_WEIGHTS = [0.30, 0.10, 0.15, 0.20, 0.15, 0.10]
NEW_CATEGORY = "crypto"  # never in the fit slice: out of vocabulary

TRANSFORM = {
    "policy": "dead_letter",
    "fields": {"risk": {"policy": "default", "default": 0.0}},
    "stages": [
        {"type": "scale_to_z_score", "fields": ["amount", "risk"], "outputs": ["amount_z", "risk_z"]},
        {"type": "bucketize", "fields": ["amount_z"], "outputs": ["amount_bucket"], "num_buckets": 3},
        {"type": "bucketize", "fields": ["age"], "outputs": ["age_bucket"], "num_buckets": 4},
        {"type": "one_hot", "fields": ["age_bucket"], "outputs": ["age_onehot"]},
        {"type": "compute_and_apply_vocabulary", "fields": ["category"], "outputs": ["category_id"], "num_oov_buckets": 1},
        {"type": "one_hot", "fields": ["category_id"], "outputs": ["category_onehot"]},
    ],
}

SCHEMA = {
    "type": "record",
    "name": "Payment",
    "namespace": "kinfer.test",
    "fields": [
        {"name": "transaction_id", "type": "string"},
        {"name": "amount", "type": ["null", "double"], "default": None},
        {"name": "risk", "type": ["null", "double"], "default": None},
        {"name": "age", "type": "int"},
        {"name": "category", "type": "string"},
    ],
}


def fail(msg):
    print("make_pipeline_fixture: " + msg, file=sys.stderr)
    sys.exit(1)


def make_rows(rng, n, start, null_amount, null_risk, new_category):
    rows = []
    amount = np.round(np.exp(rng.normal(3.5, 0.9, n)), 2)
    risk = np.round(rng.normal(0.3, 0.15, n), 4)
    age = rng.integers(18, 81, n)
    cat = rng.choice(len(CATEGORIES), size=n, p=CAT_WEIGHTS)
    for i in range(n):
        rows.append({
            "transaction_id": "tx-%d" % (start + i),
            "amount": None if i in null_amount else float(amount[i]),
            "risk": None if i in null_risk else float(risk[i]),
            "age": int(age[i]),
            "category": NEW_CATEGORY if i in new_category else CATEGORIES[cat[i]],
        })
    return rows


def main():
    rng = np.random.default_rng(SEED)
    fit = make_rows(rng, N_FIT, 0, {7, 51, 130, 222, 305, 388}, set(range(3, N_FIT, 23)), set())
    stream = make_rows(rng, N_STREAM, N_FIT, {4, 77, 150, 199}, set(range(5, N_STREAM, 17)), {10, 60, 61, 140})
    # Amounts outside the fitted range, to exercise extrapolation.
    stream[1]["amount"], stream[2]["amount"] = 0.01, 5000.0

    # Fit, as kinfer does: rows a policy dead-letters are skipped by every
    # stage; a null risk is observed as its default.
    kept = [r for r in fit if r["amount"] is not None]
    amount = np.array([r["amount"] for r in kept])
    risk = np.array([0.0 if r["risk"] is None else r["risk"] for r in kept])
    mean = [float(amount.mean()), float(risk.mean())]
    std = [float(amount.std()), float(risk.std())]  # population std (ddof 0)
    amount_z = (amount - mean[0]) / std[0]
    risk_z = (risk - mean[1]) / std[1]

    def edges(x, k):
        kb = KBinsDiscretizer(n_bins=k, encode="ordinal", strategy="quantile",
                              quantile_method="inverted_cdf", subsample=None)
        kb.fit(x.reshape(-1, 1))
        b = [float(v) for v in kb.bin_edges_[0][1:-1]]
        if len(b) != k - 1 or any(b[i] >= b[i + 1] for i in range(len(b) - 1)):
            fail("boundaries %r collapse: change the seed" % b)
        return kb, b

    kb_z, z_bounds = edges(amount_z, 3)
    ages = np.array([r["age"] for r in kept], dtype=np.float64)
    kb_age, age_bounds = edges(ages, 4)

    counts = {}
    for r in kept:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    vocab = sorted(counts, key=lambda t: (-counts[t], t))
    V = len(vocab)
    depth_cat = V + 1  # one OOV bucket

    def bucket(x, b):
        return int(np.searchsorted(np.array(b), x, side="right"))

    def features(r):
        a = r["amount"]
        k = 0.0 if r["risk"] is None else r["risk"]
        az = (a - mean[0]) / std[0]
        rz = (k - mean[1]) / std[1]
        ab = bucket(az, z_bounds)
        ag = bucket(float(r["age"]), age_bounds)
        cid = vocab.index(r["category"]) if r["category"] in counts else V
        return {"amount_z": az, "risk_z": rz, "amount_bucket": ab, "age_bucket": ag, "category_id": cid}

    def vector(f):
        x = [f["amount_z"], f["risk_z"], float(f["amount_bucket"])]
        x += [1.0 if i == f["age_bucket"] else 0.0 for i in range(len(age_bounds) + 1)]
        x += [1.0 if i == f["category_id"] else 0.0 for i in range(depth_cat)]
        return x

    # Cross-check the bucket rule with scikit-learn's own transform.
    fit_feats = [features(r) for r in kept]
    got = kb_z.transform(amount_z.reshape(-1, 1)).ravel().astype(int)
    if list(got) != [f["amount_bucket"] for f in fit_feats]:
        fail("amount_z buckets differ from KBinsDiscretizer.transform")
    got = kb_age.transform(ages.reshape(-1, 1)).ravel().astype(int)
    if list(got) != [f["age_bucket"] for f in fit_feats]:
        fail("age buckets differ from KBinsDiscretizer.transform")

    # Labels from a known rule on the transformed features, then a model
    # trained on those features.
    X = np.array([vector(f) for f in fit_feats])
    cat_effect = {c: e for c, e in zip(CATEGORIES, [-0.5, 1.0, 0.6, -0.8, 0.0, 0.3])}
    logit = np.array([1.2 * f["amount_z"] - 0.9 * f["risk_z"] + 0.4 * (f["age_bucket"] - 1.5)
                      + cat_effect[r["category"]] for f, r in zip(fit_feats, kept)])
    y = (rng.random(len(kept)) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10)
    clf.fit(X, y)

    # Every row (the fit slice, then the stream slice) through the same
    # transforms and the model: kinfer run predicts both.
    ref_rows = []
    Xs = []
    for r in fit + stream:
        if r["amount"] is None:
            ref_rows.append({"transaction_id": r["transaction_id"], "dead_letter": "missing_field"})
            continue
        f = features(r)
        # A value within rounding of a boundary would make the bucket
        # depend on the last bit of the z-score. A value equal to one (the
        # fit row the boundary was taken from, or the same amount) is
        # computed the same way on both sides.
        if min(abs(f["amount_z"] - b) or 1 for b in z_bounds) < 1e-9:
            fail("%s: amount_z %r lies on a boundary" % (r["transaction_id"], f["amount_z"]))
        Xs.append(vector(f))
        ref_rows.append({"transaction_id": r["transaction_id"], "features": f})
    Xs = np.array(Xs)
    proba = clf.predict_proba(Xs)
    j = 0
    for row in ref_rows:
        if "features" in row:
            row["probabilities"] = [float(p) for p in proba[j]]
            j += 1

    # The ONNX model: Softmax([0, w.x + b]) == predict_proba.
    F = X.shape[1]
    W = np.zeros((F, 2), dtype=np.float32)
    W[:, 1] = clf.coef_[0].astype(np.float32)
    B = np.array([0.0, clf.intercept_[0]], dtype=np.float32)
    n_age = len(age_bounds) + 1
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["numeric", "age", "category"], ["x"], axis=1),
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "transformed_logreg",
        [
            helper.make_tensor_value_info("numeric", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N", n_age]),
            helper.make_tensor_value_info("category", TensorProto.FLOAT, ["N", depth_cat]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kinfer-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Xf = Xs.astype(np.float32)
    out = sess.run(None, {"numeric": Xf[:, :3], "age": Xf[:, 3:3 + n_age], "category": Xf[:, 3 + n_age:]})[0]
    ort_diff = float(np.abs(out - proba).max())
    if ort_diff > 1e-6:
        fail("onnxruntime differs from predict_proba by %g" % ort_diff)

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    with open(os.path.join(OUT, "input.avsc"), "w") as f:
        json.dump(SCHEMA, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "transform.json"), "w") as f:
        json.dump(TRANSFORM, f, indent=2)
        f.write("\n")
    fixture = {
        "fit": fit,
        "stream": stream,
        "reference": {
            "fit": {
                "rows": len(fit),
                "dead_lettered": len(fit) - len(kept),
                "dead_letter_reasons": {"missing_field": len(fit) - len(kept)},
                "passes": 2,
            },
            "z_score": {"fields": ["amount", "risk"], "mean": mean, "std": std},
            "amount_z_boundaries": z_bounds,
            "age_boundaries": age_bounds,
            "vocabulary": vocab,
            "vocabulary_counts": [counts[t] for t in vocab],
            "onnxruntime_max_difference": ort_diff,
            # One per row, fit slice first: "dead_letter" (the reason) or
            # "features" and "probabilities".
            "rows": ref_rows,
        },
    }
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    for name in os.listdir(OUT):
        if os.path.getsize(os.path.join(OUT, name)) > 1 << 20:
            fail("%s reached 1 MB" % name)
    print("pipeline fixture: %d fit rows (%d kept), %d stream rows, vocabulary %d, onnxruntime within %.2g"
          % (len(fit), len(kept), len(stream), V, ort_diff))


if __name__ == "__main__":
    main()
