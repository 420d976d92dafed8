"""Summarises one backend of benches/serve_load.sh: reads oha's per-request
records (sqlite, one file per load level), the server's RSS samples and the
capacity `enf bench pipeline` measured, prints one markdown table and checks
the targets. Usage: serve_load.py WORK BACKEND DURATION_S DEADLINE_S"""

import json
import sqlite3
import statistics
import sys
from pathlib import Path

work, backend, duration, deadline = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
capacity = json.loads((work / f"{backend}-capacity.json").read_text())["levels"][0]["items_per_s"]


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


rows, problems, peaks = [], [], []
for level in ["0.5", "1", "2", "10"]:
    db = work / f"{backend}-{level}.db"
    records = sqlite3.connect(db).execute(
        "SELECT status, COALESCE(end - start_latency_correction, duration), start, end FROM oha"
    ).fetchall() if db.exists() else []
    summary = json.loads((work / f"{backend}-{level}.json").read_text())
    errors = summary.get("errorDistribution", {})
    statuses = {}
    for status, *_ in records:
        statuses[status] = statuses.get(status, 0) + 1
    ok = [latency for status, latency, *_ in records if status == 200]
    # Answers per second over the span they were given in: from the first
    # request sent to the last 200 (the run waits for requests in flight).
    ends = [end for status, _, _, end in records if status == 200]
    span = (max(ends) - min(start for _, _, start, _ in records)) if ends else duration
    rss = [int(line) for line in (work / f"{backend}-{level}.rss").read_text().split() if line.strip()]
    peak = max(rss) / 1024 if rss else float("nan")
    peaks.append(peak)
    served = len(ok) / max(span, 1e-9)
    rows.append(
        f"| {level}x ({float(level) * capacity:.3g}/s) | "
        + ", ".join(f"{count} × {status}" for status, count in sorted(statuses.items()))
        + (f", {sum(errors.values())} client errors" if errors else "")
        + f" | {percentile(ok, 0.5):.2f} s | {percentile(ok, 0.99):.2f} s | {served:.3g}/s ({served / capacity:.2f}×) | {peak:.0f} MiB |"
    )
    others = {s: c for s, c in statuses.items() if s not in (200, 503)}
    if others or errors:
        problems.append(f"{level}x: statuses other than 200/503: {others} {errors}")
    if ok and percentile(ok, 0.99) > deadline:
        problems.append(f"{level}x: p99 of 200s {percentile(ok, 0.99):.1f} s is over the {deadline:.0f} s deadline")
    if level == "1" and abs(served / capacity - 1) > 0.10:
        problems.append(f"1x: {served:.3g} answers/s is {served / capacity:.2f}× capacity (target within 10 %)")

print(f"\n### {backend}: capacity {capacity:.3g} items/s (`enf bench pipeline`, --concurrency 4), {duration:.0f} s per level\n")
print("| offered | statuses | p50 of 200s | p99 of 200s | 200s per second over their span (× capacity) | peak RSS |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
# Bounded: once the server is saturated (2x), ten times the load may not
# grow its peak memory by more than a quarter (plus 16 MiB of connections).
if peaks[-1] > 1.25 * peaks[2] + 16:
    problems.append(f"peak RSS grew with the offered load: {[round(p) for p in peaks]} MiB")
print("\ntargets: " + ("all met" if not problems else "MISSED — " + "; ".join(problems)))
