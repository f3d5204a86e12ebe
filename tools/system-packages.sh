#!/usr/bin/env bash
# The Debian packages the store needs besides Python's: fonts-noto-cjk (Chinese text in report charts) and, for the
# tests, chromium (browser tests). Installs the missing ones with apt-get when run as root, quietly; otherwise says
# which to install and goes on (exit 0), or fails with --required (.ci/run). Installed packages cost one dpkg query.
#   tools/system-packages.sh [--required] PACKAGE...
set -euo pipefail
required=0
if [ "${1:-}" = "--required" ]; then required=1; shift; fi
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
     || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    exit 0
  fi
fi
echo "missing system packages: ${missing[*]} (Debian/Ubuntu: sudo apt-get install --no-install-recommends" \
     "${missing[*]}); charts need fonts-noto-cjk, browser tests chromium" >&2
exit "$required"
