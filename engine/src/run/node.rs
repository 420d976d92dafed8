//! One node's work on one input: call — with the retries the node allows —
//! the node's plugin on an input document, and account for the time,
//! model usage and on-demand calls of every attempt. With a node cache
//! ([`NodeCache`]) the output of work done before is reused instead.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::Value;

use super::memo::{FrameUse, NodeCache};
use super::pipeline::Pipeline;
use super::record::{CallRecord, Usage};
use super::services::{FrameSource, NodeServices};

/// What every node call of a run shares.
#[derive(Clone)]
pub struct RunContext {
    /// The loaded graph.
    pub pipeline: Arc<Pipeline>,
    /// Where frames come from.
    pub frames: Arc<dyn FrameSource>,
    /// Where node outputs are memoised; `None`: every node runs.
    pub node_cache: Option<Arc<NodeCache>>,
}

impl RunContext {
    /// A context that runs every node (no node cache).
    pub fn new(pipeline: Arc<Pipeline>, frames: Arc<dyn FrameSource>) -> Self {
        Self { pipeline, frames, node_cache: None }
    }

    /// The same context with node outputs memoised in `dir`.
    pub fn with_node_cache(mut self, dir: &std::path::Path) -> Self {
        self.node_cache = Some(Arc::new(NodeCache::new(dir, &self.pipeline)));
        self
    }
}

/// The result of a node's work on one input.
#[derive(Debug, Clone)]
pub struct NodeOutcome {
    /// Its output document, or why there is none.
    pub output: Result<Value, String>,
    /// Milliseconds, all attempts together.
    pub ms: f64,
    /// Calls made.
    pub attempts: u32,
    /// Model usage of all attempts (calls included).
    pub usage: Usage,
    /// On-demand calls made.
    pub calls: Vec<CallRecord>,
    /// Whether the output came from the node cache (nothing ran).
    pub cached: bool,
    /// Whether every model call behind the output (on-demand calls
    /// included) decoded greedily, so the same input gives the same output.
    pub deterministic: bool,
    /// The frames shown to a model on the way to the output.
    pub frames: Vec<FrameUse>,
}

impl NodeOutcome {
    /// An outcome with no output, no work and `error`.
    pub fn failed(error: String) -> Self {
        NodeOutcome {
            output: Err(error),
            ms: 0.0,
            attempts: 1,
            usage: Usage::default(),
            calls: Vec::new(),
            cached: false,
            deterministic: false,
            frames: Vec::new(),
        }
    }
}

/// Calls node `index` on `input` (a JSON document), retrying as the node
/// allows — or, with a node cache, answers from it when the same work was
/// done before (see [`NodeCache`]). `depth` counts on-demand calls above
/// this one.
pub fn invoke_node(
    context: RunContext,
    index: usize,
    item_id: Arc<str>,
    input: String,
    depth: u32,
) -> BoxFuture<'static, NodeOutcome> {
    Box::pin(async move {
        let Some(cache) = context.node_cache.clone() else {
            return run_attempts(&context, index, &item_id, &input, depth).await;
        };
        let started = Instant::now();
        let key = cache.key(index, depth, &input);
        let _claim = cache.claim(key.clone()).await;
        if let Some((output, frames)) = cache.lookup(&key, context.frames.as_ref()).await {
            return NodeOutcome {
                output: Ok(output),
                ms: elapsed_ms(started),
                attempts: 0,
                usage: Usage::default(),
                calls: Vec::new(),
                cached: true,
                deterministic: true,
                frames,
            };
        }
        let outcome = run_attempts(&context, index, &item_id, &input, depth).await;
        if let (Ok(output), true) = (&outcome.output, outcome.deterministic) {
            cache.store(&key, output, &outcome.frames).await;
        }
        outcome
    })
}

/// Runs node `index`'s plugin on `input` until it succeeds or its retries are spent.
async fn run_attempts(context: &RunContext, index: usize, item_id: &Arc<str>, input: &str, depth: u32) -> NodeOutcome {
    let pipeline = context.pipeline.clone();
    let node = &pipeline.graph.nodes[index];
    let plugin = &pipeline.plugins[index];
    let started = Instant::now();
    let mut usage = Usage::default();
    let mut calls = Vec::new();
    let mut attempts = 0;
    let mut last_error = String::new();
    while attempts <= node.limits.retries {
        attempts += 1;
        let services = Arc::new(NodeServices {
            context: context.clone(),
            node: index,
            item_id: item_id.clone(),
            depth,
            usage: Mutex::new(Usage::default()),
            calls: Mutex::new(Vec::new()),
            deterministic: AtomicBool::new(true),
            frames: Mutex::new(Vec::new()),
        });
        let result = pipeline.host.run(plugin, services.clone(), &node.limits, input).await;
        if let Ok(attempt_usage) = services.usage.lock() {
            usage.add(&attempt_usage);
        }
        if let Ok(mut attempt_calls) = services.calls.lock() {
            for call in attempt_calls.iter() {
                usage.add(&call.usage);
            }
            calls.append(&mut attempt_calls);
        }
        let output = result.map_err(|failure| format!("plugin {failure}")).and_then(|text| {
            serde_json::from_str::<Value>(&text).map_err(|e| format!("plugin output is not JSON: {e}"))
        });
        match output {
            Ok(value) => {
                let (deterministic, frames) = services.determinism();
                return NodeOutcome {
                    output: Ok(value),
                    ms: elapsed_ms(started),
                    attempts,
                    usage,
                    calls,
                    cached: false,
                    deterministic,
                    frames,
                };
            }
            Err(error) if error.contains(crate::inference::PROMPT_CAPTURED) => {
                tracing::debug!(item = %item_id, node = %node.name, "{error}");
                last_error = error;
                break;
            }
            Err(error) => {
                tracing::warn!(item = %item_id, node = %node.name, attempt = attempts, "{error}");
                last_error = error;
            }
        }
    }
    if attempts > 1 {
        last_error = format!("{last_error} (after {attempts} attempts)");
    }
    NodeOutcome {
        output: Err(last_error),
        ms: elapsed_ms(started),
        attempts,
        usage,
        calls,
        cached: false,
        deterministic: false,
        frames: Vec::new(),
    }
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}
