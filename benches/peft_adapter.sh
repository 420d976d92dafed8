#!/usr/bin/env bash
# Check, not a test (it needs torch, transformers and peft from PyPI, which
# CI does not install): trains LoRA adapters on the tiny text model with
# examples/train/tiny-lora.toml, then loads the exported adapter with Hugging
# Face PEFT on top of the base model and checks that it computes what the
# merged export computes (and not what the base model computes). Installs
# into target/hf-venv (benches/hf_venv.sh). Run after .ci/setup:
#   benches/peft_adapter.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/hf_venv.sh
"$venv/bin/python" -c "import peft" 2>/dev/null || "$venv/bin/pip" install --quiet peft
data=target/train-tiny/data
[ -f "$data/items.jsonl" ] || target/release/enf data synth "$data" --users 4 --seed 1
rm -rf target/train-tiny/lora
target/release/enf train examples/train/tiny-lora.toml
"$venv/bin/python" benches/peft_adapter.py --base models/tiny-text --export target/train-tiny/lora
