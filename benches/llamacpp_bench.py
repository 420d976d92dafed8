#!/usr/bin/env python3
"""llama.cpp baseline for `enf bench inference` (text models): the method of
transformers_bench.py on a GGUF file through llama-cpp-python's bindings to
llama.cpp's C API — greedy, each shape warmed up first, B sequences at once
in one llama.cpp context (prompts decoded together, then one token per
sequence per step, as llama.cpp's own batched tools do), prefill = prompts
plus the first token, decode = the N − 1 tokens after it.

The prompts are the ones transformers_bench.py builds: the same text through
the Hugging Face tokenizer's chat template, tokenized by that tokenizer, so
every runtime sees the same token ids.

usage: llamacpp_bench.py GGUF TOKENIZER_DIR --shape 1:0:0,8:0:0 [--new-tokens 64] [--json OUT]
"""
import argparse
import ctypes
import json
import os
import time

import llama_cpp
import numpy as np

from transformers_bench import prompt_text


def prompt_ids(tokenizer, words):
    messages = [{"role": "user", "content": prompt_text(words)}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(rendered)["input_ids"]


class Runner:
    """One llama.cpp model and a context sized for the largest shape."""

    def __init__(self, gguf, threads, max_seqs, max_tokens):
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(gguf.encode(), mparams)
        if not self.model:
            raise SystemExit(f"{gguf}: llama.cpp could not load it")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = max_tokens
        cparams.n_batch = max_tokens
        cparams.n_seq_max = max_seqs
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise SystemExit(f"{gguf}: llama.cpp could not make a context of {max_tokens} tokens")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.batch = llama_cpp.llama_batch_init(max_tokens, 0, max_seqs)

    def _decode(self, entries):
        """entries: (token, position, sequence, wants_logits); returns the
        batch indices whose logits were asked for, in order."""
        b = self.batch
        wanted = []
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if logits else 0
            if logits:
                wanted.append(i)
        b.n_tokens = len(entries)
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")
        return wanted

    def _argmax(self, index):
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, index)
        row = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))
        return int(row.argmax())

    def generate(self, prompt, batch, new_tokens):
        """Greedy: `batch` copies of `prompt`, `new_tokens` each; returns
        (prefill seconds, decode seconds, the first sequence's tokens)."""
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        start = time.perf_counter()
        entries = [(t, p, s, p == len(prompt) - 1) for s in range(batch) for p, t in enumerate(prompt)]
        rows = self._decode(entries)
        tokens = [self._argmax(i) for i in rows]
        first = [tokens[0]]
        prefilled = time.perf_counter()
        for step in range(new_tokens - 1):
            rows = self._decode([(tokens[s], len(prompt) + step, s, True) for s in range(batch)])
            tokens = [self._argmax(i) for i in rows]
            first.append(tokens[0])
        return prefilled - start, time.perf_counter() - prefilled, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("tokenizer", help="the Hugging Face model directory whose tokenizer makes the prompts")
    ap.add_argument("--shape", default="1:0:0,8:0:0")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions per shape (the best is kept)")
    ap.add_argument("--json")
    a = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split(":")) for s in a.shape.split(",")]
    if any(frames for _, frames, _ in shapes):
        raise SystemExit("llamacpp_bench.py measures text models only (frames must be 0)")
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(a.tokenizer)
    prompt = prompt_ids(tokenizer, a.prompt_words)
    max_batch = max(b for b, _, _ in shapes)
    t0 = time.time()
    runner = Runner(a.gguf, a.threads, max_batch, max_batch * (len(prompt) + a.new_tokens))
    load_s = time.time() - t0
    print(f"llama-cpp-python {llama_cpp.__version__} (llama.cpp C API), {a.threads} threads; "
          f"{a.gguf} loaded in {load_s:.1f}s; {a.new_tokens} new tokens")
    print("| batch | frames | px | prompt tok/req | prefill s | prefill tok/s | decode s | decode tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for batch, _, _ in shapes:
        _, _, greedy = runner.generate(prompt, batch, a.new_tokens)
        timings = [runner.generate(prompt, batch, a.new_tokens) for _ in range(a.repeat)]
        prefill = min(t[0] for t in timings)
        decode = max(min(t[1] for t in timings), 1e-9)
        tokens = batch * len(prompt)
        row = {
            "batch": batch, "frames": 0, "frame_size": 0,
            "prompt_tokens_per_request": len(prompt), "prefill_s": prefill,
            "prefill_tok_s": tokens / prefill, "decode_s": decode,
            "decode_tok_s": batch * (a.new_tokens - 1) / decode,
        }
        rows.append(row)
        print(f"| {batch} | 0 | 0 | {len(prompt)} | {prefill:.3f} | {tokens / prefill:.0f} | "
              f"{decode:.3f} | {row['decode_tok_s']:.1f} |")
    # The greedy answer, to compare with the other runtimes' (same weights, same text expected).
    text = tokenizer.decode(greedy)
    print(f"greedy answer, first sequence: {text!r}")
    if a.json:
        json.dump({"model": a.gguf, "runtime": "llama.cpp", "new_tokens": a.new_tokens, "load_s": load_s,
                   "greedy_text": text, "rows": rows}, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
