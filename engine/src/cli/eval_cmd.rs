//! `enf eval PREDICTIONS --data DIR`: the paper's metrics, a table, JSON and a report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use enf::data::Dataset;
use enf::eval::{self, Task};

use super::judge;

/// Arguments of `enf eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The predictions file written by `enf run`.
    predictions: PathBuf,
    /// The data set the predictions are for.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Which task the predictions answer.
    #[arg(long, value_enum, default_value = "implicit")]
    task: Task,
    /// The node whose output holds the verdicts [default: `reason`, or the only node with verdicts].
    #[arg(long)]
    node: Option<String>,
    /// Write the evaluation as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a Markdown report (per user: profile, verdicts next to the truth) here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also have this model rate each explanation's relevance to the real reason (0–1).
    #[arg(long, value_name = "MANIFEST")]
    judge: Option<PathBuf>,
}

/// Runs `enf eval`.
pub async fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let dataset = Dataset::load(&args.data).with_context(|| format!("cannot use data set {}", args.data.display()))?;
    let items = dataset.items().with_context(|| format!("cannot build items from {}", args.data.display()))?;
    let records = eval::read_predictions(&args.predictions)?;
    let node = eval::verdict_node(&records, args.node.as_deref())?;
    let (mut evaluation, judged) = eval::evaluate(&records, &items, args.task, &node);
    if let Some(manifest) = &args.judge {
        evaluation.judge = judge::relevance(manifest, &judged).await?;
    }
    let label = args.predictions.file_stem().map_or("this run".to_string(), |s| s.to_string_lossy().into_owned());
    println!(
        "{} — {} over {} ({} items, {} scored, {} failed, {} not run, {} guessed by the parser)",
        args.predictions.display(),
        args.task.title(),
        args.data.display(),
        evaluation.items,
        evaluation.scored,
        evaluation.failed,
        evaluation.missing - evaluation.failed,
        evaluation.guessed
    );
    if evaluation.failed > 0 {
        println!(
            "note: the {} failed item(s) are left out of the figures; rerun them with `enf run … --retry-failed`",
            evaluation.failed
        );
    }
    if let Some(users) = evaluation.users {
        println!("per-user averages over {users} user(s); positive class: like");
    }
    println!("{}", eval::table(&evaluation, &label));
    if evaluation.unknown > 0 {
        println!("note: {} prediction line(s) name items this data set does not have", evaluation.unknown);
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "evaluation": evaluation, "items": judged });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let title = format!("ENF report — {}", args.predictions.display());
        let text = eval::report::markdown(&evaluation, &judged, &records, &dataset, &title);
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
