#!/usr/bin/env python3
"""Ratios of `enf` against transformers and llama.cpp over several rounds of
benches/inference.sh: for each model and shape, each ratio's median and its
value in every round, so that one lucky or unlucky round does not decide a
target.

Usage: inference_rounds.py ROUND_DIR...   (each holding the round's
MODEL-enf.json, MODEL-hf.json and, where measured, MODEL-llamacpp.json)
"""
import json
import statistics
import sys
from pathlib import Path

BASELINES = [("hf", "transformers"), ("llamacpp", "llama.cpp")]
MODELS = ["smollm2", "tiny-vl"]


def rates(path):
    """{(batch, frames, px): (prefill tok/s, decode tok/s or None)} of one JSON file."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        sys.exit(f"{path}: {err}")
    out = {}
    for i, row in enumerate(doc.get("rows", [])):
        try:
            key = (row["batch"], row["frames"], row["frame_size"])
            out[key] = (row["prefill_tok_s"], row.get("decode_tok_s"))
        except KeyError as err:
            sys.exit(f"{path}: row {i} lacks {err}")
    return out


def cell(values):
    """`median (round 1, round 2, …)`; `–` where a round had no rate."""
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    each = ", ".join("–" if v is None else f"{v:.2f}" for v in values)
    return f"**{statistics.median(known):.2f}** ({each})"


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    rounds = [Path(d) for d in dirs]
    print(f"\nenf's ratios over {len(rounds)} rounds (> 1: enf is faster): median (each round)")
    for model in MODELS:
        for base, name in BASELINES:
            pairs = []
            for r in rounds:
                enf, other = r / f"{model}-enf.json", r / f"{model}-{base}.json"
                if enf.is_file() and other.is_file():
                    pairs.append((rates(enf), rates(other)))
            if not pairs:
                continue
            print(f"\n{model}, enf / {name}")
            print("| batch | frames | px | prefill tok/s ratio | decode tok/s ratio |")
            print("|---|---|---|---|---|")
            for key in pairs[0][0]:
                prefill, decode = [], []
                for ours, theirs in pairs:
                    a, b = ours.get(key), theirs.get(key)
                    prefill.append(a[0] / b[0] if a and b and a[0] and b[0] else None)
                    decode.append(a[1] / b[1] if a and b and a[1] and b[1] else None)
                batch, frames, px = key
                print(f"| {batch} | {frames} | {px} | {cell(prefill)} | {cell(decode)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
