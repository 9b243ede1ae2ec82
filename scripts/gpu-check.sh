#!/usr/bin/env bash
# gpu-check.sh runs kinfer's GPU checks on a machine with an NVIDIA GPU and
# writes what they print to OUT_DIR (default bench/results/gpu-<UTC time>):
#
#   onnx-cuda.txt   every handlers/onnx test with KINFER_TEST_PROVIDER=cuda:
#                   each model must run on CUDA (a fallback to the CPU
#                   fails) and match its fixture (TF32 off); TestResNet50
#                   compares ResNet-50's logits with PyTorch's, also with
#                   TF32 on; cmd's provider metric test
#   infer.txt       ONNX Runtime alone (go test -bench): ResNet-50 and the
#                   FNN at batch sizes 1..128 on CUDA (TF32 on, CUDA's
#                   default), ResNet-50 on the CPU for comparison
#   replay.txt      BenchmarkReplay: kinfer's whole pipeline (Avro file ->
#                   decode -> batch -> model -> encode -> Avro file) against
#                   ONNX Runtime alone on a ready batch, on CUDA, for
#                   ResNet-50 (602 KB records), the FNN and textenc
#   gpu-util.txt    nvidia-smi's GPU utilization every 200 ms during replay
#   demo.txt        `kinfer demo` (embedded Kafka, consumer group, producer)
#                   with the fraud example's model on CUDA
#   summary.txt     the GPU, the libraries, and one line per figure
#
# It needs: the NVIDIA driver; ONNX Runtime's GPU build (KINFER_ORT_LIB, or
# scripts/fetch-ort-gpu.sh fetches it); CUDA 13 and cuDNN 9 libraries (the
# loader's, or the nvidia-* PyPI packages of $PYTHON, which torch installs);
# $PYTHON (default python3) with torch, onnx and onnxruntime to make the
# ResNet-50 model (testdata/models/make_resnet50.py), unless
# KINFER_RESNET50_DIR or .cache/models/resnet50 already holds it; and Go,
# unless KINFER_GPU_TESTS names a folder with onnx.test, cmd.test and kinfer
# built beforehand (`make gpu-tests`), for a GPU machine without Go.
#
# Exit status: non-zero when a test failed or a benchmark did not run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-$root/bench/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
python="${PYTHON:-python3}"
summary="$out/summary.txt"
: >"$summary"
say() { echo "gpu-check: $*" | tee -a "$summary" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver on this machine"
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)" || die "nvidia-smi found no GPU"
say "GPU: $gpu; $(nproc) CPU cores"

export KINFER_ORT_LIB="${KINFER_ORT_LIB:-$(bash scripts/fetch-ort-gpu.sh)}"
[ -e "$KINFER_ORT_LIB" ] || die "KINFER_ORT_LIB=$KINFER_ORT_LIB does not exist"
say "ONNX Runtime: $KINFER_ORT_LIB"

# CUDA 13 and cuDNN 9: the loader's own, else those of $PYTHON's nvidia-*
# packages (nvidia/cu13/lib, nvidia/cudnn/lib, ...).
if ! ldconfig -p 2>/dev/null | grep -q 'libcublasLt\.so\.13' || ! ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.9'; then
	dirs="$("$python" -c '
import glob, os, site
seen = []
for r in site.getsitepackages() + [site.getusersitepackages()]:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        if d not in seen:
            seen.append(d)
print(":".join(seen))')" || dirs=""
	[ -n "$dirs" ] || die "no libcublasLt.so.13 / libcudnn.so.9 for the loader, and $python has no nvidia-* packages"
	export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	say "CUDA libraries from $python's packages: $dirs"
fi

tests="${KINFER_GPU_TESTS:-}"
if [ -z "$tests" ]; then
	tests="$root/bin/gpu"
	go test -c -o "$tests/onnx.test" ./handlers/onnx
	go test -c -o "$tests/cmd.test" ./cmd
	go build -o "$tests/kinfer" ./cmd/kinfer
fi
tests="$(cd "$tests" && pwd)"
[ -x "$tests/onnx.test" ] && [ -x "$tests/cmd.test" ] && [ -x "$tests/kinfer" ] || die "no onnx.test, cmd.test and kinfer in $tests"

export KINFER_RESNET50_DIR="${KINFER_RESNET50_DIR:-$root/.cache/models/resnet50}"
if [ ! -s "$KINFER_RESNET50_DIR/model.onnx" ]; then
	say "making ResNet-50 in $KINFER_RESNET50_DIR"
	"$python" testdata/models/make_resnet50.py --out "$KINFER_RESNET50_DIR" >&2 || die "make_resnet50.py failed"
