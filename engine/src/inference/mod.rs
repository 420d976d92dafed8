//! Host-side model inference: the [`Backend`] trait that the agents'
//! `enf:agent/inference.generate` import is served by, its request and
//! response types, model manifests and the backends.
//!
//! Agents never talk to a backend directly: the plugin host resolves the
//! node's model alias and the frames an agent names, then calls
//! [`Backend::generate`].

mod cache;
#[cfg(test)]
mod cpu_attention_tests;
#[cfg(test)]
mod cpu_matmul_tests;
#[cfg(test)]
mod cpu_rope_tests;
pub mod echo;
mod frames;
mod in_flight;
pub mod incidents;
mod manifest;
pub mod mistralrs;
pub mod openai;
mod registry;
mod resilient;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use cache::write_json_atomically;
pub use cache::{CacheStats, CachedBackend};
pub use echo::{EchoBackend, EchoOptions};
pub use in_flight::InFlightBackend;
pub use manifest::{BackendKind, ManifestError, ModelManifest};
pub use mistralrs::MistralRsBackend;
pub use openai::OpenAiBackend;
pub use registry::{BackendRegistry, release_free_memory};
pub use resilient::{OutageStats, ResilientBackend, RetryPolicy};

/// The refusal of a backend that only records the prompt it is sent (the
/// trainer's capturing run, `train::rollout`): the run is thrown away, so
/// a node failing with it is not worth a warning.
pub const PROMPT_CAPTURED: &str = "prompt captured for sampling; this run of the agent is discarded";

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The agent's question.
    User,
    /// An earlier model answer.
    Assistant,
}

/// A video frame resolved by the host to an image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The video the frame belongs to.
    pub video_id: String,
    /// Zero-based frame index.
    pub index: u32,
    /// The image file on the host.
    pub path: PathBuf,
}

/// One chat message with the frames shown alongside it.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text content.
    pub text: String,
    /// Frames, already resolved to files.
    pub images: Vec<Frame>,
}

/// Sampling parameters. A temperature of 0 decodes greedily.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus mass; 1.0 disables.
    pub top_p: f32,
    /// Top-k; 0 disables.
    pub top_k: u32,
    /// Maximum new tokens per completion.
    pub max_tokens: u32,
    /// Completions per prompt.
    pub n: u32,
    /// Seed, where the backend honours one.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 1.0, top_k: 0, max_tokens: 256, n: 1, seed: None, stop: Vec::new() }
    }
}

/// Who asked for a completion: the item, the node and how deep in a chain
/// of on-demand calls — so that a completion can be tied to its item and
/// node (a trainer records rollouts by it; logs name it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RequestOrigin {
    /// The item being run.
    pub item_id: String,
    /// The graph node whose agent asked.
    pub node: String,
    /// 0 for a scheduled node, 1 for a node it called on demand, …
    pub depth: u32,
}

/// A request as a backend sees it.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling, with the manifest's defaults already applied.
    pub sampling: Sampling,
    /// Who asked (`None` outside a graph run: `enf model ask`, benchmarks).
    pub origin: Option<RequestOrigin>,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End of sequence or stop string.
    Stop,
    /// Token budget exhausted.
    Length,
}

/// One completion.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Completion {
    /// Generated text.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// A backend's answer.
#[derive(Debug, Clone)]
pub struct GenerateResponse {
    /// One per requested sample.
    pub completions: Vec<Completion>,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Milliseconds the model spent on this request (prefill and decode,
    /// in a batch with others), as the backend reports it; the rest of a
    /// call's wall time is queueing and transport. `None` where unknown.
    pub compute_ms: Option<f64>,
}

/// Why a backend could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    /// The request itself cannot be served (bad frame, prompt too long, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend failed on a valid request.
    #[error("backend failure: {0}")]
    Backend(String),
    /// The backend cannot be reached right now (its engine died and is
    /// restarting, an endpoint dropped the connection): an infrastructure
    /// failure, worth waiting out ([`ResilientBackend`]).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// What a backend knows of its model, from the manifest.
#[derive(Debug, Clone)]
pub struct ModelIdentity {
    /// The manifest's model name.
    pub name: String,
    /// The manifest file.
    pub manifest: PathBuf,
    /// Sampling used when an agent asks for none.
    pub sampling: Sampling,
    /// Whether requests may carry frames.
    pub images: bool,
    /// Longest prompt in tokens, where the manifest sets one.
    pub context: Option<usize>,
}

impl ModelIdentity {
    /// The identity a manifest declares.
    pub fn from_manifest(manifest: &ModelManifest) -> Self {
        Self {
            name: manifest.name.clone(),
            manifest: manifest.path.clone(),
            sampling: manifest.sampling.clone(),
            images: manifest.images,
            context: manifest.context,
        }
    }

    /// A text-only model with default sampling and no manifest file (tests).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            manifest: PathBuf::new(),
            sampling: Sampling::default(),
            images: false,
            context: None,
        }
    }

    /// An error message naming the model and its manifest.
    pub fn fail(&self, message: impl std::fmt::Display) -> String {
        format!("model `{}` ({}): {message}", self.name, self.manifest.display())
    }
}

/// A model that serves generation requests. One instance serves every node
/// and item that names it, concurrently.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The model this backend serves.
    fn identity(&self) -> &ModelIdentity;
    /// The manifest name of the model.
    fn model_name(&self) -> &str {
        &self.identity().name
    }
    /// Sampling used when an agent asks for none.
    fn default_sampling(&self) -> &Sampling {
        &self.identity().sampling
    }
    /// Whether requests may carry frames.
    fn takes_images(&self) -> bool {
        self.identity().images
    }
    /// Longest prompt in tokens, where known.
    fn context(&self) -> Option<usize> {
        self.identity().context
    }
    /// Serves one request.
    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError>;
}

/// Checks a manifest's backend as far as it can be without loading weights
/// or sending requests (options, files, API key variable): what
/// `enf graph check` reports.
pub fn preflight(manifest: &ModelManifest) -> Result<(), ManifestError> {
    match manifest.backend {
        BackendKind::Echo => Ok(()),
        BackendKind::Mistralrs => MistralRsBackend::preflight(manifest),
        BackendKind::Openai => OpenAiBackend::new(manifest).map(|_| ()),
    }
}

/// Starts the backend a manifest names (loading a local model may take a
/// while), wrapped so that its outages are waited out ([`ResilientBackend`]
/// with the manifest's `[outage]` policy).
pub async fn start_backend(manifest: &ModelManifest) -> Result<Arc<dyn Backend>, ManifestError> {
    let backend: Arc<dyn Backend> = match manifest.backend {
        BackendKind::Echo => Arc::new(EchoBackend::new(
            ModelIdentity::from_manifest(manifest),
            manifest.echo.clone().unwrap_or_default(),
        )),
        BackendKind::Mistralrs => Arc::new(MistralRsBackend::load(manifest).await?),
        BackendKind::Openai => Arc::new(OpenAiBackend::new(manifest)?),
    };
    Ok(Arc::new(ResilientBackend::new(backend, manifest.outage)))
}
