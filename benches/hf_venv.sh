# Sourced by the benchmark scripts: a virtual environment with torch,
# torchvision (the Qwen2.5-VL processor needs it) and transformers from PyPI,
# in target/hf-venv, made on first use. Sets $venv.
venv=target/hf-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch torchvision transformers pillow
fi
