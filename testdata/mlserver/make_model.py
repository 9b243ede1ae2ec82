"""Make the scikit-learn model that MLServer serves in the remote handler's
tests, and scikit-learn's own predictions for a fixed set of rows.

Run it with the python of the MLServer venv (scripts/mlserver.sh), so that
model.joblib is pickled by the scikit-learn version MLServer loads it with:

    .cache/mlserver-venv/bin/python testdata/mlserver/make_model.py

It writes, beside itself, models/classifier/model.joblib and
models/classifier/expected.json (the rows and scikit-learn's outputs, in the
layout of testdata/models/*/expected.json). model-settings.json is written
by hand, not here: it declares the tensors this script checks.
"""

import json
import os

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models", "classifier")

FEATURES = 4
CLASSES = 3
TRAIN_ROWS = 600
TEST_ROWS = 50


def make_data(rng, n):
    """Three Gaussian blobs in 4 dims with different scales per feature,
    so the scaler matters, and overlap, so probabilities are not all 0/1."""
    centers = np.array(
        [[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 1.0], [-1.5, 2.0, -0.5, 2.0]]
    )
    scales = np.array([1.0, 10.0, 0.1, 100.0])
    y = rng.integers(0, CLASSES, size=n)
    x = centers[y] + rng.normal(scale=1.2, size=(n, FEATURES))
    return (x * scales).astype(np.float32), y.astype(np.int64)


def shortest_float32(v):
    """The shortest decimal that parses back to the float32 v."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def dumps_rows(doc):
    """JSON with one line per top-level key and per row of inputs/outputs,
    so that a regenerated file diffs readably."""
    parts = []
    for key, value in doc.items():
        if key in ("inputs", "outputs"):
            tensors = []
            for name, rows in value.items():
                body = ",\n".join("   " + json.dumps(r) for r in rows)
                tensors.append(f"  {json.dumps(name)}: [\n{body}\n  ]")
            parts.append(f" {json.dumps(key)}: {{\n" + ",\n".join(tensors) + "\n }")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    assert json.loads(text) == doc
    return text


def main():
    rng = np.random.default_rng(20240601)
    x_train, y_train = make_data(rng, TRAIN_ROWS)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)

    x_test, _ = make_data(rng, TEST_ROWS)
    # A few edge rows: zeros, large and tiny magnitudes, negatives.
    x_test[0] = [0, 0, 0, 0]
    x_test[1] = [1e6, -1e6, 1e-6, -1e-6]
    x_test[2] = [-3.5, 25.25, -0.125, 512]

    # What MLServer computes: it parses the JSON numbers kinfer sends (the
    # shortest decimal of each float32) into a float32 array, as here.
    rows = [[shortest_float32(v) for v in r] for r in x_test]
    x = np.array(rows, dtype=np.float32)
    assert np.array_equal(x, x_test)
    labels = model.predict(x)
    proba = model.predict_proba(x)
    assert labels.dtype == np.int64, labels.dtype
    # scikit-learn keeps float32 inputs in float32, so MLServer answers FP32.
    assert proba.dtype == np.float32, proba.dtype
    assert proba.shape == (TEST_ROWS, CLASSES)
    assert len(set(labels.tolist())) == CLASSES, "every class should show up"
    train_acc = float((model.predict(x_train) == y_train).mean())

    os.makedirs(OUT, exist_ok=True)
    joblib.dump(model, os.path.join(OUT, "model.joblib"))
    expected = {
        "model": "classifier",
        "framework": f"scikit-learn {sklearn.__version__} (StandardScaler + LogisticRegression)",
        "signature": {
            "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, FEATURES]}],
            "outputs": [
                {"name": "predict", "dtype": "int64", "shape": [-1]},
                {"name": "predict_proba", "dtype": "float32", "shape": [-1, CLASSES]},
            ],
        },
        "train_accuracy": round(train_acc, 4),
        "inputs": {"features": rows},
        "outputs": {"predict": labels.tolist(), "predict_proba": proba.tolist()},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        f.write(dumps_rows(expected))

    # The pickle loads back and predicts the same.
    again = joblib.load(os.path.join(OUT, "model.joblib"))
    assert np.array_equal(again.predict_proba(x), proba)
    print(f"classifier: train accuracy {train_acc:.3f}, labels {np.bincount(labels).tolist()}, "
          f"scikit-learn {sklearn.__version__}, model.joblib {os.path.getsize(os.path.join(OUT, 'model.joblib'))} bytes")


if __name__ == "__main__":
    main()
