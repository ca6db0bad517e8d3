#!/usr/bin/env python3
"""make_fixtures.py - PyTorch float64 reference cases for recur's parity tests.

Writes one .safetensors file per case in exactly the format of the shared
fixtures (tests/fixtures/README.md): an 8-byte little-endian header length, a
compact JSON header (tensors in insertion order, then "__metadata__" whose
values are all strings, padded with spaces to a multiple of 8 bytes), then
row-major little-endian F64 data. The writer and the reader below are
self-contained (json + struct): the safetensors package is not needed.

Run by hand, never in CI, with Debian's python3-torch (torch 1.13):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \\
        /usr/bin/python3 tools/make_fixtures.py            # write the recur_ cases
    ... tools/make_fixtures.py --check                      # verify every fixture
    ... tools/make_fixtures.py --set shared --out /tmp/sh   # cases like the shared ones
    ... tools/make_fixtures.py --list                       # names of all cases

Options:
  --set recur|shared|all  which cases to write (default recur: the project's
                          own cases, named recur_*). "shared" makes cases with
                          the names, shapes and initialisation of the shared
                          fixtures (kinds layer, lm, ctc, optim, clip) but new
                          random data; writing them into tests/fixtures needs
                          --overwrite-shared.
  --out DIR               output folder (default tests/fixtures next to this script).
  --only TEXT             only the cases whose name contains TEXT.
  --check                 for every .safetensors in --out: (1) read it and write it
                          back with this script's writer, which must give the same
                          bytes; (2) recompute its outputs and gradients with torch
                          from its inputs and parameters: the header must come out
                          byte-identical and every tensor within 1e-10 (relative to
                          the tensor's largest magnitude); (3) for layer cases, run
                          the forward and backward written out in docs/cells.md (plain
                          tensor operations, no autograd) and compare the same way.

Every case is seeded from the CRC-32 of its name and computed on one thread,
so rerunning the script reproduces the recur_ files bit for bit (on the same
torch build). Random data: x, dy, dhn, dcn ~ N(0, 1); h0, c0 ~ 0.5 N(0, 1);
recur_ layer and all lm parameters use PyTorch's default initialisation
(U(-1/sqrt(H), 1/sqrt(H)) for the recurrent stack, N(0, 1) for the embedding,
U(-1/sqrt(H), 1/sqrt(H)) for the head); shared-style layer cases use
U(-0.6, 0.6) for every parameter, as the shared files do.
"""

import argparse
import collections
import json
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "tests", "fixtures"))

LAYER_LOSS = "sum(y*dy)+sum(hn*dhn)+sum(cn*dcn)"
LM_LOSS = "mean cross-entropy (nats) of tokens[1:] given tokens[:-1], zero initial state"
CTC_LOSS = ("sum over the batch of CTC negative log-likelihood of "
            "targets[b,:target_lengths[b]] given log_softmax(logits)[:input_lengths[b], b]; "
            "grad.logits is its gradient (zero past input_lengths)")
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


# ---------------------------------------------------------------------------
# safetensors (F64 only), without the safetensors package

