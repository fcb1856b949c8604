#!/usr/bin/env bash
# Fetch MovieLens small (100,004 ratings, 671 users, 9,066 movies) for the recommender recipes and
# tests/data/test_movielens.py: it ships inside Debian r-cran-dslabs (~4 MB) as an R lazy-load database, which
# fromzero reads with PyPI rdata (no R needed). The package is downloaded and unpacked into
# ~/.cache/fromzero/dslabs, never installed system-wide, so no root or sudo is needed. Idempotent: does nothing
# when the data is already in any place fromzero looks (FROMZERO_DSLABS, /usr/lib/R/site-library/dslabs/data,
# the cache). GroupLens terms: the data is loaded at run time, never bundled with fromzero.
# Without it the real-data test skips locally and fails when CI=true.
set -euo pipefail
REL=usr/lib/R/site-library/dslabs/data
CACHE="$HOME/.cache/fromzero/dslabs"
for dir in "${FROMZERO_DSLABS:-}" "/$REL" "$CACHE/$REL"; do
  if [ -n "$dir" ] && [ -f "$dir/Rdata.rdb" ] && [ -f "$dir/Rdata.rdx" ]; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "no apt-get/dpkg-deb here; download Debian r-cran-dslabs and unpack it into $CACHE yourself" \
    "(or point FROMZERO_DSLABS at its $REL folder); the MovieLens tests skip" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download -qq r-cran-dslabs >/dev/null 2>&1; then
  # a fresh machine has no package lists yet (updating them needs root)
  apt-get update -qq
  apt-get download -qq r-cran-dslabs >/dev/null
fi
mkdir -p "$CACHE"
dpkg-deb -x r-cran-dslabs_*.deb "$CACHE"
echo "MovieLens (r-cran-dslabs): $CACHE/$REL"
