#!/usr/bin/env python3
"""Hugging Face transformers baseline for `enf bench inference`: the same
method on the same weights — greedy decoding, each shape warmed up first,
B prompts at once (one padded batch), prefill = generate(1 new token),
decode = generate(N new tokens, EOS ignored) minus prefill.

usage: transformers_bench.py MODEL_DIR --shape 1:0:0,8:0:0 [--new-tokens 64] [--json OUT]
Text-only models load with AutoModelForCausalLM, Qwen2.5-VL with its
processor and frames generated like `enf bench` generates them.
"""
import argparse
import json
import os
import time

import torch


def prompt_text(words):
    """The prompt text `enf bench inference` sends (and llamacpp_bench.py)."""
    return "Describe what happens in this short video and whether viewers might dislike it. " + \
        "The recommendation feed shows many videos every day to many people. " * (words // 12 + 1)


def frames(count, size, serial):
    from PIL import Image
    images = []
    for i in range(count):
        seed = (serial * 31 + i * 13) % (2**32)
        img = Image.new("RGB", (size, size))
        px = img.load()
        for x in range(size):
            for y in range(size):
                px[x, y] = ((x * 7 + seed) % 256, (y * 5 + seed // 3) % 256, (x ^ y ^ seed) % 256)
        images.append(img)
    return images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", default="1:0:0,8:0:0")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    config = json.load(open(os.path.join(a.model, "config.json")))
    vision = config.get("model_type") == "qwen2_5_vl"
    text = prompt_text(a.prompt_words)
    t0 = time.time()
    if vision:
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
        processor = AutoProcessor.from_pretrained(a.model)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32)
        tokenizer = processor.tokenizer
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(a.model)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    load_s = time.time() - t0
    serial = [0]
    answers = []

    def inputs(batch, n_frames, size):
        prompts, images = [], []
        for _ in range(batch):
            serial[0] += 1
            content = [{"type": "image"} for _ in range(n_frames)] + [{"type": "text", "text": text}]
            messages = [{"role": "user", "content": content if vision else text}]
            prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            images.extend(frames(n_frames, size, serial[0]))
        if vision:
            return processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
        return tokenizer(prompts, return_tensors="pt", padding=True)

    def run(batch, n_frames, size, new_tokens):
        batch_inputs = inputs(batch, n_frames, size)
        prompt_tokens = int(batch_inputs["attention_mask"].sum())
        start = time.time()
        with torch.no_grad():
            out = model.generate(**batch_inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        answers.append(tokenizer.decode(out[0][batch_inputs["input_ids"].shape[1]:]))
        return time.time() - start, prompt_tokens

    rows = []
    print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, {a.threads} threads; "
          f"{a.model} loaded in {load_s:.1f}s; {a.new_tokens} new tokens")
    print("| batch | frames | px | prompt tok/req | prefill s | prefill tok/s | decode s | decode tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in a.shape.split(","):
        batch, n_frames, size = (int(x) for x in shape.split(":"))
        run(batch, n_frames, size, a.new_tokens)
        prefill, tokens = run(batch, n_frames, size, 1)
        full, _ = run(batch, n_frames, size, a.new_tokens)
        decode = max(full - prefill, 1e-9)
        row = {
            "batch": batch, "frames": n_frames, "frame_size": size,
            "prompt_tokens_per_request": tokens // batch, "prefill_s": prefill,
            "prefill_tok_s": tokens / prefill, "decode_s": decode,
            "decode_tok_s": batch * (a.new_tokens - 1) / decode,
        }
        rows.append(row)
        print(f"| {batch} | {n_frames} | {size} | {tokens // batch} | {prefill:.3f} | {tokens / prefill:.0f} | "
              f"{decode:.3f} | {row['decode_tok_s']:.1f} |")
    # The greedy answer of the last full run, to compare with the other runtimes'.
    print(f"greedy answer, first sequence: {answers[-1]!r}")
    if a.json:
        json.dump({"model": a.model, "runtime": "transformers", "new_tokens": a.new_tokens, "load_s": load_s,
                   "greedy_text": answers[-1], "rows": rows}, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
