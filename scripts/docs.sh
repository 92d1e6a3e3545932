#!/usr/bin/env bash
# docs.sh builds the documentation site (mkdocs.yml, docs/). It first writes the
# generated reference pages into docs/reference/ (git-ignored): the CLI
# reference from the help of a berth binary built from this tree, the API
# reference from the OpenAPI document, the server options from
# internal/config, and a copy of mkdocs.yml whose nav lists every command
# group. Then it runs `mkdocs build --strict` on that copy and fails on any
# warning, on a page missing from the nav, on a link to a missing #anchor and
# on a code fence left unrendered.
#
# Usage: docs.sh [serve]   (serve: generate, then `mkdocs serve` for writing)
#
# Environment:
#   BERTH_DOCS_SITE   where the site is built (default bin/site)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'docs: %s\n' "$*"; }
die() { printf 'docs: ERROR: %s\n' "$*" >&2; exit 1; }

command -v mkdocs >/dev/null || die "mkdocs is required (Debian: apt-get install mkdocs)"
start=$(date +%s%N)
elapsed() { printf '%d.%01ds' $(( ($(date +%s%N) - start) / 1000000000 )) $(( ($(date +%s%N) - start) / 100000000 % 10 )); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/" ./cmd/berth ./cmd/berth-docs
"$tmp/berth-docs" -berth "$tmp/berth" -out docs/reference -mkdocs mkdocs.yml -mkdocs-out "$tmp/mkdocs.yml"
log "reference pages generated ($(elapsed))"

if [ "${1:-}" = serve ]; then
	mkdocs serve -f "$tmp/mkdocs.yml"
	exit
fi

site=${BERTH_DOCS_SITE:-bin/site}
mkdir -p "$(dirname "$site")"
site=$(cd "$(dirname "$site")" && pwd)/$(basename "$site") # the config is in $tmp
if ! mkdocs build --strict --clean -f "$tmp/mkdocs.yml" -d "$site" >"$tmp/mkdocs.log" 2>&1; then
	cat "$tmp/mkdocs.log" >&2
	die "mkdocs build --strict failed"
fi
# mkdocs only logs pages left out of the nav (INFO), and its readthedocs
# theme would not show them.
if grep -q 'not included in the "nav"' "$tmp/mkdocs.log"; then
	sed -n '/not included in the "nav"/,$p' "$tmp/mkdocs.log" >&2
	die "add these pages to the nav in mkdocs.yml"
fi
if grep -q WARNING "$tmp/mkdocs.log"; then
	cat "$tmp/mkdocs.log" >&2
	die "mkdocs warned"
fi
# mkdocs 1.4 does not check #fragments, nor warn about a code fence it left
# unrendered; both must fail here.
"$tmp/berth-docs" -check-site "$site" || die "broken links or unrendered code in the site"
log "site built in $site ($(elapsed))"
