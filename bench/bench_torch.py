#!/usr/bin/python3
"""PyTorch's side of recur's standard benchmark cases (issue 4).

Runs with Debian's python3-torch (1.13) and is never required: bench/run.sh
runs it only when `/usr/bin/python3 -c "import torch"` works. The cases and
their ids are those of bench_rnn.c and bench_onednn.c:

  charrnn_train   char-rnn training step: Embedding(65, 512), 2-layer
                  LSTM(512, 512), Linear(512, 65), B = 32, T = 100, Adam
                  (lr 2e-3), clip_grad_norm_ 5, state carried (detached)
  charrnn_fwd     the same model's forward pass and loss (inference mode)
  {lstm,gru,rnn}_{train,fwd}_b{64,8,1}
                  one layer, I = H = 1024, T = 100; train is forward plus
                  backward with the input gradient, as recur's
  stream_lstm     nn.LSTM(64, 256) one step at a time, B = 1, carried state:
                  median of single steps (nn.LSTMCell is timed too and the
                  faster is reported, named in "note")
  lstm_fwd_b64_bf16, stream_lstm_bf16
                  the same in bfloat16 when this build supports it

PyTorch at its best settings: torch.set_num_threads(N) here; the process
must start with OMP_WAIT_POLICY=PASSIVE and without OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE (which slow OpenBLAS down on this machine), so when the
environment differs the script re-executes itself with it fixed (unless
--keep-env). OPENBLAS_NUM_THREADS is set to N as well, since this torch's
matrix products go through OpenBLAS' own thread pool.

Each case runs in a child process forked after `import torch` (before any
thread pool starts), so its peak resident memory (ru_maxrss) is its own; it
includes the memory of the imported libraries, as any PyTorch program's does.
FLOPs count the matrix products: 2*T*B*G*H*(I+H) per layer (G = 4, 3, 1),
the char-rnn head 2*T*B*V*H, a training step 3x the forward.
Output: a table, or with --json one JSON object per line.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

BEST_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
BAD_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    p.add_argument("--seconds", type=float, default=1.0, help="timing budget of each case")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--only", default=None, help="run only the cases whose id contains this")
    p.add_argument("--keep-env", action="store_true",
                   help="do not fix OMP_WAIT_POLICY / OPENBLAS_* (for experiments)")
    a = p.parse_args()
    if a.threads <= 0:
        a.threads = os.cpu_count() or 1
    if not a.seconds > 0:
        a.seconds = 1.0
    return a


def fix_environment(args):
    """Re-executes this script with PyTorch's best environment if needed."""
    if args.keep_env:
        return
    want = dict(BEST_ENV, OPENBLAS_NUM_THREADS=str(args.threads))
    if all(os.environ.get(k) == v for k, v in want.items()) and \
            not any(k in os.environ for k in BAD_ENV):
        return
    env = {k: v for k, v in os.environ.items() if k not in BAD_ENV}
    env.update(want)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


ARGS = parse_args()
fix_environment(ARGS)

import torch  # noqa: E402  (after the environment is settled)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def time_call(fn, budget):
    """Median seconds of one call after a warm-up; (median, reps)."""
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < 0.2 * budget:
        fn()
    times = []
    t0 = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - t0 < budget and len(times) < 200000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(case, what, seconds, reps, tokens, flops, streaming=False, note=None):
    gflops = flops / seconds * 1e-9 if flops else 0.0
    r = {"impl": "pytorch", "case": case, "what": what, "threads": torch.get_num_threads(),
         "ms": seconds * 1e3, "tokens_per_s": tokens / seconds, "gflops": gflops,
         "peak_pct": 0, "rss_mb": round(peak_rss_mb(), 1), "reps": reps}
    if streaming:
        r["us"] = seconds * 1e6
    if note:
        r["note"] = note
    if ARGS.json:
        print(json.dumps(r))
    else:
        t = f"{seconds * 1e6:8.2f} us" if streaming else f"{seconds * 1e3:8.2f} ms"
        g = f"{gflops:7.1f} GFLOP/s" if gflops else f"{'-':>15}"
        print(f"{case:<20} {what:<44} {t} {tokens / seconds:11.0f} tok/s {g} "
              f"{r['rss_mb']:7.0f} MB" + (f"  ({note})" if note else ""))
    sys.stdout.flush()


def unsupported(case, what, err):
    print(f"bench_torch: {case}: not supported by this PyTorch: {err}", file=sys.stderr)
    if ARGS.json:
        print(json.dumps({"impl": "pytorch", "case": case, "what": what, "unsupported": True}))
    sys.stdout.flush()


# ---- char-rnn --------------------------------------------------------------
CHAR_V, CHAR_T, CHAR_B, CHAR_E, CHAR_H, CHAR_L = 65, 100, 32, 512, 512, 2


class CharRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(CHAR_V, CHAR_E)
        self.rnn = nn.LSTM(CHAR_E, CHAR_H, CHAR_L)
        self.head = nn.Linear(CHAR_H, CHAR_V)

    def forward(self, x, state):
        y, state = self.rnn(self.embedding(x), state)
        return self.head(y), state


