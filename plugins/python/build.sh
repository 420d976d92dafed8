#!/usr/bin/env bash
# Builds a Python agent into a WebAssembly component that `enf` loads like any
# other agent:
#
#     plugins/python/build.sh AGENT_DIR OUT.wasm [WIT_DIR]
#
# AGENT_DIR holds the agent's module `app.py` (a class `Agent`, see
# docs/agents.md); it is built against the `plugin` world of WIT_DIR (default:
# the repository's wit/) with the SDK (enf_agent) and the shared logic
# (enf_kit) of plugins/python on its path. componentize-py comes from the
# virtual environment `.ci/setup` installs (.ci/venv), or from $COMPONENTIZE_PY.
# The build is skipped when OUT exists and nothing that goes into it changed
# (the agent's, the SDK's and the shared logic's .py files, the WIT, this
# script, the tool's version), recorded in a stamp beside OUT (.OUT.sources).
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 AGENT_DIR OUT.wasm [WIT_DIR]" >&2
    exit 64
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
agent_dir="$1"
out="$2"
wit="${3:-$root/wit}"
componentize="${COMPONENTIZE_PY:-$root/.ci/venv/bin/componentize-py}"
if [ ! -x "$componentize" ]; then
    echo "error: componentize-py not found at $componentize (run .ci/setup, or set COMPONENTIZE_PY)" >&2
    exit 69
fi
if [ ! -f "$agent_dir/app.py" ]; then
    echo "error: $agent_dir/app.py not found: an agent directory holds its module app.py" >&2
    exit 66
fi
mkdir -p "$(dirname "$out")"
stamp="$(dirname "$out")/.$(basename "$out").sources"
sources=$( {
    find "$agent_dir" "$here/enf_agent" "$here/enf_kit" "$wit" -type f \( -name '*.py' -o -name '*.wit' \) -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum "$0"
    "$componentize" --version
} | sha256sum | cut -c1-16)
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sources" ]; then
    echo "up to date: $out" >&2
    exit 0
fi
# Build beside the target and move into place, so a failed build never leaves
# a half-written component where a graph points.
partial="$out.partial.$$"
trap 'rm -f "$partial"' EXIT
# componentize-py adds $VIRTUAL_ENV's site-packages to the agent's path; an
# agent's dependencies are exactly what its directory and plugins/python hold.
env -u VIRTUAL_ENV "$componentize" --quiet -d "$wit" -w plugin componentize \
    -p "$agent_dir" -p "$here" app -o "$partial"
mv "$partial" "$out"
echo "$sources" > "$stamp"
echo "built $out" >&2
