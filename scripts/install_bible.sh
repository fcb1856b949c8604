#!/usr/bin/env bash
# Install the two SWORD Bible modules behind `fromzero prepare-task bible-en-es` (tests/data/test_bible.py):
# Debian sword-text-web (World English Bible, ~4 MB) and sword-text-sparv (Reina-Valera 1909, ~2.7 MB), into
# /usr/share/sword. Idempotent: does nothing when both are there. The reader, PyPI pysword, comes with
# scripts/setup.sh dev. Without the modules the real-data test skips locally and fails when CI=true.
set -euo pipefail
MODS=/usr/share/sword/mods.d
if [ -f "$MODS/engWEB2015eb.conf" ] && [ -f "$MODS/spaRV1909eb.conf" ]; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" "the SWORD modules WEB and SpaRV" sword-text-web sword-text-sparv
if [ -d "$MODS" ]; then echo "SWORD modules: $(ls "$MODS" | tr '\n' ' ')"; fi
