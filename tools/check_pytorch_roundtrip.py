#!/usr/bin/env python3
"""check_pytorch_roundtrip.py - checks both directions of docs/checkpoints.md
against the real recur binary:

  1. PyTorch -> recur: for several cells and both vocabulary kinds, build the
     model of docs/checkpoints.md in PyTorch, train it for a few Adam steps,
     export its state_dict plus the "recur" metadata with the small writer
     below, and run `recur eval --json` on a text. recur's loss must equal
     the loss PyTorch computes on the same text (zero initial state, state
     carried through the whole text, every character after the first
     predicted) within 1e-4, and `recur sample` must run on the file.
  2. recur -> PyTorch: train a small model with `recur train`, load
     latest.safetensors (which also holds the training state) with the small
     reader below into the same nn.Module, and compare PyTorch's loss with
     `recur eval --json`.

Run by hand, not in CI, from the repository root after building:

    env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=PASSIVE \\
        /usr/bin/python3 tools/check_pytorch_roundtrip.py --recur build/recur

Options: --recur PATH (default build/recur), --text FILE (default
data/tinyshakespeare.txt), --chars N (characters of the text used, default
20000), --tol X (default 1e-4), --keep DIR (write the files there and keep
them; otherwise a temporary folder, removed when every check passes).
Exits 1 when a check fails. The safetensors package is not needed; when it
is installed, the files are also read back with it.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch
from torch import nn


# ---- the code of docs/checkpoints.md (keep the two in step) -----------------

class CharRNN(nn.Module):
    """recur's language model: embedding -> recurrent stack -> linear head."""

    def __init__(self, cfg):
        super().__init__()
        V, E, H, L = len(cfg["vocab"]), cfg["embedding_size"], cfg["hidden_size"], cfg["num_layers"]
        kind, p = cfg["cell"], cfg.get("dropout", 0.0)
        self.embedding = nn.Embedding(V, E)
        if kind == "lstm":
            self.rnn = nn.LSTM(E, H, L, dropout=p)
        elif kind == "gru":
            self.rnn = nn.GRU(E, H, L, dropout=p)
        else:  # "rnn_tanh" or "rnn_relu"
            self.rnn = nn.RNN(E, H, L, nonlinearity=kind[4:], dropout=p)
        self.head = nn.Linear(H, V)

    def forward(self, tokens, state=None):  # tokens [T, B] -> logits [T, B, V]
        y, state = self.rnn(self.embedding(tokens), state)
        return self.head(y), state


def read_safetensors(path):
    """Returns ({name: float32 tensor}, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{name}: {t['dtype']}"
        begin, end = t["data_offsets"]
        tensors[name] = torch.frombuffer(data[begin:end], dtype=torch.float32).reshape(t["shape"])
    return tensors, meta


def write_safetensors(path, tensors, metadata):
    """Writes {name: tensor} as F32 with string metadata."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        blob = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_recur(path):
    """A recur checkpoint as (model, vocab list, config)."""
    tensors, meta = read_safetensors(path)
    cfg = json.loads(meta["recur"])
    model = CharRNN(cfg)
    model.load_state_dict({k: v for k, v in tensors.items()
                           if not k.startswith(("optimizer.", "state."))})
    return model.eval(), cfg["vocab"], cfg


def save_recur(path, model, vocab, cell, vocab_kind="char"):
    """Exports a CharRNN for recur."""
    cfg = {"format": 1, "cell": cell, "vocab_size": len(vocab),
           "embedding_size": model.embedding.embedding_dim,
           "hidden_size": model.rnn.hidden_size, "num_layers": model.rnn.num_layers,
           "bidirectional": False, "dropout": model.rnn.dropout,
           "vocab_kind": vocab_kind, "vocab": vocab}
    write_safetensors(path, model.state_dict(), {"recur": json.dumps(cfg)})

# -----------------------------------------------------------------------------


def text_loss(model, ids):
    """Mean cross-entropy (nats) of ids[1:] given everything before, zero state."""
    with torch.no_grad():
        x = torch.tensor(ids[:-1]).unsqueeze(1)  # [T, 1]
        y = torch.tensor(ids[1:])
        logits, _ = model(x)
        return torch.nn.functional.cross_entropy(logits.squeeze(1).double(), y).item()


