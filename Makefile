# A thin layer of aliases over the go tool. Every target works on a fresh
# machine: `deps` installs what is missing.
GO       ?= go
FUZZTIME ?= 20s
CONFIG   ?= dsmil.hcl

.PHONY: all build run test unit lint generate check-generate fuzz bench deps clean

all: build

## deps: install the system tools the build and tests need (protoc for the
## generated-code drift check).
deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl/" >&2; exit 1; }
	@command -v protoc >/dev/null || { \
		echo "installing protobuf-compiler (protoc)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq protobuf-compiler >/dev/null; }

## build: the host and every plugin binary into ./bin
build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...
	@for p in plugins/*/; do \
		[ -f "$$p/main.go" ] || continue; \
		n=$$(basename $$p); echo "$(GO) build -o bin/dsmil-$$n ./$$p"; \
		$(GO) build -o bin/dsmil-$$n ./$$p || exit 1; done

## run: build and start the plane on $(CONFIG) (Ctrl-C stops it)
run: deps build
	./bin/dsmil-host serve -config $(CONFIG)

## test: everything CI runs
test: deps lint check-generate unit

unit:
	$(GO) test -race -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## generate: regenerate committed generated code
generate:
	$(GO) generate ./sdk/proto/...

check-generate:
	sh sdk/proto/generate.sh -check

## fuzz: a short run of every fuzz target (FUZZTIME each)
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
		d=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "== $$d $$t"; \
			$(GO) test ./$$d -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) || exit 1; \
		done; done

## bench: every Go benchmark
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
