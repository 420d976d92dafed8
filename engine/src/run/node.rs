//! One node's work on one input: call — with the retries the node allows —
//! the node's plugin on an input document, and account for the time,
//! model usage and on-demand calls of every attempt.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::Value;

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
}

/// Calls node `index` on `input` (a JSON document), retrying as the node
/// allows. `depth` counts on-demand calls above this one.
pub fn invoke_node(
    context: RunContext,
    index: usize,
    item_id: Arc<str>,
    input: String,
    depth: u32,
) -> BoxFuture<'static, NodeOutcome> {
    Box::pin(async move {
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
            });
            let result = pipeline.host.run(plugin, services.clone(), &node.limits, &input).await;
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
                    return NodeOutcome { output: Ok(value), ms: elapsed_ms(started), attempts, usage, calls };
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
        NodeOutcome { output: Err(last_error), ms: elapsed_ms(started), attempts, usage, calls }
    })
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}
