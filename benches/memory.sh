#!/usr/bin/env bash
# Benchmark, not a test: peak resident memory of `enf run` on the README's main
# job (graphs/enf.toml over examples/sample, the default model) at
# --concurrency 4, for the first N items, in a few configurations — so each
# lever's share of the peak is visible. Run after .ci/setup:
#   benches/memory.sh [ITEMS]        (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-8}
enf=${ENF:-target/release/enf}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
manifest_with() { # NAME EXTRA-[mistralrs]-LINE
    sed "s|^device = \"cpu\"|device = \"cpu\"\n$2|; s|source = { dir = \"smollm2-135m-instruct\" }|source = { dir = \"$PWD/models/smollm2-135m-instruct\" }|" \
        models/smollm2-135m.toml > "$work/$1.toml"
    sed "s|../models/smollm2-135m.toml|$work/$1.toml|; s|\.\./plugins/|$PWD/plugins/|g" graphs/enf.toml > "$work/$1-graph.toml"
}
measure() { # LABEL NAME GRAPH [ENV…]
    local label=$1 name=$2 graph=$3; shift 3
    env "$@" "$enf" -q run "$work/$graph-graph.toml" --data examples/sample --out "$work/$name.jsonl" \
        --limit "$items" --concurrency 4 --summary-json "$work/$name.json" > /dev/null || true
    python3 - "$label" "$work/$name.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
print(f"| {sys.argv[1]} | {s['peak_memory_bytes'] / 2**30:.2f} GiB | {s['elapsed_s']:.0f} s | {s['ok']} ok, {s['failed']} failed |")
PY
}
echo "peak memory, first $items items of examples/sample, --concurrency 4"
echo "| configuration | peak RSS | wall | items |"
echo "|---|---|---|---|"
manifest_with default ""
measure "default (prefix cache 16 sequences)" default default
manifest_with noprefix "prefix_cache = 0"
measure "prefix_cache = 0" noprefix noprefix
manifest_with prefix4 "prefix_cache = 4"
measure "prefix_cache = 4" prefix4 prefix4
measure "default, MALLOC_ARENA_MAX=2" arena default MALLOC_ARENA_MAX=2