def st_encode(tensors, metadata):
    """tensors: ordered (name, torch tensor) pairs; metadata: ordered str -> str.
    Returns the file's bytes."""
    header = collections.OrderedDict()
    chunks = []
    offset = 0
    for name, t in tensors:
        t = t.detach().to(torch.float64).contiguous()
        values = t.reshape(-1).tolist()
        data = struct.pack("<%dd" % len(values), *values)
        header[name] = collections.OrderedDict(
            [("dtype", "F64"), ("shape", list(t.shape)),
             ("data_offsets", [offset, offset + len(data)])])
        chunks.append(data)
        offset += len(data)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata keys and values must be strings: %r=%r" % (k, v))
        header["__metadata__"] = collections.OrderedDict(metadata)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def st_decode(blob):
    """Returns (metadata OrderedDict, OrderedDict name -> float64 tensor)."""
    if len(blob) < 8:
        raise ValueError("file shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("header length %d past the end of the file" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"),
                        object_pairs_hook=collections.OrderedDict)
    metadata = header.pop("__metadata__", collections.OrderedDict())
    data = blob[8 + n:]
    tensors = collections.OrderedDict()
    for name, info in header.items():
        if info["dtype"] != "F64":
            raise ValueError("%s: dtype %s, only F64 is supported" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        shape = info["shape"]
        count = math.prod(shape)
        if end - begin != 8 * count or end > len(data):
            raise ValueError("%s: data_offsets %r do not fit shape %r"
                             % (name, info["data_offsets"], shape))
        values = struct.unpack("<%dd" % count, data[begin:end])
        tensors[name] = torch.tensor(values, dtype=torch.float64).reshape(shape)
    return metadata, tensors


def st_read(path):
    with open(path, "rb") as f:
        return st_decode(f.read())


def st_write(path, tensors, metadata):
    blob = st_encode(tensors, metadata)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    return len(blob)


# ---------------------------------------------------------------------------
# kind: layer

def make_stack(cell, I, H, L, bidirectional):
    kw = dict(num_layers=L, bidirectional=bidirectional, batch_first=False)
    if cell == "rnn_tanh":
        return nn.RNN(I, H, nonlinearity="tanh", **kw)
    if cell == "rnn_relu":
        return nn.RNN(I, H, nonlinearity="relu", **kw)
    if cell == "lstm":
        return nn.LSTM(I, H, **kw)
    if cell == "gru":
        return nn.GRU(I, H, **kw)
    raise ValueError("unknown cell %r" % cell)


def run_stack(stack, cell, x, h0, c0, lengths):
    """Forward of a stack; with lengths, PyTorch's packed-sequence semantics
    (unsorted batch allowed), y padded back to T with zeros."""
    T = x.shape[0]
    state = (h0, c0) if cell == "lstm" else h0
    if lengths is not None:
        packed = pack_padded_sequence(x, lengths.to(torch.int64), enforce_sorted=False)
        out, state = stack(packed, state)
        y, _ = pad_packed_sequence(out, total_length=T)
    else:
        y, state = stack(x, state)
    if cell == "lstm":
        return y, state[0], state[1]
    return y, state, None


def layer_compute(cell, I, H, L, bidirectional, params, x, h0, c0, dy, dhn, dcn, lengths):
    """Everything a layer fixture holds, in the shared files' order."""
    stack = make_stack(cell, I, H, L, bidirectional)
    with torch.no_grad():
        for name, p in stack.named_parameters():
            p.copy_(params[name])
    x = x.clone().requires_grad_(True)
    h0 = h0.clone().requires_grad_(True)
    if cell == "lstm":
        c0 = c0.clone().requires_grad_(True)
    y, hn, cn = run_stack(stack, cell, x, h0, c0, lengths)
    loss = (y * dy).sum() + (hn * dhn).sum()
    if cell == "lstm":
        loss = loss + (cn * dcn).sum()
    loss.backward()
    out = [("x", x), ("h0", h0), ("y", y), ("hn", hn), ("dy", dy), ("dhn", dhn),
           ("grad.x", x.grad), ("grad.h0", h0.grad)]
    if cell == "lstm":
        out += [("c0", c0), ("cn", cn), ("dcn", dcn), ("grad.c0", c0.grad)]
    if lengths is not None:
        out.append(("lengths", lengths))
    for name, p in stack.named_parameters():
        out += [(name, p), ("grad." + name, p.grad)]
    return [(k, v.detach()) for k, v in out]


def layer_metadata(cell, I, H, L, bidirectional, T, B):
    return collections.OrderedDict([
        ("kind", "layer"), ("cell", cell), ("input_size", str(I)), ("hidden_size", str(H)),
        ("num_layers", str(L)), ("bidirectional", "true" if bidirectional else "false"),
        ("seq_len", str(T)), ("batch", str(B)), ("layout", "time-major"), ("loss", LAYER_LOSS)])


def layer_name(prefix, cell, I, H, L, bidirectional, T, B, varlen):
    return "%s%s_I%d_H%d_L%d%s_T%d_B%d%s" % (prefix, cell, I, H, L, "_bi" if bidirectional else "",
                                            T, B, "_varlen" if varlen else "")


def layer_case(prefix, cell, I, H, L, T, B, bidirectional=False, lengths=None, init=None):
    """A generator of one layer case. lengths: a list (varlen), "random"
    (sorted descending, the longest = T) or None. init: None for PyTorch's
    default, or a bound a for U(-a, a)."""
    name = layer_name(prefix, cell, I, H, L, bidirectional, T, B, lengths is not None)

    def generate():
        torch.manual_seed(zlib.crc32(name.encode()))
        D = 2 if bidirectional else 1
        stack = make_stack(cell, I, H, L, bidirectional)
        if init is not None:
            with torch.no_grad():
                for p in stack.parameters():
                    p.uniform_(-init, init)
        params = {k: p.detach().clone() for k, p in stack.named_parameters()}
        x = torch.randn(T, B, I)
        h0 = 0.5 * torch.randn(L * D, B, H)
        c0 = 0.5 * torch.randn(L * D, B, H) if cell == "lstm" else None
        dy = torch.randn(T, B, D * H)
        dhn = torch.randn(L * D, B, H)
        dcn = torch.randn(L * D, B, H) if cell == "lstm" else None
        lens = None
        if lengths == "random":
            lens = torch.randint(max(1, T // 2), T + 1, (B,))
            lens[0] = T
            lens = torch.sort(lens, descending=True).values.to(torch.float64)
        elif lengths is not None:
            if len(lengths) != B or min(lengths) < 1 or max(lengths) > T:
                raise ValueError("%s: bad lengths %r" % (name, lengths))
            lens = torch.tensor(lengths, dtype=torch.float64)
        tensors = layer_compute(cell, I, H, L, bidirectional, params, x, h0, c0, dy, dhn, dcn, lens)
        return tensors, layer_metadata(cell, I, H, L, bidirectional, T, B)

    return name, generate


def layer_recompute(meta, t):
    cell = meta["cell"]
    I, H, L = int(meta["input_size"]), int(meta["hidden_size"]), int(meta["num_layers"])
    bidirectional = meta["bidirectional"] == "true"
    T, B = int(meta["seq_len"]), int(meta["batch"])
    params = {k: v for k, v in t.items()
              if k.startswith(("weight_", "bias_"))}
    tensors = layer_compute(cell, I, H, L, bidirectional, params, t["x"], t["h0"], t.get("c0"),
                            t["dy"], t["dhn"], t.get("dcn"), t.get("lengths"))
    return tensors, layer_metadata(cell, I, H, L, bidirectional, T, B)


# ---------------------------------------------------------------------------
# kind: lm

class CharLM(nn.Module):
    """embedding [V, E] -> recurrent stack -> head [V, H] + bias [V]."""

    def __init__(self, cell, V, E, H, L):
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(V, E)
        self.rnn = make_stack(cell, E, H, L, False)
        self.head = nn.Linear(H, V)

    def loss(self, tokens):
        """tokens [T+1, B] int64: mean cross-entropy of tokens[1:] given tokens[:-1]."""
        inputs, targets = tokens[:-1], tokens[1:]
        y, _ = self.rnn(self.embedding(inputs))          # zero initial state
        logits = self.head(y)                            # [T, B, V]
        V = logits.shape[-1]
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def lm_compute(cell, V, E, H, L, params, tokens):
    model = CharLM(cell, V, E, H, L)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
    loss = model.loss(tokens.to(torch.int64))
    loss.backward()
    out = [("tokens", tokens.to(torch.float64)), ("loss", loss.reshape(1))]
    for name, p in model.named_parameters():
        out += [(name, p), ("grad." + name, p.grad)]
    return [(k, v.detach()) for k, v in out]


def lm_metadata(cell, V, E, H, L, T, B):
    return collections.OrderedDict([
        ("kind", "lm"), ("cell", cell), ("vocab_size", str(V)), ("embedding_size", str(E)),
        ("hidden_size", str(H)), ("num_layers", str(L)), ("seq_len", str(T)), ("batch", str(B)),
        ("layout", "time-major"), ("loss", LM_LOSS)])


def lm_case(prefix, cell, V, E, H, L, T, B):
    name = "%slm_%s_V%d_E%d_H%d_L%d_T%d_B%d" % (prefix, cell, V, E, H, L, T, B)

    def generate():
        torch.manual_seed(zlib.crc32(name.encode()))
        model = CharLM(cell, V, E, H, L)
        params = {k: p.detach().clone() for k, p in model.named_parameters()}
        tokens = torch.randint(0, V, (T + 1, B))
        return lm_compute(cell, V, E, H, L, params, tokens), lm_metadata(cell, V, E, H, L, T, B)

    return name, generate


def lm_recompute(meta, t):
    cell = meta["cell"]
    V, E, H, L = (int(meta[k])
                  for k in ("vocab_size", "embedding_size", "hidden_size", "num_layers"))
    T, B = int(meta["seq_len"]), int(meta["batch"])
    params = {k: v for k, v in t.items()
              if k not in ("loss", "tokens") and not k.startswith("grad.")}
    return lm_compute(cell, V, E, H, L, params, t["tokens"]), lm_metadata(cell, V, E, H, L, T, B)


# ---------------------------------------------------------------------------
# kind: ctc

def ctc_compute(logits, targets, input_lengths, target_lengths):
    logits = logits.clone().requires_grad_(True)
    loss = F.ctc_loss(F.log_softmax(logits, dim=2), targets.to(torch.int64),
                      input_lengths.to(torch.int64), target_lengths.to(torch.int64),
                      blank=0, reduction="sum")
    loss.backward()
    out = [("logits", logits), ("targets", targets), ("input_lengths", input_lengths),
           ("target_lengths", target_lengths), ("loss", loss.reshape(1)),
           ("grad.logits", logits.grad)]
    return [(k, v.detach().to(torch.float64)) for k, v in out]


def ctc_metadata():
    return collections.OrderedDict([("kind", "ctc"), ("blank", "0"), ("reduction", "sum"),
                                    ("loss", CTC_LOSS)])


def ctc_case(prefix, T, B, C, S):
    name = "%sctc_T%d_B%d_C%d_S%d" % (prefix, T, B, C, S)

    def generate():
        torch.manual_seed(zlib.crc32(name.encode()))
        logits = torch.randn(T, B, C)
        targets = torch.randint(1, C, (B, S))
        target_lengths = torch.randint(1, S + 1, (B,))
        target_lengths[0] = S
        input_lengths = torch.empty(B, dtype=torch.int64)
        for b in range(B):
            need = int(target_lengths[b]) + sum(
                int(targets[b, s] == targets[b, s - 1]) for s in range(1, int(target_lengths[b])))
            input_lengths[b] = T if b == 0 else int(torch.randint(need, T + 1, ()))
        tensors = ctc_compute(logits, targets.to(torch.float64), input_lengths.to(torch.float64),
                              target_lengths.to(torch.float64))
        return tensors, ctc_metadata()

    return name, generate


def ctc_recompute(meta, t):
    tensors = ctc_compute(t["logits"], t["targets"], t["input_lengths"], t["target_lengths"])
    return tensors, ctc_metadata()


# ---------------------------------------------------------------------------
# kind: optim

OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
              "RMSprop": torch.optim.RMSprop, "Adagrad": torch.optim.Adagrad}


def optim_compute(optimizer, hyper, param0, grads):
    p = nn.Parameter(param0.clone())
    opt = OPTIMIZERS[optimizer]([p], **hyper)
    out = [("param0", param0.clone())]
    for k, g in enumerate(grads):
        p.grad = g.clone()
        opt.step()
        out += [("g%d" % k, g.clone()), ("p%d" % (k + 1), p.detach().clone())]
    return out


def optim_metadata(optimizer, hyper, steps):
    return collections.OrderedDict([("kind", "optim"), ("optimizer", optimizer),
                                    ("hyper", json.dumps(hyper)), ("steps", str(steps))])


def optim_case(prefix, index, optimizer, hyper, shape=(4, 5), steps=5):
    name = "%soptim_%d_%s" % (prefix, index, optimizer)

    def generate():
        torch.manual_seed(zlib.crc32(name.encode()))
        param0 = torch.randn(*shape)
        grads = [torch.randn(*shape) for _ in range(steps)]
        tensors = optim_compute(optimizer, hyper, param0, grads)
        return tensors, optim_metadata(optimizer, hyper, steps)

    return name, generate


def optim_recompute(meta, t):
    steps = int(meta["steps"])
    hyper = json.loads(meta["hyper"], object_pairs_hook=collections.OrderedDict)
    grads = [t["g%d" % k] for k in range(steps)]
    return (optim_compute(meta["optimizer"], hyper, t["param0"], grads),
            optim_metadata(meta["optimizer"], hyper, steps))


# ---------------------------------------------------------------------------
# kind: clip

def clip_compute(grads, max_norm):
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2.0)
    out = [("g%d" % k, g.clone()) for k, g in enumerate(grads)]
    out += [("clipped%d" % k, p.grad.clone()) for k, p in enumerate(params)]
    out.append(("total_norm", total.detach().reshape(1).to(torch.float64)))
    return out


def clip_metadata(max_norm):
    return collections.OrderedDict([("kind", "clip"), ("max_norm", repr(float(max_norm))),
                                    ("norm_type", "2")])


def clip_case(prefix, max_norm=1.0):
    name = "%sclip_norm" % prefix

    def generate():
        torch.manual_seed(zlib.crc32(name.encode()))
        grads = [3.0 * torch.randn(3, 4), 3.0 * torch.randn(7)]
        return clip_compute(grads, max_norm), clip_metadata(max_norm)

    return name, generate


def clip_recompute(meta, t):
    grads = [t["g%d" % k] for k in range(sum(1 for k in t if k.startswith("g")))]
    return clip_compute(grads, float(meta["max_norm"])), clip_metadata(float(meta["max_norm"]))


# ---------------------------------------------------------------------------
# docs/cells.md written out by hand (no autograd): --check compares it with
# every layer fixture, so the documented forward and backward are tested.

def doc_step(cell, W_ih, W_hh, b_ih, b_hh, x, h, c):
    """One step for rows x [B, I], h, c [B, H]: new h, new c, saved values."""
    H = h.shape[1]
    gx = x @ W_ih.T + b_ih                                 # [B, G*H]
    gh = h @ W_hh.T + b_hh                                 # [B, G*H]
    if cell in ("rnn_tanh", "rnn_relu"):
        a = gx + gh
        h2 = torch.tanh(a) if cell == "rnn_tanh" else torch.relu(a)
        return h2, None, {"a": a, "h2": h2}
    if cell == "lstm":
        a = gx + gh
        i, f = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H])
        g, o = torch.tanh(a[:, 2 * H:3 * H]), torch.sigmoid(a[:, 3 * H:])
        c2 = f * c + i * g
        return o * torch.tanh(c2), c2, {"i": i, "f": f, "g": g, "o": o, "c": c, "c2": c2}
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h, None, {"r": r, "z": z, "n": n, "ghn": gh[:, 2 * H:], "h": h}


