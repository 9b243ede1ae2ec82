#!/usr/bin/env bash
# fuzz.sh runs every Fuzz target in the module for a short time each
# (go test runs one fuzz target per invocation).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t=${1:-10s}
for f in $(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true); do
  dir=./$(dirname "$f")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz: $dir $name ($t)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$dir"
  done
done
