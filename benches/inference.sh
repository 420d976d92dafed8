#!/usr/bin/env bash
# Benchmark, not a test: prefill and decode tok/s of the default model and the
# tiny Qwen2.5-VL on CPU, one request and 8 at once, through `enf` (mistral.rs),
# through Hugging Face transformers on the same weights and — for the default
# model — through llama.cpp on the same weights written as an f32 GGUF file,
# with the ratios. Installs torch, torchvision (the Qwen2.5-VL processor needs
# it) and transformers from PyPI into target/hf-venv, and builds
# llama-cpp-python there from its source package.
# Run after .ci/setup:  benches/inference.sh [ROUNDS]
# With ROUNDS > 1 the three runtimes take turns ROUNDS times and the script
# ends with each ratio's median and its value in every round
# (benches/inference_rounds.py): on a machine whose figures move by a
# quarter from run to run, one round decides little.
set -euo pipefail
rounds=${1:-1}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: benches/inference.sh [ROUNDS], ROUNDS a whole number ≥ 1" >&2; exit 2; }
cd "$(dirname "$0")/.."
. benches/hf_venv.sh
. benches/llamacpp.sh
mkdir -p target/bench
run() { # name manifest model-dir shapes new-tokens
    local name=$1 manifest=$2 dir=$3 shapes=$4 new=$5
    local compare=(--compare "target/bench/$name-hf.json")
    echo "== $name: transformers"
    "$venv/bin/python" benches/transformers_bench.py "$dir" --shape "$shapes" --new-tokens "$new" --json "target/bench/$name-hf.json"
    if [[ $shapes != *:[1-9]* ]]; then # llama.cpp here: text only
        echo "== $name: llama.cpp"
        gguf_of "$dir" "target/bench/$name-f32.gguf"
        "$venv/bin/python" benches/llamacpp_bench.py "target/bench/$name-f32.gguf" "$dir" --shape "$shapes" \
            --new-tokens "$new" --json "target/bench/$name-llamacpp.json" 2> "target/bench/$name-llamacpp.log"
        compare+=(--compare "target/bench/$name-llamacpp.json")
    fi
    echo "== $name: enf (mistral.rs)"
    target/release/enf -q bench inference "$manifest" --shape "$shapes" --new-tokens "$new" \
        --json "target/bench/$name-enf.json" "${compare[@]}"
}
rm -rf target/bench/rounds
for round in $(seq 1 "$rounds"); do
    ((rounds > 1)) && echo "=== round $round of $rounds"
    # 96 new tokens: at 32, enf's batch-8 decode takes ~1.2 s, within the
    # spread of the timed rounds on a 2-core machine (no rate printed).
    run smollm2 models/smollm2-135m.toml models/smollm2-135m-instruct 1:0:0,8:0:0 96
    # tiny-vl decodes in a few milliseconds per token: 128 tokens, so that decode
    # time stands out of the prefill's run-to-run spread.
    run tiny-vl models/tiny-vl.toml models/tiny-vl 1:0:0,8:0:0,1:16:224,8:16:224 128
    if ((rounds > 1)); then
        mkdir -p "target/bench/rounds/$round"
        cp target/bench/{smollm2,tiny-vl}-{enf,hf}.json target/bench/smollm2-llamacpp.json "target/bench/rounds/$round/"
    fi
done
if ((rounds > 1)); then
    "$venv/bin/python" benches/inference_rounds.py target/bench/rounds/*
fi
