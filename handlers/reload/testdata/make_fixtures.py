#!/usr/bin/env python3
"""Make handlers/reload/testdata/fraud_retrained.onnx: testdata/models/fraud
with its logistic-regression weights nudged, standing in for a retrained
model. Same inputs and outputs, different probabilities, model_version 2.

Run from the repository root, with the venv testdata/models/README.md
describes:
  .cache/fixtures-venv/bin/python handlers/reload/testdata/make_fixtures.py
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
SRC = os.path.join(ROOT, "testdata", "models", "fraud", "model.onnx")
DST = os.path.join(HERE, "fraud_retrained.onnx")

m = onnx.load(SRC)
(clf,) = [n for n in m.graph.node if n.op_type == "LinearClassifier"]
for a in clf.attribute:
    if a.name == "coefficients":
        a.floats[:] = [round(c * 1.25, 6) for c in a.floats]
    if a.name == "intercepts":
        a.floats[:] = [round(c + 0.5, 6) for c in a.floats]
m.model_version = 2
m.doc_string = "fraud, retrained (weights x1.25, intercepts +0.5): a reload test fixture"
onnx.checker.check_model(m)
onnx.save(m, DST)

# Cross-check: same signature, different scores.
x = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32) * 3
a = ort.InferenceSession(SRC, providers=["CPUExecutionProvider"])
b = ort.InferenceSession(DST, providers=["CPUExecutionProvider"])
sig = lambda s: [(i.name, i.type, i.shape) for i in s.get_inputs() + s.get_outputs()]
assert sig(a) == sig(b), (sig(a), sig(b))
pa = a.run(["probabilities"], {"features": x})[0]
pb = b.run(["probabilities"], {"features": x})[0]
diff = float(np.abs(pa - pb).max())
assert diff > 1e-3, diff
print(f"wrote {DST} ({os.path.getsize(DST)} bytes); max probability change {diff:.3f}")
