# kinfer: `make demo` runs the example end to end, `make test` runs every test.
# Everything a fresh machine needs (Go modules, ONNX Runtime, a Kafka broker)
# is fetched by these targets into .cache/ (git-ignored).

GO        ?= go
CACHE     ?= $(CURDIR)/.cache
ORT_LIB   := $(CACHE)/ort/1.30.0/libonnxruntime.so
BIN       := bin/kinfer
FUZZTIME  ?= 10s
# Packages with goroutines of their own: run under the race detector.
RACE_PKGS := ./processor/... ./batch/... ./schema/... ./internal/config/... ./transform/...

export KINFER_CACHE := $(CACHE)

.PHONY: all build test integration race fuzz vet ort ort-gpu resnet50 gpu-tests gpu-check kafka-fetch kafka-start kafka-stop demo bench fixtures fixtures-frameworks clean deploy-check

all: build

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	$(GO) build -o $(BIN) ./cmd/kinfer

## ort: fetch the ONNX Runtime shared library from the npm registry
ort: $(ORT_LIB)

$(ORT_LIB):
	bash scripts/fetch-ort.sh

## kafka-fetch: resolve the Apache Kafka broker jars from Maven Central
kafka-fetch:
	bash deploy/kafka/kafka.sh fetch

kafka-start:
	bash deploy/kafka/kafka.sh start

kafka-stop:
	bash deploy/kafka/kafka.sh stop

## demo: fraud scoring on an embedded Kafka with generated records
demo: ort build
	./$(BIN) demo

## test: vet, unit tests, race detector, brief fuzzing, and the integration
## suite against a real Kafka broker (started here, stopped afterwards)
test: ort kafka-fetch build
	bash scripts/test.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

## deploy-check: promtool (alert rules and their unit tests), kubeconform
## (deploy/k8s against deploy/check/schemas), hadolint and the
## dashboard/alerts/docs metric-name test; offline once the tools are cached
deploy-check: ort
	bash deploy/check/deploy-check.sh

integration: ort kafka-fetch build
	bash scripts/test.sh integration

## bench: the benchmark harness in one run (about 6 minutes on 2 cores): the
## ceilings (ONNX Runtime alone, Kafka pass-through), kinfer end to end, latency
## at 25/50/90% load and the engine's CPU per record by stage, on a Kafka broker
## of its own (127.0.0.1:39892; KINFER_TEST_BROKERS to use another). Results:
## bench/results/<UTC time>/ (report.json, report.md, PNG plots).
## BENCH_ARGS=--short checks the harness in a minute without measuring.
bench: ort kafka-fetch
	$(GO) build -o bin/kinfer-bench ./bench/cmd/kinfer-bench
	./bin/kinfer-bench $(BENCH_ARGS)

## ort-gpu: fetch ONNX Runtime's GPU build (CUDA 13, TensorRT providers) from
## PyPI's onnxruntime-gpu wheel into .cache/ort-gpu/; use it with
## KINFER_ORT_LIB=$(CACHE)/ort-gpu/1.30.0/libonnxruntime.so
ort-gpu:
	bash scripts/fetch-ort-gpu.sh

## resnet50: make workload 3, ResNet-50 (98 MB), in .cache/models/resnet50 with
## PyTorch (the fixtures-frameworks venv, or PYTHON=a python with torch)
PYTHON ?= $(CACHE)/frameworks-venv/bin/python
resnet50:
	$(PYTHON) testdata/models/make_resnet50.py --out $(CACHE)/models/resnet50

## gpu-tests: build the test binaries and kinfer that scripts/gpu-check.sh
## runs, for a GPU machine without Go (KINFER_GPU_TESTS=bin/gpu there)
gpu-tests:
	$(GO) test -c -o bin/gpu/onnx.test ./handlers/onnx
	$(GO) test -c -o bin/gpu/cmd.test ./cmd
	$(GO) build -o bin/gpu/kinfer ./cmd/kinfer

## gpu-check: on a machine with an NVIDIA GPU, run the handler tests and the
## ONNX Runtime and replay benchmarks on CUDA (scripts/gpu-check.sh)
gpu-check:
	bash scripts/gpu-check.sh

## fixtures: regenerate the ONNX test models (needs Python 3 and pip)
fixtures:
	python3 -m venv $(CACHE)/fixtures-venv
	$(CACHE)/fixtures-venv/bin/pip install -q -r testdata/models/requirements.txt
	$(CACHE)/fixtures-venv/bin/python testdata/models/make_models.py

## fixtures-frameworks: regenerate the PyTorch and Keras fixtures (a venv of
## about 7 GB: the PyPI torch wheel pulls CUDA libraries)
fixtures-frameworks:
	python3 -m venv $(CACHE)/frameworks-venv
	$(CACHE)/frameworks-venv/bin/pip install -q -r testdata/models/requirements-frameworks.txt
	$(CACHE)/frameworks-venv/bin/python testdata/models/make_framework_models.py

clean:
	rm -rf bin

## chaos: the fault harness (chaos/) on its own real broker (port 39792):
## SIGKILLs kinfer at random moments, restarts the broker and adds and removes
## group members while a producer writes a known sequence, then checks the
## output with read_committed. One summary line; detail in
## .cache/chaos/chaos-report.json and .md. Resize with CHAOS_FLAGS.
CHAOS_FLAGS ?= --guarantee at_least_once --records 100000 --duration 90s --kills 10 --broker-restarts 1 --membership-changes 2
.PHONY: chaos
chaos: ort kafka-fetch build
	$(GO) build -o bin/kinfer-chaos ./chaos/cmd/kinfer-chaos
	bin/kinfer-chaos --kinfer-bin $(BIN) --out $(CACHE)/chaos/chaos-report.json $(CHAOS_FLAGS)
