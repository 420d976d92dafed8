//! `enf serve`: the graph as an HTTP service next to a recommender
//! (docs/serving.md). This module owns the server's life: checking its
//! options, loading the pipeline once, probing its models, binding
//! (loopback unless told otherwise), and a graceful shutdown that lets
//! requests in flight finish.
//!
//! One concept per module:
//! - [`request`]: a request body checked into the `$item` document `enf run`
//!   builds, every problem named by its JSON pointer;
//! - [`frames`]: the frames a request names (paths under a root, inline
//!   images) and the frame source its agents read them from;
//! - `admission`: the bounded queue, the pipeline's concurrency and
//!   `Retry-After`; `service_time`: the measured item times they rest on;
//! - `http`: connections and their timeouts, request ids, the access log,
//!   panics answered 500;
//! - `auth`: the API and admin tokens;
//! - `routes`: the HTTP routes and their responses; `filter`: `/v1/filter`;
//! - `readiness`: the models' probes behind `/readyz`;
//! - [`metrics`]: the counters behind `/metrics`;
//! - [`openapi`]: the API's OpenAPI description (`/openapi.json`);
//! - `reload`: versions of the pipeline, hot reload and the file watcher.

mod admission;
mod auth;
mod filter;
pub mod frames;
mod http;
pub mod metrics;
pub mod openapi;
mod readiness;
mod reload;
pub mod request;
mod routes;
mod service_time;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::run::{Pipeline, PipelineOptions};
pub use request::{Limits, RequestRules};

/// How `enf serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The graph file.
    pub graph: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token the API routes (and `/metrics`, unless public) require, when set.
    pub token: Option<String>,
    /// Bearer token `/admin/*` requires; without it admin routes are off,
    /// unless the server has no token at all and listens on loopback.
    pub admin_token: Option<String>,
    /// `/metrics` answers without a token.
    pub public_metrics: bool,
    /// Directory frame paths in requests are resolved under.
    pub frames_root: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// Items admitted at once (running or waiting for the pipeline; a
    /// `/v1/filter` request takes one per candidate); beyond them a request
    /// is answered 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request may take, waiting included, before it is answered 504.
    pub deadline: Duration,
    /// The node whose output holds the verdict (default: `reason`, else the
    /// only node that outputs one).
    pub verdict_node: Option<String>,
    /// Plugin cache, concurrency (items in the pipeline at once) and
    /// inference cache, as for `enf run`.
    pub pipeline: PipelineOptions,
    /// How often the graph's files are checked for changes (`None`: only
    /// `POST /admin/reload` reloads).
    pub watch: Option<Duration>,
    /// Longest a client may take to send a request's head (also how long
    /// an idle keep-alive connection is kept).
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Time between two rounds of readiness probes.
    pub probe_interval: Duration,
    /// Longest a model may take to answer a readiness probe.
    pub probe_timeout: Duration,
}

impl ServeOptions {
    /// Options with the defaults of `enf serve` for `graph`.
    pub fn new(graph: PathBuf) -> Self {
        Self {
            graph,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            admin_token: None,
            public_metrics: false,
            frames_root: None,
            limits: Limits::default(),
            queue: 128,
            deadline: Duration::from_secs(120),
            verdict_node: None,
            pipeline: PipelineOptions::default(),
            watch: Some(Duration::from_secs(1)),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            probe_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(30),
        }
    }

    /// Refuses unsafe or contradictory options, naming the flag.
    fn check(&self) -> Result<(), ServeError> {
        let refuse = |message: String| Err(ServeError::Options(message));
        for (flag, token) in [("--token", &self.token), ("--admin-token", &self.admin_token)] {
            if token.as_ref().is_some_and(|t| t.trim().is_empty()) {
                return refuse(format!("{flag} is empty: give a secret, or leave the flag (and its variable) unset"));
            }
        }
        if self.token.is_some() && self.token == self.admin_token {
            return refuse("--admin-token must differ from --token".into());
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return refuse(format!(
                "listening on {} (beyond loopback) needs a bearer token: --token or ENF_SERVE_TOKEN",
                self.listen
            ));
        }
        if self.queue == 0 {
            return refuse("--queue must be at least 1".into());
        }
        if self.limits.max_candidates > self.queue {
            return refuse(format!(
                "--max-candidates {} is more than --queue {}: a /v1/filter request takes one place per candidate, so a full one could never be admitted; raise --queue or lower --max-candidates",
                self.limits.max_candidates, self.queue
            ));
        }
        for (flag, value) in [
            ("--deadline", self.deadline),
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--probe-interval", self.probe_interval),
            ("--probe-timeout", self.probe_timeout),
        ] {
            if value.is_zero() {
                return refuse(format!("{flag} must be longer than 0"));
            }
        }
        Ok(())
    }
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
    pub(crate) admission: admission::Admission,
    pub(crate) deadline: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) tokens: auth::Tokens,
    pub(crate) readiness: readiness::Readiness,
    pub(crate) probe_timeout: Duration,
    pub(crate) metrics: Arc<metrics::Metrics>,
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

/// Loads the graph, binds `options.listen`, calls `on_listening` with the
/// bound address, and serves until `shutdown` completes; requests in flight
/// then finish before this returns.
pub async fn serve(
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    options.check()?;
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
    let readiness = readiness::Readiness::default();
    readiness.probe_all(&version.pipeline, version.number, options.probe_timeout).await;
    let default_task = serde_json::to_value(enf_kit::task::Task::default()).unwrap_or_default();
    let tokens = auth::Tokens {
        api: options.token.clone(),
        admin: options.admin_token.clone(),
        public_metrics: options.public_metrics,
        local_admin: options.token.is_none() && options.admin_token.is_none() && options.listen.ip().is_loopback(),
    };
    let state = Arc::new(ServerState {
        version: std::sync::RwLock::new(Arc::new(version)),
        builder,
        rules: RequestRules { limits: options.limits, frames_root, default_task },
        admission: admission::Admission::new(options.queue, options.pipeline.concurrency),
        deadline: options.deadline,
        body_timeout: options.body_timeout,
        tokens,
        readiness,
        probe_timeout: options.probe_timeout,
        metrics: Arc::new(metrics::Metrics::default()),
    });
    if let Some(every) = options.watch {
        tokio::spawn(reload::watch(state.clone(), every));
    }
    let policy = readiness::ProbePolicy { interval: options.probe_interval, timeout: options.probe_timeout };
    let probing = tokio::spawn(readiness::keep_probing(state.clone(), policy));
    let app = routes::router(state);
    let io = |source| ServeError::Io { address: options.listen, source };
    let listener = tokio::net::TcpListener::bind(options.listen).await.map_err(io)?;
    let address = listener.local_addr().map_err(io)?;
    on_listening(address);
    let timeouts = http::ConnectionTimeouts { header: options.header_timeout };
    http::serve_connections(listener, app, timeouts, shutdown).await;
    probing.abort();
    tracing::info!("stopped: every request in flight was answered");
    Ok(())
}
