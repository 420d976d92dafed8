//! `enf train CONFIG.toml [--resume] [--out DIR] [--seed N]`: SFT or (S-)GRPO on a
//! graph node's own prompts (see `docs/training.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::CacheArgs;

/// Arguments of `enf train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The training configuration (TOML).
    config: PathBuf,
    /// Continue from the latest checkpoint in the output directory.
    #[arg(long)]
    resume: bool,
    /// Output directory (overrides the configuration's `out`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Random seed (overrides the configuration's `seed`): data order and
    /// sampling, so runs that differ only by seed measure the spread.
    #[arg(long)]
    seed: Option<u64>,
    /// Cache the answers of the nodes not under training in DIR (shared with
    /// `enf run --inference-cache DIR`): upstream agents run once across runs.
    #[arg(long, value_name = "DIR")]
    inference_cache: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Runs `enf train`.
pub async fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let mut config = enf::train::TrainConfig::load(&args.config)?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let options = enf::train::TrainOptions {
        resume: args.resume,
        out: args.out,
        cache_dir: args.cache.dir(),
        inference_cache: args.inference_cache,
    };
    let report = enf::train::train(&config, &options).await?;
    println!("trained {} step(s) ({} in this run); step log: {}", report.steps, report.steps_run, report.log.display());
    if let Some((first, last)) = report.first_and_last {
        let what = if config.stage == enf::train::Stage::Sft { "loss per token" } else { "mean reward" };
        println!("{what}: {first:.4} at the first step run, {last:.4} at the last");
    }
    println!("model:    {}", report.exported.model_dir.display());
    println!("manifest: {}", report.exported.manifest.display());
    if let Some(adapter) = &report.exported.adapter {
        println!("adapter:  {}  (LoRA alone, PEFT's layout)", adapter.display());
    }
    let graph = report.exported.graph.display();
    println!("graph:    {graph}  (enf run {graph} --data DIR --out PRED.jsonl)");
    Ok(ExitCode::SUCCESS)
}
