//! `enf bench pipeline`: items per second of a graph on a data set at
//! several `--concurrency` levels, and where the time of its node calls
//! goes — so the next bottleneck is visible.
//!
//! Method: the graph and its models are loaded once; one item runs first to
//! warm up (compiled plugins, model buffers). Each level then runs the same
//! first N items of the data set, that many at once, with node memoisation
//! off (every level does the same work) and no predictions file. Ratios are
//! against the first level (the named baseline: concurrency 1 by default).
//!
//! Time shares are of the summed wall time of the scheduled node calls (with
//! several items in flight they overlap, so the sum exceeds the wall clock):
//! *agents* — the node's time outside model calls: instantiating the
//! component, running its wasm, the host's glue and JSON; *inference wait* —
//! a model call's wall time beyond what the model reports as its own compute
//! (queueing behind other requests, transport); *model compute* — prefill and
//! decode as the backend reports it (in a batch with other requests). A
//! backend that reports no compute time (echo, remote endpoints) has all of
//! its time under inference wait, and the table says so.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use enf::data::Dataset;
use enf::run::{ItemRecord, PipelineOptions, RunContext, run_item};
use futures::StreamExt;
use serde::Serialize;

use super::CacheArgs;

/// Arguments of `enf bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineBenchArgs {
    /// The graph file.
    graph: PathBuf,
    /// The data set directory (TVNF format).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Concurrency levels, comma-separated; the first is the baseline of the ratios.
    #[arg(long, default_value = "1,4,8,16", value_delimiter = ',',
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Vec<u16>,
    /// Items per level: the first N items of the data set.
    #[arg(long, default_value_t = 16)]
    items: usize,
    /// Write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The figures of one concurrency level.
#[derive(Debug, Clone, Serialize)]
struct Level {
    concurrency: u16,
    items: usize,
    failed_items: usize,
    wall_s: f64,
    items_per_s: f64,
    ratio_to_baseline: f64,
    node_time_s: f64,
    agents_s: f64,
    inference_wait_s: f64,
    model_compute_s: f64,
    model_requests: u32,
}

