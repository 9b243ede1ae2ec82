#!/usr/bin/env python3
"""Generate the framework-export fixtures under testdata/models/:

  torch_textcnn/  a PyTorch text CNN exported with torch.onnx.export
                  (dynamic batch and sequence axes, opset 17)
  keras_mlp/      a tf.keras MLP converted with tf2onnx.convert.from_keras
                  (dynamic batch, opset 17)

Each folder gets model.onnx, exactly as the exporter wrote it (apart from
the IR version, lowered to 8 if the exporter wrote a newer one), and
expected.json with the framework's own predictions (torch in eval mode under
no_grad, one row at a time; Keras model.predict), which the Go tests compare
kinfer's results against within 1e-5. See README.md, "Framework exports".

Both models are trained briefly on seeded synthetic data, so their classes
all show up. Everything is seeded and single-threaded; a rerun with the
pinned versions reproduces the same bytes on the same platform. Every model is
cross-checked against onnxruntime here; the script exits non-zero if a check
fails or a file is too large (model.onnx or expected.json >= 1 MB).

Regenerate (from the repository root):
  python3 -m venv .cache/frameworks-venv
  .cache/frameworks-venv/bin/pip install -r testdata/models/requirements-frameworks.txt
  .cache/frameworks-venv/bin/python testdata/models/make_framework_models.py

This is separate from make_models.py (scikit-learn and onnx.helper fixtures),
whose venv stays small: torch and TensorFlow are large downloads.
"""

import json
import math
import os
import sys
import time

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # Same as make_models.py: pin the string-hash seed so nothing that iterates
    # a set or dict of strings can change the bytes from run to run, and restart.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

# CPU only, quiet, deterministic; must be set before torch / tensorflow load.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # plain TF kernels: same numbers on any x86 CPU
os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
MAX_IR_VERSION = 8  # what the other fixtures use; ONNX Runtime 1.30 reads up to 11
TOL = 1e-5
MAX_BYTES = 1024 * 1024

FAILURES = []


def check(name, ok, msg):
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {msg}")
    if not ok:
        FAILURES.append(f"{name}: {msg}")


# ---------------------------------------------------------------- JSON output
# Same encoding as make_models.py (copied: that script's imports need
# scikit-learn, which this venv does not have).

def f32_str(x):
    """Shortest decimal that parses back (float64 or float32 parse) to x as float32."""
    v = np.float32(x)
    s = np.format_float_positional(v, unique=True, trim="-")
    if np.float32(float(s)) != v:  # guard against double rounding through float64
        s = repr(float(v))
    return s


