#!/usr/bin/env python3
"""Make workload 3 of the benchmark: a ResNet-50 image classifier (the
standard bottleneck network of He et al. 2015, 25.6 M parameters, input
[batch, 3, 224, 224] float32, 1000 logits), exported by PyTorch, for GPU runs.

At 98 MB the model is too large to commit, so this script writes it where it
is asked to (`make resnet50`: .cache/models/resnet50/), on the machine that
runs it; scripts/gpu-check.sh calls it on the GPU machine, whose image holds
torch. It needs torch, onnx, onnxruntime and numpy (the versions in
requirements-frameworks.txt, or any recent ones), and no download: the
architecture is written out below, the weights are seeded random (He init),
and the batch-norm statistics come from a few training-mode passes over
seeded random images, so activations stay in range through all 50 layers.

The folder gets model.onnx and expected.json with PyTorch's own predictions
(model.eval(), torch.no_grad(), on the CPU in float32, one image at a time)
for 4 seeded random images, in the format of the other framework fixtures;
handlers/onnx's TestResNet50 compares kinfer's results against them. The
export is cross-checked against onnxruntime on the CPU here; the script
exits non-zero if a check fails.

  python3 testdata/models/make_resnet50.py --out .cache/models/resnet50
"""

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Shared with the committed framework fixtures: the expected.json writer, the
# export check (opset 17, IR version), the signature and the CPU session. The
# import pins CUDA_VISIBLE_DEVICES="" and one thread, so torch's predictions
# are the CPU's, reproducible from run to run.
import make_framework_models as fm  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROWS = 4
# Relative to the largest |logit|: torch and onnxruntime sum in different
# orders over 50 layers.
REL_TOL = 1e-4


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1))
        blocks, cin = [], 64
        for width, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(n):
                blocks.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, pixels):
        x = self.pool(self.blocks(self.stem(pixels)))
        return self.fc(torch.flatten(x, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for model.onnx and expected.json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    torch.manual_seed(0)
    model = ResNet50()
    n_params = sum(p.numel() for p in model.parameters())
    model.train()
    with torch.no_grad():  # batch-norm running statistics from random images
        for _ in range(4):
            model(torch.rand(8, 3, 224, 224))
    model.eval()

    rng = np.random.default_rng(0)
    rows = np.round(rng.random((ROWS, 3, 224, 224)), 3).astype(np.float32)
    with torch.no_grad():
        logits = np.stack([model(torch.from_numpy(r[None]))[0].numpy() for r in rows])
    scale = float(np.max(np.abs(logits)))
    print(f"  resnet50: {n_params} parameters, |logits| up to {scale:.3g}, "
          f"classes {logits.argmax(1).tolist()}")

    path = os.path.join(args.out, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.from_numpy(rows[:1]),), path,
            input_names=["pixels"], output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=fm.OPSET, dynamo=False)
    onx = fm.finish_export(path, "resnet50")
    sig = fm.signature(onx)
    want = {"inputs": [{"name": "pixels", "dtype": "float32", "shape": ["batch", 3, 224, 224]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 1000]}]}
    fm.check("resnet50", sig == want, f"signature {sig}")

    (o_b,) = fm.session(path).run(["logits"], {"pixels": rows})
    diff = float(np.max(np.abs(o_b - logits)))
    print(f"  onnxruntime batch of {ROWS} vs torch one image at a time: max abs diff = {diff:.3e}")
    fm.check("resnet50", diff <= REL_TOL * max(1.0, scale),
             f"max abs diff {diff:.3e} <= {REL_TOL} x {max(1.0, scale):.3g}")

    fm.write_expected(
        os.path.join(args.out, "expected.json"),
        {
            "model": "resnet50",
            "framework": f"PyTorch {torch.__version__.split('+')[0]} (model.eval(), torch.no_grad(), CPU, "
                         "one image at a time)",
            "exporter": f"torch.onnx.export(dynamo=False, opset_version={fm.OPSET}, dynamic batch axis)",
            "parameters": int(n_params),
            "note": "seeded random weights and images (pixels in [0, 1], 3 decimals)",
            "signature": sig,
        },
        {"pixels": (rows, "f32")},
        {"logits": (logits, "f32")},
    )
    if fm.FAILURES:
        sys.exit("FAILED: " + "; ".join(fm.FAILURES))
    print(f"  wrote {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
