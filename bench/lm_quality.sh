#!/usr/bin/env bash
# Quality against the clock (docs/lm-quality.md): character LSTMs on tiny
# Shakespeare with the last 10% held out, on all cores of this machine.
# Run it on a quiet machine: other work slows the training and so the curve.
#   bench/lm_quality.sh 8min   the 8-minute configuration (about 8 minutes)
#   bench/lm_quality.sh 60min  the best single network for the 60-minute target (about 58 minutes)
#   bench/lm_quality.sh 60min-ensemble  two networks trained side by side, one core each
#                              (about 60 minutes), scored as an ensemble every 5 minutes
# Each run writes runs/lm-quality-<name>/metrics.csv (60min-ensemble: A/ and B/ there, and
# the copied checkpoints at-<seconds>/); the script then prints the validation loss against
# the elapsed time (the curve in the docs).
set -euo pipefail
RECUR=${RECUR:-build/recur}
DATA=${DATA:-data/tinyshakespeare.txt}
name=${1:?usage: bench/lm_quality.sh 8min|60min|60min-ensemble}
out=runs/lm-quality-$name
common=(--data "$DATA" --overwrite --cell lstm --embed 64 --batch 32 --seq-len 100
        --schedule cosine --val-every 250 --log-every 50)
# Scores the copied checkpoint pairs of a 60min-ensemble run on the held-out tail: each network
# alone and the two as an ensemble (`recur eval --model A,B`), with the training's validation
# (32 streams, chunks of 100) so that the numbers line up with the other curves; the final
# pair also with one stream carried through the whole tail (`recur eval`'s default).
ensemble_curve() {
  local dir=$1 heldout=$1/heldout.txt at A B
  tail -c $(($(wc -c < "$DATA") / 10)) "$DATA" > "$heldout"   # the last 10% (the text is ASCII)
  loss() { "$RECUR" eval --data "$heldout" --json --model "$@" | sed 's/.*"loss": \([0-9.]*\).*/\1/'; }
  echo "elapsed_s  A       B       ensemble  (validation loss, nats/char: 32 streams)"
  for at in $(cd "$dir" && ls -d at-* | sort -t- -k2 -n) end; do
    A=$dir/$at/A.safetensors B=$dir/$at/B.safetensors
    [[ $at == end ]] && A=$dir/A/best.safetensors B=$dir/B/best.safetensors
    [[ -f $A && -f $B ]] || continue
    printf '%9s  %.4f  %.4f  %.4f\n' "${at#at-}" "$(loss "$A" --streams 32 --chunk 100)" \
      "$(loss "$B" --streams 32 --chunk 100)" "$(loss "$A,$B" --streams 32 --chunk 100)"
  done
  printf '%9s  %.4f  %.4f  %.4f  (one stream)\n' end "$(loss "$A")" "$(loss "$B")" "$(loss "$A,$B")"
}

case $name in
  8min)  # 2 x 384, dropout 0.2, 2800 steps of cosine decay: about 20k characters/s
    "$RECUR" train "${common[@]}" --out "$out" --layers 2 --hidden 384 --dropout 0.2 --lr 3e-3 --warmup 100 \
      --min-lr 1e-4 --steps 2800 --time 480 ;;
  60min) # the best hour measured (docs/lm-quality.md, "B"): 2 x 384 with dropout between the
         # layers, on the head's input and on the embeddings, and light DropConnect on the
         # recurrent weights; one thread (as measured: the other core ran another configuration);
         # 12000 steps of cosine decay take about 58 minutes
    "$RECUR" train "${common[@]}" --out "$out" --layers 2 --hidden 384 --dropout 0.3 --output-dropout 0.3 \
      --embed-dropout 0.1 --weight-dropout 0.15 --lr 3e-3 --warmup 200 --min-lr 1e-5 \
      --steps 12000 --time 3560 --val-every 500 --threads 1 ;;
  60min-ensemble) # docs/lm-quality.md, "Two networks, one ensemble": A (2 x 512) and B (the
         # 60min network) trained side by side, one thread each; every 5 minutes the best
         # checkpoint of each so far is copied, and each pair is scored as an ensemble at the end
    a=(--layers 2 --hidden 512 --dropout 0.35 --output-dropout 0.35 --embed-dropout 0.1 --lr 2e-3
       --warmup 200 --min-lr 1e-5 --steps 6800 --time 3560 --val-every 400 --threads 1)
    b=(--layers 2 --hidden 384 --dropout 0.3 --output-dropout 0.3 --embed-dropout 0.1
       --weight-dropout 0.15 --lr 3e-3 --warmup 200 --min-lr 1e-5 --steps 12000 --time 3560
       --val-every 500 --threads 1)
    rm -rf "$out"; mkdir -p "$out"
    "$RECUR" train "${common[@]}" --out "$out/A" "${a[@]}" 2> "$out/A.log" & pa=$!
    "$RECUR" train "${common[@]}" --out "$out/B" "${b[@]}" 2> "$out/B.log" & pb=$!
    start=$SECONDS next=300
    while kill -0 $pa 2> /dev/null || kill -0 $pb 2> /dev/null; do
      sleep 5
      if (( SECONDS - start >= next )); then
        # best.safetensors is replaced atomically, so a copy is always a whole checkpoint
        mkdir -p "$out/at-$next"
        cp "$out/A/best.safetensors" "$out/at-$next/A.safetensors" 2> /dev/null || true
        cp "$out/B/best.safetensors" "$out/at-$next/B.safetensors" 2> /dev/null || true
        next=$((next + 300))
      fi
    done
    wait $pa
    wait $pb
    ensemble_curve "$out" ;;
  *) echo "unknown configuration '$name' (8min, 60min, 60min-ensemble)" >&2; exit 2 ;;
esac
[[ $name == 60min-ensemble ]] && exit 0
echo "elapsed_s val_loss (nats/char)"
awk -F, 'NR > 1 && $4 != "" { printf "%8.0f %.4f\n", $9, $4 }' "$out/metrics.csv"