def enc(value, kind):
    """Encode a scalar / nested list as compact JSON text. kind: f32 or int."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ",".join(enc(v, kind) for v in value) + "]"
    if kind == "int":
        return str(int(value))
    if not math.isfinite(float(value)):
        raise ValueError("non-finite value in expected output")
    return f32_str(value)


def write_expected(path, header, inputs, outputs):
    """expected.json with one row per line. inputs / outputs: name -> (rows, kind)."""
    lines = ["{"]
    for k, v in header.items():
        lines.append(f"{json.dumps(k)}:{json.dumps(v)},")

    def section(title, d, last):
        lines.append(f"{json.dumps(title)}:{{")
        items = list(d.items())
        for i, (name, (rows, kind)) in enumerate(items):
            lines.append(f"{json.dumps(name)}:[")
            lines.append(",\n".join(enc(r, kind) for r in rows))
            lines.append("]" + ("," if i < len(items) - 1 else ""))
        lines.append("}" + ("" if last else ","))

    section("inputs", inputs, False)
    section("outputs", outputs, True)
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # must be valid JSON
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- ONNX helpers

TYPE_NAMES = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64",
              TensorProto.INT32: "int32", TensorProto.DOUBLE: "float64"}


def describe(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return {"name": vi.name, "dtype": TYPE_NAMES.get(t.elem_type, str(t.elem_type)), "shape": dims}


def signature(model):
    return {"inputs": [describe(v) for v in model.graph.input],
            "outputs": [describe(v) for v in model.graph.output]}


def finish_export(path, name):
    """Load what the exporter wrote, check it, and lower the IR version if needed."""
    model = onnx.load(path)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version != OPSET:
            raise RuntimeError(f"{name}: exporter wrote default opset {imp.version}, want {OPSET}")
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
        onnx.save_model(model, path)
    onnx.checker.check_model(model, full_check=True)
    print(f"  {name}: producer {model.producer_name} {model.producer_version}, IR version "
          f"{model.ir_version}, opsets {[(i.domain or 'ai.onnx', i.version) for i in model.opset_import]}")
    return model


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def sizes_ok(folder):
    m = os.path.getsize(os.path.join(folder, "model.onnx"))
    e = os.path.getsize(os.path.join(folder, "expected.json"))
    check(os.path.basename(folder), m < MAX_BYTES and e < MAX_BYTES,
          f"model.onnx {m} B, expected.json {e} B (each < {MAX_BYTES})")


def pad_batch(rows, pad_id=0):
    """Right-pad rows to the longest: ids padded with pad_id, mask 0 on padding."""
    S = max(len(r) for r in rows)
    ids = np.full((len(rows), S), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), S), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


# ---------------------------------------------------------------- 1. torch_textcnn

TC_VOCAB, TC_DIM, TC_CHANNELS, TC_NCLS = 1000, 32, 32, 4
TC_KERNELS = (3, 5)
TC_MAXLEN = 128
TC_KEYWORDS = 10  # ids 1..40: ten keyword ids per class; other tokens are 41..999


def textcnn_data(rng, n):
    """Synthetic token rows: random filler ids with 1..3 keywords of the row's class."""
    labels = rng.integers(0, TC_NCLS, n)
    rows = []
    for y in labels:
        L = int(rng.integers(1, TC_MAXLEN + 1))
        r = rng.integers(1 + TC_NCLS * TC_KEYWORDS, TC_VOCAB, L)
        for _ in range(min(L, int(rng.integers(1, 4)))):
            r[rng.integers(0, L)] = 1 + y * TC_KEYWORDS + rng.integers(0, TC_KEYWORDS)
        rows.append(r.astype(np.int64))
    return rows, labels.astype(np.int64)


