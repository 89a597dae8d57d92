#!/usr/bin/env bash
# test.sh: what `make test` and CI run. gofmt and go vet must be clean, then
# every package's tests run with the race detector. The store and API tests
# run against SQLite and PostgreSQL: a throwaway PostgreSQL is started for the
# run unless DEV8_TEST_DATABASE_URL already names one.
#
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestEndToEnd ./internal/server/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== shell scripts"
# Syntax of every script (milliseconds); shellcheck, where installed, on the
# image build scripts, which no test runs (make images is not part of the
# tests).
for f in $(git ls-files '*.sh' 2>/dev/null || find scripts images -name '*.sh'); do
	bash -n "$f"
done
if command -v shellcheck >/dev/null; then
	shellcheck scripts/build-images.sh images/base/install-extensions.sh
fi

echo "== go vet"
go vet ./...

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
	args=(./...)
fi

echo "== go test -race"
if [ -n "${DEV8_TEST_DATABASE_URL:-}" ]; then
	go test -race -count=1 -timeout 20m "${args[@]}"
else
	scripts/test-postgres.sh run -- go test -race -count=1 -timeout 20m "${args[@]}"
fi
