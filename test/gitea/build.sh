#!/usr/bin/env bash
# build.sh builds a real Gitea server from the Go module proxy for the git
# provider tests (internal/forge, via internal/testenv/gitea) and prints the
# path of the binary on stdout; progress goes to stderr.
#
# `go install code.gitea.io/gitea@<version>` cannot do it: the module's go.mod
# has replace directives (and from v1.27 names itself gitea.dev), so the source is
# downloaded with `go mod download`, copied out of the read-only module cache
# and built there with `go build`.
#
# Why v1.26.0 and not v1.27.x: v1.27 needs modules the proxy does not serve
# (gitea.dev/actions-proto-go, gitea.dev/sdk, gitlab.com/gitlab-org/api/
# client-go/v2 answer 403 "not available"), so it cannot be built here.
#
# The build is CGO_ENABLED=0 without the bindata tag. v1.26's only SQLite
# driver is cgo's mattn/go-sqlite3, so this binary speaks PostgreSQL (and
# MySQL, MSSQL) only; the tests give each server a database of its own.
# Without bindata, Gitea reads templates/, options/ and public/ from
# STATIC_ROOT_PATH at run time, so they are kept next to the binary.
#
# Idempotent and safe to run concurrently (flock): a cached binary that
# answers --version is kept, and -trimpath lets the Go build cache serve a
# rebuild from any temporary directory.
#
# Environment:
#   BERTH_GITEA_VERSION  module version to build (default v1.26.0)
#   BERTH_GITEA_DIR      cache directory (default /var/cache/berth-gitea-<version>)
set -euo pipefail

log() { printf 'gitea: %s\n' "$*" >&2; }
die() { printf 'gitea: ERROR: %s\n' "$*" >&2; exit 1; }

module=code.gitea.io/gitea
version="${BERTH_GITEA_VERSION:-v1.26.0}"
dir="${BERTH_GITEA_DIR:-/var/cache/berth-gitea-$version}"
bin="$dir/gitea"
build_log="$dir/build.log"
export PATH="$PATH:/usr/local/go/bin"

command -v go >/dev/null || die "go not found (expected in PATH or /usr/local/go/bin)"

# cached reports whether a complete, runnable build is in $dir.
cached() {
	[ -x "$bin" ] && [ -d "$dir/templates" ] && [ -d "$dir/options" ] &&
		"$bin" --version >/dev/null 2>&1
}

mkdir -p "$dir"
# Test packages run in parallel and may all ask for the binary at once.
exec 9>"$dir/.lock"
flock 9

if cached; then
	printf '%s\n' "$bin"
	exit 0
fi

log "building $module@$version into $dir (several minutes on a cold Go build cache)"
# Outside any module, so Berth's go.mod plays no part.
info=$(cd / && go mod download -json "$module@$version") ||
	die "go mod download $module@$version failed: $info"
# The "Dir" line of go's JSON, without needing jq.
src=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -n "$src" ] && [ -f "$src/go.mod" ] || die "go mod download gave no source directory for $module@$version"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-gitea-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -R "$src/." "$tmp/src"
chmod -R u+w "$tmp/src"

start=$SECONDS
if ! (
	cd "$tmp/src" &&
		CGO_ENABLED=0 go build -trimpath -buildvcs=false \
			-ldflags "-s -w -X main.Version=${version#v}" \
			-o "$tmp/gitea" .
) >"$build_log" 2>&1; then
	tail -n 40 "$build_log" >&2
	die "go build failed; full output in $build_log"
fi
log "built in $((SECONDS - start))s"

# Replace the run-time files and the binary last, so an interrupted install
# leaves no binary and the next run builds again.
rm -f "$bin"
for d in templates options public; do
	rm -rf "${dir:?}/$d"
	cp -R "$tmp/src/$d" "$dir/$d"
done
mv "$tmp/gitea" "$bin.new"
mv "$bin.new" "$bin"
cached || die "$bin does not run after the build; see $build_log"
log "installed $bin ($("$bin" --version))"
printf '%s\n' "$bin"
