#!/usr/bin/env bash
# Install dev dependencies, then lint, check the import layering, and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# Chromium for the playground browser test; without it that test skips locally and fails when CI=true.
bash scripts/install_browser.sh || echo "warning: could not install chromium (see scripts/install_browser.sh)" >&2
# The SWORD Bible modules for the bible-en-es dataset test; without them that test skips locally and fails when CI=true.
bash scripts/install_bible.sh || echo "warning: could not install the Bible modules (see scripts/install_bible.sh)" >&2
# Fashion-MNIST for the vision tests (composed scenes); without it those tests skip locally and fail when CI=true.
bash scripts/install_fashion_mnist.sh || echo "warning: could not install Fashion-MNIST (see scripts/install_fashion_mnist.sh)" >&2
# MovieLens small (Debian r-cran-dslabs, unpacked into ~/.cache) for the recommender tests; without it that test
# skips locally and fails when CI=true.
bash scripts/install_movielens.sh || echo "warning: could not fetch MovieLens (see scripts/install_movielens.sh)" >&2
# espeak-ng for the synthetic speech test; without it that test skips locally and fails when CI=true.
bash scripts/install_espeak.sh || echo "warning: could not install espeak-ng (see scripts/install_espeak.sh)" >&2
.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$code"
