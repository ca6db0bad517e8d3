#!/usr/bin/env python3
"""Summarises the attention weights that `recur translate --attention FILE` writes
(one JSON object a sentence), as docs/translate.md reports them:
  last-token mass   mean weight on the last source subword (1.0: attention collapsed there)
  entropy           mean entropy of a row, in nats (0: one-hot rows)
  |argmax - diag|   mean distance of a row's most-attended source position from the diagonal,
                    both as fractions of the sentence (0: monotonic alignment)
Rows of the final </s> step are left out. Usage: tools/attention_stats.py FILE.jsonl"""
import json
import math
import sys


def main(path):
    rows = last = entropy = diagonal = 0.0
    with open(path, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            weights, n = obj["weights"], len(obj["source"])
            steps = len(weights) - 1
            for i, row in enumerate(weights[:-1]):
                rows += 1
                last += row[-1]
                entropy -= sum(p * math.log(p) for p in row if p > 0)
                best = max(range(n), key=lambda j: row[j])
                diagonal += abs(best / max(n - 1, 1) - i / max(steps - 1, 1))
    if not rows:
        sys.exit(f"{path}: no attention rows")
    print(f"rows {int(rows)}  last-token mass {last / rows:.3f}  entropy {entropy / rows:.3f}"
          f"  |argmax - diag| {diagonal / rows:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