def doc_step_backward(cell, s, dh, dc):
    """dh, dc: gradients of the step's new h (and c). Returns dG_x, dG_h [B, G*H],
    the part of dh_prev not going through W_hh, and dc_prev."""
    if cell == "rnn_tanh":
        da = dh * (1 - s["h2"] ** 2)
        return da, da, 0.0, None
    if cell == "rnn_relu":
        da = dh * (s["a"] > 0)
        return da, da, 0.0, None
    if cell == "lstm":
        i, f, g, o, c, c2 = s["i"], s["f"], s["g"], s["o"], s["c"], s["c2"]
        tc = torch.tanh(c2)
        dct = dc + dh * o * (1 - tc ** 2)
        dG = torch.cat([dct * g * i * (1 - i), dct * c * f * (1 - f),
                        dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], 1)
        return dG, dG, 0.0, dct * f
    r, z, n, ghn, h = s["r"], s["z"], s["n"], s["ghn"], s["h"]
    dan = dh * (1 - z) * (1 - n ** 2)
    daz = dh * (h - n) * z * (1 - z)
    dar = dan * ghn * r * (1 - r)
    return torch.cat([dar, daz, dan], 1), torch.cat([dar, daz, dan * r], 1), dh * z, None


def doc_layer(meta, t):
    """Forward and BPTT of a layer fixture as docs/cells.md writes them; returns
    the fixture's output and gradient tensors by name."""
    cell = meta["cell"]
    L, H = int(meta["num_layers"]), int(meta["hidden_size"])
    D = 2 if meta["bidirectional"] == "true" else 1
    x = t["x"]
    T, B = x.shape[0], x.shape[1]
    lens = t["lengths"].long() if "lengths" in t else torch.full((B,), T, dtype=torch.long)
    lstm = cell == "lstm"

    def param(name, k, d):
        return t["%s_l%d%s" % (name, k, "_reverse" if d else "")]

    hn, cn = torch.zeros(L * D, B, H), torch.zeros(L * D, B, H)
    saved, inp = [], x
    for k in range(L):
        ys = []
        for d in range(D):
            W = [param(nm, k, d) for nm in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = t["h0"][k * D + d]
            c = t["c0"][k * D + d] if lstm else None
            y, steps = torch.zeros(T, B, H), {}
            for s in (range(T) if d == 0 else range(T - 1, -1, -1)):
                m = (s < lens).unsqueeze(1)                   # rows still running
                h2, c2, sv = doc_step(cell, *W, inp[s], h, c)
                steps[s] = (sv, h)
                y[s] = torch.where(m, h2, torch.zeros_like(h2))
                h = torch.where(m, h2, h)
                c = torch.where(m, c2, c) if lstm else None
            hn[k * D + d] = h
            if lstm:
                cn[k * D + d] = c
            ys.append(y)
            saved.append((steps, inp))
        inp = torch.cat(ys, 2)
    out = {"y": inp, "hn": hn}
    if lstm:
        out["cn"] = cn
    dh0, dc0 = torch.zeros(L * D, B, H), torch.zeros(L * D, B, H)
    dout = t["dy"]
    for k in range(L - 1, -1, -1):
        dinp = 0.0
        for d in range(D):
            steps, xk = saved[k * D + d]
            W_ih, W_hh = param("weight_ih", k, d), param("weight_hh", k, d)
            dh = t["dhn"][k * D + d]
            dc = t["dcn"][k * D + d] if lstm else None
            dGx = torch.zeros(T, B, W_ih.shape[0])
            dGh = torch.zeros(T, B, W_ih.shape[0])
            hprev = torch.zeros(T, B, H)
            for s in (range(T - 1, -1, -1) if d == 0 else range(T)):
                m = (s < lens).unsqueeze(1)
                sv, hprev[s] = steps[s]
                dht = dh + torch.where(m, dout[s, :, d * H:(d + 1) * H], torch.zeros_like(dh))
                gx, gh, direct, dcp = doc_step_backward(cell, sv, dht, dc)
                dGx[s], dGh[s] = gx * m, gh * m
                dh = torch.where(m, dGh[s] @ W_hh + direct, dh)
                dc = torch.where(m, dcp, dc) if lstm else None
            suffix = "_l%d%s" % (k, "_reverse" if d else "")
            gx2, gh2 = dGx.reshape(T * B, -1), dGh.reshape(T * B, -1)
            out["grad.weight_ih" + suffix] = gx2.T @ xk.reshape(T * B, -1)
            out["grad.weight_hh" + suffix] = gh2.T @ hprev.reshape(T * B, H)
            out["grad.bias_ih" + suffix] = gx2.sum(0)
            out["grad.bias_hh" + suffix] = gh2.sum(0)
            dinp = dinp + dGx @ W_ih
            dh0[k * D + d] = dh
            if lstm:
                dc0[k * D + d] = dc
        dout = dinp
    out["grad.x"], out["grad.h0"] = dout, dh0
    if lstm:
        out["grad.c0"] = dc0
    return out


RECOMPUTE = {"layer": layer_recompute, "lm": lm_recompute, "ctc": ctc_recompute,
             "optim": optim_recompute, "clip": clip_recompute}


# ---------------------------------------------------------------------------
# the case lists

def shared_cases():
    """Cases shaped like the shared fixtures (same names, new random data)."""
    cases = []
    for cell in CELLS:
        cases.append(layer_case("", cell, 5, 7, 1, 6, 3, init=0.6))
        cases.append(layer_case("", cell, 3, 16, 1, 25, 4, init=0.6))
        cases.append(layer_case("", cell, 4, 6, 2, 5, 2, bidirectional=True, init=0.6))
        if cell != "rnn_relu":
            cases.append(layer_case("", cell, 4, 5, 2, 7, 4, bidirectional=True,
                                    lengths="random", init=0.6))
    for cell in ("rnn_tanh", "lstm", "gru"):
        cases.append(lm_case("", cell, 11, 6, 9, 2, 7, 3))
    cases.append(ctc_case("", 12, 3, 5, 4))
    cases.append(ctc_case("", 30, 2, 11, 9))
    hypers = [("SGD", {"lr": 0.1}),
              ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
              ("Adam", {"lr": 0.01}),
              ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
              ("RMSprop", {"lr": 0.01, "alpha": 0.95}),
              ("Adagrad", {"lr": 0.1})]
    for i, (opt, hyper) in enumerate(hypers):
        cases.append(optim_case("", i, opt, hyper))
    cases.append(clip_case(""))
    return cases


def recur_cases():
    """The project's own cases (prefix recur_); PyTorch's default initialisation."""
    p = "recur_"
    cases = []
    for cell in CELLS:
        cases += [
            layer_case(p, cell, 7, 13, 3, 6, 3),                        # 3-layer stack, odd sizes
            layer_case(p, cell, 7, 13, 2, 1, 4),                        # a single step
            layer_case(p, cell, 7, 17, 1, 9, 1),                        # a single sequence
            layer_case(p, cell, 7, 11, 3, 5, 3, bidirectional=True),    # deep bidirectional
            layer_case(p, cell, 5, 9, 1, 8, 5, lengths=[3, 8, 1, 6, 8]),
            layer_case(p, cell, 5, 7, 3, 8, 5, bidirectional=True, lengths=[3, 8, 1, 6, 8]),
            layer_case(p, cell, 4, 17, 1, 60, 2),                       # long: tolerance 1e-4
        ]
    for cell in CELLS:
        cases.append(lm_case(p, cell, 17, 5, 8, 1, 5, 2))
        cases.append(lm_case(p, cell, 17, 5, 8, 3, 5, 2))
    return cases


# ---------------------------------------------------------------------------
# check

def check_file(path):
    """Returns a list of problems (empty when the file passes)."""
    problems = []
    with open(path, "rb") as f:
        blob = f.read()
    meta, t = st_decode(blob)
    again = st_encode(list(t.items()), meta)
    if again != blob:
        problems.append("writer round trip differs (%d vs %d bytes)" % (len(again), len(blob)))
    kind = meta.get("kind")
    if kind not in RECOMPUTE:
        return problems + ["unknown kind %r" % kind]
    tensors, meta2 = RECOMPUTE[kind](meta, t)
    (n,) = struct.unpack("<Q", blob[:8])
    blob2 = st_encode(tensors, meta2)
    (n2,) = struct.unpack("<Q", blob2[:8])
    if blob2[:8 + n2] != blob[:8 + n]:
        problems.append("recomputed header differs")
    got = dict(tensors)
    for name, want in t.items():
        if name not in got:
            problems.append("%s: not recomputed" % name)
            continue
        scale = max(float(want.abs().max()) if want.numel() else 0.0, 1e-30)
        diff = (got[name].to(torch.float64) - want).abs()
        err = float(diff.max()) / scale if want.numel() else 0.0
        if err > 1e-10:
            problems.append("%s: relative error %.3e" % (name, err))
    if kind == "layer":
        for name, value in doc_layer(meta, t).items():
            want = t[name]
            err = float((value - want).abs().max()) / max(float(want.abs().max()), 1e-30)
            if err > 1e-10:
                problems.append("%s: docs/cells.md math differs by %.3e" % (name, err))
    return problems


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=("recur", "shared", "all"), default="recur")
    ap.add_argument("--out", default=FIXTURES)
    ap.add_argument("--only", default="")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--overwrite-shared", action="store_true")
    args = ap.parse_args(argv)

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print("warning: %s is set; run with env -u %s" % (var, var), file=sys.stderr)

    if args.check:
        names = sorted(f for f in os.listdir(args.out) if f.endswith(".safetensors"))
        names = [f for f in names if args.only in f]
        failed = 0
        for f in names:
            try:
                problems = check_file(os.path.join(args.out, f))
            except Exception as e:  # a malformed file is a failure, not a crash
                problems = ["%s: %s" % (type(e).__name__, e)]
            print("%-4s  %s%s" % ("FAIL" if problems else "ok", f,
                                  "".join("\n      " + p for p in problems)))
            failed += bool(problems)
        print("%d files, %d failed" % (len(names), failed))
        return 1 if failed else 0

    cases = []
    if args.set in ("shared", "all"):
        cases += shared_cases()
    if args.set in ("recur", "all"):
        cases += recur_cases()
    cases = [c for c in cases if args.only in c[0]]
    if args.list:
        for name, _ in cases:
            print(name)
        return 0
    into_fixtures = os.path.realpath(args.out) == os.path.realpath(FIXTURES)
    shared_names = [n for n, _ in cases if not n.startswith("recur_")]
    if into_fixtures and shared_names and not args.overwrite_shared:
        print("refusing to replace the shared fixtures in %s: use --out DIR or --overwrite-shared"
              % args.out, file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, generate in cases:
        tensors, meta = generate()
        size = st_write(os.path.join(args.out, name + ".safetensors"), tensors, meta)
        total += size
        print("%8d  %s.safetensors" % (size, name))
    print("%8d  total, %d files in %s" % (total, len(cases), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
