#!/usr/bin/env bash
# Benchmark, not a test: prefill and decode tok/s of the default model and the
# tiny Qwen2.5-VL on CPU, one request and 8 at once, through `enf` (mistral.rs)
# and through Hugging Face transformers on the same weights, with the ratio.
# Installs torch, torchvision (the Qwen2.5-VL processor needs it) and
# transformers from PyPI into target/hf-venv.
# Run after .ci/setup:  benches/inference.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/hf_venv.sh
mkdir -p target/bench
run() { # name manifest model-dir shapes
    local name=$1 manifest=$2 dir=$3 shapes=$4
    echo "== $name: transformers"
    "$venv/bin/python" benches/transformers_bench.py "$dir" --shape "$shapes" --new-tokens 32 --json "target/bench/$name-hf.json"
    echo "== $name: enf (mistral.rs)"
    target/release/enf -q bench inference "$manifest" --shape "$shapes" --new-tokens 32 \
        --json "target/bench/$name-enf.json" --compare "target/bench/$name-hf.json"
}
run smollm2 models/smollm2-135m.toml models/smollm2-135m-instruct 1:0:0,8:0:0
run tiny-vl models/tiny-vl.toml models/tiny-vl 1:0:0,8:0:0,1:16:224,8:16:224
