//! Graph files: TOML → validated DAG of agent nodes.
//!
//! [`Graph::load`] reads a graph file and checks everything that can be
//! checked without running code: syntax, unknown nodes and models, missing
//! plugin and manifest files, malformed or dangling input references,
//! `calls` to undeclared nodes, limits, and cycles (with their path). The
//! checks that need the plugins themselves (world version, exports, output
//! fields) are made by [`crate::run::Pipeline::load`], which reports them in
//! the same [`GraphProblem`] form.

mod dot;
mod reference;
mod spec;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use petgraph::graph::DiGraph;

use crate::inference::ModelManifest;

pub use crate::problems::{GraphError, GraphProblem, Problems};
pub use dot::to_dot;
pub use reference::{ITEM_FIELDS, InputRef};
pub use spec::GraphFile;

/// Limits applied to every call of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLimits {
    /// Wall-clock deadline of one call.
    pub timeout: Duration,
    /// Linear-memory cap in bytes.
    pub memory: u64,
    /// Largest accepted output document in bytes.
    pub max_output: u64,
    /// Retries after a failed call.
    pub retries: u32,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(300), memory: 128 << 20, max_output: 4 << 20, retries: 0 }
    }
}

/// One field of a node's input document.
#[derive(Debug, Clone)]
pub struct NodeInput {
    /// Field name in the input document.
    pub field: String,
    /// Where its value comes from.
    pub source: InputRef,
    /// Line of the reference in the graph file.
    pub line: usize,
}

/// A validated node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Node name (the `[nodes.NAME]` key).
    pub name: String,
    /// Line of the node's table in the graph file.
    pub line: usize,
    /// The agent component file.
    pub plugin: PathBuf,
    /// Default model alias of its inference requests.
    pub model: Option<String>,
    /// Every model alias it may use (its `model` first).
    pub grants: Vec<String>,
    /// Input document fields.
    pub inputs: Vec<NodeInput>,
    /// Nodes it may call on demand.
    pub calls: Vec<String>,
    /// Runs only when called.
    pub on_demand: bool,
    /// Static settings passed as the input's `config` field.
    pub config: Option<serde_json::Value>,
    /// Limits of each call.
    pub limits: NodeLimits,
}

/// A model alias declared by the graph, with its parsed manifest.
#[derive(Debug, Clone)]
pub struct ModelRef {
    /// The alias nodes use.
    pub alias: String,
    /// The manifest file.
    pub path: PathBuf,
    /// Line of the declaration.
    pub line: usize,
    /// The parsed manifest.
    pub manifest: ModelManifest,
}

/// A validated graph: nodes in an order where every node comes after the
/// nodes it takes input from.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The graph file.
    pub path: PathBuf,
    /// `[graph].name`.
    pub name: String,
    /// `[graph].description`.
    pub description: String,
    /// Declared models.
    pub models: Vec<ModelRef>,
    /// Nodes, topologically ordered.
    pub nodes: Vec<Node>,
    /// Data-flow edges between node indices, labelled by input field.
    pub dag: DiGraph<usize, String>,
}

impl Graph {
    /// Index of the node named `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Indices of the nodes whose outputs `node` takes as input.
    pub fn dependencies(&self, node: usize) -> Vec<usize> {
        let mut deps: Vec<usize> = self.nodes[node]
            .inputs
            .iter()
            .filter_map(|i| match &i.source {
                InputRef::Node { node, .. } => self.node_index(node),
                InputRef::Item(_) => None,
            })
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps
    }
}
