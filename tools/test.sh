#!/usr/bin/env bash
# The whole test suite: a release build with every test (MPI included), the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer, and a bounded libFuzzer
# run of the safetensors reader. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# The release build includes MPI (data-parallel training, docs/mpi.md) and
# runs its tests (label mpi: mpirun with 2 ranks); the sanitizer build below
# is without MPI, so both configurations are tested.
mpi=OFF
if command -v mpiexec >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1; then
  mpi=ON
else
  echo "!! MPI not found: the mpi tests are skipped (tools/install-deps.sh installs Open MPI)"
fi
echo "== release build and tests (MPI $mpi)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRECUR_MPI=$mpi >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRECUR_SANITIZE=ON -DRECUR_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

if command -v clang >/dev/null 2>&1; then
  echo "== libFuzzer: safetensors reader, 30 s"
  CC=clang cmake -S . -B build-fuzz -DRECUR_FUZZ=ON -DRECUR_BUILD_TESTS=OFF -DRECUR_BUILD_CLI=OFF \
    -DRECUR_BUILD_BENCH=OFF >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors
  corpus=$(mktemp -d)
  cp tests/fixtures/*.safetensors "$corpus"/
  ./build-fuzz/fuzz/fuzz_safetensors -max_total_time=30 -rss_limit_mb=2048 -print_final_stats=0 \
    "$corpus" 2>&1 | tail -n 3
  rm -rf "$corpus"
fi
echo "== all tests passed"