fi

status=0
# Test binaries run in their package's folder, as go test runs them.
run() {
	local pkg="$1" file="$2"
	shift 2
	if ! (cd "$root/$pkg" && "$@") >>"$out/$file" 2>&1; then
		say "FAILED: $pkg $* (see $file)"
		status=1
	fi
}

say "1. handler tests on CUDA"
run handlers/onnx onnx-cuda.txt env KINFER_TEST_PROVIDER=cuda "$tests/onnx.test" -test.v -test.count=1
run cmd onnx-cuda.txt "$tests/cmd.test" -test.v -test.count=1 -test.run '^TestProviderFallbackMetric$'
# quote prints the lines of a result file that match, indented, into the
# summary.
quote() { grep -E -- "$1" "$out/$2" | sed 's/^ */   /' | tee -a "$summary" >&2 || true; }
say "   $(grep -c -- '--- PASS' "$out/onnx-cuda.txt" || true) tests and subtests passed, $(grep -c -- '--- FAIL' "$out/onnx-cuda.txt" || true) failed, $(grep -c -- '--- SKIP' "$out/onnx-cuda.txt" || true) skipped"
quote '^ *--- (FAIL|SKIP)' onnx-cuda.txt
quote 'max \|kinfer - PyTorch\|' onnx-cuda.txt

say "2. ONNX Runtime alone (rows/s)"
run handlers/onnx infer.txt env KINFER_TEST_PROVIDER=cuda "$tests/onnx.test" -test.run '^$' \
	-test.bench 'BenchmarkInfer(ResNet50|FNN)/' -test.benchtime 2s
run handlers/onnx infer.txt "$tests/onnx.test" -test.run '^$' -test.bench 'BenchmarkInferResNet50/batch=(1|32)$' -test.benchtime 5x
quote '^Benchmark.*rows/s' infer.txt

say "3. kinfer replay vs ONNX Runtime alone on CUDA"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 200 >"$out/gpu-util.txt" 2>&1 &
smi=$!
replay() {
	run cmd replay.txt env KINFER_BENCH_PROVIDER=cuda KINFER_BENCH_RECORDS="${KINFER_BENCH_RECORDS:-100000}" "$@" \
		"$tests/cmd.test" -test.run '^$' -test.bench "BenchmarkReplay/($models)\$" -test.benchtime 1x
}
models='fnn|textenc|resnet50'
replay KINFER_BENCH_COPIES=1
replay KINFER_BENCH_COPIES=2
# cuDNN's exhaustive convolution search (ONNX Runtime's default) runs once
# per new input shape; the heuristic choice skips it.
models=resnet50
echo "--- provider.cudnn_conv_algo_search: HEURISTIC" >>"$out/replay.txt"
replay KINFER_BENCH_COPIES=1 KINFER_BENCH_OPTIONS='provider.cudnn_conv_algo_search: HEURISTIC'
replay KINFER_BENCH_COPIES=2 KINFER_BENCH_OPTIONS='provider.cudnn_conv_algo_search: HEURISTIC'
kill "$smi" 2>/dev/null || true
quote 'raw ONNX Runtime|^--- provider' replay.txt
busy="$(awk -F', ' 'NR > 1 && $2+0 > 0 {n++; s += $2} END {if (n) printf "%d samples busy, mean %.0f%%", n, s / n}' "$out/gpu-util.txt")"
say "   GPU utilization while busy during replay: ${busy:-none}"

say "4. kinfer demo (embedded Kafka, consumer group to producer) with the fraud model on CUDA"
cfg="$root/examples/fraud/.pipeline-cuda.yaml"
sed 's/^\(  *\)path: \(.*model\.onnx\)$/\1provider: cuda\n\1path: \2/' examples/fraud/pipeline.yaml >"$cfg"
run . demo.txt "$tests/kinfer" demo --config "$cfg" --records 200000 --rate 0 --log-level info
rm -f "$cfg"
if ! grep -q 'msg="onnx model loaded".*provider=cuda' "$out/demo.txt" || grep -q 'falling back' "$out/demo.txt"; then
	say "FAILED: the demo's model did not run on CUDA (see demo.txt)"
	status=1
fi
quote '^done:' demo.txt

[ "$status" = 0 ] && say "all checks passed" || say "some checks FAILED"
exit "$status"
