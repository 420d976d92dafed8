//! The ENF engine: runs agent pipelines declared as DAGs in TOML graph files,
//! where every agent is a sandboxed WebAssembly component and the host lends
//! agents model inference.
//!
//! Module map (one concept each):
//! - [`graph`]: graph files → validated DAG (every problem named by file, line and node).
//! - [`plugin`]: the wasmtime component host: compile cache, sandbox limits, the
//!   host side of the `enf:agent` WIT contract.
//! - [`inference`]: the [`inference::Backend`] trait that serves the inference import.
//! - [`modelfiles`]: model directories the project writes (tiny test model, GGUF import).
//! - [`data`]: TVNF-format data sets turned into items (one user × one candidate video).
//! - [`eval`]: the paper's metrics over a predictions file, tables and reports.
//! - [`feed_filter`]: the rule that drops candidates from a ranked list by their verdicts.
//! - [`replay`]: `enf replay` — the paper's deployment test replayed offline on logged interactions.
//! - [`run`]: the scheduler that pushes items through a graph and writes predictions.
//! - [`problems`]: file:line problem reports shared by every check.
//! - [`serve`]: `enf serve` — the graph as an HTTP service.
//! - [`train`]: `enf train` — SFT and (S-)GRPO on the agents' own prompts, with a trainable decoder.
#![deny(missing_docs)]

pub mod data;
pub mod eval;
pub mod feed_filter;
pub mod graph;
pub mod inference;
pub mod modelfiles;
pub mod plugin;
pub mod problems;
pub mod replay;
pub mod run;
pub mod serve;
pub mod train;
