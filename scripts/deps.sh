#!/usr/bin/env bash
# deps.sh - install the Debian packages musubi's tests and demo need.
# Idempotent and a fast no-op when everything is present: only missing
# packages are passed to apt-get, and the package lists are refreshed only
# when an install fails for want of them.
#   scripts/deps.sh [package...]   (default: every package in scripts/debian-packages.txt)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then
  pkgs=("$@")
else
  mapfile -t pkgs < <(sed -e 's/#.*//' "$here/debian-packages.txt" | tr -s ' \t' '\n' | sed '/^$/d')
fi
missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} Debian packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run 'sudo make deps' (or as root) to install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
if ! apt_install; then
  echo "deps: install failed; refreshing package lists and retrying"
  apt-get update -q
  apt_install
fi
