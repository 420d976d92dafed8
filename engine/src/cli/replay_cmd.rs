//! `enf replay --data DIR --ranking popularity|FILE --out PRED.jsonl`: the
//! paper's deployment test replayed on logged interactions (see
//! [`enf::replay`]). The top K of each user's base ranking go through the
//! graph like `enf run` (resumable; items already in `--out` are not run
//! again, so the predictions of an earlier `enf run` over the same data set
//! serve as they are), then the filter of `POST /v1/filter` keeps or drops
//! each, and the logged outcomes of kept and unfiltered lists are compared.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use enf::data::Dataset;
use enf::feed_filter::FilterRule;
use enf::replay::{BaseRanking, ReplaySettings};
use enf::run::{PipelineOptions, RunOptions};

use super::CacheArgs;

/// Arguments of `enf replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The data set whose logged interactions are replayed.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The base ranking: `popularity`, or a JSONL file of {"user_id", "ranking": [video ids]}.
    #[arg(long, value_name = "popularity|FILE")]
    ranking: String,
    /// Count popularity over this data set's interactions [default: --data's].
    #[arg(long, value_name = "DIR")]
    popularity_from: Option<PathBuf>,
    /// Candidates per user: the top K of the base ranking.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Predictions file of the replayed items (resumable; items already in it are not run again).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The graph to run the items missing from --out through.
    #[arg(long)]
    graph: Option<PathBuf>,
    /// The node whose output holds the verdicts [default: `reason`, or the only node with verdicts].
    #[arg(long)]
    node: Option<String>,
    /// A negative verdict drops its candidate when its confidence (1 when none is given) is at least this.
    #[arg(long, default_value_t = FilterRule::default().threshold)]
    threshold: f64,
    /// Put the best-ranked dropped candidates back until this many are kept.
    #[arg(long, default_value_t = 0)]
    keep_at_least: usize,
    /// Bootstrap resamples of the users for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Items in flight at once (as `enf run --concurrency`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Run every node (as `enf run --no-node-cache`).
    #[arg(long)]
    no_node_cache: bool,
    /// Write the replay's figures as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Runs `enf replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.threshold) {
        anyhow::bail!("--threshold must be in [0, 1], not {}", args.threshold);
    }
    let dataset = Dataset::load(&args.data).with_context(|| format!("cannot use data set {}", args.data.display()))?;
    let items = dataset.items().with_context(|| format!("cannot build items from {}", args.data.display()))?;
    let ranking = if args.ranking == "popularity" {
        match &args.popularity_from {
            Some(dir) => {
                let source = Dataset::load(dir).with_context(|| format!("cannot use data set {}", dir.display()))?;
                BaseRanking::popularity(source.interactions.iter().map(|(_, i)| i))
            }
            None => BaseRanking::popularity(dataset.interactions.iter().map(|(_, i)| i)),
        }
    } else {
        BaseRanking::read(std::path::Path::new(&args.ranking))?
    };
    let selection = enf::replay::select(&dataset, &items, &ranking, args.top as usize);
    let candidates: usize = selection.slates.iter().map(|s| s.candidates.len()).sum();
    if candidates == 0 {
        anyhow::bail!("no user of {} has a ranked candidate with a logged outcome", args.data.display());
    }
    let done = enf::run::PredictionsFile::open(&args.out)?.done().clone();
    let to_run: Vec<enf::data::Item> = selection
        .slates
        .iter()
        .flat_map(|slate| slate.candidates.iter().map(|(index, _)| &items[*index]))
        .filter(|item| !done.contains(&item.item_id))
        .cloned()
        .collect();
    if !to_run.is_empty() {
        let Some(graph) = &args.graph else {
            anyhow::bail!(
                "{} of the {candidates} candidates have no prediction in {}; give --graph to run them",
                to_run.len(),
                args.out.display()
            );
        };
        let options = PipelineOptions {
            cache_dir: args.cache.dir(),
            concurrency: usize::from(args.concurrency),
            inference_cache: None,
        };
        let run_options = RunOptions {
            out: args.out.clone(),
            concurrency: usize::from(args.concurrency),
            limit: None,
            retry_failed: false,
        };
        let node_cache = args.cache.node_cache_dir(args.no_node_cache);
        let (summary, _) = super::run_cmd::run_items(
            graph,
            dataset.clone(),
            to_run,
            &options,
            &run_options,
            &args.cache.frames_dir(),
            node_cache.as_deref(),
        )
        .await?;
        println!("{} candidate(s) run: {} ok, {} failed", summary.ok + summary.failed, summary.ok, summary.failed);
    }
    let records = enf::eval::read_predictions(&args.out)?;
    let node = enf::eval::verdict_node(&records, args.node.as_deref())?;
    let records: HashMap<String, enf::run::ItemRecord> =
        records.into_iter().map(|record| (record.item_id.clone(), record)).collect();
    let settings = ReplaySettings {
        rule: FilterRule { threshold: args.threshold, keep_at_least: args.keep_at_least },
        fast_skip_below: dataset.task.negative_play_rate,
        resamples: args.bootstrap,
        seed: args.seed,
    };
    let report = enf::replay::replay(&selection, &items, &records, &node, &settings);
    println!(
        "Replay of {}: base ranking {}, top {} of {} user(s); ENF filter of node `{node}` (threshold {}, keep at least {}); fast skip = play rate < {}; 95% bootstrap intervals over users ({} resamples)",
        args.data.display(),
        ranking.describe(),
        args.top,
        report.users,
        args.threshold,
        args.keep_at_least,
        settings.fast_skip_below,
        args.bootstrap
    );
    print!("{}", enf::replay::table(&report));
    if report.without_verdict > 0 {
        println!("  {} candidate(s) had no verdict and were kept (fail open)", report.without_verdict);
    }
    if report.restored > 0 {
        println!("  {} dropped candidate(s) were put back to keep at least {}", report.restored, args.keep_at_least);
    }
    if selection.unlogged > 0 {
        println!(
            "  {} ranked video(s) had no logged interaction with their user and were left out",
            selection.unlogged
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "data": args.data, "ranking": ranking.describe(), "top": args.top, "node": node,
            "threshold": args.threshold, "keep_at_least": args.keep_at_least,
            "fast_skip_below": settings.fast_skip_below, "bootstrap": args.bootstrap, "seed": args.seed,
            "unlogged": selection.unlogged, "report": report,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
