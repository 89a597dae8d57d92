# Dev8: two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X dev8.dev/dev8/internal/cli.Version=$(VERSION)

.PHONY: run build test lint fmt clean

## run: build dev8 and start the server with the embedded defaults (http://127.0.0.1:3000, data in ~/.dev8)
run: build
	./bin/dev8 server

## build: build the dev8 binary into bin/
build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/dev8 ./cmd/dev8

## test: gofmt, go vet, and every test with -race against SQLite and a throwaway PostgreSQL
test:
	scripts/test.sh

## lint: gofmt and go vet only
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
