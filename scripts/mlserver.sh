#!/usr/bin/env bash
# mlserver.sh installs MLServer (Seldon's Open Inference Protocol server) with
# its scikit-learn runtime into a venv at ${KINFER_CACHE:-<repo>/.cache}/mlserver-venv,
# at the exact versions of testdata/mlserver/requirements.txt, for the remote
# handler's tests against a real server (handlers/remote, TestIntegrationMLServer).
# Needs Python 3.9 to 3.12 with venv and pip, and PyPI; no Docker.
#
# Idempotent: a stamp in the venv records the requirements and the Python it
# was built from; when they match, the script only prints the path. It prints
# the path of the mlserver executable on stdout; pip's output goes to
# mlserver-venv.log beside the venv and is shown (its tail) only on failure.
#
# Environment: KINFER_CACHE (cache root), MLSERVER_PYTHON (the interpreter to
# build the venv from; default the first of python3.11, python3.12, python3.10,
# python3.9, python3 whose version MLServer 1.7.1 accepts).
set -euo pipefail

die() {
	echo "mlserver.sh: $*" >&2
	exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KINFER_CACHE:-${repo_root}/.cache}"
venv="${cache}/mlserver-venv"
reqs="${repo_root}/testdata/mlserver/requirements.txt"
stamp="${venv}/.kinfer-stamp"
log="${cache}/mlserver-venv.log"

# MLServer 1.7.1 declares Requires-Python >=3.9,<3.13.
supported() {
	"$1" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null
}

python="${MLSERVER_PYTHON:-}"
if [[ -n $python ]]; then
	supported "$python" || die "MLSERVER_PYTHON=$python is not a Python 3.9 to 3.12 (MLServer 1.7.1 needs one)"
else
	for p in python3.11 python3.12 python3.10 python3.9 python3; do
		if command -v "$p" >/dev/null && supported "$p"; then
			python="$p"
			break
		fi
	done
	[[ -n $python ]] || die "no Python 3.9 to 3.12 found (MLServer 1.7.1 needs one); set MLSERVER_PYTHON"
fi

want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$python" -c 'import platform, sys; print(platform.python_version(), sys.platform)')"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x ${venv}/bin/mlserver ]]; then
	echo "${venv}/bin/mlserver"
	exit 0
fi

mkdir -p "$cache"
# Two test runs at once must not build the same venv together.
exec 9>"${cache}/mlserver-venv.lock"
flock 9
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x ${venv}/bin/mlserver ]]; then
	echo "${venv}/bin/mlserver"
	exit 0
fi

start=$SECONDS
if ! {
	"$python" -m venv --clear "$venv" &&
		"${venv}/bin/python" -m pip install --disable-pip-version-check --no-input -r "$reqs" &&
		"${venv}/bin/mlserver" --version
} >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "installing MLServer into $venv failed; the whole log is $log"
fi
echo "$want" >"$stamp"
echo "mlserver.sh: installed $("${venv}/bin/mlserver" --version 2>&1 | tail -n 1) into $venv in $((SECONDS - start))s" >&2
echo "${venv}/bin/mlserver"
