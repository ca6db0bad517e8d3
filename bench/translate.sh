#!/usr/bin/env bash
# The German-to-English benchmark of docs/translate.md: two networks train side by side, one
# core each, on the training part of data/translation/de-en.tsv plus the dictionary's word and
# phrase pairs; then each alone and the two as an ensemble (`--model A,B`) translate the
# held-out test part (BLEU, chrF), and a few translations are printed beside their references.
# The networks translate with their final weights (latest.safetensors): with layer
# normalization these beat the checkpoints of lowest validation loss on the validation part
# (docs/translate.md). Usage: bench/translate.sh [SECONDS [OUT_DIR]]   (at most SECONDS of
# training each, default 7020: the documented run; its 64,000 steps took 1 h 57 min)
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
    --val-every 4000 --save-every 2000 --val-sentences 300 --log-every 500 --seed "$2" \
    2> "$out/$1.log"
}
train A 1 0.3 0.1 &
train B 2 0.4 0.2 &
wait
A=$out/A/latest.safetensors B=$out/B/latest.safetensors
for model in "$A" "$B" "$A,$B"; do
  for beam in 1 5; do
    echo "== $model, beam $beam"
    "$RECUR" translate eval --model "$model" --data "$data" --split test --beam "$beam" \
      --length-penalty 1.0 --json
  done
done | tee "$out/test.txt"
"$RECUR" translate eval --model "$A,$B" --data "$data" --split test --beam 5 \
  --length-penalty 1.0 --limit 8 --examples 8 > /dev/null
