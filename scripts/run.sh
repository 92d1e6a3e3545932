#!/usr/bin/env bash
# The run command (`make run`): builds berth, makes sure the Docker Engine is
# installed and running, and starts `berth server` with SQLite in ./data on
# http://localhost:3000. BERTH_LISTEN and BERTH_DATA_DIR (or the matching flags
# after --) choose another address and data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh engine
make --no-print-directory build
listen=${BERTH_LISTEN:-:3000}
port=${listen##*:}
echo
echo "Berth is starting. Create the owner account at: http://localhost:${port}/setup"
echo
exec bin/berth server --listen "$listen" --data-dir "${BERTH_DATA_DIR:-./data}" "$@"
