//! `enf run`: load the graph and data, run the items, print a summary.
//!
//! Exit codes: 0 — every item of the data set is in the predictions file
//! with every node succeeded; 2 — the run finished but some items have a
//! failed node (the summary says why and how to rerun them); 1 — the run
//! could not be done (bad graph, data or predictions file).
//!
//! `--shard K/N` runs one shard of the data set; `--merge` folds the shards'
//! predictions files into the one-machine result (see [`enf::run::shard`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use enf::data::Dataset;
use enf::run::{Pipeline, PipelineOptions, RunContext, RunOptions, RunSummary};

use super::CacheArgs;

/// Arguments of `enf run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file (not needed with --merge).
    #[arg(required_unless_present = "merge")]
    graph: Option<PathBuf>,
    /// The data set directory (TVNF format).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Predictions file (JSONL); items already in it are skipped.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Items in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Run at most this many new items.
    #[arg(long)]
    limit: Option<usize>,
    /// Also run again the items whose record has a failed node, replacing their records.
    #[arg(long)]
    retry_failed: bool,
    /// Cache model answers in this directory and replay identical requests.
    #[arg(long, value_name = "DIR")]
    inference_cache: Option<PathBuf>,
    /// Run every node, instead of reusing the output of a node that did the
    /// same work before (same plugin, input and model, greedy decoding).
    #[arg(long)]
    no_node_cache: bool,
    /// Also write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Run only shard K of N (0 <= K < N): the items whose id hashes to K;
    /// e.g. `--shard $JOB_COMPLETION_INDEX/8` in a Kubernetes Indexed Job.
    #[arg(long, value_name = "K/N", conflicts_with = "merge")]
    shard: Option<enf::run::Shard>,
    /// Merge these shard predictions files into --out (no graph is run):
    /// every item of --data once, in data set order.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["graph", "limit", "retry_failed"])]
    merge: Vec<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Runs `enf run`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let dataset = Dataset::load(&args.data).with_context(|| format!("cannot use data set {}", args.data.display()))?;
    let mut items = dataset.items().with_context(|| format!("cannot build items from {}", args.data.display()))?;
    if !args.merge.is_empty() {
        return merge_shards(&args, &items);
    }
    let Some(graph) = args.graph.as_deref() else { anyhow::bail!("a graph file is needed (or --merge)") };
    if let Some(shard) = args.shard {
        let total = items.len();
        items.retain(|item| shard.contains(&item.item_id));
        tracing::info!(%shard, items = items.len(), total, "running one shard of the data set");
    }
    let options = PipelineOptions {
        cache_dir: args.cache.dir(),
        concurrency: usize::from(args.concurrency),
        inference_cache: args.inference_cache.clone(),
    };
    let run_options = RunOptions {
        out: args.out.clone(),
        concurrency: usize::from(args.concurrency),
        limit: args.limit,
        retry_failed: args.retry_failed,
    };
    let node_cache = args.cache.node_cache_dir(args.no_node_cache);
    let (summary, cache_stats) =
        run_items(graph, dataset, items, &options, &run_options, &args.cache.frames_dir(), node_cache.as_deref())
            .await?;
    print_summary(&summary, &args);
    if let Some(stats) = &cache_stats {
        println!("  inference cache: {} hit(s), {} miss(es)", stats.hits(), stats.misses());
    }
    if let Some(path) = &args.summary_json {
        let mut json = serde_json::to_value(&summary).context("cannot serialise the summary")?;
        json["elapsed_s"] = summary.elapsed.as_secs_f64().into();
        json["peak_memory_bytes"] = super::peak_memory_bytes().into();
        if let Some(stats) = &cache_stats {
            json["inference_cache"] = serde_json::json!({ "hits": stats.hits(), "misses": stats.misses() });
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if summary.failed + summary.failed_before > 0 {
        return Ok(ExitCode::from(EXIT_ITEMS_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `enf run --merge`: folds shard predictions files into `--out`.
fn merge_shards(args: &RunArgs, items: &[enf::data::Item]) -> anyhow::Result<ExitCode> {
    let summary = enf::run::shard::merge(&args.merge, items.iter().map(|item| item.item_id.as_str()), &args.out)
        .context("cannot merge the shards")?;
    println!(
        "merged {} shard file(s) into {}: {} of {} item(s), {} with a failed node",
        args.merge.len(),
        args.out.display(),
        summary.merged,
        items.len(),
        summary.failed
    );
    if let Some(example) = summary.missing.first() {
        println!(
            "  {} item(s) of {} are in no shard (e.g. {example}); run them into the merged file with:\n    enf run GRAPH --data {} --out {}",
            summary.missing.len(),
            args.data.display(),
            args.data.display(),
            args.out.display()
        );
    }
    if summary.failed > 0 {
        println!(
            "  rerun the failed items with:\n    enf run GRAPH --data {} --out {} --retry-failed",
            args.data.display(),
            args.out.display()
        );
    }
    if summary.failed > 0 || !summary.missing.is_empty() {
        return Ok(ExitCode::from(EXIT_ITEMS_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the graph, samples the video files `items` show (when a model
/// takes images), and runs the items into `run_options.out` — the run path
/// `enf run` and `enf replay` share. Node outputs are memoised in
/// `node_cache` when given.
pub(super) async fn run_items(
    graph: &std::path::Path,
    dataset: Dataset,
    items: Vec<enf::data::Item>,
    options: &PipelineOptions,
    run_options: &RunOptions,
    frames_cache: &std::path::Path,
    node_cache: Option<&std::path::Path>,
) -> anyhow::Result<(RunSummary, Option<Arc<enf::inference::CacheStats>>)> {
    let (pipeline, dataset, items) = load_for_items(graph, dataset, items, options, frames_cache).await?;
    tracing::info!(graph = %pipeline.graph.name, items = items.len(), "running");
    let cache_stats = pipeline.cache_stats.clone();
    let mut context = RunContext::new(Arc::new(pipeline), Arc::new(dataset));
    if let Some(dir) = node_cache {
        tracing::debug!(dir = %dir.display(), "node outputs are memoised");
        context = context.with_node_cache(dir);
    }
    Ok((enf::run::run(context, items, run_options).await?, cache_stats))
}

/// Loads the graph and samples the frames of the video files `items` show
/// (when a model takes images), rebuilding the items with them — what a
/// run needs before its first item (`enf run`, `enf replay`, `enf bench pipeline`).
pub(super) async fn load_for_items(
    graph: &std::path::Path,
    mut dataset: Dataset,
    mut items: Vec<enf::data::Item>,
    options: &PipelineOptions,
    frames_cache: &std::path::Path,
) -> anyhow::Result<(Pipeline, Dataset, Vec<enf::data::Item>)> {
    let pipeline = Pipeline::load(graph, options).await?;
    if pipeline.backends.values().any(|backend| backend.takes_images())
        && sample_video_files(&mut dataset, &items, frames_cache).await
    {
        // Sampling gave the videos their frames: rebuild the same items with them.
        let wanted: std::collections::HashSet<String> = items.iter().map(|item| item.item_id.clone()).collect();
        items = dataset
            .items()
            .with_context(|| format!("cannot build items from {}", dataset.dir.display()))?
            .into_iter()
            .filter(|item| wanted.contains(&item.item_id))
            .collect();
    }
    Ok((pipeline, dataset, items))
}

/// Exit code of a run that finished with failed items.
pub const EXIT_ITEMS_FAILED: u8 = 2;

/// Samples the frames of the video files the items show (candidates and
/// history); says whether any video file was involved. Videos that cannot be
/// decoded are reported here and fail the items that ask for their frames.
async fn sample_video_files(dataset: &mut Dataset, items: &[enf::data::Item], cache: &std::path::Path) -> bool {
    let mut wanted = std::collections::HashSet::new();
    for item in items {
        wanted.insert(item.video_id.clone());
        if let Some(history) = item.document["history"].as_array() {
            wanted.extend(history.iter().filter_map(|entry| entry["video_id"].as_str().map(str::to_string)));
        }
    }
    wanted.retain(|id| dataset.videos.get(id).is_some_and(|v| v.file_to_sample().is_some()));
    if wanted.is_empty() {
        return false;
    }
    let started = std::time::Instant::now();
    tracing::info!(
        videos = wanted.len(),
        "sampling {} frames from each video file",
        enf::data::video::FRAMES_PER_VIDEO
    );
    let failures = dataset.sample_video_files(&wanted, cache).await;
    for (video_id, error) in &failures {
        tracing::error!(video = %video_id, "{error}; items asking for its frames will fail");
    }
    tracing::info!(
        videos = wanted.len(),
        failed = failures.len(),
        seconds = format_args!("{:.1}", started.elapsed().as_secs_f64()),
        "video frames ready"
    );
    true
}

fn print_summary(summary: &RunSummary, args: &RunArgs) {
    let ran = summary.ok + summary.failed;
    let retried = if summary.retried > 0 { format!(" ({} of them retried)", summary.retried) } else { String::new() };
    println!(
        "{ran} item(s) run in {:.1}s{retried}: {} ok, {} failed; {} already in {}",
        summary.elapsed.as_secs_f64(),
        summary.ok,
        summary.failed,
        summary.already_done,
        args.out.display()
    );
    for (node, failures) in &summary.node_failures {
        println!("  node `{node}` failed on {failures} item(s)");
    }
    for group in &summary.failure_reasons {
        println!("    {} × `{}`: {} (e.g. item {})", group.items, group.node, group.reason, group.example_item);
    }
    for panic in &summary.panics {
        println!("  the host panicked: {panic}");
    }
    let failed_in_file = summary.failed + summary.failed_before;
    if failed_in_file > 0 {
        println!(
            "  {failed_in_file} item(s) in {} have a failed node; rerun just those with:\n    enf run {}{} --data {} --out {} --retry-failed",
            args.out.display(),
            args.graph.as_deref().unwrap_or(std::path::Path::new("GRAPH")).display(),
            args.shard.map(|shard| format!(" --shard {shard}")).unwrap_or_default(),
            args.data.display(),
            args.out.display()
        );
    }
    if summary.usage.requests > 0 {
        println!(
            "  inference: {} request(s), {} prompt + {} completion tokens",
            summary.usage.requests, summary.usage.prompt_tokens, summary.usage.completion_tokens
        );
    }
    if let Some(counts) = &summary.node_cache {
        println!(
            "  node cache: {} output(s) reused, {} node run(s) ({} stored; --no-node-cache runs every node)",
            counts.hits, counts.misses, counts.stored
        );
    }
    if let Some(peak) = super::peak_memory_bytes() {
        println!("  peak memory: {}", bytesize::ByteSize(peak));
    }
}
