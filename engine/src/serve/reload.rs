//! Hot reload: a changed graph file, plugin `.wasm` or model manifest
//! (polled every second, or `POST /admin/reload`) builds a new [`Version`]
//! of the pipeline beside the serving one and swaps it in atomically. Models
//! whose manifest did not change come from the backend registry (weights
//! are not loaded again); requests in flight finish on the version they
//! started with (they hold it); a version that does not build is refused
//! with its problems — the text `enf graph check` prints — and the old one
//! keeps serving. After a swap the new version's models are probed for
//! readiness, and models no graph version names any more leave the
//! registry: their weights are freed once the last request on the old
//! version finishes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ServeError, ServerState, pick_verdict_node};
use crate::graph::Graph;
use crate::inference::BackendRegistry;
use crate::run::{Pipeline, PipelineOptions};

/// One built pipeline and what it was built from.
pub(crate) struct Version {
    /// 1 for the pipeline loaded at start, one more per reload.
    pub(crate) number: u64,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) verdict_node: String,
    /// The files it was built from, with what they looked like then.
    pub(crate) sources: Vec<(PathBuf, Option<Stamp>)>,
}

impl Version {
    /// Each model alias and its calls in flight, by alias.
    pub(crate) fn calls_in_flight(&self) -> Vec<(String, usize)> {
        let mut calls: Vec<(String, usize)> = self
            .pipeline
            .calls_in_flight
            .iter()
            .map(|(alias, count)| (alias.clone(), count.load(std::sync::atomic::Ordering::Relaxed)))
            .collect();
        calls.sort();
        calls
    }
}

/// A file's modification time and length: what the watcher compares.
pub(crate) type Stamp = (SystemTime, u64);

fn stamp(path: &PathBuf) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Builds versions of one graph file into one backend registry.
pub(crate) struct Builder {
    pub(crate) graph: PathBuf,
    pub(crate) registry: BackendRegistry,
    pub(crate) options: PipelineOptions,
    pub(crate) verdict_node: Option<String>,
    /// One build at a time (the watcher and `/admin/reload` may race).
    pub(crate) building: tokio::sync::Mutex<()>,
}

impl Builder {
    /// Builds version `number`; `Err` holds every problem, one per line.
    pub(crate) async fn build(&self, number: u64) -> Result<Version, ServeError> {
        // Stamped before loading, so a file changed during the build is seen again.
        let graph_stamp = stamp(&self.graph);
        let graph = Graph::load(&self.graph).map_err(|e| ServeError::Load(e.to_string()))?;
        let mut sources = vec![(self.graph.clone(), graph_stamp)];
        sources.extend(graph.nodes.iter().map(|n| (n.plugin.clone(), stamp(&n.plugin))));
        sources.extend(graph.models.iter().map(|m| (m.path.clone(), stamp(&m.path))));
        let pipeline =
            Pipeline::build(graph, &self.registry, &self.options).await.map_err(|e| ServeError::Load(e.to_string()))?;
        let verdict_node = pick_verdict_node(&pipeline, self.verdict_node.as_deref())?;
        Ok(Version { number, pipeline: Arc::new(pipeline), verdict_node, sources })
    }
}

/// Builds a new version and swaps it in, or says why not (the old one
/// keeps serving). Returns the version now serving.
pub(crate) async fn reload(state: &ServerState) -> Result<u64, String> {
    let _one_at_a_time = state.builder.building.lock().await;
    let next = state.current().number + 1;
    match state.builder.build(next).await {
        Ok(version) => {
            let number = version.number;
            let in_use: Vec<_> = version.pipeline.graph.models.iter().map(|m| m.manifest.clone()).collect();
            let version = Arc::new(version);
            let previous = std::mem::replace(
                &mut *state.version.write().unwrap_or_else(std::sync::PoisonError::into_inner),
                version.clone(),
            );
            state.metrics.reload(true);
            tracing::info!(version = number, "reloaded {}", state.builder.graph.display());
            let unloaded = state.builder.registry.retain(&in_use).await;
            if unloaded > 0 {
                tracing::info!(models = unloaded, "unloading the models the new version no longer names");
                tokio::spawn(release_when_dropped(Arc::downgrade(&previous)));
            }
            drop(previous);
            state.readiness.probe_all(&version.pipeline, number, state.probe_timeout).await;
            Ok(number)
        }
        Err(error) => {
            state.metrics.reload(false);
            // A refused version may have loaded models of its own before failing.
            let serving: Vec<_> = state.current().pipeline.graph.models.iter().map(|m| m.manifest.clone()).collect();
            state.builder.registry.retain(&serving).await;
            tracing::error!("reload refused; the previous version keeps serving:\n{error}");
            Err(error.to_string())
        }
    }
}

/// Once the last request on a replaced version has finished (the version is
/// dropped, and with it the models only it used), gives the memory they
/// held back to the system. A model's engine stops on its own thread just
/// after it is dropped, so the release is made twice, a moment apart.
async fn release_when_dropped(previous: std::sync::Weak<Version>) {
    while previous.strong_count() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for wait in [Duration::from_millis(200), Duration::from_secs(2)] {
        tokio::time::sleep(wait).await;
        crate::inference::release_free_memory();
    }
}

/// Polls the serving version's files every `every` and reloads when one
/// changed (a refused change is not retried until the files change again).
pub(crate) async fn watch(state: Arc<ServerState>, every: Duration) {
    let mut refused: Option<Vec<Option<Stamp>>> = None;
    loop {
        tokio::time::sleep(every).await;
        let current = state.current();
        let now: Vec<Option<Stamp>> = current.sources.iter().map(|(path, _)| stamp(path)).collect();
        let changed = current.sources.iter().zip(&now).any(|((_, then), now)| then != now);
        if !changed || refused.as_ref() == Some(&now) {
            continue;
        }
        refused = reload(&state).await.err().map(|_| now);
    }
}
