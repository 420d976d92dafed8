#!/usr/bin/env bash
# Benchmark, not a test: `enf serve` driven open-loop by a real load
# generator (oha, from crates.io, installed into .ci/tools by this script)
# at 0.5x, 1x, 2x and 10x its measured capacity, on the shipped ENF graph
# over the first items of examples/sample. For each backend:
#   1. capacity: `enf bench pipeline` items/s at --concurrency 4 (the baseline);
#   2. `enf serve --concurrency 4 --queue 64 --max-candidates 64`, warmed up;
#   3. per level, oha sends POST /v1/predict (the body one of the items step 1
#      measured, drawn at random) at the level's rate for DURATION
#      seconds (-q, latency corrected: a request's latency counts from when it
#      was due, not from when a connection was free; requests sent before
#      the end are waited for) while the server's RSS is sampled; the queue
#      drains before the next level.
# It prints, per level: status counts, p50/p99 latency of the 200s,
# throughput of 200s against capacity, the server's peak RSS — and checks
# the targets: no status but 200 and 503; p99 of 200s within the deadline;
# peak RSS not growing with the offered load; 200s/s at 1x within 10 % of
# capacity. Run after .ci/setup:
#   benches/serve_load.sh [echo|default|all] [DURATION_S]   (all, 60)
# echo: the echo backend answering each model call after 1 s (the setting of
# the overload reports); default: the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
duration=${2:-60}
enf=${ENF:-target/release/enf}
oha_version=1.15.0
oha=.ci/tools/bin/oha
if [ ! -x "$oha" ] || ! "$oha" --version | grep -q "$oha_version"; then
    echo "installing oha $oha_version (crates.io) into .ci/tools" >&2
    cargo install --quiet --locked --version "$oha_version" --root .ci/tools oha
fi
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
deadline_s=120

# graph_for BACKEND: a graph file of the shipped ENF graph on that backend.
graph_for() {
    case $1 in
        echo)
            printf 'name = "echo"\nbackend = "echo"\nimages = true\n[echo]\ndelay = "1s"\n' > "$work/echo.toml"
            sed "s|../models/smollm2-135m.toml|$work/echo.toml|; s|\.\./plugins/|$PWD/plugins/|g" graphs/enf.toml > "$work/echo-graph.toml"
            echo "$work/echo-graph.toml"
            ;;
        default) echo "$PWD/graphs/enf.toml" ;;
        *) echo "unknown backend: $1 (echo, default)" >&2; exit 64 ;;
    esac
}

wait_until_drained() { # BASE
    for _ in $(seq 1 600); do
        depth=$(curl -fsS "$1/metrics" | awk '$1 == "enf_queue_depth" { print $2 }')
        [ "$depth" = "0" ] && return 0
        sleep 1
    done
    echo "the queue did not drain" >&2
    return 1
}

run_backend() { # BACKEND
    local backend=$1 graph base level rate
    graph=$(graph_for "$backend")
    local items=16
    [ "$backend" = default ] && items=8
    echo "== $backend: capacity (enf bench pipeline, --concurrency 4, $items items)" >&2
    "$enf" -q bench pipeline "$graph" --data examples/sample --items "$items" --concurrency 4 \
        --json "$work/$backend-capacity.json" >&2
    # The items the capacity was measured on: each request is one of them, at random.
    "$enf" data items examples/sample > "$work/items.jsonl"
    head -n "$items" "$work/items.jsonl" > "$work/bodies.jsonl"
    head -n 1 "$work/items.jsonl" > "$work/body.json"
    "$enf" serve --graph "$graph" --frames-root examples/sample --listen 127.0.0.1:0 \
        --concurrency 4 --queue 64 --max-candidates 64 --deadline "${deadline_s}s" --no-watch \
        > "$work/$backend-serve.out" 2> "$work/$backend-serve.log" &
    server_pid=$!
    for _ in $(seq 1 600); do
        base=$(sed -n 's/^listening on //p' "$work/$backend-serve.out")
        [ -n "$base" ] && break
        sleep 0.5
    done
    [ -n "$base" ] || { cat "$work/$backend-serve.log" >&2; exit 1; }
    # Warm-up: two requests, answered before measuring.
    for _ in 1 2; do
        curl -fsS -o /dev/null -H 'content-type: application/json' --data @"$work/body.json" "$base/v1/predict"
    done
    for level in 0.5 1 2 10; do
        rate=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(max(0.01, float(sys.argv[2]) * c['levels'][0]['items_per_s']))" "$work/$backend-capacity.json" "$level")
        echo "== $backend: ${level}x capacity = $rate requests/s for ${duration}s" >&2
        (while kill -0 "$server_pid" 2> /dev/null; do ps -o rss= -p "$server_pid"; sleep 1; done) > "$work/$backend-$level.rss" &
        local sampler=$!
        "$oha" -z "${duration}s" -w -q "$rate" --latency-correction -c 512 --no-tui -m POST \
            -H 'content-type: application/json' -Z "$work/bodies.jsonl" \
            --db-url "$work/$backend-$level.db" --output-format json -o "$work/$backend-$level.json" \
            "$base/v1/predict" > /dev/null
        wait_until_drained "$base"
        kill "$sampler" 2> /dev/null || true
    done
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
    python3 benches/serve_load.py "$work" "$backend" "$duration" "$deadline_s"
}

echo "enf serve under open-loop load ($(date -u +%F), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
case $which in
    all) run_backend echo; run_backend default ;;
    *) run_backend "$which" ;;
esac