def make_torch_textcnn():
    import torch
    from torch import nn

    print(f"torch_textcnn (torch {torch.__version__}):")
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    class TextCNN(nn.Module):
        """Embedding -> Conv1d (kernels 3 and 5, 'same' zero padding) -> Relu ->
        masked max over the sequence -> Linear. Padding is masked exactly:
        padded embeddings are zeroed (so convolution windows see the same zeros
        as the conv's own padding) and, as Relu outputs are >= 0, zeroing
        padded positions before the max leaves the max of the real ones."""

        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(TC_VOCAB, TC_DIM)
            self.convs = nn.ModuleList(
                nn.Conv1d(TC_DIM, TC_CHANNELS, k, padding=k // 2) for k in TC_KERNELS)
            self.head = nn.Linear(TC_CHANNELS * len(TC_KERNELS), TC_NCLS)

        def forward(self, input_ids, attention_mask):
            mask = (attention_mask != 0).to(torch.float32).unsqueeze(1)       # [b,1,s]
            x = self.embedding(input_ids).transpose(1, 2) * mask              # [b,dim,s]
            pooled = [(torch.relu(conv(x)) * mask).amax(dim=2) for conv in self.convs]
            return self.head(torch.cat(pooled, dim=1))                        # [b,ncls]

    model = TextCNN()
    n_params = sum(p.numel() for p in model.parameters())

    # brief training on synthetic rows (padded batches of 32)
    rng = np.random.default_rng(2024)
    tr_rows, tr_y = textcnn_data(rng, 2048)
    te_rows, te_y = textcnn_data(rng, 512)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(3):
        order = rng.permutation(len(tr_rows))
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            ids, mask = pad_batch([tr_rows[i] for i in idx])
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(ids), torch.from_numpy(mask)), torch.from_numpy(tr_y[idx]))
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        ids, mask = pad_batch(te_rows)
        acc = float((model(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(1).numpy() == te_y).mean())
    print(f"  parameters {n_params}, test accuracy {acc:.3f}")

    # the fixture's rows: lengths 1..128, unpadded, run one at a time
    rng = np.random.default_rng(128)
    n = 64
    rows, _ = textcnn_data(rng, n)
    rows[0] = rows[0][:1]                                          # length 1
    rows[1] = rng.integers(1, TC_VOCAB, TC_MAXLEN).astype(np.int64)  # the longest
    rows[1][0], rows[1][-1] = 0, TC_VOCAB - 1                      # first and last vocabulary ids
    rows[2] = rows[2][:2] if len(rows[2]) >= 2 else np.array([5, 999], np.int64)
    masks = [np.ones_like(r) for r in rows]
    with torch.no_grad():
        logits = np.stack([model(torch.from_numpy(r[None, :]), torch.from_numpy(m[None, :]))[0].numpy()
                           for r, m in zip(rows, masks)]).astype(np.float32)
    print(f"  predicted classes of the {n} rows: {np.bincount(logits.argmax(1), minlength=TC_NCLS).tolist()}")

    folder = os.path.join(HERE, "torch_textcnn")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    example = (torch.from_numpy(rows[3][None, :]), torch.from_numpy(masks[3][None, :]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, example, path,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                          "attention_mask": {0: "batch", 1: "seq"},
                          "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onx = finish_export(path, "torch_textcnn")
    sig = signature(onx)
    want = {"inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"]},
                       {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "seq"]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", TC_NCLS]}]}
    check("torch_textcnn", sig == want, f"signature {json.dumps(sig)}")

    sess = session(path)
    o_rows = [sess.run(["logits"], {"input_ids": r[None, :], "attention_mask": m[None, :]})[0][0]
              for r, m in zip(rows, masks)]
    d_row = float(np.max(np.abs(np.stack(o_rows) - logits)))
    print(f"  (a) onnxruntime per row vs torch per row: max abs diff = {d_row:.3e}")
    check("torch_textcnn", d_row < TOL, f"per-row max abs diff {d_row:.3e} < {TOL}")

    ids_b, mask_b = pad_batch(rows)
    (o_b,) = sess.run(["logits"], {"input_ids": ids_b, "attention_mask": mask_b})
    d_pad = float(np.max(np.abs(o_b - logits)))
    with torch.no_grad():
        t_b = model(torch.from_numpy(ids_b), torch.from_numpy(mask_b)).numpy()
    d_tpad = float(np.max(np.abs(t_b - logits)))
    print(f"  (b) padded batch {list(ids_b.shape)} (pad id 0, mask 0) vs torch per row: onnxruntime "
          f"max abs diff = {d_pad:.3e}, torch = {d_tpad:.3e}")
    check("torch_textcnn", max(d_pad, d_tpad) < TOL,
          f"padded-batch max abs diff {max(d_pad, d_tpad):.3e} < {TOL}")

    write_expected(
        os.path.join(folder, "expected.json"),
        {
            "model": "torch_textcnn",
            "framework": f"PyTorch {torch.__version__.split('+')[0]} (model.eval(), torch.no_grad(), one row at a time)",
            "exporter": f"torch.onnx.export(dynamo=False, opset_version={OPSET}, dynamic_axes batch and seq)",
            "parameters": int(n_params),
            "note": "each row is unpadded (its true length 1..128); attention_mask is all ones",
            "signature": sig,
        },
        {"input_ids": (rows, "int"), "attention_mask": (masks, "int")},
        {"logits": (logits, "f32")},
    )
    sizes_ok(folder)
    return d_row, d_pad


# ---------------------------------------------------------------- 2. keras_mlp

KM_FEATURES, KM_NCLS = 16, 3


def mlp_data(rng, centers, n):
    y = rng.integers(0, KM_NCLS, n)
    X = centers[y] + rng.normal(0.0, 1.0, (n, KM_FEATURES))
    return np.round(X, 3).astype(np.float32), y.astype(np.int64)


def make_keras_mlp():
    import tensorflow as tf
    import tf2onnx

    print(f"keras_mlp (tensorflow {tf.__version__}, keras {tf.keras.__version__}, tf2onnx {tf2onnx.__version__}):")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(1616)
    tf.config.experimental.enable_op_determinism()

    inputs = tf.keras.Input(shape=(KM_FEATURES,), dtype="float32", name="features")
    x = tf.keras.layers.Dense(32, activation="relu", name="dense_1")(inputs)
    x = tf.keras.layers.Dense(16, activation="relu", name="dense_2")(x)
    outputs = tf.keras.layers.Dense(KM_NCLS, activation="softmax", name="probabilities")(x)
    model = tf.keras.Model(inputs, outputs, name="keras_mlp")
    n_params = int(model.count_params())

    rng = np.random.default_rng(1600)
    centers = rng.normal(0.0, 0.6, (KM_NCLS, KM_FEATURES))
    X_tr, y_tr = mlp_data(rng, centers, 2000)
    X_te, y_te = mlp_data(rng, centers, 500)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(X_tr, y_tr, epochs=5, batch_size=64, shuffle=True, verbose=0)
    acc = float((model.predict(X_te, verbose=0).argmax(1) == y_te).mean())
    print(f"  parameters {n_params}, test accuracy {acc:.3f}")

    X = X_te[:64]
    proba = model.predict(X, batch_size=64, verbose=0).astype(np.float32)
    print(f"  predicted classes of the 64 rows: {np.bincount(proba.argmax(1), minlength=KM_NCLS).tolist()}")

    folder = os.path.join(HERE, "keras_mlp")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    spec = (tf.TensorSpec((None, KM_FEATURES), tf.float32, name="features"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=path)
    onx = finish_export(path, "keras_mlp")
    sig = signature(onx)
    ok = ([(i["name"], i["dtype"], i["shape"][1:]) for i in sig["inputs"]] == [("features", "float32", [KM_FEATURES])]
          and [(o["name"], o["dtype"], o["shape"][1:]) for o in sig["outputs"]]
          == [("probabilities", "float32", [KM_NCLS])]
          and all(not isinstance(v["shape"][0], int) for v in sig["inputs"] + sig["outputs"]))
    check("keras_mlp", ok, f"signature {json.dumps(sig)} (dynamic batch)")

    sess = session(path)
    (o_b,) = sess.run(["probabilities"], {"features": X})
    d_batch = float(np.max(np.abs(o_b - proba)))
    o_rows = np.stack([sess.run(["probabilities"], {"features": X[i:i + 1]})[0][0] for i in range(len(X))])
    d_row = float(np.max(np.abs(o_rows - proba)))
    print(f"  onnxruntime vs Keras model.predict: batch of {len(X)} max abs diff = {d_batch:.3e}, "
          f"per row = {d_row:.3e}")
    check("keras_mlp", max(d_batch, d_row) < TOL, f"max abs diff {max(d_batch, d_row):.3e} < {TOL}")

    write_expected(
        os.path.join(folder, "expected.json"),
        {
            "model": "keras_mlp",
            "framework": f"TensorFlow {tf.__version__} / Keras {tf.keras.__version__} (model.predict)",
            "exporter": f"tf2onnx {tf2onnx.__version__} convert.from_keras(opset={OPSET}, "
                        f"input_signature TensorSpec((None, {KM_FEATURES})))",
            "parameters": n_params,
            "signature": sig,
        },
        {"features": (X, "f32")},
        {"probabilities": (proba, "f32")},
    )
    sizes_ok(folder)
    return d_batch, d_row


def main():
    t0 = time.time()
    print(f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    make_torch_textcnn()
    make_keras_mlp()
    print(f"done in {time.time() - t0:.1f}s")
    if FAILURES:
        print("FAILED CHECKS:")
        for f in FAILURES:
            print("  " + f)
        sys.exit(1)


if __name__ == "__main__":
    main()
