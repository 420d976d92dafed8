# Sourced by the benchmark scripts (after hf_venv.sh): llama-cpp-python built
# from its source package (its wheel compiles llama.cpp here, for this CPU)
# into $venv, and `gguf_of DIR OUT` to write a Hugging Face model directory as
# an f32 GGUF file with llama.cpp's own converter, which the source package
# carries. Sets $llamacpp_src.
llamacpp_version=0.3.36
llamacpp_dir=target/llamacpp
llamacpp_src=$llamacpp_dir/llama_cpp_python-$llamacpp_version
if [ ! -f "$llamacpp_src/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
    mkdir -p "$llamacpp_dir"
    "$venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$llamacpp_version" -d "$llamacpp_dir"
    tar xzf "$llamacpp_src.tar.gz" -C "$llamacpp_dir" "${llamacpp_src#"$llamacpp_dir"/}/vendor/llama.cpp"
fi
if ! "$venv/bin/python" -c "import llama_cpp, sentencepiece" 2>/dev/null; then
    echo "building llama-cpp-python $llamacpp_version from source (about 10 minutes on 2 cores)"
    "$venv/bin/pip" install --quiet "$llamacpp_src.tar.gz" sentencepiece
fi
gguf_of() { # model-dir out.gguf
    [ -f "$2" ] || PYTHONPATH="$llamacpp_src/vendor/llama.cpp/gguf-py" "$venv/bin/python" \
        "$llamacpp_src/vendor/llama.cpp/convert_hf_to_gguf.py" "$1" --outtype f32 --outfile "$2" > "$2.log" 2>&1 \
        || { echo "converting $1 to GGUF failed; see $2.log" >&2; return 1; }
}
