#!/usr/bin/env bash
# assets.sh fetches the web UI's third-party browser libraries from the npm
# registry (pinned by package-lock.json) and copies the files the UI serves
# into internal/web/static/vendor/, which go:embed picks up and git ignores
# (DESIGN.md decision 10: fetched at build time, never committed).
#
# `npm ci` runs only when node_modules is missing or older than the lockfile,
# so a second run takes milliseconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'assets: %s\n' "$*"; }
die() { printf 'assets: ERROR: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null || die "npm is required (Debian: apt-get install npm)"
[ -f package-lock.json ] || die "package-lock.json is missing; run from a Berth checkout"

stamp=node_modules/.package-lock.json # written by npm after every install
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
	log "npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

vendor=internal/web/static/vendor
mkdir -p "$vendor"

copy() { # copy SRC DEST-NAME, only when the content changed
	local src="node_modules/$1" dst="$vendor/$2"
	[ -f "$src" ] || die "$src is missing after npm ci"
	if ! cmp -s "$src" "$dst"; then
		cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
		log "copied $1 -> $dst"
	fi
}

copy htmx.org/dist/htmx.min.js htmx.min.js
