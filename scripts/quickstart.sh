#!/usr/bin/env bash
# Install, then train the quickstart GPT on the bundled novel (~5 min on 2 CPU cores),
# print samples and the run directory. Extra arguments are recipe overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/fromzero pretrain recipes/quickstart.yaml --out "runs/quickstart-$(date +%Y%m%d-%H%M%S)" "$@"
