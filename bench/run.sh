#!/usr/bin/env bash
# bench/run.sh - recur's standard benchmark cases beside oneDNN's RNN primitive
# and PyTorch, on the same thread count, as one table.
#
#   bash bench/run.sh [threads]        (default: all cores)
#
# Builds bench_rnn and bench_onednn (cmake build folder `build`, Release),
# runs recur's cases (bench_rnn), oneDNN's (bench_onednn) and, when
# `/usr/bin/python3 -c "import torch"` works, PyTorch's (bench_torch.py, at
# its best settings: OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset), then prints one Markdown table
#   case | recur | oneDNN | PyTorch | recur/oneDNN | recur/PyTorch
# (time per step, tokens/s, GFLOP/s, % of the FMA peak that bench_rnn
# measures, peak memory) and writes it with the machine description to
# bench/results-<date>.md.
#
# Environment (all optional):
#   BENCH_SECONDS       timing budget of each case in seconds (default 1)
#   BENCH_ONLY          run only the cases whose id contains this text
#   BENCH_OUT           the results file (default bench/results-<date>.md)
#   RECUR_BENCH_BUILD   the build folder (default build)
#   BENCH_NO_TORCH=1    skip PyTorch even when it is installed
#   BENCH_FROM=FILE     build nothing, run nothing: make the table again from
#                       the raw lines of an earlier results file
# Benchmarks report; they never decide pass/fail. The machine should be idle:
# other work on the cores makes every number noisy.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
threads=${1:-$(nproc)}
case $threads in
'' | *[!0-9]* | 0)
    echo "usage: bash bench/run.sh [threads]   (threads: a positive number)" >&2
    exit 2
    ;;
esac
seconds=${BENCH_SECONDS:-1}
build=${RECUR_BENCH_BUILD:-build}
only=()
[ -n "${BENCH_ONLY:-}" ] && only=(--only "$BENCH_ONLY")
day=$(date +%Y-%m-%d)
out=${BENCH_OUT:-bench/results-$day.md}
if [ -z "${BENCH_OUT:-}" ]; then
    n=2
    while [ -e "$out" ]; do
        out=bench/results-$day-$n.md
        n=$((n + 1))
    done
fi

# These two slow OpenBLAS down on this machine (issue 4); unset for every
# contender so that none runs below its best.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${BENCH_FROM:-}" ]; then
    # Re-render: take the raw result lines of an earlier results file.
    for impl in recur onednn pytorch; do
        grep "^{\"impl\": *\"$impl\"" "$BENCH_FROM" >"$tmp/$impl.jsonl" || true
    done
    mv "$tmp/pytorch.jsonl" "$tmp/torch.jsonl"
    threads=$(sed -n 's/.*"case":"info".*"threads":\([0-9]*\).*/\1/p' "$tmp/recur.jsonl" | head -1)
    threads=${threads:-1}
else
    echo "== building ($build, Release)" >&2
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 ||
        { cat "$tmp/cmake.log" >&2; exit 1; }
    if grep -q '^RECUR_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
        echo "warning: $build is configured with RECUR_SANITIZE=ON: the numbers mean little" >&2
    fi
    targets=(bench_rnn)
    [ -d "$build/bench/CMakeFiles/bench_onednn.dir" ] && targets+=(bench_onednn)
    cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$tmp/build.log" 2>&1 ||
        { tail -40 "$tmp/build.log" >&2; exit 1; }

    common=(--threads "$threads" --seconds "$seconds" --json "${only[@]}")
    echo "== recur ($threads threads, ${seconds} s a case)" >&2
    "$build/bench/bench_rnn" "${common[@]}" >"$tmp/recur.jsonl" || echo "warning: some recur cases failed" >&2
    if [ -x "$build/bench/bench_onednn" ]; then
        echo "== oneDNN RNN primitive" >&2
        "$build/bench/bench_onednn" "${common[@]}" >"$tmp/onednn.jsonl" ||
            echo "warning: some oneDNN cases failed" >&2
    else
        echo "== oneDNN: bench_onednn not built (oneDNN not found)" >&2
        : >"$tmp/onednn.jsonl"
    fi
    : >"$tmp/torch.jsonl"
    if [ -z "${BENCH_NO_TORCH:-}" ] && /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
        echo "== PyTorch (OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)" >&2
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \
            OPENBLAS_NUM_THREADS="$threads" /usr/bin/python3 bench/bench_torch.py "${common[@]}" \
            >"$tmp/torch.jsonl" || echo "warning: some PyTorch cases failed" >&2
    else
        echo "== PyTorch: not run (/usr/bin/python3 cannot import torch)" >&2
    fi
