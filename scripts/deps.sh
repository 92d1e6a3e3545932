#!/usr/bin/env bash
# deps.sh prepares a Debian bookworm machine (run as root) for Berth's tests:
# Debian packages, a running Docker Engine in Swarm mode, and a running
# PostgreSQL with the role and database the tests use
# (postgres://berth:berth@127.0.0.1:5432/berth_test?sslmode=disable).
#
# Idempotent: every step checks before it acts, so a second run takes seconds.
#
# Usage: deps.sh [all|engine]   (engine: only the Docker Engine, for `make run`;
#                                 berth server initialises Swarm itself)
#
# Environment:
#   BERTH_SWARM_ADVERTISE_ADDR  address for `docker swarm init` (default 127.0.0.1)
#   BERTH_DOCKERD_LOG           dockerd log when this script starts it
#                               (default /var/log/berth-dockerd.log)
set -euo pipefail

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd and PostgreSQL)"

ADVERTISE_ADDR="${BERTH_SWARM_ADVERTISE_ADDR:-127.0.0.1}"
DOCKERD_LOG="${BERTH_DOCKERD_LOG:-/var/log/berth-dockerd.log}"
PG_ROLE=berth
PG_PASSWORD=berth
PG_DB=berth_test
MODE=${1:-all}
case "$MODE" in all | engine) ;; *) die "usage: deps.sh [all|engine]" ;; esac

# --- 1. Debian packages -------------------------------------------------------

