#!/usr/bin/env bash
# install.sh installs Pebble, Let's Encrypt's ACME test CA, for the certificate
# tests (internal/certs, via internal/testenv.Pebble). Pebble is a Go program,
# so it comes from the Go module proxy:
#
#   go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
#
# Idempotent: a binary that `go version -m` reports as this exact module
# version is kept; anything else at that path is replaced.
#
# Environment:
#   BERTH_PEBBLE_DIR  directory of the binary (default /var/cache/berth-fixtures/bin);
#                     tests find it there, or through BERTH_PEBBLE_BIN or PATH
set -euo pipefail

log() { printf 'pebble: %s\n' "$*"; }
die() { printf 'pebble: ERROR: %s\n' "$*" >&2; exit 1; }

module=github.com/letsencrypt/pebble/v2
version=v2.10.1
dir="${BERTH_PEBBLE_DIR:-/var/cache/berth-fixtures/bin}"
bin="$dir/pebble"
export PATH="$PATH:/usr/local/go/bin"

command -v go >/dev/null || die "go not found (expected in PATH or /usr/local/go/bin)"

# installed prints the module version the binary at $bin was built from.
installed() {
	go version -m "$bin" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

if [ -x "$bin" ] && [ "$(installed)" = "$version" ]; then
	log "$bin is already $version"
	exit 0
fi

mkdir -p "$dir"
log "installing $module/cmd/pebble@$version into $dir"
# Run outside any module so the repository's go.mod plays no part.
(cd / && GOBIN="$dir" go install "$module/cmd/pebble@$version")
[ "$(installed)" = "$version" ] || die "$bin is not $version after go install"
log "installed $bin ($version)"
