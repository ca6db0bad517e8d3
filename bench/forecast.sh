#!/usr/bin/env bash
# The forecasting benchmark of docs/forecast.md: `recur forecast eval` with the
# default configuration on the six series of ../shared/data/timeseries at
# horizon = period (the issue's protocol: last 20% test, 40 rolling origins).
# Usage: bench/forecast.sh [RECUR [DATA_DIR [OUT_DIR]]]; extra options for every
# run can be given in FORECAST_OPTS (e.g. FORECAST_OPTS="--seed 2").
set -euo pipefail
RECUR=${1:-build/recur}
DATA=${2:-../shared/data/timeseries}
OUT=${3:-runs/forecast-bench}
mkdir -p "$OUT"
run() {
  local name=$1; shift
  local start=$SECONDS
  "$RECUR" forecast eval --out "$OUT/$name" --json --plot "$OUT/$name.svg" \
    ${FORECAST_OPTS:-} "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
  echo "$name: $((SECONDS - start))s" >&2
}
run sunspots   --data "$DATA/sunspots.csv"   --target SUNACTIVITY --time YEAR --period 11 --horizon 11
run co2        --data "$DATA/co2.csv"        --target co2 --time date --period 52 --horizon 52
run elnino     --data "$DATA/elnino.csv"     --target JAN:DEC --time YEAR --period 12 --horizon 12
run nile       --data "$DATA/nile.csv"       --target volume --time year --period 1 --horizon 1
run macrodata  --data "$DATA/macrodata.csv"  --target realgdp --period 4 --horizon 4
run elec_equip --data "$DATA/elec_equip.csv" --target STS.M.I7.W.TOVT.NS0016.4.000 --time DATE \
               --period 12 --horizon 12
# one line per series: model MASE beside the baselines, and the coverage
for name in sunspots co2 elnino nile macrodata elec_equip; do
  python3 - "$OUT/$name.json" "$name" <<'PY' 2>/dev/null || grep -o '"mase": [^,]*' "$OUT/$name.json" | tr '\n' ' '
import json, sys
d = json.load(open(sys.argv[1]))
r = {row["method"]: row for row in d["rows"]}
print(f'{sys.argv[2]:11s} model {r["recur"]["mase"]:.3f}  naive {r["naive"]["mase"]:.3f}  '
      f'seasonal naive {r["seasonal naive"]["mase"]:.3f}  drift {r["drift"]["mase"]:.3f}  '
      f'coverage {100 * r["recur"]["coverage"]:.1f}%  ({d["train_seconds"]:.1f}s)')
PY
done
