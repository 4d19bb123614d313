# musubi - a masterless multi-site virtual cluster fabric.
# `make help` lists the targets. `make demo` and `make test` are the two a newcomer needs.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
GO           ?= go
export PATH  := /usr/local/go/bin:$(PATH)
BIN          := $(CURDIR)/bin
BENCH        ?= all
BENCH_OUT    := $(CURDIR)/bench/out/results.jsonl
STATICCHECK_VERSION := v0.8.0
# Test tiers: packages with files behind the build tag.
tier_pkgs = $(shell grep -rl --include='*_test.go' '^//go:build.*\b$(1)\b' . 2>/dev/null | xargs -r -n1 dirname | sort -u)
GOTEST_FLAGS ?= -count=1

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_-]+:.*## /{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install the Debian packages the tests and demo need (no-op when present)
	@scripts/deps.sh
	@$(GO) mod download

.PHONY: build
build: ## build bin/musubi and bin/musubi-sge (static, CGO_ENABLED=0)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/musubi ./cmd/musubi
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/musubi-sge ./cmd/musubi-sge

.PHONY: test
test: deps ## run every test tier this machine supports (unit, integration, e2e)
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-integration
	$(MAKE) --no-print-directory test-e2e

.PHONY: test-unit
test-unit: ## unit tier: no root, no daemons (fakes, parsers, contract suites on fakes)
	@echo "=== tier: unit"
	$(GO) test $(GOTEST_FLAGS) -race ./...

.PHONY: test-integration
test-integration: ## integration tier: real ZooKeeper (and later OVS, tgt) started by the tests
	@echo "=== tier: integration ($(words $(call tier_pkgs,integration)) packages)"
	@pkgs="$(call tier_pkgs,integration)"; if [ -z "$$pkgs" ]; then echo "no integration tests"; else \
	  $(GO) test $(GOTEST_FLAGS) -p 1 -tags integration -timeout 30m $$pkgs; fi

.PHONY: test-e2e
test-e2e: build ## e2e tier: the built binary, several sites
	@echo "=== tier: e2e ($(words $(call tier_pkgs,e2e)) packages)"
	@pkgs="$(call tier_pkgs,e2e)"; if [ -z "$$pkgs" ]; then echo "no e2e tests yet"; else \
	  MUSUBI_BIN=$(BIN)/musubi $(GO) test $(GOTEST_FLAGS) -p 1 -tags e2e -timeout 30m $$pkgs; fi

.PHONY: bench
bench: deps ## run benchmarks (BENCH=all|coord|...); figures also go to bench/out/results.jsonl
	@mkdir -p $(dir $(BENCH_OUT))
	MUSUBI_BENCH_OUT=$(BENCH_OUT) scripts/bench.sh $(BENCH)

.PHONY: demo
demo: deps build ## the main job on one machine (see README)
	scripts/demo.sh

.PHONY: lint
lint: ## go vet + staticcheck (staticcheck pinned, from the module proxy)
	$(GO) vet -tags "integration e2e bench" ./...
	@test -x $(BIN)/staticcheck-$(STATICCHECK_VERSION) || GOBIN=$(BIN)/.sc $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(BIN)/staticcheck-$(STATICCHECK_VERSION) || mv $(BIN)/.sc/staticcheck $(BIN)/staticcheck-$(STATICCHECK_VERSION)
	$(BIN)/staticcheck-$(STATICCHECK_VERSION) -tags "integration e2e bench" ./...

.PHONY: fmt
fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) bench/out