/// Runs `enf bench pipeline`.
pub async fn run(args: PipelineBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.concurrency.is_empty(), "--concurrency needs at least one level");
    anyhow::ensure!(args.items > 0, "--items must be at least 1");
    let dataset = Dataset::load(&args.data).with_context(|| format!("cannot use data set {}", args.data.display()))?;
    let mut items = dataset.items().with_context(|| format!("cannot build items from {}", args.data.display()))?;
    items.truncate(args.items);
    let highest = args.concurrency.iter().copied().max().map_or(1, usize::from);
    let options = PipelineOptions { cache_dir: args.cache.dir(), concurrency: highest, inference_cache: None };
    let (pipeline, dataset, items) =
        super::run_cmd::load_for_items(&args.graph, dataset, items, &options, &args.cache.frames_dir()).await?;
    let graph_name = pipeline.graph.name.clone();
    let context = RunContext::new(Arc::new(pipeline), Arc::new(dataset));
    let items: Vec<Arc<enf::data::Item>> = items.into_iter().map(Arc::new).collect();

    eprintln!("warming up on one item …");
    let warm = run_item(context.clone(), items[0].clone()).await;
    if !warm.ok {
        tracing::warn!(item = %warm.item_id, "the warm-up item has a failed node; the figures count failed items too");
    }

    let mut levels: Vec<Level> = Vec::new();
    for &concurrency in &args.concurrency {
        eprintln!("{} item(s) at --concurrency {concurrency} …", items.len());
        let started = Instant::now();
        let records: Vec<ItemRecord> = futures::stream::iter(items.iter().cloned())
            .map(|item| {
                let context = context.clone();
                async move { tokio::spawn(run_item(context, item)).await }
            })
            .buffer_unordered(usize::from(concurrency))
            .filter_map(|joined| async move { joined.ok() })
            .collect()
            .await;
        let wall_s = started.elapsed().as_secs_f64();
        let baseline = levels.first().map(|l| l.items_per_s);
        levels.push(level(concurrency, &records, items.len(), wall_s, baseline));
    }
    print_levels(&graph_name, &args, &levels);
    if let Some(path) = &args.json {
        let json =
            serde_json::json!({ "graph": args.graph, "data": args.data, "items": items.len(), "levels": levels });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sums the node calls of `records` into one level's figures.
fn level(concurrency: u16, records: &[ItemRecord], items: usize, wall_s: f64, baseline: Option<f64>) -> Level {
    let (mut node_ms, mut inference_ms, mut compute_ms, mut requests) = (0.0, 0.0, 0.0, 0);
    for node in records.iter().flat_map(|record| record.nodes.values()) {
        node_ms += node.ms;
        inference_ms += node.usage.ms;
        compute_ms += node.usage.compute_ms.min(node.usage.ms);
        requests += node.usage.requests;
    }
    // A record lost to a host panic is a failed item too.
    let failed_items = records.iter().filter(|record| !record.ok).count() + items.saturating_sub(records.len());
    let items_per_s = records.len() as f64 / wall_s.max(1e-9);
    Level {
        concurrency,
        items: records.len(),
        failed_items,
        wall_s,
        items_per_s,
        ratio_to_baseline: baseline.map_or(1.0, |b| items_per_s / b.max(1e-12)),
        node_time_s: node_ms / 1e3,
        agents_s: (node_ms - inference_ms).max(0.0) / 1e3,
        inference_wait_s: (inference_ms - compute_ms).max(0.0) / 1e3,
        model_compute_s: compute_ms / 1e3,
        model_requests: requests,
    }
}

fn print_levels(graph: &str, args: &PipelineBenchArgs, levels: &[Level]) {
    let baseline = levels.first().map_or(1, |l| l.concurrency);
    println!(
        "Graph `{graph}` on {} ({} item(s) per level, node memoisation off); ratios against --concurrency {baseline}",
        args.data.display(),
        levels.first().map_or(0, |l| l.items)
    );
    println!(
        "| concurrency | items/s | × baseline | wall s | failed | node time s | agents | inference wait | model compute | requests |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let share = |part: f64, whole: f64| if whole > 0.0 { 100.0 * part / whole } else { 0.0 };
    for l in levels {
        println!(
            "| {} | {:.3} | {:.2} | {:.1} | {} | {:.1} | {:.1}% | {:.1}% | {:.1}% | {} |",
            l.concurrency,
            l.items_per_s,
            l.ratio_to_baseline,
            l.wall_s,
            l.failed_items,
            l.node_time_s,
            share(l.agents_s, l.node_time_s),
            share(l.inference_wait_s, l.node_time_s),
            share(l.model_compute_s, l.node_time_s),
            l.model_requests
        );
    }
    if levels.iter().all(|l| l.model_compute_s == 0.0) && levels.iter().any(|l| l.model_requests > 0) {
        println!("(the graph's backends report no compute time: inference wait holds all model time)");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use enf::run::{NodeRecord, Usage};

    use super::*;

    fn record(ok: bool, ms: f64, usage_ms: f64, compute_ms: f64) -> ItemRecord {
        let node = NodeRecord {
            ok,
            output: None,
            error: None,
            start_ms: 0.0,
            ms,
            attempts: 1,
            usage: Usage { requests: 1, prompt_tokens: 1, completion_tokens: 1, ms: usage_ms, compute_ms },
            calls: Vec::new(),
            cached: false,
        };
        ItemRecord {
            item_id: "i".into(),
            user_id: "u".into(),
            video_id: "v".into(),
            ok,
            ms,
            nodes: BTreeMap::from([("n".to_string(), node)]),
        }
    }

    #[test]
    fn node_time_splits_into_agents_wait_and_compute() {
        let records = [record(true, 1000.0, 800.0, 600.0), record(false, 500.0, 500.0, 0.0)];
        let level = level(4, &records, 3, 2.0, Some(0.5));
        assert_eq!(level.items, 2);
        assert_eq!(level.failed_items, 2, "one failed record and one lost item");
        assert!((level.items_per_s - 1.0).abs() < 1e-9);
        assert!((level.ratio_to_baseline - 2.0).abs() < 1e-9);
        assert!((level.node_time_s - 1.5).abs() < 1e-9);
        assert!((level.agents_s - 0.2).abs() < 1e-9);
        assert!((level.inference_wait_s - 0.7).abs() < 1e-9);
        assert!((level.model_compute_s - 0.6).abs() < 1e-9);
        assert_eq!(level.model_requests, 2);
    }
}