def recur_eval(recur, model_path, data_path):
    out = subprocess.run([recur, "eval", "--model", model_path, "--data", data_path, "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"recur eval failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recur", default="build/recur")
    ap.add_argument("--text", default="data/tinyshakespeare.txt")
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--keep", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    recur = os.path.abspath(args.recur)
    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")[: args.chars]
    folder = args.keep or tempfile.mkdtemp(prefix="recur_roundtrip_")
    os.makedirs(folder, exist_ok=True)
    data_path = os.path.join(folder, "text.txt")
    with open(data_path, "w", encoding="utf-8") as f:
        f.write(text)
    failures = 0

    print(f"text: {len(text)} characters of {args.text}; files in {folder}")
    print("1. PyTorch -> recur (train a few Adam steps in PyTorch, export, recur eval)")
    cases = [("lstm", 2, 64, 16, "char"), ("gru", 2, 48, 16, "byte"),
             ("rnn_tanh", 1, 40, 12, "char"), ("rnn_relu", 2, 32, 8, "char")]
    for cell, layers, hidden, embed, kind in cases:
        if kind == "char":
            vocab = sorted(set(text))
            ids = [vocab.index(ch) for ch in text]
        else:
            vocab = [chr(b) for b in range(256)]
            ids = list(text.encode("utf-8"))
        cfg = {"cell": cell, "vocab": vocab, "embedding_size": embed, "hidden_size": hidden,
               "num_layers": layers, "dropout": 0.0}
        model = CharRNN(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        data = torch.tensor(ids)
        T, B = 50, 16
        for _ in range(30):  # a few steps on random windows
            starts = torch.randint(0, len(ids) - T - 1, (B,))
            batch = torch.stack([data[s:s + T + 1] for s in starts], dim=1)  # [T+1, B]
            logits, _ = model(batch[:-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)),
                                                     batch[1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        model.eval()
        path = os.path.join(folder, f"torch_{cell}_{kind}.safetensors")
        save_recur(path, model, vocab, cell, kind)
        want = text_loss(model, ids)
        got = recur_eval(recur, path, data_path)
        diff = abs(got["loss"] - want)
        ok = diff <= args.tol and got["chars"] == len(ids) - 1
        failures += not ok
        print(f"   {cell:8s} {kind:4s} L{layers} H{hidden}: pytorch {want:.7f}  recur "
              f"{got['loss']:.7f}  |diff| {diff:.2e}  chars {got['chars']}  "
              f"{'ok' if ok else 'FAIL'}")
        sample = subprocess.run([recur, "sample", "--model", path, "--length", "40",
                                 "--seed", "1"], capture_output=True)
        if sample.returncode != 0:
            failures += 1
            print(f"   recur sample failed: {sample.stderr.decode(errors='replace').strip()}")

    print("2. recur -> PyTorch (recur train, load latest.safetensors in PyTorch)")
    for cell in ("lstm", "gru", "rnn_tanh"):
        out = os.path.join(folder, f"recur_{cell}")
        cmd = [recur, "train", "--data", data_path, "--out", out, "--overwrite", "--cell", cell,
               "--hidden", "48", "--layers", "2", "--embed", "16", "--seq-len", "40",
               "--batch", "8", "--steps", "40", "--val-every", "20", "--threads", "2"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            failures += 1
            print(f"   recur train failed: {run.stderr.strip()}")
            continue
        path = os.path.join(out, "latest.safetensors")
        model, vocab, cfg = load_recur(path)
        tensors, meta = read_safetensors(path)
        extra = sorted(k for k in tensors if k.startswith(("optimizer.", "state.")))
        index = {ch: i for i, ch in enumerate(vocab)}
        ids = [index[ch] for ch in text]
        want = text_loss(model, ids)
        got = recur_eval(recur, path, data_path)
        diff = abs(got["loss"] - want)
        ok = diff <= args.tol
        failures += not ok
        print(f"   {cell:8s}: recur {got['loss']:.7f}  pytorch {want:.7f}  |diff| {diff:.2e}  "
              f"(training state in the file: {', '.join(extra)})  {'ok' if ok else 'FAIL'}")
        try:
            from safetensors.torch import load_file  # optional cross-check
            sd = load_file(path)
            assert all(torch.equal(sd[k], tensors[k]) for k in tensors)
            print("   (safetensors.torch.load_file reads the same tensors)")
        except ImportError:
            pass

    print("all checks passed" if not failures else f"{failures} check(s) FAILED")
    if not args.keep and not failures:
        shutil.rmtree(folder)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
