//! The inference cache (opt-in per run, `enf run --inference-cache DIR`):
//! a content-addressed store of model answers. The key is the SHA-256 of the
//! model's identity (manifest name and manifest text), the messages (roles,
//! texts, and the bytes of every frame), and the sampling parameters with
//! the seed — so rerunning a graph after swapping one agent replays every
//! unchanged model call instantly and recomputes only what changed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Backend, Completion, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity, Sampling};

/// Hit and miss counters, shared by every cached backend of a run.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheStats {
    /// Answers served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Answers computed by the backend (and stored).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// A backend whose answers are cached on disk.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    identity: String,
    stats: Arc<CacheStats>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    completions: Vec<Completion>,
    prompt_tokens: u32,
}

impl CachedBackend {
    /// Wraps `inner`; `identity` names the model (e.g. manifest name + manifest text).
    pub fn new(inner: Arc<dyn Backend>, dir: &Path, identity: String, stats: Arc<CacheStats>) -> Self {
        Self { inner, dir: dir.to_path_buf(), identity, stats }
    }

    /// Wraps `inner`, the backend of `manifest`'s model, keyed by the
    /// manifest's name and text (a changed manifest is another model): how
    /// `enf run --inference-cache` and `enf train --inference-cache` share entries.
    pub fn for_manifest(
        inner: Arc<dyn Backend>,
        dir: &Path,
        manifest: &super::ModelManifest,
        stats: Arc<CacheStats>,
    ) -> Self {
        let text = std::fs::read_to_string(&manifest.path).unwrap_or_default();
        Self::new(inner, dir, format!("{}\n{text}", manifest.name), stats)
    }

    async fn key(&self, request: &GenerateRequest) -> Result<String, InferenceError> {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(self.identity.as_bytes());
        for message in &request.messages {
            field(format!("{:?}", message.role).as_bytes());
            field(message.text.as_bytes());
            for frame in &message.images {
                let bytes = tokio::fs::read(&frame.path).await.map_err(|e| {
                    InferenceError::InvalidRequest(format!(
                        "cannot read frame {} of video `{}` ({}): {e}",
                        frame.index,
                        frame.video_id,
                        frame.path.display()
                    ))
                })?;
                field(&Sha256::digest(&bytes));
            }
        }
        let Sampling { temperature, top_p, top_k, max_tokens, n, seed, stop } = &request.sampling;
        field(format!("{temperature}|{top_p}|{top_k}|{max_tokens}|{n}|{seed:?}|{stop:?}").as_bytes());
        Ok(hex::encode(hasher.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }
}

/// Writes `value` as JSON to `path` atomically (a temporary file in the same
/// directory, renamed over it), creating the directory: how the inference
/// cache and the node cache store an entry, so a reader never sees half of one.
pub(crate) fn write_json_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&serde_json::to_vec(value)?)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[async_trait::async_trait]
impl Backend for CachedBackend {
    fn identity(&self) -> &ModelIdentity {
        self.inner.identity()
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        let key = self.key(&request).await?;
        let path = self.path(&key);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            match serde_json::from_slice::<Entry>(&bytes) {
                Ok(entry) => {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(GenerateResponse {
                        completions: entry.completions,
                        prompt_tokens: entry.prompt_tokens,
                        compute_ms: None,
                    });
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unreadable inference-cache entry: {e}"),
            }
        }
        let response = self.inner.generate(request).await?;
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let entry = Entry { completions: response.completions.clone(), prompt_tokens: response.prompt_tokens };
        if let Err(e) = write_json_atomically(&path, &entry) {
            tracing::warn!(path = %path.display(), "cannot write the inference cache: {e}");
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ChatMessage, EchoBackend, Role, echo::EchoOptions};

    fn request(text: &str, temperature: f32) -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: text.into(), images: vec![] }],
            sampling: Sampling { temperature, ..Sampling::default() },
            origin: None,
        }
    }

    #[tokio::test]
    async fn replays_identical_requests_and_keys_on_every_part() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(CacheStats::default());
        let echo: Arc<dyn Backend> = Arc::new(EchoBackend::new(ModelIdentity::named("e"), EchoOptions::default()));
        let cached = CachedBackend::new(echo, dir.path(), "e|manifest".into(), stats.clone());
        let first = cached.generate(request("hello", 0.0)).await.unwrap();
        let again = cached.generate(request("hello", 0.0)).await.unwrap();
        assert_eq!(first.completions[0].text, again.completions[0].text);
        assert_eq!((stats.hits(), stats.misses()), (1, 1));
        cached.generate(request("hello!", 0.0)).await.unwrap();
        cached.generate(request("hello", 0.5)).await.unwrap();
        assert_eq!((stats.hits(), stats.misses()), (1, 3), "other text or sampling is another entry");
    }
}
