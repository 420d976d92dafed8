#!/usr/bin/env bash
# Benchmark, not a test: where a decode and a prefill step of Qwen2.5-VL-7B
# spend their time on a GPU, at batch 1, 8 and 32 (docs/benchmarks.md, "GPU").
# Runs on a lent GPU machine, which has CUDA libraries and torch but no Rust:
# build the CUDA binary here and carry it (docs/benchmarks.md says how).
#
#   benches/gpu_profile.sh ENF_BINARY TOOLS_DIR OUT_DIR [SHAPES]
#
# ENF_BINARY: a CUDA build of enf (`ENF_FEATURES=cuda`), plain or .xz.
# TOOLS_DIR: holds make_qwen25vl.py and the Qwen2.5 tokenizer files that
#   write a random-weight Qwen2.5-VL-7B (the workplace's generator).
# Three passes over the same shapes, one process each: the profile off (the
# tok/s to report), ENF_STEP_PROFILE=1 (phases of every engine step and of
# the model's forward) and ENF_STEP_PROFILE=2 (also inside every decoder
# layer). benches/step_profile.py turns the logs into tables.
set -euo pipefail
bin=$1 tools=$2 out=$3
shapes=${4:-1:1:448,1:16:224,8:16:224,32:1:224}
mkdir -p "$out"
work=$(mktemp -d)
if [[ $bin == *.xz ]]; then xz -dc "$bin" > "$work/enf"; else cp "$bin" "$work/enf"; fi
chmod +x "$work/enf"
nvidia_lib=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${nvidia_lib}:${LD_LIBRARY_PATH:-}"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "nsys: $(command -v nsys || echo none); ncu: $(command -v ncu || echo none)"
    python3 -c 'import torch; print("torch", torch.__version__)' 2>&1 || true
    python3 -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 || true
} | tee "$out/machine.txt"

start=$(date +%s)
python3 "$tools/make_qwen25vl.py" "$work/qwen7b" --size 7b --tokenizer "$tools/tokenizer.json" \
    > "$out/make-model.log" 2>&1
echo "model written in $(($(date +%s) - start)) s"
cat > "$work/qwen7b.toml" <<TOML
name = "qwen2.5-vl-7b-random"
backend = "mistralrs"
images = true
[mistralrs]
source = { dir = "qwen7b" }
architecture = "qwen2.5-vl"
dtype = "bf16"
device = "cuda"
[sampling]
temperature = 0.0
TOML

pass() { # level tokens shapes
    local level=$1 tokens=$2 shapes=$3 t0
    t0=$(date +%s)
    ENF_STEP_PROFILE=$level "$work/enf" bench inference "$work/qwen7b.toml" --shape "$shapes" \
        --new-tokens "$tokens" --repeat 1 --json "$out/bench-level$level.json" \
        > "$out/profile-level$level.log" 2>&1 || echo "pass $level failed (exit $?)"
    grep '^|' "$out/profile-level$level.log" || tail -5 "$out/profile-level$level.log"
    echo "pass $level: $(($(date +%s) - t0)) s"
}
pass 0 64 "$shapes"
pass 1 32 "$shapes"
pass 2 16 "$shapes"
python3 "$(dirname "$0")/step_profile.py" "$out"/profile-level1.log "$out"/profile-level2.log \
    > "$out/summary.md" || true
cat "$out/summary.md"
rm -rf "$work"
