"""Step time of Hugging Face TRL's GRPOTrainer on CPU (torch), on the shape
`enf bench train` measures: one prompt of P tokens per step, G completions of
C tokens each (min_new_tokens = C, so every completion has that length),
random rewards, beta 0, no gradient checkpointing (TRL's fastest setting when
memory allows). Prints the mean of the timed steps (after one warm-up step)
and writes them as JSON for `enf bench train --compare`."""

import argparse
import json
import random
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument("--completion-tokens", type=int, default=64)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    rng = random.Random(0)
    prompts = []
    for _ in range(args.steps + 1):
        ids = [rng.randrange(100, tokenizer.vocab_size) for _ in range(args.prompt_tokens * 2)]
        text = tokenizer.decode(ids)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: args.prompt_tokens]
        prompts.append(tokenizer.decode(ids))
    dataset = Dataset.from_dict({"prompt": prompts})

    def random_reward(completions, **_):
        return [rng.random() for _ in completions]

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.group,
        num_generations=args.group,
        max_completion_length=args.completion_tokens,
        generation_kwargs={"min_new_tokens": args.completion_tokens},
        max_steps=args.steps + 1,
        learning_rate=1e-6,
        beta=0.0,
        temperature=1.0,
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        shuffle_dataset=False,
        seed=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[random_reward], args=config, train_dataset=dataset)

    generation_times = []
    original_generate = trainer.model.generate

    def timed_generate(*a, **k):
        started = time.perf_counter()
        out = original_generate(*a, **k)
        generation_times.append(time.perf_counter() - started)
        return out

    trainer.model.generate = timed_generate
    step_times = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            step_times.append(time.perf_counter() - self.started)

    trainer.add_callback(StepTimer())
    trainer.train()
    timed = list(zip(step_times, generation_times))[1:]
    n = max(len(timed), 1)
    for i, (step, gen) in enumerate(zip(step_times, generation_times)):
        print(f"  step {i} ({'warm-up' if i == 0 else 'timed'}): generation {gen:.2f} s, total {step:.2f} s")
    generation = sum(g for _, g in timed) / n
    step = sum(s for s, _ in timed) / n
    figures = {
        "engine": f"TRL {__import__('trl').__version__} GRPOTrainer (torch {torch.__version__}, CPU)",
        "prompt_tokens": args.prompt_tokens,
        "completion_tokens": args.completion_tokens,
        "group": args.group,
        "generation_s": generation,
        "update_s": step - generation,
        "step_s": step,
    }
    print(
        f"mean of {len(timed)} timed step(s): generation {generation:.2f} s, "
        f"update (the rest of the step) {step - generation:.2f} s, step {step:.2f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
