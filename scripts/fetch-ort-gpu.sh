#!/usr/bin/env bash
# fetch-ort-gpu.sh downloads ONNX Runtime's GPU build for provider: cuda (and
# tensorrt), and caches it under ${KINFER_CACHE:-<repo>/.cache}/ort-gpu/.
#
# The libraries come from PyPI's onnxruntime-gpu wheel (pip download, no
# install): libonnxruntime.so and the CUDA, TensorRT and shared provider
# libraries next to it, where ONNX Runtime looks for them. onnxruntime-gpu
# 1.30 is built for CUDA 13 and cuDNN 9: the machine must have the NVIDIA
# driver, and libcudart.so.13, libcublas(Lt).so.13, libcufft.so.12 and
# libcudnn.so.9 on the loader's path (the CUDA 13 toolkit and cuDNN, or the
# nvidia-*-cu13 PyPI packages that torch installs; scripts/gpu-check.sh
# finds the latter). The wheel is about 250 MB.
#
# Use: KINFER_ORT_LIB="$(bash scripts/fetch-ort-gpu.sh)" bin/kinfer run ...
# (a model with provider: cuda then runs on the GPU; without a GPU it falls
# back to the CPU with a warning, like the CPU build). Idempotent: when the
# library is already cached it only prints its path on stdout.
set -euo pipefail

# The same release as the CPU build scripts/fetch-ort.sh caches.
ORT_VERSION="1.30.0"
WHEEL="onnxruntime-gpu==${ORT_VERSION}"

die() {
	echo "fetch-ort-gpu: $*" >&2
	exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KINFER_CACHE:-${repo_root}/.cache}"
dest_dir="${cache}/ort-gpu/${ORT_VERSION}"
dest="${dest_dir}/libonnxruntime.so"
libs="libonnxruntime.so.${ORT_VERSION} libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so libonnxruntime_providers_tensorrt.so"

complete() {
	for l in $libs; do
		[ -s "${dest_dir}/$l" ] || return 1
	done
	[ -e "$dest" ]
}

if complete; then
	echo "$dest"
	exit 0
fi

[ "$(uname -s)" = "Linux" ] || die "onnxruntime-gpu's wheels are for Linux x86_64 (and Windows); set KINFER_ORT_LIB to a GPU build of your own"
case "$(uname -m)" in
x86_64 | amd64) ;;
*) die "no onnxruntime-gpu wheel for $(uname -m) on PyPI; set KINFER_ORT_LIB to a GPU build of your own" ;;
esac
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "python3 is needed to run pip download (or set KINFER_ORT_LIB)"
command -v unzip >/dev/null 2>&1 || die "unzip is not installed"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-ort-gpu: downloading ${WHEEL} from PyPI (about 250 MB) ..." >&2
# Any CPython tag will do: only the shared libraries are taken, not the
# Python extension.
if ! "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
	--platform manylinux_2_28_x86_64 --dest "$tmp" "$WHEEL" >"$tmp/pip.out" 2>&1; then
	cat "$tmp/pip.out" >&2
	die "pip download ${WHEEL} failed (is PyPI reachable?)"
fi
wheel="$(find "$tmp" -maxdepth 1 -name 'onnxruntime_gpu-*.whl' | head -n 1)"
[ -n "$wheel" ] || die "pip download ${WHEEL} produced no wheel"
for l in $libs; do
	unzip -q -o -j "$wheel" "onnxruntime/capi/$l" -d "$tmp/lib" || die "onnxruntime/capi/$l is not in $(basename "$wheel")"
done

mkdir -p "$dest_dir"
for l in $libs; do
	# Temporary name and rename: an interrupted run never leaves a truncated
	# library that a later run would take as cached.
	cp "$tmp/lib/$l" "${dest_dir}/$l.tmp.$$"
	chmod 0755 "${dest_dir}/$l.tmp.$$"
	mv -f "${dest_dir}/$l.tmp.$$" "${dest_dir}/$l"
done
ln -sfn "libonnxruntime.so.${ORT_VERSION}" "$dest"
echo "fetch-ort-gpu: cached ${WHEEL} at ${dest_dir}" >&2
echo "$dest"
