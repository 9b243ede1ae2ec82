#!/usr/bin/env bash
# fetch-ort.sh downloads the ONNX Runtime shared library that handlers/onnx
# loads at run time, and caches it under ${KINFER_CACHE:-<repo>/.cache}.
#
# The library comes from the onnxruntime-node npm package: `npm pack` fetches
# the tarball without running its install scripts, and the tarball carries the
# CPU build of libonnxruntime for linux x64 and arm64. (The CUDA/TensorRT
# provider libraries are not in it; see handlers/onnx for the CPU fallback.)
#
# Idempotent: when the library is already cached it only prints the path.
# Prints the library path on stdout; everything else goes to stderr.
set -euo pipefail

# Must match ORTVersion in handlers/onnx/library.go, which looks for this folder.
ORT_VERSION="1.30.0"
NPM_PACKAGE="onnxruntime-node@${ORT_VERSION}"

die() {
	echo "fetch-ort: $*" >&2
	exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KINFER_CACHE:-${repo_root}/.cache}"
dest_dir="${cache}/ort/${ORT_VERSION}"
dest="${dest_dir}/libonnxruntime.so"

is_elf() {
	# The first four bytes of an ELF file are 0x7f 'E' 'L' 'F'.
	[ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' \n')" = '177ELF' ]
}

if is_elf "$dest"; then
	echo "$dest"
	exit 0
fi

os="$(uname -s)"
[ "$os" = "Linux" ] || die "unsupported OS ${os}: only Linux (amd64, arm64) is supported; set KINFER_ORT_LIB to a libonnxruntime you built or downloaded yourself"
case "$(uname -m)" in
x86_64 | amd64) arch=x64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "unsupported CPU architecture $(uname -m): only x86_64 and aarch64 are supported; set KINFER_ORT_LIB instead" ;;
esac

command -v npm >/dev/null 2>&1 || die "npm is not installed; it is needed to download ${NPM_PACKAGE} (install Node.js/npm, or set KINFER_ORT_LIB)"
command -v tar >/dev/null 2>&1 || die "tar is not installed"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-ort: downloading ${NPM_PACKAGE} ..." >&2
if ! (cd "$tmp" && npm pack --loglevel=error "$NPM_PACKAGE" >"$tmp/pack.out" 2>"$tmp/pack.err"); then
	cat "$tmp/pack.err" >&2
	die "npm pack ${NPM_PACKAGE} failed (is the npm registry reachable?)"
fi
tarball="$(find "$tmp" -maxdepth 1 -name 'onnxruntime-node-*.tgz' | head -n 1)"
[ -n "$tarball" ] || die "npm pack ${NPM_PACKAGE} produced no tarball"

member="package/bin/napi-v6/linux/${arch}/libonnxruntime.so.1"
if ! tar -xzf "$tarball" -C "$tmp" "$member" 2>"$tmp/tar.err"; then
	cat "$tmp/tar.err" >&2
	die "${member} is not in ${NPM_PACKAGE}"
fi
is_elf "$tmp/$member" || die "${member} from ${NPM_PACKAGE} is not an ELF shared library"

mkdir -p "$dest_dir"
# Write under a temporary name and rename, so that an interrupted run never
# leaves a truncated library that a later run would take as cached.
cp "$tmp/$member" "${dest}.tmp.$$"
chmod 0755 "${dest}.tmp.$$"
mv -f "${dest}.tmp.$$" "$dest"
echo "fetch-ort: cached ${NPM_PACKAGE} (linux/${arch}) at ${dest}" >&2
echo "$dest"
