//! `enf serve`: the graph as an HTTP service next to a recommender
//! (docs/serving.md). This module owns the server's life: loading the
//! pipeline once, probing its models, binding (loopback unless told
//! otherwise), the bounded queue in front of the pipeline, per-request
//! deadlines, and a graceful shutdown that lets requests in flight finish.
//!
//! One concept per module:
//! - [`request`]: a request body checked into the `$item` document `enf run`
//!   builds, every problem named by its JSON pointer;
//! - [`frames`]: the frames a request names (paths under a root, inline
//!   images) and the frame source its agents read them from;
//! - `routes`: the HTTP routes and their responses; `filter`: `/v1/filter`;
//! - [`metrics`]: the counters behind `/metrics`;
//! - [`openapi`]: the API's OpenAPI description (`/openapi.json`);
//! - `reload`: versions of the pipeline, hot reload and the file watcher.

mod filter;
pub mod frames;
pub mod metrics;
pub mod openapi;
mod reload;
pub mod request;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::inference::{ChatMessage, GenerateRequest, Role, Sampling};
use crate::run::{Pipeline, PipelineOptions};
pub use request::{Limits, RequestRules};

/// How `enf serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The graph file.
    pub graph: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token every route but the probes `/healthz` and `/readyz` requires, when set.
    pub token: Option<String>,
    /// Directory frame paths in requests are resolved under.
    pub frames_root: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// Requests admitted at once (running or waiting for the pipeline);
    /// beyond them a request is answered 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request may take before it is answered 504.
    pub deadline: Duration,
    /// The node whose output holds the verdict (default: `reason`, else the
    /// only node that outputs one).
    pub verdict_node: Option<String>,
    /// Plugin cache, concurrency and inference cache, as for `enf run`.
    pub pipeline: PipelineOptions,
    /// How often the graph's files are checked for changes (`None`: only
    /// `POST /admin/reload` reloads).
    pub watch: Option<Duration>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The graph, a plugin or a model could not be loaded.
    #[error("{0}")]
    Load(String),
    /// The options are unsafe or contradictory.
    #[error("{0}")]
    Options(String),
    /// The address could not be bound, or serving failed.
    #[error("{address}: {source}")]
    Io {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// What every route shares.
pub(crate) struct ServerState {
    /// The serving version; a request takes it once and keeps it.
    pub(crate) version: std::sync::RwLock<Arc<reload::Version>>,
    pub(crate) builder: reload::Builder,
    pub(crate) rules: RequestRules,
    pub(crate) admitted: Arc<Semaphore>,
    pub(crate) queue: usize,
    pub(crate) deadline: Duration,
    pub(crate) token: Option<String>,
    /// Each model alias and whether it answered the start-up probe.
    pub(crate) models: Vec<(String, Result<(), String>)>,
    pub(crate) metrics: metrics::Metrics,
}

impl ServerState {
    /// The version serving now.
    pub(crate) fn current(&self) -> Arc<reload::Version> {
        self.version.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The node holding the verdict: `wanted` if given, else `reason`, else the
/// graph's only sink (a node no other node reads).
pub(crate) fn pick_verdict_node(pipeline: &Pipeline, wanted: Option<&str>) -> Result<String, ServeError> {
    let graph = &pipeline.graph;
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    if let Some(wanted) = wanted {
        return if names.contains(&wanted) {
            Ok(wanted.to_string())
        } else {
            Err(ServeError::Options(format!("--verdict-node `{wanted}` is not a node (nodes: {})", names.join(", "))))
        };
    }
    if names.contains(&"reason") {
        return Ok("reason".into());
    }
    let read: std::collections::HashSet<usize> = (0..graph.nodes.len()).flat_map(|i| graph.dependencies(i)).collect();
    let sinks: Vec<&str> = (0..graph.nodes.len()).filter(|i| !read.contains(i)).map(|i| names[i]).collect();
    match sinks.as_slice() {
        [one] => Ok(one.to_string()),
        _ => Err(ServeError::Options(format!(
            "cannot tell which node gives the verdict (sinks: {}); pass --verdict-node",
            sinks.join(", ")
        ))),
    }
}

/// Asks every model of the pipeline for one token: `/readyz` reports the
/// answers, and a model that does not answer is known before traffic comes.
async fn probe_models(pipeline: &Pipeline) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::new();
    let mut aliases: Vec<&String> = pipeline.backends.keys().collect();
    aliases.sort();
    for alias in aliases {
        let request = GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: "Say OK.".into(), images: vec![] }],
            sampling: Sampling { max_tokens: 1, ..Sampling::default() },
            origin: None,
        };
        let outcome = pipeline.backends[alias].generate(request).await.map(|_| ()).map_err(|e| e.to_string());
        if let Err(error) = &outcome {
            tracing::error!(model = %alias, "the start-up probe failed: {error}");
        }
        results.push((alias.clone(), outcome));
    }
    results
}

/// Loads the graph, binds `options.listen`, calls `on_listening` with the
/// bound address, and serves until `shutdown` completes; requests in flight
/// then finish before this returns.
pub async fn serve(
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !options.listen.ip().is_loopback() && options.token.is_none() {
        return Err(ServeError::Options(format!(
            "listening on {} (beyond loopback) needs a bearer token: --token or ENF_SERVE_TOKEN",
            options.listen
        )));
    }
    if options.queue == 0 {
        return Err(ServeError::Options("--queue must be at least 1".into()));
    }
    let frames_root = match &options.frames_root {
        Some(root) => Some(
            root.canonicalize().map_err(|e| ServeError::Options(format!("--frames-root {}: {e}", root.display())))?,
        ),
        None => None,
    };
    let builder = reload::Builder {
        graph: options.graph.clone(),
        registry: crate::inference::BackendRegistry::new(),
        options: options.pipeline.clone(),
        verdict_node: options.verdict_node.clone(),
        building: tokio::sync::Mutex::new(()),
    };
    let version = builder.build(1).await?;
    let models = probe_models(&version.pipeline).await;
    let default_task = serde_json::to_value(enf_kit::task::Task::default()).unwrap_or_default();
    let state = Arc::new(ServerState {
        version: std::sync::RwLock::new(Arc::new(version)),
        builder,
        rules: RequestRules { limits: options.limits, frames_root, default_task },
        admitted: Arc::new(Semaphore::new(options.queue)),
        queue: options.queue,
        deadline: options.deadline,
        token: options.token.clone(),
        models,
        metrics: metrics::Metrics::default(),
    });
    if let Some(every) = options.watch {
        tokio::spawn(reload::watch(state.clone(), every));
    }
    let app = routes::router(state);
    let io = |source| ServeError::Io { address: options.listen, source };
    let listener = tokio::net::TcpListener::bind(options.listen).await.map_err(io)?;
    let address = listener.local_addr().map_err(io)?;
    on_listening(address);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(io)?;
    tracing::info!("stopped: every request in flight was answered");
    Ok(())
}
