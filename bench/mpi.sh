#!/usr/bin/env bash
# Data-parallel training over MPI on one machine (docs/mpi.md): throughput of
# `recur train` with 1 process and with 2 ranks (same global batch, and twice
# the batch; all-reduce buckets started during the backward pass, after it, or
# one blocking call), the communication time per step, and the all-reduce cost of the
# model's gradient alone (test_dist bench). Reports; never decides pass/fail.
# Usage: bash bench/mpi.sh [BUILD_DIR] [STEPS]   (a build with -DRECUR_MPI=ON)
# Results are approximate on a shared machine: run it on an idle one.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-mpi}
steps=${2:-40}
data=${RECUR_BENCH_DATA:-data/tinyshakespeare.txt}
recur="$build/recur"
mpirun=(mpirun --allow-run-as-root --oversubscribe)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the model of tools/demo.sh: 2 x 384 LSTM, embedding 64, seq-len 100
model=(--data "$data" --cell lstm --layers 2 --hidden 384 --embed 64 --seq-len 100
       --steps "$steps" --val-fraction 0 --save-every 0 --log-every 10 --overwrite)

# mean tokens/s of the metrics rows after the first (warm-up) window
throughput() {
  awk -F, 'NR > 2 { s += $6; n++ } END { if (n) printf "%.0f", s / n; else print "n/a" }' "$1"
}

run() { # name ranks threads batch [extra flags]
  local name=$1 ranks=$2 threads=$3 batch=$4
  shift 4
  local cmd=("$recur" train "${model[@]}" --threads "$threads" --batch "$batch"
             --out "$work/$name" "$@")
  if [ "$ranks" -gt 1 ]; then cmd=("${mpirun[@]}" -np "$ranks" "${cmd[@]}"); fi
  local start end
  start=$(date +%s.%N)
  "${cmd[@]}" 2> "$work/$name.err"
  end=$(date +%s.%N)
  local comm
  comm=$(grep -o '[0-9.]* ms per step, of which [0-9.]* ms communication' "$work/$name.err" || true)
  printf "| %-28s | %5d | %7d | %9s | %6.1f s | %s |\n" "$name" "$ranks" "$batch" \
    "$(throughput "$work/$name/metrics.csv")" "$(echo "$end - $start" | bc)" "${comm:--}"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
echo "| run | ranks | batch per rank | tokens/s | wall | per step (rank 0) |"
echo "|---|---|---|---|---|---|"
run "1 process, 2 threads" 1 2 32
run "1 process, 1 thread" 1 1 16
run "2 ranks x 1 thread" 2 1 16
run "2 ranks, buckets after backward" 2 1 16 --mpi-overlap 0
run "2 ranks, one blocking call" 2 1 16 --mpi-bucket 0
run "1 process, 2 threads, B=64" 1 2 64
run "2 ranks x 1 thread, B=32" 2 1 32
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# the gradient of this model: 1,903,105 floats (7.6 MB)
if [ -x "$build/tests/test_dist" ]; then
  echo
  "${mpirun[@]}" -np 2 "$build/tests/test_dist" bench 1903105 30
  "${mpirun[@]}" -np 2 "$build/tests/test_dist" bench 10000 200
fi
