#!/usr/bin/env bash
# The classification benchmarks of docs/classify.md: 10-fold cross-validation
# of the three sentiment sources trained together (one model per fold, and an
# --ensemble of 5 per fold), and the official train/test splits of three UEA/UCR
# sequence sets, each beside its baseline on the same split.
# Usage: bench/classify.sh [RECUR [SHARED_DATA [OUT_DIR]]]; extra options for
# every run in CLASSIFY_OPTS (e.g. CLASSIFY_OPTS="--seed 2"). Single-threaded
# runs (--threads 1), so two can share this machine's two cores.
set -euo pipefail
RECUR=${1:-build/recur}
DATA=${2:-../shared/data}
OUT=${3:-runs/classify-bench}
S=$DATA/sentiment Q=$DATA/sequences
mkdir -p "$OUT"
run() {
  local name=$1; shift
  local start=$SECONDS
  "$RECUR" classify eval --threads 1 --out "$OUT/$name" ${CLASSIFY_OPTS:-} "$@" \
    > "$OUT/$name.txt" 2> "$OUT/$name.log"
  echo "== $name ($((SECONDS - start)) s)"
  sed -n '1,/^per class/p' "$OUT/$name.txt" | grep -v '^per class'
  grep -A4 'per source' "$OUT/$name.txt" || true
}
run sentiment   --data "$S/imdb.tsv,$S/yelp.tsv,$S/amazon.tsv" --folds 10
run sentiment-5 --data "$S/imdb.tsv,$S/yelp.tsv,$S/amazon.tsv" --folds 10 --ensemble 5
for set in JapaneseVowels BasicMotions GunPoint; do
  run "$set" --data "$Q/${set}_TRAIN.ts" --test "$Q/${set}_TEST.ts"
done
