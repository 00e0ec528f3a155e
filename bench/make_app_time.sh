#!/usr/bin/env bash
# How long a newcomer waits: `make app` on a fresh clone of this checkout's HEAD, pip's cache off and an
# empty weight cache (as on a fresh machine), until the served page answers (the health check and `/`), then
# until the default model, prepared in the background meanwhile, is ready. Prints two lines; the clone and
# its caches are removed afterwards.
#   bash bench/make_app_time.sh [PORT]
set -euo pipefail
port=${1:-8637}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'pkill -f "streamlit run app.py --server.port $port" || true; rm -rf "$dir"' EXIT
git clone -q "$root" "$dir/clone"
cd "$dir/clone"
start=$SECONDS
ATTRIBOT_CACHE="$dir/weights" PIP_NO_CACHE_DIR=1 make app PORT="$port" > "$dir/make_app.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/_stcore/health" > /dev/null && curl -sf "http://127.0.0.1:$port/" | grep -q "<title>"; do
  sleep 0.5
  kill -0 "$pid" 2> /dev/null || { echo "make app exited early:"; tail -20 "$dir/make_app.log"; exit 1; }
done
echo "make app on a fresh clone -> served page: $((SECONDS - start)) s (load average $(cut -d' ' -f1 /proc/loadavg))"
until grep -q "ready in" .venv/prepare-model.log 2> /dev/null; do
  sleep 0.5
  if grep -q "error" .venv/prepare-model.log 2> /dev/null; then cat .venv/prepare-model.log; exit 1; fi
  kill -0 "$pid" 2> /dev/null || { echo "make app exited early:"; tail -20 "$dir/make_app.log"; exit 1; }
done
echo "default model prepared in the background -> ready to load: $((SECONDS - start)) s ($(grep -o "[^ ]*: ready in [0-9]* s" .venv/prepare-model.log))"
