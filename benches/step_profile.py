#!/usr/bin/env python3
"""Tables from `ENF_STEP_PROFILE` logs of `enf bench inference` (benches/gpu_profile.sh).

usage: step_profile.py LOG [LOG ...]

A log holds the bench's table rows on stdout (`| batch | frames | px | ...`) and,
on stderr, one `ENF_STEP_PROFILE {json}` line per engine step; the steps before
a row belong to that row's shape. For each log, and for prefill and decode
steps apart, prints the mean milliseconds per step of every phase, per shape.
"""
import json
import sys
from collections import OrderedDict


def segments(path):
    steps = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.strip()
            if line.startswith("ENF_STEP_PROFILE "):
                try:
                    steps.append(json.loads(line[len("ENF_STEP_PROFILE "):]))
                except json.JSONDecodeError:
                    continue
            elif line.startswith("| ") and line[2:3].isdigit():
                cells = [c.strip() for c in line.strip("|").split("|")]
                shape = f"{cells[0]}×{cells[1]}×{cells[2]}"
                yield shape, steps
                steps = []


def table(rows, kind):
    phases = OrderedDict()
    for _, steps in rows:
        for step in steps:
            for name in step["phases"]:
                phases[name] = True
    names = list(phases)
    head = ["shape", "steps", "seqs/step", "step ms", "gap ms"] + names
    print(f"\n#### {kind}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for shape, steps in rows:
        if not steps:
            continue
        n = len(steps)
        mean = lambda key: sum(s[key] for s in steps) / n
        cells = [shape, str(n), f"{mean('batch'):.1f}", f"{mean('step_ms'):.2f}", f"{mean('gap_ms'):.2f}"]
        for name in names:
            ms = sum(s["phases"].get(name, 0.0) for s in steps) / n
            cells.append(f"{ms:.2f}")
        print("| " + " | ".join(cells) + " |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        print(f"\n### {path}")
        rows = list(segments(path))
        for kind, prompt in (("prefill steps", True), ("decode steps", False)):
            table([(shape, [s for s in steps if s["prompt"] == prompt]) for shape, steps in rows], kind)


if __name__ == "__main__":
    main()
