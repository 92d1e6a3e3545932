#!/usr/bin/env bash
# The test command (`make test`): on a fresh Debian machine as root it installs
# and starts what the tests need (Docker Engine in Swarm mode, PostgreSQL,
# Chromium), builds the fixture images, then runs go vet and every test,
# integration tests included. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "dependencies"
scripts/deps.sh
step "fixture images"
test/fixtures/build.sh
bash test/pebble/install.sh
bash test/gitea/build.sh >/dev/null # a real Gitea for the git provider tests (internal/forge)
step "test registry"
test/registry/start.sh
step "browser assets"
scripts/assets.sh

export BERTH_TEST_POSTGRES_URL="${BERTH_TEST_POSTGRES_URL:-postgres://berth:berth@127.0.0.1:5432/berth_test?sslmode=disable}"
# Integration tests fail instead of skipping when an engine is missing.
export CI=true
export BERTH_SCREENSHOT_DIR="${BERTH_SCREENSHOT_DIR:-$PWD/bin/screenshots}"
mkdir -p "$BERTH_SCREENSHOT_DIR"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted" >&2
	exit 1
fi
step "go vet"
go vet ./...
step "docs"
scripts/docs.sh
step "go test"
go test -count=1 -timeout 25m ./...
step "done"
