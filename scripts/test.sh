#!/usr/bin/env bash
# test.sh runs kinfer's whole test suite: vet, unit tests, the race detector
# on the concurrent packages, brief fuzzing, and the integration tests
# against a real Apache Kafka broker. With the argument "integration" it runs
# only the integration tests.
#
# The broker: KINFER_TEST_BROKERS if set, else a local KRaft broker started
# from the Maven Central jars (deploy/kafka/kafka.sh) and stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

only=${1:-all}
started=0
cleanup() {
  if [[ $started == 1 ]]; then
    bash deploy/kafka/kafka.sh stop || true
  fi
}
trap cleanup EXIT

if [[ -z ${KINFER_TEST_BROKERS:-} ]]; then
  out=$(bash deploy/kafka/kafka.sh start)
  started=1
  export KINFER_TEST_BROKERS=${out##*KINFER_TEST_BROKERS=}
fi
echo "test.sh: real Kafka broker at $KINFER_TEST_BROKERS"

if [[ $only == all ]]; then
  echo "== vet"
  make -s vet
  echo "== race (concurrent packages)"
  make -s race
  echo "== fuzz (${FUZZTIME:-10s} per target)"
  bash scripts/fuzz.sh "${FUZZTIME:-10s}"
fi

# MLServer, the real Open Inference Protocol server the remote handler's
# tests start (TestIntegrationMLServer): a pinned venv in
# $KINFER_CACHE/mlserver-venv, built once (about 1-2 minutes), silent unless
# it fails.
bash scripts/mlserver.sh >/dev/null

echo "== tests (unit and integration)"
go test -count=1 -timeout 30m ./...

if [[ $only == all ]]; then
  echo "== deploy (promtool, kubeconform, dashboard and alert metric names)"
  bash deploy/check/deploy-check.sh
fi

# The fault harness (chaos/, build tag "chaos"): SIGKILLs, a broker restart
# and membership changes on its own broker (port 39792), sized for CI; the
# exactly-once run skips itself while kinfer rejects exactly_once. Reports in
# .cache/chaos/.
echo "== chaos (fault harness: kills, a broker restart, membership changes)"
go vet -tags chaos ./chaos/...
go test -count=1 -tags chaos -run '^TestIntegrationChaos' -timeout 20m -v ./chaos/
