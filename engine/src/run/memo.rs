//! Node-output memoisation: a node's output is reused when the same work
//! comes again — within a run (a Profile of the same user and history, an
//! on-demand Video analysis of the same video, computed once) and across
//! runs (swap the Reason agent's `.wasm` and rerun: only Reason and what
//! its change reaches run again).
//!
//! The key is the SHA-256 of the engine version, the node's *identity* —
//! its plugin's content hash, the answer identity of every model it may use
//! ([`crate::inference::ModelManifest::answer_identity`]: manifest text and
//! weight files) and, recursively, the identity of every node it may call —
//! the call depth, and the exact input document the plugin receives (which
//! holds the node's `config`). An output is stored only when the node
//! succeeded and every model call it made (its on-demand calls included)
//! was greedy, so the same key always means the same output. Frames the
//! node showed a model are recorded with the SHA-256 of their bytes and
//! checked on every hit: a frame file that changed turns the hit into a miss.
//!
//! Concurrent requests for one key wait for the first, so a user's Profile
//! runs once even when all of the user's candidates are in flight at once.
//! An agent is taken to be a function of its input and its model answers; an
//! agent that reads the clock or random numbers must run with the cache off
//! (`enf run --no-node-cache`).
//!
//! Entries live in `DIR/KEY[..2]/KEY.json`, written atomically, like the
//! inference cache's.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pipeline::Pipeline;
use super::services::FrameSource;

/// A frame a node showed a model: which one, and where it was read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FrameUse {
    /// The video.
    pub video_id: String,
    /// The frame's index.
    pub index: u32,
    /// The file it resolved to.
    pub path: PathBuf,
}

/// Hits, misses and stores of the node cache in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeCacheCounts {
    /// Node outputs served from the cache.
    pub hits: u64,
    /// Node runs that found no usable entry.
    pub misses: u64,
    /// Outputs written to the cache (misses that were deterministic and succeeded).
    pub stored: u64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    output: Value,
    frames: Vec<StoredFrame>,
}

#[derive(Serialize, Deserialize)]
struct StoredFrame {
    video_id: String,
    index: u32,
    sha256: String,
}

/// The node cache of one loaded pipeline.
pub struct NodeCache {
    dir: PathBuf,
    identities: Vec<String>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
}

/// Holds a key while its node runs: others asking for the same key wait.
pub struct KeyClaim<'a> {
    cache: &'a NodeCache,
    key: String,
    guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for KeyClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.cache.in_flight.lock() {
            // The map's copy and ours: nobody else waits for this key.
            if Arc::strong_count(tokio::sync::OwnedMutexGuard::mutex(&self.guard)) == 2 {
                in_flight.remove(&self.key);
            }
        }
    }
}

impl NodeCache {
    /// A cache in `dir` for the nodes of `pipeline`.
    pub fn new(dir: &Path, pipeline: &Pipeline) -> Self {
        let models: HashMap<&str, String> = pipeline
            .graph
            .models
            .iter()
            .map(|model| (model.alias.as_str(), model.manifest.answer_identity()))
            .collect();
        let identities = (0..pipeline.graph.nodes.len())
            .map(|index| node_identity(pipeline, &models, index, &mut BTreeSet::new()))
            .collect();
        Self {
            dir: dir.to_path_buf(),
            identities,
            in_flight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> NodeCacheCounts {
        NodeCacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
        }
    }

    /// The key of node `index` at call depth `depth` on `input`.
    pub fn key(&self, index: usize, depth: u32, input: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [env!("CARGO_PKG_VERSION"), &self.identities[index], &depth.to_string(), input] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Waits until no other task works on `key`, then holds it. Claims
    /// are taken in order of call depth (a node waits only on deeper keys
    /// while it holds its own), so they cannot deadlock.
    pub async fn claim(&self, key: String) -> KeyClaim<'_> {
        let slot = match self.in_flight.lock() {
            Ok(mut in_flight) => in_flight.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let guard = slot.lock_owned().await;
        KeyClaim { cache: self, key, guard }
    }

    /// The stored output for `key` with the frames it used, when there is
    /// one and every frame it showed a model is still the same file content.
    pub async fn lookup(&self, key: &str, frames: &dyn FrameSource) -> Option<(Value, Vec<FrameUse>)> {
        let path = self.path(key);
        let found = self.read(&path, frames).await;
        match &found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    async fn read(&self, path: &Path, frames: &dyn FrameSource) -> Option<(Value, Vec<FrameUse>)> {
        let bytes = tokio::fs::read(path).await.ok()?;
        let entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable node-cache entry: {e}");
                return None;
            }
        };
        let mut used = Vec::with_capacity(entry.frames.len());
        for frame in entry.frames {
            let file = frames.frame(&frame.video_id, frame.index).ok()?;
            if digest_file(&file).await? != frame.sha256 {
                tracing::debug!(path = %path.display(), frame = %file.display(), "frame changed: node runs again");
                return None;
            }
            used.push(FrameUse { video_id: frame.video_id, index: frame.index, path: file });
        }
        Some((entry.output, used))
    }

    /// Stores `output` for `key`, with the frames the node showed a model.
    pub async fn store(&self, key: &str, output: &Value, frames: &[FrameUse]) {
        let mut stored = Vec::with_capacity(frames.len());
        for frame in frames {
            let Some(sha256) = digest_file(&frame.path).await else {
                return; // the frame is gone already: nothing reliable to store
            };
            stored.push(StoredFrame { video_id: frame.video_id.clone(), index: frame.index, sha256 });
        }
        let path = self.path(key);
        let entry = Entry { output: output.clone(), frames: stored };
        match crate::inference::write_json_atomically(&path, &entry) {
            Ok(()) => {
                self.stored.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(path = %path.display(), "cannot write the node cache: {e}"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }
}

/// What a node's output depends on besides its input: its plugin's bytes,
/// the models it may use (and which is its default), and what the nodes it
/// may call depend on.
fn node_identity(
    pipeline: &Pipeline,
    models: &HashMap<&str, String>,
    index: usize,
    visiting: &mut BTreeSet<usize>,
) -> String {
    let node = &pipeline.graph.nodes[index];
    let mut text = format!("plugin {}\ndefault model {:?}\n", pipeline.plugins[index].digest, node.model);
    let mut grants = node.grants.clone();
    grants.sort();
    for alias in grants {
        text.push_str(&format!("model {alias} = {}\n", models.get(alias.as_str()).map_or("?", String::as_str)));
    }
    visiting.insert(index);
    let mut calls = node.calls.clone();
    calls.sort();
    for callee in calls {
        match pipeline.graph.node_index(&callee) {
            Some(target) if !visiting.contains(&target) => {
                let identity = node_identity(pipeline, models, target, visiting);
                text.push_str(&format!("calls {callee} = {}\n", hex::encode(Sha256::digest(identity.as_bytes()))));
            }
            _ => text.push_str(&format!("calls {callee} (cycle)\n")),
        }
    }
    visiting.remove(&index);
    text
}

async fn digest_file(path: &Path) -> Option<String> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}