fi

# ---- the machine ----------------------------------------------------------
describe_machine() {
    lscpu_field() { lscpu | sed -n "s/^$1:[[:space:]]*//p" | head -1; }
    local model cpus cores sockets tpc l2 l2_bytes isa commit
    model=$(lscpu_field 'Model name')
    cpus=$(lscpu_field 'CPU(s)')
    cores=$(lscpu_field 'Core(s) per socket')
    sockets=$(lscpu_field 'Socket(s)')
    tpc=$(lscpu_field 'Thread(s) per core')
    l2=$(lscpu | sed -n 's/^[[:space:]]*L2[^:]*:[[:space:]]*//p' | head -1)
    if [ -z "$l2" ]; then
        l2_bytes=$(getconf LEVEL2_CACHE_SIZE 2>/dev/null || echo 0)
        l2="$((${l2_bytes:-0} / 1024)) KiB a core"
        [ "${l2_bytes:-0}" -gt 0 ] 2>/dev/null || l2=unknown
    fi
    isa=$(grep -o -w 'avx512f\|avx512_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git status --porcelain 2>/dev/null | head -1)" ] && commit="$commit (with uncommitted changes)"
    echo "- date: $(date '+%Y-%m-%d %H:%M %Z')"
    echo "- machine: $model; $cpus CPUs ($sockets socket(s) x $cores cores x $tpc threads), L2 $l2; ISA: $isa"
    echo "- threads: $threads for every contender; ${seconds} s timing budget a case (median of the timed calls)"
    echo "- kernel $(uname -r); $(gcc --version | head -1); $(cmake --version | head -1)"
    echo "- recur commit $commit, build folder $build (Release)"
    echo "- PyTorch run with OMP_WAIT_POLICY=PASSIVE, OPENBLAS_NUM_THREADS=$threads, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
    echo "- command: bash bench/run.sh $threads"
}

# ---- the table (awk reads the three JSON-lines files) --------------------
table() {
    awk -v threads="$threads" '
    function parse(line, obj,    kv, k, v, p) {
        split("", obj)
        while (match(line, /"[a-z_0-9]+": ?("[^"]*"|[^,}]*)/)) {
            kv = substr(line, RSTART, RLENGTH)
            line = substr(line, RSTART + RLENGTH)
            p = index(kv, ":")
            k = substr(kv, 2, p - 3)
            v = substr(kv, p + 1)
            sub(/^ /, "", v)
            gsub(/"/, "", v)
            obj[k] = v
        }
    }
    function num(x) { return x + 0 }
    function fmt_time(ms) {
        if (ms < 1) return sprintf("%.2f us", ms * 1000)
        if (ms < 100) return sprintf("%.2f ms", ms)
        return sprintf("%.0f ms", ms)
    }
    function fmt_rate(x) {
        if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
        if (x >= 1e4) return sprintf("%.1fk", x / 1e3)
        return sprintf("%.0f", x)
    }
    function cell(impl, c,    key, s, pk, pct) {
        key = impl SUBSEP c
        if (key in unsupported) return "unsupported"
        if (!(key in ms)) return "-"
        s = fmt_time(ms[key]) " · " fmt_rate(tok[key]) " tok/s"
        if (gf[key] > 0) {
            s = s " · " sprintf("%.0f", gf[key]) " GFLOP/s"
            pk = (c ~ /bf16/) ? peak["peak_bf16"] : peak["peak_fp32"]
            if (pk > 0) s = s " · " sprintf("%.0f%%", 100 * gf[key] / pk)
        }
        if (rss[key] > 0) s = s " · " sprintf("%.0f MB", rss[key])
        return s
    }
    function ratio(other, c,    a, b, s) {
        a = "recur" SUBSEP c; b = other SUBSEP c
        if (!(a in ms) || !(b in ms)) return "-"
        s = sprintf("%.2fx", ms[b] / ms[a])
        if (c ~ /^charrnn/ && rss[a] > 0 && rss[b] > 0)
            s = s " · mem " sprintf("%.2fx", rss[a] / rss[b])
        return s
    }
    {
        parse($0, o)
        if (!("case" in o)) next
        impl = o["impl"]; c = o["case"]; key = impl SUBSEP c
        if (c == "info") { info[impl] = o["version"]; if ("backend" in o) backend = o["backend"]; next }
        if (c ~ /^peak_/) { peak[c] = num(o["gflops"]); peak_isa[c] = o["isa"]; next }
        if (!(c in seen)) { seen[c] = 1; order[++n] = c; what[c] = o["what"] }
        if (o["unsupported"] == "true") { unsupported[key] = 1; next }
        ms[key] = num(o["ms"]); tok[key] = num(o["tokens_per_s"]); gf[key] = num(o["gflops"])
        rss[key] = num(o["rss_mb"])
    }
    END {
        printf "FMA peak measured by bench_rnn: fp32 %.0f GFLOP/s on 1 thread, %.0f on %d (%s)", \
            peak["peak_fp32_1t"], peak["peak_fp32"], threads, peak_isa["peak_fp32"]
        if (peak["peak_bf16"] > 0)
            printf "; bf16 dot products %.0f on 1 thread, %.0f on %d", peak["peak_bf16_1t"], peak["peak_bf16"], threads
        printf ".\n\n"
        # The N-thread peak should be N times the 1-thread one, before and
        # after the cases; less means that other work took the cores.
        busy = peak["peak_fp32"]
        if ("peak_fp32_end" in peak && peak["peak_fp32_end"] < busy) busy = peak["peak_fp32_end"]
        if (peak["peak_fp32_1t"] > 0 && busy < 0.85 * threads * peak["peak_fp32_1t"]) {
            printf "**Warning: the machine was busy.** The FMA peak on %d threads, measured before and after the cases, fell to %.2fx the one-thread peak (%.0f GFLOP/s): ", threads, busy / peak["peak_fp32_1t"], busy
            print "other work shared the cores, and the numbers below are unreliable.\n"
            print "warning: the machine was busy (see the table); rerun on an idle machine" > "/dev/stderr"
        }
        print "| case | recur | oneDNN | PyTorch | recur/oneDNN | recur/PyTorch |"
        print "|---|---|---|---|---|---|"
        for (i = 1; i <= n; i++) {
            c = order[i]
            printf "| %s<br>%s | %s | %s | %s | %s | %s |\n", c, what[c], cell("recur", c), \
                cell("onednn", c), cell("pytorch", c), ratio("onednn", c), ratio("pytorch", c)
        }
        print ""
        print "Each cell: time per step (one call: a training step or a forward pass over T steps;"
        print "one single step when streaming) · tokens/s · GFLOP/s (matrix products only; a training"
        print "step counts 3x the forward) · % of the measured FMA peak on the same threads (bf16"
        print "cases: of the bf16 peak) · peak resident memory of the case process. Ratios are"
        print "recur'"'"'s throughput over the other'"'"'s (above 1: recur is faster); \"mem\" is recur'"'"'s"
        print "peak memory over the other'"'"'s (below 1: recur uses less)."
        printf "\nVersions: recur %s (%s backend), oneDNN %s, PyTorch %s.\n", \
            info["recur"] ? info["recur"] : "-", backend ? backend : "-", \
            info["onednn"] ? info["onednn"] : "-", info["pytorch"] ? info["pytorch"] : "not run"
    }' "$tmp/recur.jsonl" "$tmp/onednn.jsonl" "$tmp/torch.jsonl"
}

table >"$tmp/table.md"
if [ -n "${BENCH_FROM:-}" ]; then
    grep '^- ' "$BENCH_FROM" >"$tmp/machine.md" || true
else
    describe_machine >"$tmp/machine.md"
fi
{
    echo "# recur benchmark results"
    echo
    cat "$tmp/machine.md"
    echo
    cat "$tmp/table.md"
    echo
    echo "<details><summary>raw results (JSON lines)</summary>"
    echo
    echo '```'
    cat "$tmp/recur.jsonl" "$tmp/onednn.jsonl" "$tmp/torch.jsonl"
    echo '```'
    echo "</details>"
} >"$out"
echo
cat "$tmp/table.md"
echo
case $out in
/*) echo "written to $out" ;;
*) echo "written to $root/$out" ;;
esac
