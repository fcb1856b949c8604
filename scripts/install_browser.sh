#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the playground browser test (tests/serve).
# Idempotent: does nothing when /usr/bin/chromium already exists. Playwright drives this binary
# through executable_path, so `playwright install` (a download) is never needed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" chromium chromium
if [ -x /usr/bin/chromium ]; then echo "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"; fi
