//! `enf bench train MODEL_DIR`: the time of one GRPO step of the trainer on
//! a fixed shape — generation of G completions of one prompt, then the
//! update (forward + backward, AdamW) through the same `train::update` that
//! `enf train` runs — with random rewards so no group is skipped.
//! `benches/trl_grpo.sh` runs it next to Hugging Face TRL's `GRPOTrainer`
//! on the same model and shape and prints the ratio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use enf::train::config::{Grpo, Stage};
use enf::train::generate::{SampleSettings, sample_group};
use enf::train::lora::{LORA_MODULES, LoraSettings};
use enf::train::optimizer::{AdamW, AdamWSettings, Schedule};
use enf::train::rewards::RewardParts;
use enf::train::rollout::Rollout;
use enf::train::{Decoder, ScoredRollout, UpdateSettings, update};
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Arguments of `enf bench train`.
#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    /// A Hugging Face model directory.
    model: PathBuf,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 400)]
    prompt_tokens: usize,
    /// Completion length in tokens (end-of-sequence ignored, so every completion has it).
    #[arg(long, default_value_t = 64)]
    completion_tokens: usize,
    /// Completions per prompt (G).
    #[arg(long, default_value_t = 4)]
    group: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Train LoRA adapters of this rank on every linear layer instead of
    /// every weight (`fine_tuning = "lora"`, α = 2 × rank).
    #[arg(long, value_name = "RANK")]
    lora_rank: Option<usize>,
    /// Recompute each decoder layer in the backward pass (`[train] gradient_checkpointing`).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A baseline's figures (same JSON keys, e.g. from benches/trl_grpo.py) to print ratios against.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
}

/// Runs `enf bench train`.
pub fn run(args: TrainBenchArgs) -> anyhow::Result<ExitCode> {
    let mut model = Decoder::load(&args.model, candle_core::DType::F32)?;
    if let Some(rank) = args.lora_rank {
        let targets = LORA_MODULES.iter().map(|(module, _)| (*module).to_string()).collect();
        model = model.with_lora(&LoraSettings { rank, alpha: 2.0 * rank as f64, targets }, 0)?;
    }
    let generator = model.detached();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let prompt: Vec<u32> = (0..args.prompt_tokens).map(|_| rng.random_range(100..model.config.vocab as u32)).collect();
    let settings = UpdateSettings {
        stage: Stage::Sgrpo,
        batch: 1,
        grpo: Grpo { group: args.group, max_completion: args.completion_tokens, ..Grpo::default() },
        gradient_checkpointing: args.gradient_checkpointing,
    };
    let sampling =
        SampleSettings { temperature: 1.0, top_p: 1.0, max_tokens: args.completion_tokens, ignore_eos: true };
    let schedule = Schedule { warmup: 0, total: args.steps + 1, min_ratio: 1.0 };
    let mut optimizer =
        AdamW::new(AdamWSettings { lr: 1e-6, ..AdamWSettings::default() }, schedule, model.vars().len());
    let (mut generation, mut forward_backward, mut optim, mut total) = (0.0, 0.0, 0.0, 0.0);
    println!(
        "GRPO step: 1 prompt × {} tokens, G = {}, {} completion tokens each, {} trainable parameters",
        args.prompt_tokens,
        args.group,
        args.completion_tokens,
        model.parameter_count()
    );
    for step in 0..=args.steps {
        let started = Instant::now();
        let samples = sample_group(&generator, &prompt, args.group, &sampling, &mut rng)?;
        let gen_s = started.elapsed().as_secs_f64();
        let group: Vec<ScoredRollout> = samples
            .into_iter()
            .map(|s| ScoredRollout {
                parts: RewardParts { judge: rng.random::<f64>(), ..Default::default() },
                rollout: Rollout {
                    item_id: "bench".into(),
                    prompt: prompt.clone(),
                    truncated: !s.finished,
                    completion: s.tokens,
                    logprobs: s.logprobs,
                    sampling_entropy: s.entropy_sum,
                    text: String::new(),
                },
            })
            .collect();
        let log = update(&model, None, &mut optimizer, &[group], &settings, step).context("update")?;
        let step_s = started.elapsed().as_secs_f64();
        let label = if step == 0 { "warm-up" } else { "timed" };
        println!(
            "  step {step} ({label}): generation {gen_s:.2} s, forward+backward {:.2} s, optimizer {:.2} s, total {step_s:.2} s",
            log.time_forward_backward_s, log.time_optimizer_s
        );
        if step > 0 {
            generation += gen_s;
            forward_backward += log.time_forward_backward_s;
            optim += log.time_optimizer_s;
            total += step_s;
        }
    }
    let n = args.steps.max(1) as f64;
    let figures = json!({
        "engine": "enf",
        "prompt_tokens": args.prompt_tokens,
        "completion_tokens": args.completion_tokens,
        "group": args.group,
        "generation_s": generation / n,
        "update_s": (forward_backward + optim) / n,
        "forward_backward_s": forward_backward / n,
        "optimizer_s": optim / n,
        "step_s": total / n,
        "gradient_checkpointing": args.gradient_checkpointing,
        "lora_rank": args.lora_rank,
        "peak_memory_bytes": super::peak_memory_bytes(),
    });
    println!(
        "mean of {} timed step(s): generation {:.2} s, update {:.2} s (forward+backward {:.2}, optimizer {:.2}), step {:.2} s",
        args.steps,
        generation / n,
        (forward_backward + optim) / n,
        forward_backward / n,
        optim / n,
        total / n
    );
    if let Some(peak) = super::peak_memory_bytes() {
        println!(
            "peak resident memory {:.2} GiB (gradient checkpointing {})",
            peak as f64 / f64::from(1u32 << 30),
            if args.gradient_checkpointing { "on" } else { "off" }
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?).with_context(|| path.display().to_string())?;
    }
    if let Some(path) = &args.compare {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        let baseline: serde_json::Value = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
        let name = baseline["engine"].as_str().unwrap_or("baseline");
        println!("time ratio enf / {name} (below 1: enf is faster):");
        for key in ["generation_s", "update_s", "step_s"] {
            if let (Some(ours), Some(theirs)) = (figures[key].as_f64(), baseline[key].as_f64()) {
                println!("  {key:<14} {ours:>8.2} s vs {theirs:>8.2} s  = {:.2}×", ours / theirs.max(1e-9));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