# A package is wanted when the command it provides is absent, so an engine or a
# Node.js installed some other way (Docker CE, NodeSource, /usr/local) is kept
# rather than fought with.
missing=()
want() { # want <package> <command-or-path>...
	local pkg=$1
	shift
	local c
	for c in "$@"; do
		if [[ $c == /* ]]; then
			[ -e "$c" ] && return 0
		elif command -v "$c" >/dev/null 2>&1; then
			return 0
		fi
	done
	missing+=("$pkg")
}
want docker.io dockerd
want iptables iptables
want ca-certificates /etc/ssl/certs/ca-certificates.crt
want nodejs node # make build fetches htmx with npm
want npm npm
if [ "$MODE" = all ]; then
	want postgresql pg_ctlcluster
	want chromium chromium chromium-browser
	want debootstrap debootstrap
	want git git
	want curl curl
	want haproxy haproxy
	# A private registry with htpasswd auth for the registry-credential
	# tests (test/registry/start.sh runs it; Debian's service stays off).
	want docker-registry docker-registry
	want apache2-utils htpasswd
	want mkdocs mkdocs # the documentation site (scripts/docs.sh)
	# A real SMTP server for the invitation email tests (testenv.SMTP).
	want python3-aiosmtpd /usr/lib/python3/dist-packages/aiosmtpd
fi

if [ ${#missing[@]} -eq 0 ]; then
	log "packages: all present"
else
	log "packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Keep maintainer scripts from starting services (docker-registry would
	# take port 5000 with its own config); this script starts what it needs.
	policy=/usr/sbin/policy-rc.d
	had_policy=0
	[ -e "$policy" ] && had_policy=1
	if [ "$had_policy" = 0 ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
	fi
	apt-get install -y -qq "${missing[@]}" >/dev/null
	[ "$had_policy" = 1 ] || rm -f "$policy"
	log "packages: installed ${missing[*]}"
fi

# --- 2. Docker Engine --------------------------------------------------------

docker_up() { docker info >/dev/null 2>&1; }

if docker_up; then
	log "docker: engine already running ($(docker info --format '{{.ServerVersion}}'))"
else
	pidfile=/var/run/docker.pid
	if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		log "docker: dockerd (pid $(cat "$pidfile")) is starting; waiting for it"
	elif [ -d /run/systemd/system ]; then
		log "docker: starting with systemctl start docker"
		systemctl start docker
	else
		# No init system to ask: start dockerd detached from this shell. It
		# starts its own containerd. No flags are needed on this kernel (no
		# IPVS, iptables-nft): only Swarm's ingress mesh/VIPs are affected,
		# and Berth does not use them.
		log "docker: starting dockerd (log: $DOCKERD_LOG)"
		nohup setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
	fi
	for _ in $(seq 60); do
		docker_up && break
		sleep 1
	done
	if ! docker_up; then
		printf 'deps: ERROR: docker engine did not answer within 60s; last lines of %s:\n' "$DOCKERD_LOG" >&2
		tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
		exit 1
	fi
	log "docker: engine up ($(docker info --format '{{.ServerVersion}}'))"
fi

if [ "$MODE" = engine ]; then
	log "done"
	exit 0
fi

# --- 3. Swarm ----------------------------------------------------------------

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case "$state" in
active)
	log "swarm: already active"
	;;
inactive)
	docker swarm init --advertise-addr "$ADVERTISE_ADDR" >/dev/null
	log "swarm: initialised (advertise address $ADVERTISE_ADDR)"
	;;
*)
	die "swarm: node state is '$state'; fix it by hand (docker swarm leave --force, or unlock it) and rerun"
	;;
esac

# --- 4. PostgreSQL -------------------------------------------------------------

# The newest installed major version's "main" cluster; created when missing
# (images built with create_main_cluster=false have none).
pg_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_version" ] || die "postgresql: no server installed under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
	log "postgresql: creating cluster $pg_version/main"
	pg_createcluster "$pg_version" main >/dev/null
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { print $3 }')
pg_status=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { print $4 }')
if [[ $pg_status == online* ]]; then
	log "postgresql: $pg_version/main already running on port $pg_port"
else
	pg_ctlcluster "$pg_version" main start
	log "postgresql: started $pg_version/main on port $pg_port"
fi
for _ in $(seq 30); do
	pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
	sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$pg_port" || die "postgresql: not accepting connections on 127.0.0.1:$pg_port; see /var/log/postgresql/postgresql-$pg_version-main.log"
[ "$pg_port" = 5432 ] || log "postgresql: WARNING: cluster listens on $pg_port, not 5432; set BERTH_TEST_POSTGRES_URL accordingly"

# Run as the postgres superuser from a directory it can read.
pgsu() { (cd / && runuser -u postgres -- psql -p "$pg_port" -X -q -v ON_ERROR_STOP=1 -tA "$@"); }

if [ "$(pgsu -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" = 1 ]; then
	# Reassert the attributes so a role left in another state is repaired.
	pgsu -c "ALTER ROLE $PG_ROLE WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
	log "postgresql: role $PG_ROLE present"
else
	pgsu -c "CREATE ROLE $PG_ROLE WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
	log "postgresql: role $PG_ROLE created"
fi
# Each test drops its database WITH (FORCE); an autovacuum worker connected
# to it at that moment can only be ended by a member of pg_signal_backend.
pgsu -c "GRANT pg_signal_backend TO $PG_ROLE"
if [ "$(pgsu -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" = 1 ]; then
	pgsu -c "ALTER DATABASE $PG_DB OWNER TO $PG_ROLE"
	log "postgresql: database $PG_DB present"
else
	pgsu -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE"
	log "postgresql: database $PG_DB created"
fi

# Prove the URL the tests use works (password auth over TCP).
PGPASSWORD=$PG_PASSWORD psql -X -q -tA -h 127.0.0.1 -p "$pg_port" -U "$PG_ROLE" -d "$PG_DB" -c 'SELECT 1' >/dev/null ||
	die "postgresql: cannot log in as $PG_ROLE over TCP; check pg_hba.conf allows 'host all all 127.0.0.1/32 scram-sha-256'"
log "postgresql: postgres://$PG_ROLE:***@127.0.0.1:$pg_port/$PG_DB reachable"
log "done"
