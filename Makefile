# The two commands the README names: `make run` and `make test`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
export CGO_ENABLED := 0
LDFLAGS := -s -w -X github.com/berthpaas/berth/internal/version.Version=$(VERSION) -X github.com/berthpaas/berth/internal/version.Commit=$(COMMIT)

.PHONY: build run test bench assets

## build: compile bin/berth with the UI assets embedded
build: assets
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/berth ./cmd/berth

## assets: fetch browser libraries from npm into the embed folder
assets:
	scripts/assets.sh

## run: start Docker if needed and run berth server on http://localhost:3000 with SQLite in ./data
run:
	scripts/run.sh

## test: install and start what the tests need, then vet and run every test
test:
	scripts/test.sh

## bench: footprint and speed of berth server, with 1,000 apps, of deploys against raw Swarm, and of the edge proxy against nginx
bench: build
	bench/server.sh
	bench/apps.sh
	go test -run '^$$' -bench . -benchtime 3x ./bench/deploy
	for p in wrk nginx haproxy; do command -v $$p >/dev/null || apt-get install -y -qq $$p >/dev/null; done
	BERTH_BIN=bin/berth go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/proxy
