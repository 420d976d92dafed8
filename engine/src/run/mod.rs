//! Running a graph over a data set: the scheduler.
//!
//! [`Pipeline`] is a graph made ready to run (models and plugins loaded).
//! [`run`] pushes the items that the predictions file does not already hold
//! through it, `concurrency` items at a time, each on its own task, and
//! appends one [`ItemRecord`] per item as it finishes. Progress is reported
//! on a tracing span (`tracing-indicatif` draws it as a bar in the CLI).

mod memo;
mod node;
mod output;
mod pipeline;
mod record;
mod scheduler;
mod services;
pub mod shard;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::Instrument;
use tracing_indicatif::span_ext::IndicatifSpanExt;

pub use memo::{FrameUse, NodeCache, NodeCacheCounts};
pub use node::{NodeOutcome, RunContext, invoke_node};
pub use output::{OutputError, PredictionsFile};
pub use pipeline::{CheckedGraph, MAX_CALL_DEPTH, Pipeline, PipelineOptions};
pub use record::{CallRecord, ItemRecord, NodeRecord, Usage};
pub use scheduler::run_item;
pub use services::{FrameSource, MAX_SAMPLES, NodeServices};
pub use shard::Shard;

use crate::data::Item;

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The predictions file (appended to; items already in it are skipped).
    pub out: PathBuf,
    /// Items in flight at once.
    pub concurrency: usize,
    /// Stop after this many new items.
    pub limit: Option<usize>,
    /// Also run again the items whose record has a failed node, replacing
    /// their records.
    pub retry_failed: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    /// Items in the data set.
    pub items: usize,
    /// Items already in the predictions file, not run again.
    pub already_done: usize,
    /// Items whose earlier record had a failed node, run again (`retry_failed`).
    pub retried: usize,
    /// Items in the predictions file with a failed node and not run again
    /// (rerun them with `retry_failed`).
    pub failed_before: usize,
    /// Items run now whose every node succeeded.
    pub ok: usize,
    /// Items run now with at least one failed node.
    pub failed: usize,
    /// Failures per node.
    pub node_failures: BTreeMap<String, usize>,
    /// Failed nodes grouped by why they failed, most frequent first.
    pub failure_reasons: Vec<FailureGroup>,
    /// Host panics seen during the run (e.g. a model engine's), each once.
    pub panics: Vec<crate::inference::incidents::PanicRecord>,
    /// Model usage of the items run now.
    pub usage: Usage,
    /// Node-cache hits, misses and stores, when the cache is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_cache: Option<NodeCacheCounts>,
    /// Wall-clock time.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Failed nodes that failed for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureGroup {
    /// The node.
    pub node: String,
    /// Its error (the first line, clipped).
    pub reason: String,
    /// How many items.
    pub items: usize,
    /// One of them, to look at.
    pub example_item: String,
}

/// Groups the failed nodes of `records` by node and reason.
fn group_failures(groups: &mut Vec<FailureGroup>, record: &ItemRecord) {
    for (node, outcome) in record.nodes.iter().filter(|(_, n)| !n.ok) {
        let error = outcome.error.as_deref().unwrap_or("failed");
        let reason = enf_kit::clip(error.lines().next().unwrap_or(error), 300);
        match groups.iter_mut().find(|g| g.node == *node && g.reason == reason) {
            Some(group) => group.items += 1,
            None => {
                groups.push(FailureGroup { node: node.clone(), reason, items: 1, example_item: record.item_id.clone() })
            }
        }
    }
}

/// Runs `items` through the pipeline, appending to `options.out`.
pub async fn run(context: RunContext, items: Vec<Item>, options: &RunOptions) -> Result<RunSummary, OutputError> {
    let started = Instant::now();
    let mut out = PredictionsFile::open(&options.out)?;
    let mut summary = RunSummary { items: items.len(), ..RunSummary::default() };
    let panics_before = crate::inference::incidents::panics();
    let todo: Vec<Arc<Item>> = items
        .into_iter()
        .filter(|item| {
            let done = out.done().contains(&item.item_id);
            let failed = out.failed().contains(&item.item_id);
            if done && failed && options.retry_failed {
                summary.retried += 1;
                return true;
            }
            summary.already_done += usize::from(done);
            summary.failed_before += usize::from(done && failed);
            !done
        })
        .take(options.limit.unwrap_or(usize::MAX))
        .map(Arc::new)
        .collect();
    if summary.already_done > 0 {
        tracing::info!(
            already_done = summary.already_done,
            "resuming: skipping items already in {}",
            options.out.display()
        );
    }
    let span = tracing::info_span!("run", indicatif.pb_show = tracing::field::Empty);
    span.pb_set_length(todo.len() as u64);
    span.pb_set_message(&context.pipeline.graph.name);
    let mut finished = futures::stream::iter(todo)
        .map(|item| {
            let context = context.clone();
            let fallback = (item.item_id.clone(), item.user_id.clone(), item.video_id.clone());
            async move {
                tokio::spawn(run_item(context, item)).await.unwrap_or_else(|e| ItemRecord {
                    item_id: fallback.0,
                    user_id: fallback.1,
                    video_id: fallback.2,
                    ok: false,
                    ms: 0.0,
                    nodes: BTreeMap::from([(
                        "$host".to_string(),
                        NodeRecord {
                            ok: false,
                            output: None,
                            error: Some(format!("internal error in the host: {e}")),
                            start_ms: 0.0,
                            ms: 0.0,
                            attempts: 0,
                            usage: Usage::default(),
                            calls: Vec::new(),
                            cached: false,
                        },
                    )]),
                })
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    async {
        while let Some(record) = finished.next().await {
            out.append(&record)?;
            if record.ok {
                summary.ok += 1;
            } else {
                summary.failed += 1;
            }
            for (name, node) in &record.nodes {
                summary.usage.add(&node.usage);
                if !node.ok {
                    *summary.node_failures.entry(name.clone()).or_default() += 1;
                }
            }
            group_failures(&mut summary.failure_reasons, &record);
            tracing::Span::current().pb_inc(1);
        }
        Ok::<(), OutputError>(())
    }
    .instrument(span)
    .await?;
    out.compact()?;
    summary.failure_reasons.sort_by(|a, b| b.items.cmp(&a.items));
    summary.panics = crate::inference::incidents::panics()
        .into_iter()
        .filter(|p| {
            !panics_before.iter().any(|q| q.message == p.message && q.location == p.location && q.count == p.count)
        })
        .collect();
    summary.node_cache = context.node_cache.as_ref().map(|cache| cache.counts());
    summary.elapsed = started.elapsed();
    Ok(summary)
}
