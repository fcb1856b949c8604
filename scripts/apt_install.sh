#!/usr/bin/env bash
# Install Debian packages for optional tests: apt_install.sh WHAT PKG... (WHAT names them in messages).
# Without apt-get it only says so and exits 0 (the tests that need the packages skip, or fail under CI=true).
set -euo pipefail
what=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here; install $what yourself ($*); the tests that need it skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
