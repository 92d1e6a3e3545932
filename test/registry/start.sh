#!/usr/bin/env bash
# start.sh runs a private image registry for the registry-credential tests:
# Debian's docker-registry (Distribution 2.8) on 127.0.0.1:5000 with htpasswd
# auth (user berth, password berth-registry-pw), and pushes the fixture
# berth-fixture/hello:v1 to it as 127.0.0.1:5000/berth/hello:v1.
#
# Docker treats 127.0.0.0/8 as an insecure registry by default, so plain HTTP
# on loopback needs no daemon configuration.
#
# Idempotent: a registry already answering with these credentials is kept,
# and the push of an image the registry has is quick.
# Needs scripts/deps.sh (docker-registry, htpasswd, curl, Docker) and
# test/fixtures/build.sh (the hello image).
#
# Environment:
#   BERTH_TEST_REGISTRY_DIR  state directory (default /var/lib/berth-test-registry)
set -euo pipefail

log() { printf 'registry: %s\n' "$*"; }
die() { printf 'registry: ERROR: %s\n' "$*" >&2; exit 1; }

dir="${BERTH_TEST_REGISTRY_DIR:-/var/lib/berth-test-registry}"
addr=127.0.0.1:5000
user=berth
password=berth-registry-pw
fixture=berth-fixture/hello:v1
image=$addr/berth/hello:v1

for c in docker-registry htpasswd curl docker; do
	command -v "$c" >/dev/null || die "$c not found; run scripts/deps.sh first"
done
docker image inspect "$fixture" >/dev/null 2>&1 || die "$fixture missing; run test/fixtures/build.sh first"

answering() { curl -fsS -o /dev/null -u "$user:$password" "http://$addr/v2/"; }

mkdir -p "$dir/data"
if answering 2>/dev/null; then
	log "already answering on $addr"
else
	# The password is a fixed test credential, so it may appear on a command line.
	htpasswd -Bbn "$user" "$password" >"$dir/htpasswd.tmp"
	mv "$dir/htpasswd.tmp" "$dir/htpasswd"
	cat >"$dir/config.yml.tmp" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
auth:
  htpasswd:
    realm: berth-test-registry
    path: $dir/htpasswd
CONFIG
	mv "$dir/config.yml.tmp" "$dir/config.yml"
	log "starting docker-registry on $addr (log: $dir/registry.log)"
	nohup setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
	for _ in $(seq 30); do
		answering 2>/dev/null && break
		sleep 0.5
	done
	if ! answering; then
		tail -n 20 "$dir/registry.log" >&2 || true
		die "registry did not answer on $addr (is the port taken by another process?)"
	fi
fi

# Push with a throwaway client config, so no credential stays in root's
# ~/.docker/config.json: the tests must bring their own.
export DOCKER_CONFIG
DOCKER_CONFIG=$(mktemp -d)
trap 'rm -rf "$DOCKER_CONFIG"' EXIT
printf '%s' "$password" | docker login --username "$user" --password-stdin "$addr" >/dev/null 2>&1 ||
	die "docker login $addr failed"
docker tag "$fixture" "$image"
docker push --quiet "$image" >/dev/null
log "pushed $image"
