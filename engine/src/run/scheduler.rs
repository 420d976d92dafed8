//! Pushes one item through the graph: each scheduled node starts as soon as
//! the nodes it takes input from have finished, so independent nodes run
//! concurrently (each on its own task). A node whose input cannot be built
//! because an upstream node failed is skipped with that reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::node::{NodeOutcome, RunContext, invoke_node};
use super::record::{ItemRecord, NodeRecord, Usage};
use crate::data::Item;
use crate::graph::{InputRef, Node};

/// A spawned node task, aborted when dropped unfinished: when an item's
/// future is dropped (a request past its deadline in `enf serve`), the work
/// of its nodes stops instead of running on unobserved.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds a node's input document from the item and finished outputs.
fn build_input(
    node: &Node,
    item: &Value,
    outputs: &[Option<Result<Value, String>>],
    graph: &crate::graph::Graph,
) -> Result<Value, String> {
    let mut document = Map::new();
    for input in &node.inputs {
        let value = match &input.source {
            InputRef::Item(path) => InputRef::select(path, item)
                .ok_or_else(|| format!("input `{}`: the item has no `{}`", input.field, input.source))?,
            InputRef::Node { node: source, path } => {
                let index = graph.node_index(source).ok_or_else(|| format!("unknown node `{source}`"))?;
                let output = match outputs.get(index) {
                    Some(Some(Ok(output))) => output,
                    Some(Some(Err(_))) => {
                        return Err(format!("skipped: upstream node `{source}` failed"));
                    }
                    _ => return Err(format!("internal: `{source}` has not run")),
                };
                InputRef::select(path, output)
                    .ok_or_else(|| format!("input `{}`: `{source}`'s output has no `{}`", input.field, input.source))?
            }
        };
        document.insert(input.field.clone(), value.clone());
    }
    if let Some(config) = &node.config {
        document.insert("config".into(), config.clone());
    }
    Ok(Value::Object(document))
}

fn record(outcome: NodeOutcome, start_ms: f64) -> NodeRecord {
    let (ok, output, error) = match outcome.output {
        Ok(value) => (true, Some(value), None),
        Err(error) => (false, None, Some(error)),
    };
    NodeRecord {
        ok,
        output,
        error,
        start_ms,
        ms: outcome.ms,
        attempts: outcome.attempts,
        usage: outcome.usage,
        calls: outcome.calls,
        cached: outcome.cached,
    }
}

fn since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// Runs every scheduled node of the graph on `item`.
pub async fn run_item(context: RunContext, item: Arc<Item>) -> ItemRecord {
    let started = Instant::now();
    let graph = &context.pipeline.graph;
    let count = graph.nodes.len();
    let dependencies: Vec<Vec<usize>> = (0..count).map(|i| graph.dependencies(i)).collect();
    let item_id: Arc<str> = Arc::from(item.item_id.as_str());
    let mut outputs: Vec<Option<Result<Value, String>>> = vec![None; count];
    let mut records: BTreeMap<String, NodeRecord> = BTreeMap::new();
    let mut started_nodes = vec![false; count];
    let mut running = FuturesUnordered::new();
    loop {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for index in 0..count {
                let node = &graph.nodes[index];
                if started_nodes[index] || node.on_demand || dependencies[index].iter().any(|&d| outputs[d].is_none()) {
                    continue;
                }
                started_nodes[index] = true;
                match build_input(node, &item.document, &outputs, graph) {
                    Ok(input) => {
                        let start_ms = since(started);
                        // In the caller's span: a served request's id is on the node's log lines.
                        let task = AbortOnDrop(tokio::spawn(
                            invoke_node(context.clone(), index, item_id.clone(), input.to_string(), 0)
                                .in_current_span(),
                        ));
                        running.push(async move { (index, start_ms, task.await) });
                    }
                    Err(error) => {
                        outputs[index] = Some(Err(error.clone()));
                        let skipped = NodeRecord {
                            ok: false,
                            output: None,
                            error: Some(error),
                            start_ms: since(started),
                            ms: 0.0,
                            attempts: 0,
                            usage: Usage::default(),
                            calls: Vec::new(),
                            cached: false,
                        };
                        records.insert(node.name.clone(), skipped);
                        progressed = true;
                    }
                }
            }
        }
        let Some((index, start_ms, joined)) = running.next().await else {
            break;
        };
        let outcome = joined.unwrap_or_else(|e| {
            NodeOutcome::failed(format!("internal error in the host while running this node: {e}"))
        });
        outputs[index] = Some(outcome.output.clone());
        records.insert(graph.nodes[index].name.clone(), record(outcome, start_ms));
    }
    ItemRecord {
        item_id: item.item_id.clone(),
        user_id: item.user_id.clone(),
        video_id: item.video_id.clone(),
        ok: records.values().all(|r| r.ok),
        ms: since(started),
        nodes: records,
    }
}
