#!/usr/bin/env bash
# The main job: install what is missing, build, train a character LSTM on
# tiny Shakespeare for about three minutes on all cores, then sample from it.
# Usage: bash tools/demo.sh [SECONDS]   (a time limit; default 200: 1000 steps take about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-200}
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target recur
./build/recur train --data data/tinyshakespeare.txt --out runs/shakespeare --overwrite \
  --cell lstm --layers 2 --hidden 384 --embed 64 --dropout 0.1 --batch 32 --seq-len 100 \
  --lr 3e-3 --schedule cosine --warmup 50 --min-lr 1e-4 --steps 1000 --time "$seconds" --val-every 250
echo
echo "== a sample from runs/shakespeare/best.safetensors"
./build/recur sample --model runs/shakespeare/best.safetensors --prime "ROMEO:" --length 700 \
  --temperature 0.7 --seed 1
echo
