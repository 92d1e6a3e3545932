#!/usr/bin/env bash
# Footprint and speed of `berth server` on SQLite: time from process start to
# /readyz = 200, idle RSS after start and after 1,000 authenticated API
# requests, and requests/s of an authenticated GET, reported next to the same
# server's unauthenticated /healthz as the baseline measured in this run.
# Needs a running Docker Engine (readyz checks it) and wrk (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BERTH_BIN:-bin/berth}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get install -y -qq curl >/dev/null; }

dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
url="http://127.0.0.1:$port"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# RSS, and of it the anonymous memory and the pages of the binary (file).
rss_mb() { awk '/^(VmRSS|RssAnon|RssFile)/ { v[$1] = $2/1024 } END { printf "%.1f MB (anon %.1f, file %.1f)", v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

t0=$(now_ms)
"$BIN" server --listen "127.0.0.1:$port" --data-dir "$dir/data" --log-format json --log-level warn 2>"$dir/server.log" &
pid=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	sleep 0.01
done
ready_ms=$(( $(now_ms) - t0 ))
sleep 5 # idle: the server releases its start-up pages 3 s after it listens (internal/pages)
idle_rss=$(rss_mb "$pid")

pass="pw-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
export BERTH_CLI_CONFIG="$dir/cli.json"
"$BIN" setup --server "$url" --email bench@example.com --password-stdin <<<"$pass" >/dev/null
"$BIN" login --server "$url" --email bench@example.com --password-stdin <<<"$pass" >/dev/null
token=$("$BIN" token create bench --expires 1h 2>/dev/null)

for _ in $(seq 1000); do printf "url = \"%s\"\noutput = \"/dev/null\"\nheader = \"Authorization: Bearer %s\"\nnext\n" "$url/api/v1/me" "$token"; done >"$dir/curl.cfg"
sed -i '$ d' "$dir/curl.cfg" # no "next" after the last request
curl -s -K "$dir/curl.cfg"
sleep 1
loaded_rss=$(rss_mb "$pid")

rps() { wrk -t2 -c16 -d5s "$@" | awk '/Requests\/sec/ { printf "%.0f", $2 }'; }
base_rps=$(rps "$url/healthz")
api_rps=$(rps -H "Authorization: Bearer $token" "$url/api/v1/me")
final_rss=$(rss_mb "$pid")

cat <<REPORT
berth server (SQLite), $(nproc) cores
  start → /readyz 200          ${ready_ms} ms        (target ≤ 1000 ms)
  idle RSS after start         ${idle_rss}   (target ≤ 40 MB)
  RSS after 1,000 API requests ${loaded_rss}
  RSS after the wrk runs       ${final_rss}
  GET /healthz (baseline)      ${base_rps} req/s
  GET /api/v1/me (bearer)      ${api_rps} req/s     ($(awk -v a="$api_rps" -v b="$base_rps" 'BEGIN { printf "%.2f", a/b }')× baseline)
REPORT
