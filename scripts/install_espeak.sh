#!/usr/bin/env bash
# Install espeak-ng, the offline speech synthesiser behind the synthetic speech data (src/fromzero/data/datasets/
# speech_synth.py, tests/data/datasets/test_speech_synth.py): Debian package espeak-ng (~1 MB, with its voice
# data espeak-ng-data). Idempotent: does nothing when espeak-ng is on PATH. Without it the synthesis test skips
# locally and fails when CI=true.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" "the espeak-ng speech synthesiser" espeak-ng
if command -v espeak-ng >/dev/null 2>&1; then echo "espeak-ng: $(espeak-ng --version | head -1)"; fi
