#!/usr/bin/env bash
# Installs the Debian 12 packages recur needs to build and test, if missing.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
packages=(
  cmake make gcc pkg-config     # the build
  libdnnl-dev                   # oneDNN: matrix products (RECUR_BLAS=onednn, the default)
  libjansson-dev                # JSON: safetensors headers, checkpoint metadata
  clang libclang-rt-14-dev      # the libFuzzer target for the safetensors reader
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "recur: all build packages are installed"
  exit 0
fi
echo "recur: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