def run_charrnn(train):
    torch.manual_seed(1)
    model = CharRNN()
    tokens = torch.randint(0, CHAR_V, (CHAR_T + 1, CHAR_B))
    x, target = tokens[:-1], tokens[1:].reshape(-1)
    zeros = torch.zeros(CHAR_L, CHAR_B, CHAR_H)
    state = [(zeros.clone(), zeros.clone())]
    if train:
        try:
            opt = torch.optim.Adam(model.parameters(), lr=2e-3, foreach=True)
        except TypeError:
            opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        params = list(model.parameters())

        def step():
            h, c = state[0]
            opt.zero_grad(set_to_none=True)
            logits, (h, c) = model(x, (h.detach(), c.detach()))
            loss = F.cross_entropy(logits.reshape(-1, CHAR_V), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            state[0] = (h.detach(), c.detach())
    else:
        def step():
            with torch.inference_mode():
                logits, st = model(x, state[0])
                F.cross_entropy(logits.reshape(-1, CHAR_V), target)
                state[0] = st
    seconds, reps = time_call(step, ARGS.seconds)
    tokens = CHAR_T * CHAR_B
    per_token = (2 * 4 * CHAR_H * (CHAR_E + CHAR_H) + 2 * 4 * CHAR_H * 2 * CHAR_H
                 + 2 * CHAR_V * CHAR_H)
    mode = "train" if train else "forward"
    report(f"charrnn_{'train' if train else 'fwd'}",
           f"char-rnn {mode} 2x512 LSTM E=512 B=32 T=100 V=65", seconds, reps, tokens,
           per_token * tokens * (3 if train else 1))


# ---- one recurrent layer ---------------------------------------------------
CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3), "rnn": (nn.RNN, 1)}


def run_stack(cell, train, B, bf16=False, I=1024, H=1024, T=100):
    case = f"{cell}_{'train' if train else 'fwd'}_b{B}" + ("_bf16" if bf16 else "")
    what = f"{cell} {'train' if train else 'forward'}{' bf16' if bf16 else ''} " \
           f"I={I} H={H} B={B} T={T}"
    torch.manual_seed(1)
    module, G = CELLS[cell]
    m = module(I, H)
    x = torch.rand(T, B, I) - 0.5
    if bf16:
        m = m.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    if train:
        x.requires_grad_(True)
        dy = (torch.rand(T, B, H) - 0.5) * 1e-2

        def step():
            y, _ = m(x)
            y.backward(dy)
    else:
        def step():
            with torch.inference_mode():
                m(x)
    try:
        step()
    except RuntimeError as e:
        unsupported(case, what, e)
        return
    seconds, reps = time_call(step, ARGS.seconds)
    report(case, what, seconds, reps, T * B, 2.0 * T * B * G * H * (I + H) * (3 if train else 1))


# ---- streaming -------------------------------------------------------------
STREAM_I, STREAM_H = 64, 256


def run_stream(bf16=False):
    case = "stream_lstm" + ("_bf16" if bf16 else "")
    what = f"streaming lstm step{' bf16' if bf16 else ''} I={STREAM_I} H={STREAM_H} B=1"
    dtype = torch.bfloat16 if bf16 else torch.float32
    torch.manual_seed(1)
    lstm = nn.LSTM(STREAM_I, STREAM_H).to(dtype)
    cell = nn.LSTMCell(STREAM_I, STREAM_H).to(dtype)
    x = (torch.rand(1, 1, STREAM_I) - 0.5).to(dtype)
    x_cell = x.reshape(1, STREAM_I)
    zeros = torch.zeros(1, 1, STREAM_H, dtype=dtype)
    state = [(zeros.clone(), zeros.clone())]
    cell_state = [(zeros.reshape(1, STREAM_H).clone(), zeros.reshape(1, STREAM_H).clone())]

    def lstm_step():
        with torch.inference_mode():
            _, state[0] = lstm(x, state[0])

    def cell_step():
        with torch.inference_mode():
            cell_state[0] = cell(x_cell, cell_state[0])

    best = None
    for name, fn in (("nn.LSTM", lstm_step), ("nn.LSTMCell", cell_step)):
        try:
            fn()
        except RuntimeError as e:
            print(f"bench_torch: {case} with {name}: {e}", file=sys.stderr)
            continue
        seconds, reps = time_call(fn, ARGS.seconds / 2)
        if best is None or seconds < best[0]:
            best = (seconds, reps, name)
    if best is None:
        unsupported(case, what, "no LSTM module ran")
        return
    report(case, what, best[0], best[1], 1, 2.0 * 4 * STREAM_H * (STREAM_I + STREAM_H),
           streaming=True, note=best[2])


# ---- driver ----------------------------------------------------------------
def cases():
    out = [("charrnn_train", lambda: run_charrnn(True)),
           ("charrnn_fwd", lambda: run_charrnn(False))]
    for B in (64, 8, 1):
        for cell in ("lstm", "gru", "rnn"):
            for train in (True, False):
                out.append((f"{cell}_{'train' if train else 'fwd'}_b{B}",
                            lambda cell=cell, train=train, B=B: run_stack(cell, train, B)))
    out.append(("stream_lstm", lambda: run_stream(False)))
    out.append(("lstm_fwd_b64_bf16", lambda: run_stack("lstm", False, 64, bf16=True)))
    out.append(("stream_lstm_bf16", lambda: run_stream(True)))
    return out


def in_child(fn):
    """Runs fn in a forked child (its own peak memory); returns its status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            torch.set_num_threads(ARGS.threads)
            fn()
        except Exception as e:  # report and let the other cases run
            print(f"bench_torch: {e!r}", file=sys.stderr)
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    _, wstatus = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wstatus)


def main():
    info = {"impl": "pytorch", "case": "info", "version": torch.__version__,
            "threads": ARGS.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    if ARGS.json:
        print(json.dumps(info))
    else:
        print(f"PyTorch {torch.__version__}, {ARGS.threads} threads, {ARGS.seconds:.2g} s a case, "
              f"OMP_WAIT_POLICY={info['omp_wait_policy'] or '(unset)'}, "
              f"OPENBLAS_CORETYPE={info['openblas_coretype'] or '(unset)'}")
    failures = 0
    for case, fn in cases():
        if ARGS.only and ARGS.only not in case:
            continue
        failures += in_child(fn) != 0
    if failures:
        print(f"bench_torch: {failures} case(s) failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
