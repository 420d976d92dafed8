//! What `enf run` writes: one [`ItemRecord`] per line of the predictions
//! file, with each node's output, error, timing and model usage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Model usage of a node (all attempts and the calls it made).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Inference requests served.
    pub requests: u32,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Milliseconds spent in inference (wall time of the model calls).
    pub ms: f64,
    /// Of `ms`, what the model reported as its own compute time (prefill
    /// and decode); the rest is queueing and transport. 0 where the backend
    /// does not report it (echo, remote endpoints, cached answers).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compute_ms: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl Usage {
    /// Adds another usage to this one.
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.ms += other.ms;
        self.compute_ms += other.compute_ms;
    }
}

/// One on-demand call a node made to another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The called node.
    pub node: String,
    /// Whether it answered.
    pub ok: bool,
    /// Its error, when it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Duration in milliseconds.
    pub ms: f64,
    /// Model usage of the called node.
    pub usage: Usage,
}

/// The outcome of one node for one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Whether the node produced an output.
    pub ok: bool,
    /// Its output document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed (or was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the node started, in milliseconds after the item started.
    pub start_ms: f64,
    /// Milliseconds, all attempts together.
    pub ms: f64,
    /// Calls made (0 when skipped or served from the node cache).
    pub attempts: u32,
    /// Model usage.
    pub usage: Usage,
    /// On-demand calls to other nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallRecord>,
    /// The output came from the node cache: the same work was done before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cached: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// One line of the predictions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item's id.
    pub item_id: String,
    /// Its user.
    pub user_id: String,
    /// Its candidate video.
    pub video_id: String,
    /// Whether every scheduled node succeeded.
    pub ok: bool,
    /// Milliseconds for the whole item.
    pub ms: f64,
    /// Outcome per node.
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl ItemRecord {
    /// The verdict `node` gave for this item (its output's `verdict`), or
    /// why there is none (the node's error).
    pub fn verdict(&self, node: &str) -> Result<&serde_json::Value, String> {
        let node_record = self.nodes.get(node);
        node_record.and_then(|n| n.output.as_ref()).and_then(|o| o.get("verdict")).ok_or_else(|| {
            node_record.and_then(|n| n.error.clone()).unwrap_or_else(|| "its output has no verdict".to_string())
        })
    }
}
