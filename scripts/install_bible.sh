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
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_bible.sh: no apt-get here; install the SWORD modules WEB and SpaRV yourself (the test skips)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends sword-text-web sword-text-sparv >/dev/null
echo "installed SWORD modules: $(ls "$MODS" | tr '\n' ' ')"
