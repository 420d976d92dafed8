#!/usr/bin/env bash
# Reference check, not a test: the engine's greedy answers against Hugging
# Face transformers on the same model directories (the default model on 24
# prompts; the tiny Qwen2.5-VL with 0, 1, 2 and 16 frames). Installs torch,
# torchvision and transformers from PyPI into target/hf-venv (shared with
# benches/inference.sh). Run after .ci/setup:  benches/fidelity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/hf_venv.sh
mkdir -p target/bench
"$venv/bin/python" benches/fidelity.py --json target/bench/fidelity.json "$@"
