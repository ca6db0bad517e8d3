#!/usr/bin/env bash
# The German-to-English benchmark of docs/translate.md: two networks train side by side, one
# core each, on the training part of data/translation/de-en.tsv plus the dictionary's word and
# phrase pairs; then each alone and the two as an ensemble (`--model A,B`) translate the
# held-out test part (BLEU, chrF), and a few translations are printed beside their references.
# Each network keeps its checkpoint every 2,000 steps (--keep-every) and translates with the
# mean of its last 8 (`recur translate average`; a run too short to keep any uses its final
# weights): chosen on the validation part over the final weights and the mean of the last 4
# (docs/translate.md).
# Usage: bench/translate.sh [SECONDS [OUT_DIR]]   (at most SECONDS of training each, default
# 7020: the documented run; its 64,000 steps took 1 h 55 min)
# Run it on a quiet machine; RECUR and PHRASES override the binary and the extra pairs.
set -euo pipefail
RECUR=${RECUR:-build/recur}
PHRASES=${PHRASES:-../shared/data/translation/de-en-phrases.tsv}
seconds=${1:-7020}
out=${2:-runs/translate-bench}
data=data/translation/de-en.tsv
mkdir -p "$out"
train() { # OUT_SUBDIR SEED DROPOUT EMBED_DROPOUT
  "$RECUR" translate train --data "$data" --extra "$PHRASES" --out "$out/$1" --overwrite \
    --threads 1 --repeat 8 --vocab 4000 --cell gru --embed 256 --hidden 256 --tie-embeddings --layer-norm \
    --attention additive --dropout "$3" --embed-dropout "$4" --label-smoothing 0.1 --batch 64 \
    --lr 2e-3 --schedule cosine --warmup 500 --min-lr 1e-5 --steps 64000 --time "$seconds" \
    --val-every 4000 --save-every 2000 --keep-every 2000 --val-sentences 300 --log-every 500 \
    --seed "$2" \
    2> "$out/$1.log"
}
train A 1 0.4 0.2 &
train B 2 0.5 0.25 &
wait
average() { # OUT_SUBDIR: the mean of its last 8 kept checkpoints (zero-padded: ls sorts by step)
  local kept
  kept=$(ls "$out/$1"/step-*.safetensors 2> /dev/null | tail -n 8 | paste -sd, -) || true
  "$RECUR" translate average --model "${kept:-$out/$1/latest.safetensors}" \
    --out "$out/$1/average.safetensors" --overwrite
}
average A
average B
A=$out/A/average.safetensors B=$out/B/average.safetensors
for model in "$A" "$B" "$A,$B"; do
  for beam in 1 5; do
    echo "== $model, beam $beam"
    "$RECUR" translate eval --model "$model" --data "$data" --split test --beam "$beam" \
      --length-penalty 1.0 --json
  done
done | tee "$out/test.txt"
"$RECUR" translate eval --model "$A,$B" --data "$data" --split test --beam 5 \
  --length-penalty 1.0 --limit 8 --examples 8 > /dev/null
