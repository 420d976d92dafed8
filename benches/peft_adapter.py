"""Loads an `enf train` LoRA export two ways and compares their logits:
the base model with the exported adapter applied by Hugging Face PEFT
(EXPORT/adapter), and the merged model (EXPORT/model). Exits 1 when they
differ by more than the tolerance, or when the adapter changes nothing."""

import argparse
import sys

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the base model directory training started from")
    parser.add_argument("--export", required=True, help="the training run's output directory")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(0))
    plain = logits(base, ids)
    adapted = PeftModel.from_pretrained(base, f"{args.export}/adapter")
    with_adapter = logits(adapted, ids)
    merged = logits(AutoModelForCausalLM.from_pretrained(f"{args.export}/model", dtype=torch.float32), ids)

    scale = merged.abs().max().item()
    gap = (with_adapter - merged).abs().max().item()
    moved = (with_adapter - plain).abs().max().item()
    print(f"base + PEFT adapter vs merged export: max |Δlogit| = {gap:.3e} (largest logit {scale:.3e})")
    print(f"base + PEFT adapter vs base alone:    max |Δlogit| = {moved:.3e}")
    ok = gap <= args.tolerance * max(scale, 1.0) and moved > 10 * gap
    print("OK: the adapter loads in PEFT and computes the merged model" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
