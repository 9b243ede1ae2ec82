# kinfer: `make demo` runs the example end to end, `make test` runs every test.
# Everything a fresh machine needs (Go modules, ONNX Runtime, a Kafka broker)
# is fetched by these targets into .cache/ (git-ignored).

GO        ?= go
CACHE     ?= $(CURDIR)/.cache
ORT_LIB   := $(CACHE)/ort/1.30.0/libonnxruntime.so
BIN       := bin/kinfer
FUZZTIME  ?= 10s
# Packages with goroutines of their own: run under the race detector.
RACE_PKGS := ./processor/... ./batch/... ./schema/... ./internal/config/...

export KINFER_CACHE := $(CACHE)

.PHONY: all build test integration race fuzz vet ort kafka-fetch kafka-start kafka-stop demo bench fixtures clean

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

integration: ort kafka-fetch build
	bash scripts/test.sh integration

bench: ort build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./batch/ ./schema/ ./handlers/onnx/

## fixtures: regenerate the ONNX test models (needs Python 3 and pip)
fixtures:
	python3 -m venv $(CACHE)/fixtures-venv
	$(CACHE)/fixtures-venv/bin/pip install -q -r testdata/models/requirements.txt
	$(CACHE)/fixtures-venv/bin/python testdata/models/make_models.py

clean:
	rm -rf bin
