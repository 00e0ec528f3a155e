#!/usr/bin/env bash
# How long a newcomer waits: `make app` on a fresh clone of this checkout's HEAD, pip's cache off, until
# the served page answers (the health check and `/`). Prints one line; the clone is removed afterwards.
#   bash bench/make_app_time.sh [PORT]
set -euo pipefail
port=${1:-8637}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'pkill -f "streamlit run app.py --server.port $port" || true; rm -rf "$dir"' EXIT
git clone -q "$root" "$dir/clone"
cd "$dir/clone"
start=$SECONDS
PIP_NO_CACHE_DIR=1 make app PORT="$port" > "$dir/make_app.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/_stcore/health" > /dev/null && curl -sf "http://127.0.0.1:$port/" | grep -q "<title>"; do
  sleep 0.5
  kill -0 "$pid" 2> /dev/null || { echo "make app exited early:"; tail -20 "$dir/make_app.log"; exit 1; }
done
echo "make app on a fresh clone -> served page: $((SECONDS - start)) s (load average $(cut -d' ' -f1 /proc/loadavg))"
