#!/usr/bin/env bash
# Benchmark, not a test: one GRPO step of `enf train` against Hugging Face
# TRL's GRPOTrainer (CPU torch) on the same model, prompt and completion
# lengths and G, measured in the same run; prints both and the ratio.
# Installs torch, transformers and trl from PyPI into target/hf-venv.
# Run after .ci/setup:  benches/trl_grpo.sh [--prompt-tokens 400 --completion-tokens 64 --group 4 --steps 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/hf_venv.sh
"$venv/bin/python" -c "import trl" 2>/dev/null || "$venv/bin/pip" install --quiet trl
mkdir -p target/bench
model=models/smollm2-135m-instruct
echo "== TRL GRPOTrainer"
"$venv/bin/python" benches/trl_grpo.py --model "$model" --json target/bench/trl_grpo.json "$@"
echo "== enf train (enf bench train)"
target/release/enf bench train "$model" --json target/bench/enf_grpo.json --compare target/bench/trl_grpo.json "$@"
