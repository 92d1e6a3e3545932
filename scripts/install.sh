#!/bin/sh
# install.sh installs Berth on a Debian or Ubuntu server, or upgrades it when
# run again:
#
#   sudo sh install.sh --binary ./berth [--public-url https://berth.example.com] [--listen 127.0.0.1:3000]
#
# It installs the Docker Engine (Debian's docker.io) when none answers, creates
# the system user `berth` (in the docker group) and its data directory
# /var/lib/berth, installs the binary as /usr/local/bin/berth, writes
# /etc/berth/berth.env (only the first time: later runs keep your settings) and
# the systemd unit berth.service, starts or restarts it, waits until it answers
# and prints the setup URL. Re-running it with a newer binary is the upgrade: the
# data directory, the settings and the running apps stay.
#
# --dry-run prints the package and systemd steps instead of running them (for
# containers without systemd, and to see what would happen); everything else
# (user, directories, files) is done.
#
# POSIX sh, no shell strings built from input: arguments are quoted and the
# values written to berth.env are checked first.
set -eu

binary=""
public_url=""
listen="127.0.0.1:3000"
dry_run=false

log() { printf 'berth install: %s\n' "$*"; }
die() { printf 'berth install: ERROR: %s\n' "$*" >&2; exit 1; }
run() { # a step that needs the real system (packages, systemd)
	if $dry_run; then log "dry run: would run: $*"; else "$@"; fi
}

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary="${2:-}"; shift 2 ;;
	--public-url) public_url="${2:-}"; shift 2 ;;
	--listen) listen="${2:-}"; shift 2 ;;
	--dry-run) dry_run=true; shift ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh …)"
[ -n "$binary" ] || die "--binary: name the berth binary to install (from a release, or bin/berth after make build)"
[ -f "$binary" ] && [ -x "$binary" ] || die "--binary $binary: not an executable file"
"$binary" version >/dev/null 2>&1 || die "--binary $binary: does not run here (wrong architecture?)"
case "$public_url" in
"" | http://* | https://*) ;;
*) die "--public-url must start with http:// or https://" ;;
esac
# Values go into an environment file: one line each, no quotes or spaces.
for v in "$public_url" "$listen"; do
	case "$v" in *[!A-Za-z0-9.:/_-]*) die "--public-url and --listen may contain only letters, digits and . : / _ -" ;; esac
done
if [ -r /etc/os-release ]; then
	. /etc/os-release
	case "${ID:-}:${ID_LIKE:-}" in debian:* | ubuntu:* | *:*debian*) ;; *) log "WARNING: ${PRETTY_NAME:-this system} is not Debian or Ubuntu; continuing" ;; esac
fi

# The Docker Engine: keep one that answers, install Debian's otherwise.
scratch=$(mktemp -d)
if "$binary" doctor --data-dir "$scratch" --listen 127.0.0.1:0 --proxy-http-port 0 --proxy-https-port 0 2>/dev/null | grep -q '^ok  *docker engine'; then
	log "docker engine: answering"
elif command -v dockerd >/dev/null 2>&1; then
	log "docker engine: installed, starting it"
	run systemctl enable --now docker
else
	log "docker engine: installing docker.io"
	run apt-get update -q
	run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
	run systemctl enable --now docker
fi
rm -rf "$scratch"

# The system user, in the docker group (the engine's socket).
getent group docker >/dev/null 2>&1 || groupadd --system docker
if id berth >/dev/null 2>&1; then
	log "user berth: present"
else
	useradd --system --home-dir /var/lib/berth --shell /usr/sbin/nologin --groups docker berth
	log "user berth: created"
fi
usermod -a -G docker berth

install -d -m 0700 -o berth -g berth "/var/lib/berth"
install -d -m 0755 "/etc/berth" "/usr/local/bin" "/etc/systemd/system"

# The binary, replaced atomically (a running server keeps its old inode).
upgrade=false
[ -e "/usr/local/bin/berth" ] && upgrade=true
install -m 0755 "$binary" "/usr/local/bin/berth.new"
mv -f "/usr/local/bin/berth.new" "/usr/local/bin/berth"
log "binary: $("/usr/local/bin/berth" version | head -n 1)"

env_file="/etc/berth/berth.env"
if [ -e "$env_file" ]; then
	log "settings: keeping $env_file"
else
	umask 077
	{
		echo "# berth server settings: every flag of berth server as BERTH_<FLAG> (see berth server --help)."
		echo "BERTH_DATA_DIR=/var/lib/berth"
		echo "BERTH_LISTEN=$listen"
		[ -z "$public_url" ] || echo "BERTH_PUBLIC_URL=$public_url"
	} >"$env_file"
	umask 022
	chown root:berth "$env_file"
	chmod 0640 "$env_file"
	log "settings: wrote $env_file"
fi

cat >"/etc/systemd/system/berth.service" <<'UNIT'
[Unit]
Description=Berth control plane
Documentation=berth server --help
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Type=simple
User=berth
Group=berth
SupplementaryGroups=docker
EnvironmentFile=/etc/berth/berth.env
ExecStart=/usr/local/bin/berth server
Restart=always
RestartSec=2
# SIGTERM: in-flight requests finish within --shutdown-timeout.
TimeoutStopSec=30
NoNewPrivileges=true
ProtectSystem=full
ProtectHome=true
PrivateTmp=true
ReadWritePaths=/var/lib/berth

[Install]
WantedBy=multi-user.target
UNIT
log "systemd unit: wrote berth.service"

run systemctl daemon-reload
if $upgrade; then
	run systemctl restart berth
	log "upgraded; berth restarted (apps and the edge proxy kept running)"
else
	run systemctl enable --now berth
fi

url="http://$listen"
$dry_run && { log "dry run: done; the server would answer on $url"; exit 0; }
i=0
until /usr/local/bin/berth probe http "$url/healthz" --expect 200 >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 60 ] || die "berth did not answer on $url within 60 s; see: journalctl -u berth"
	sleep 1
done
log "berth answers on $url"
$upgrade || log "open ${public_url:-$url}/setup to create the owner account (from this machine, or through --public-url)"
