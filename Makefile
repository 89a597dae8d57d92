# Dev8: two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X dev8.dev/dev8/internal/cli.Version=$(VERSION)

.PHONY: run build modules assets test lint fmt clean bench images supervisor-image server-image

# The packages make build compiles (and make assets runs).
BUILD_PKGS := ./cmd/dev8 ./cmd/dev8-supervisor ./internal/web/build

## run: build dev8 and start the server with the embedded defaults (http://127.0.0.1:3000, data in ~/.dev8)
run: build
	./bin/dev8 server

## build: build the dev8 binary into bin/ (with the dashboard's browser assets, and the small workspace supervisor, cmd/dev8-supervisor, built first and embedded: see internal/supervisorbin)
build: modules assets
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o internal/supervisorbin/dev8-supervisor ./cmd/dev8-supervisor
	CGO_ENABLED=0 go build -trimpath -tags dev8_embed_supervisor -ldflags '$(LDFLAGS)' -o bin/dev8 ./cmd/dev8

## modules: download the Go modules the build needs, one line per module, on the first run only (silent when they are all in the module cache)
modules:
	@if ! GOPROXY=off go list -deps $(BUILD_PKGS) >/dev/null 2>&1; then \
		echo "make: downloading Go modules (first run only)..."; \
		start=$$(date +%s); \
		go list -deps $(BUILD_PKGS) >/dev/null && \
		echo "make: Go modules downloaded in $$(( $$(date +%s) - start ))s"; \
	fi

## assets: install the dashboard's npm packages and bundle them (esbuild) into internal/web/static/dist, which the binary embeds
assets: internal/web/static/dist/terminal.js

# npm shows its progress when it installs for the first time, and only
# errors when it reinstalls after a change.
internal/web/static/dist/terminal.js: internal/web/frontend/package-lock.json internal/web/frontend/*.js internal/web/build/main.go | modules
	@if [ -d internal/web/frontend/node_modules ]; then \
		echo "npm ci --prefix internal/web/frontend"; \
		npm ci --prefix internal/web/frontend --no-audit --no-fund --loglevel=error; \
	else \
		echo "make: installing the dashboard's npm packages (first run only)..."; \
		npm ci --prefix internal/web/frontend --no-audit --no-fund; \
	fi
	go run ./internal/web/build

## test: gofmt, go vet, and every test with -race against SQLite and a throwaway PostgreSQL
test: assets
	scripts/test.sh

## bench: the benchmark suite (issue 8; ~10 minutes, 5 of them sampling the idle supervisor; not part of `make test`): prints a table and writes bench/results.json (BENCH_FLAGS adds flags, e.g. -runs 3 -supervisor-duration 1m -out /tmp/r.json); PostgreSQL figures need PostgreSQL installed (a throwaway server is started), the IDE figures code-server (DEV8_CODE_SERVER, else scripts/install-code-server.sh), the scp figure openssh-server, the Kubernetes figures the test cluster (scripts/k8s-test-cluster.sh up) and dev8/base (make images), the failover figure the test cluster and HAProxy (apt-get install haproxy)
bench: build
	@DEV8_CODE_SERVER=$${DEV8_CODE_SERVER:-$$(scripts/install-code-server.sh 2>/dev/null | tail -n1)}; export DEV8_CODE_SERVER; \
	[ -n "$$DEV8_CODE_SERVER" ] || echo "bench: no code-server (scripts/install-code-server.sh failed): the IDE figures are skipped"; \
	if scripts/test-postgres.sh run -- true >/dev/null 2>&1; then \
		scripts/test-postgres.sh run -- go run -tags dev8_embed_supervisor ./bench/cmd/dev8bench -dev8 bin/dev8 $(BENCH_FLAGS); \
	else \
		echo "bench: PostgreSQL is not installed (scripts/test-postgres.sh failed): PostgreSQL figures are skipped"; \
		DEV8_TEST_DATABASE_URL= go run -tags dev8_embed_supervisor ./bench/cmd/dev8bench -dev8 bin/dev8 $(BENCH_FLAGS); \
	fi

## images: build the workspace images (images/: dev8/base, nodejs, python, fullstack; Debian 13) with Docker + BuildKit and no container registry needed: Debian's image is pulled when it can be, else made from the Debian mirror with mmdebstrap (cached as dev8/debian:trixie); the tools come from Debian's packages and the npm registry (IMAGE_PREFIX, IMAGE_TAG, IMAGES, DEBIAN_IMAGE, EXTRA_CA_FILE … at the top of scripts/build-images.sh; ~11 min from scratch on 2 busy cores, ~15 s when nothing changed: docs/benchmarks.md; not part of make test)
images:
	scripts/build-images.sh

## supervisor-image: build the image the kubernetes runtime copies the workspace supervisor from (SUPERVISOR_IMAGE, default dev8/supervisor:<version>: FROM scratch with the static /dev8-supervisor), with Docker; push it where your cluster pulls from and pass it as --kubernetes-supervisor-image
SUPERVISOR_IMAGE ?= dev8/supervisor:$(VERSION)
supervisor-image:
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$$ctx/dev8-supervisor" ./cmd/dev8-supervisor && \
	printf 'FROM scratch\nCOPY dev8-supervisor /dev8-supervisor\nUSER 1000:1000\n' > "$$ctx/Dockerfile" && \
	docker build -q -t $(SUPERVISOR_IMAGE) "$$ctx" && echo "built $(SUPERVISOR_IMAGE)"

## server-image: build the image of the server for Kubernetes (SERVER_IMAGE, default dev8/dev8:<version>: deploy/Dockerfile, FROM scratch with /dev8, /dev8-supervisor, which workspaces copy, and the host's CA certificates; uid 65532), with Docker; deploy/kubernetes runs it
SERVER_IMAGE ?= dev8/dev8:$(VERSION)
server-image: build
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	cp bin/dev8 internal/supervisorbin/dev8-supervisor "$$ctx/" && \
	cp /etc/ssl/certs/ca-certificates.crt deploy/Dockerfile "$$ctx/" && \
	docker build -q -t $(SERVER_IMAGE) "$$ctx" && echo "built $(SERVER_IMAGE)"

## lint: gofmt and go vet only
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin internal/web/static/dist internal/web/frontend/node_modules internal/supervisorbin/dev8-supervisor
