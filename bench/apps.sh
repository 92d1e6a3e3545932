#!/usr/bin/env bash
# The control plane with 1,000 apps (10 projects × 100, SQLite): p99 latency of
# listing a project's apps and of reading one app, and the server's RSS, next
# to the same server's /healthz measured in this run as the baseline.
# Latency is measured with 2 concurrent clients, throughput with 8.
# Needs a running Docker Engine and wrk (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BERTH_BIN:-bin/berth}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null

dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
url="http://127.0.0.1:$port"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2/1024 }' "/proc/$1/status"; }

"$BIN" server --listen "127.0.0.1:$port" --data-dir "$dir/data" --log-level warn 2>"$dir/server.log" &
pid=$!
until curl -sf -o /dev/null "$url/readyz"; do sleep 0.05; done
export BERTH_CLI_CONFIG="$dir/cli.json"
pass="pw-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
"$BIN" setup --server "$url" --email bench@example.com --password-stdin <<<"$pass" >/dev/null
"$BIN" login --server "$url" --email bench@example.com --password-stdin <<<"$pass" >/dev/null
token=$("$BIN" token create bench --expires 1h 2>/dev/null)
auth="Authorization: Bearer $token"

start=$(date +%s)
for p in $(seq 10); do
	curl -sf -o /dev/null -H "$auth" -H 'Content-Type: application/json' -d "{\"name\":\"p$p\"}" "$url/api/v1/projects"
	for a in $(seq 100); do
		printf 'url = "%s"\noutput = "/dev/null"\nheader = "%s"\nwrite-out = "%%{http_code}\\n"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"a%d\\",\\"spec\\":{\\"image\\":\\"berth-fixture/hello:v1\\",\\"port\\":8080}}"\nnext\n' \
			"$url/api/v1/projects/p$p/apps" "$auth" "$a"
	done >"$dir/create.cfg"
	sed -i '$ d' "$dir/create.cfg" # no "next" after the last request
	codes=$(curl -s -K "$dir/create.cfg" | sort | uniq -c)
	[ "$(echo $codes)" = "100 201" ] || { echo "app creations answered: $codes" >&2; exit 1; }
done
created=$(( $(date +%s) - start ))
sleep 1
rss=$(rss_mb "$pid")

p99() { wrk -t1 -c2 -d5s --latency -H "$auth" "$1" | awk '$1 == "99%" { print $2 }'; }
rps() { wrk -t2 -c8 -d5s -H "$auth" "$1" | awk '/Requests\/sec/ { printf "%.0f", $2 }'; }
base=$(p99 "$url/healthz")
list=$(p99 "$url/api/v1/projects/p5/apps")
one=$(p99 "$url/api/v1/projects/p5/apps/a50")
list_rps=$(rps "$url/api/v1/projects/p5/apps")

cat <<REPORT
berth server (SQLite) with 1,000 apps in 10 projects, $(nproc) cores
  created 1,000 apps through the API   ${created} s
  RSS with 1,000 apps                   ${rss} MB      (target ≤ 60 MB)
  RSS after the wrk runs                $(rss_mb "$pid") MB
  p99 GET /healthz (baseline)           ${base}
  p99 GET /api/v1/projects/p5/apps      ${list}        (100 apps; target ≤ 20 ms)  ${list_rps} req/s
  p99 GET /api/v1/projects/p5/apps/a50  ${one}         (target ≤ 20 ms)
REPORT
