//! The graph file's TOML schema, exactly as written by users (spans kept so
//! problems can name their line). [`super::validate`] turns it into a
//! [`super::Graph`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole graph file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphFile {
    /// `[graph]`: name and description.
    pub graph: GraphMeta,
    /// `[defaults]`: limits applied to nodes that set none.
    #[serde(default)]
    pub defaults: NodeLimitsSpec,
    /// `[models.ALIAS]`: models nodes may use.
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelSpec>>,
    /// `[nodes.NAME]`: the agents.
    #[serde(default)]
    pub nodes: BTreeMap<String, Spanned<NodeSpec>>,
}

/// `[graph]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphMeta {
    /// The graph's name.
    pub name: String,
    /// What the graph does.
    #[serde(default)]
    pub description: String,
}

/// `[models.ALIAS]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Path of the model manifest, relative to the graph file.
    pub manifest: Spanned<String>,
}

/// Per-node limits; each may also be set in `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLimitsSpec {
    /// Wall-clock deadline per call, e.g. `"60s"`.
    pub timeout: Option<Spanned<String>>,
    /// Retries after a failed call.
    pub retries: Option<u32>,
    /// Linear-memory cap, e.g. `"64MiB"`.
    pub memory: Option<Spanned<String>>,
    /// Largest output document accepted, e.g. `"1MiB"`.
    pub max_output: Option<Spanned<String>>,
}

/// `[nodes.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The agent component, relative to the graph file.
    pub plugin: Spanned<String>,
    /// The model alias the node's inference requests use by default.
    pub model: Option<Spanned<String>>,
    /// Further model aliases the node may name explicitly.
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    /// Input document fields: name → reference (`$item.FIELD`, `NODE`,
    /// `NODE.FIELD`).
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<String>>,
    /// Nodes this agent may call on demand through the host.
    #[serde(default)]
    pub calls: Vec<Spanned<String>>,
    /// Runs only when another node calls it, never on its own.
    #[serde(default)]
    pub on_demand: bool,
    /// Static settings handed to the agent as the input's `config` field.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Wall-clock deadline per call (overrides `[defaults]`).
    pub timeout: Option<Spanned<String>>,
    /// Retries after a failed call (overrides `[defaults]`).
    pub retries: Option<u32>,
    /// Linear-memory cap (overrides `[defaults]`).
    pub memory: Option<Spanned<String>>,
    /// Largest output document accepted (overrides `[defaults]`).
    pub max_output: Option<Spanned<String>>,
}

/// The limit fields of `[defaults]` or of a node, borrowed.
/// (Spans do not survive `#[serde(flatten)]`, so nodes repeat the fields.)
#[derive(Debug, Clone, Copy)]
pub struct LimitsRef<'a> {
    /// See [`NodeLimitsSpec::timeout`].
    pub timeout: Option<&'a Spanned<String>>,
    /// See [`NodeLimitsSpec::retries`].
    pub retries: Option<u32>,
    /// See [`NodeLimitsSpec::memory`].
    pub memory: Option<&'a Spanned<String>>,
    /// See [`NodeLimitsSpec::max_output`].
    pub max_output: Option<&'a Spanned<String>>,
}

impl NodeLimitsSpec {
    /// The limit fields, borrowed.
    pub fn as_ref(&self) -> LimitsRef<'_> {
        LimitsRef {
            timeout: self.timeout.as_ref(),
            retries: self.retries,
            memory: self.memory.as_ref(),
            max_output: self.max_output.as_ref(),
        }
    }
}

impl NodeSpec {
    /// The node's limit fields, borrowed.
    pub fn limits(&self) -> LimitsRef<'_> {
        LimitsRef {
            timeout: self.timeout.as_ref(),
            retries: self.retries,
            memory: self.memory.as_ref(),
            max_output: self.max_output.as_ref(),
        }
    }
}
