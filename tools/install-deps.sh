#!/usr/bin/env bash
# Installs the Debian 12 packages recur needs to build and test, if missing.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
packages=(
  cmake make gcc pkg-config     # the build
  libdnnl-dev                   # oneDNN: matrix products (RECUR_BLAS=onednn, the default)
  libjansson-dev                # JSON: safetensors headers, checkpoint metadata
  libsndfile1-dev               # speech: reading WAV/FLAC/Ogg/AIFF audio
  libsamplerate0-dev            # speech: resampling audio to the model's rate
  libfftw3-dev                  # speech: FFTs of the log-mel features
  libcsv-dev                    # forecast: reading CSV time series
  clang libclang-rt-14-dev      # the libFuzzer target for the safetensors reader
  libopenmpi-dev openmpi-bin    # MPI: data-parallel training (RECUR_MPI=ON, docs/mpi.md)
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
