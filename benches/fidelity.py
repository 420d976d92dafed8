#!/usr/bin/env python3
"""Reference check (not a test: it needs torch): does `enf` (mistral.rs with
the project's patch) decode the same greedy tokens as Hugging Face
transformers on the same model directory?

- the default model (SmolLM2-135M-Instruct as imported by `enf model
  import-gguf`) on varied prompts;
- the tiny random Qwen2.5-VL with 1, 2 and 16 frames (this is what catches
  image-embedding offset bugs, which are silent: the text stays fluent).

For each prompt both decode greedily; the answers are compared as token ids
(the engine's text re-tokenised). Where they diverge, transformers' top-2
logit gap at the first differing step says whether it is a numeric tie (a
gap within float32 noise) or a real difference.

usage: fidelity.py [--enf target/release/enf] [--new-tokens 32] [--json OUT]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

PROMPTS = [
    "What is the capital of France?",
    "What is the capital of Japan?",
    "Name three primary colours.",
    "What is 12 times 7?",
    "Write a haiku about autumn leaves.",
    "Explain photosynthesis in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Who wrote Romeo and Juliet?",
    "List the planets of the solar system in order.",
    "Write a Python function that returns the square of a number.",
    "What is the boiling point of water in Celsius?",
    "Give me a synonym for 'happy'.",
    "Why do people skip videos in a recommendation feed?",
    "A user likes cooking videos and dislikes loud music. Would they enjoy a heavy-metal drum cover? Answer yes or no and say why.",
    "Summarise the plot of Cinderella in two sentences.",
    "What is the largest ocean on Earth?",
    "How many legs does a spider have?",
    "Complete the sentence: The quick brown fox",
    "What does CPU stand for?",
    "Describe the colour blue to someone who cannot see.",
    "Is 97 a prime number?",
    "Write the first five numbers of the Fibonacci sequence.",
    "<think>Who painted the Mona Lisa?</think>",
    "Reply with exactly one word: what animal says 'moo'?",
]

VL_PROMPT = "Describe what happens in these frames and whether a viewer might skip the video."


def frames(count, size, directory):
    """Deterministic test pictures, written as PNG files."""
    from PIL import Image
    paths = []
    for i in range(count):
        img = Image.new("RGB", (size, size))
        px = img.load()
        for x in range(size):
            for y in range(size):
                px[x, y] = ((x * 7 + i * 40) % 256, (y * 5 + i * 13) % 256, (x ^ y ^ (i * 29)) % 256)
        path = os.path.join(directory, f"frame{i:02}.png")
        img.save(path)
        paths.append(path)
    return paths


def enf_answer(enf, manifest, prompt, new_tokens, images=()):
    cmd = [enf, "-q", "model", "ask", manifest, prompt, "--max-tokens", str(new_tokens), "--json"]
    for image in images:
        cmd += ["--image", image]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Reference:
    def __init__(self, model_dir):
        config = json.load(open(os.path.join(model_dir, "config.json")))
        self.vision = config.get("model_type") == "qwen2_5_vl"
        if self.vision:
            from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
            self.processor = AutoProcessor.from_pretrained(model_dir)
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
            self.tokenizer = self.processor.tokenizer
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            self.processor = None
        self.model.eval()

    def inputs(self, prompt, images):
        if self.vision:
            from PIL import Image
            content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                      add_generation_prompt=True)
            pictures = [Image.open(p).convert("RGB") for p in images] or None
            return self.processor(text=[text], images=pictures, return_tensors="pt")
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer([text], return_tensors="pt", add_special_tokens=False)

    def generate(self, prompt, images, new_tokens):
        inputs = self.inputs(prompt, images)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False,
                                      output_scores=True, return_dict_in_generate=True)
        n = inputs["input_ids"].shape[1]
        ids = out.sequences[0, n:].tolist()
        gaps = []
        for scores in out.scores:
            top = torch.topk(scores[0].float(), 2).values
            gaps.append(float(top[0] - top[1]))
        return ids, gaps, n

    def ids(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def compare(ref, enf_reply, prompt, images, new_tokens):
    ids, gaps, prompt_len = ref.generate(prompt, images, new_tokens)
    eos = set()
    for e in (ref.tokenizer.eos_token_id, getattr(ref.model.generation_config, "eos_token_id", None)):
        if e is not None:
            eos.update(e if isinstance(e, list) else [e])
    hf_ids = [t for t in ids if t not in eos]
    hf_text = ref.tokenizer.decode(hf_ids, skip_special_tokens=True)
    enf_ids = ref.ids(enf_reply["text"])
    same = hf_text.strip() == enf_reply["text"].strip()
    first = None
    if not same:
        first = next((i for i, (a, b) in enumerate(zip(hf_ids, enf_ids)) if a != b), min(len(hf_ids), len(enf_ids)))
    gap = gaps[first] if first is not None and first < len(gaps) else None
    return {
        "prompt": prompt, "frames": len(images), "same": same,
        "prompt_tokens": {"enf": enf_reply["prompt_tokens"], "transformers": prompt_len},
        "first_difference": first, "top2_gap_there": gap,
        "enf": enf_reply["text"], "transformers": hf_text,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--enf", default="target/release/enf")
    ap.add_argument("--text-manifest", default="models/smollm2-135m.toml")
    ap.add_argument("--text-dir", default="models/smollm2-135m-instruct")
    ap.add_argument("--vl-manifest", default="models/tiny-vl.toml")
    ap.add_argument("--vl-dir", default="models/tiny-vl")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    started = time.time()
    text_ref = Reference(a.text_dir)
    for prompt in PROMPTS:
        rows.append(compare(text_ref, enf_answer(a.enf, a.text_manifest, prompt, a.new_tokens), prompt, [], a.new_tokens))
        print_row(rows[-1])
    del text_ref
    vl_ref = Reference(a.vl_dir)
    with tempfile.TemporaryDirectory() as tmp:
        pictures = frames(16, 224, tmp)
        for count in (0, 1, 2, 16):
            images = pictures[:count]
            reply = enf_answer(a.enf, a.vl_manifest, VL_PROMPT, a.new_tokens, images)
            rows.append(compare(vl_ref, reply, VL_PROMPT, images, a.new_tokens))
            print_row(rows[-1])
    same = sum(r["same"] for r in rows)
    print(f"\n{same} of {len(rows)} answers identical ({time.time() - started:.0f}s); "
          f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
    if a.json:
        json.dump({"new_tokens": a.new_tokens, "rows": rows}, open(a.json, "w"), indent=2, ensure_ascii=False)
    return 0 if same == len(rows) else 1


def print_row(r):
    status = "same" if r["same"] else f"DIFFERS at token {r['first_difference']} (top-2 gap {r['top2_gap_there']})"
    print(f"[{status}] frames={r['frames']} prompt tokens enf/hf={r['prompt_tokens']['enf']}/{r['prompt_tokens']['transformers']} :: {r['prompt'][:60]}")
    if not r["same"]:
        print(f"    enf:          {r['enf'][:160]!r}")
        print(f"    transformers: {r['transformers'][:160]!r}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
