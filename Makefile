# mifsec — build, test and demo. `make test` installs what it needs.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(PATH)
export GOBIN := $(CURDIR)/.tools/bin
export GOFLAGS := -buildvcs=false

# Pinned tool versions.
BUF_VERSION            := v1.75.0
GRPCURL_VERSION        := v1.9.3
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.0

GO_PKGS := ./...

.PHONY: all build tools deps generate check-generated lint vet test test-unit test-vm demo bench clean

all: build

build:
	go build -o bin/ ./cmd/...

tools: .tools/bin/buf .tools/bin/grpcurl .tools/bin/protoc-gen-go .tools/bin/protoc-gen-go-grpc

.tools/bin/buf:
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
.tools/bin/grpcurl:
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
.tools/bin/protoc-gen-go:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
.tools/bin/protoc-gen-go-grpc:
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)

deps:
	./test/deps.sh

generate: tools
	rm -rf gen/mifsec
	buf generate
	buf build -o .tools/api.binpb
	go run ./tools/apidoc -image .tools/api.binpb -o docs/api.md

# Fails when the committed gen/ differs from what the protos generate.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- gen docs/api.md)" ]; then \
	  echo "gen/ or docs/api.md is stale: run 'make generate' and commit the result"; git status --porcelain -- gen docs/api.md; exit 1; fi

lint: tools
	buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	go vet $(GO_PKGS)

test-unit:
	go test -count=1 -timeout 15m $(GO_PKGS)

test-vm:
	./test/vm/run.sh

test: deps tools lint check-generated vet test-unit test-vm

demo: build
	./deploy/demo/demo.sh

# Benchmarks and scripted comparisons (root; see docs/benchmarks.md).
bench: build
	go test -run '^$$' -bench . -benchmem -cpu 1 ./engine/...
	./bench/dataplane.sh
	./bench/handshake.sh
	./bench/scale.sh
	./bench/mobility.sh

clean:
	rm -rf bin
