#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the playground browser test (tests/serve).
# Idempotent: does nothing when /usr/bin/chromium already exists. Playwright drives this binary
# through executable_path, so `playwright install` (a download) is never needed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser.sh: no apt-get here; install chromium yourself (the browser test skips without it)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
