//! What an agent's imports are served by, in host types: the plugin host
//! translates the WIT calls and hands them to a [`HostServices`] that the
//! caller provides (the scheduler's implementation knows the graph, the
//! models and the frames; tests may provide their own).

use crate::inference::{GenerateResponse, Role, Sampling};

/// A frame an agent names: video and frame index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef {
    /// The video's id.
    pub video_id: String,
    /// Zero-based frame index.
    pub frame: u32,
}

/// One message of an agent's request, frames not yet resolved.
#[derive(Debug, Clone)]
pub struct AgentMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub text: String,
    /// Frames shown with it.
    pub images: Vec<FrameRef>,
}

/// An agent's inference request.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// Model alias, or `None` for the node's model.
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<AgentMessage>,
    /// Sampling, or `None` for the manifest's default.
    pub sampling: Option<Sampling>,
}

/// The host's answer to an inference request.
#[derive(Debug, Clone)]
pub struct AgentResponse {
    /// The model that answered (manifest name).
    pub model: String,
    /// The completions.
    pub response: GenerateResponse,
}

/// Why an inference request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentInferenceError {
    /// Alias not granted to the node, or unknown.
    #[error("unknown model: {0}")]
    UnknownModel(String),
    /// The request cannot be served.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend failed.
    #[error("backend failure: {0}")]
    Backend(String),
}

/// Why a node call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentCallError {
    /// The graph does not allow the call.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The called node failed.
    #[error("failed: {0}")]
    Failed(String),
}

/// Log severity of an agent's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// What an agent is told about a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model's manifest name.
    pub name: String,
    /// Whether it takes frames.
    pub images: bool,
    /// Its context limit in tokens, if the manifest sets one.
    pub context: Option<u32>,
}

/// Serves the imports of one agent call.
#[async_trait::async_trait]
pub trait HostServices: Send + Sync {
    /// Serves `inference.generate`.
    async fn generate(&self, request: AgentRequest) -> Result<AgentResponse, AgentInferenceError>;
    /// Serves `inference.model-info`.
    fn model_info(&self, model: Option<&str>) -> Result<ModelInfo, AgentInferenceError>;
    /// Serves `host.call-agent`.
    async fn call_agent(&self, node: String, input: String) -> Result<String, AgentCallError>;
    /// Serves `host.log` (already length-capped by the plugin host).
    fn log(&self, level: LogLevel, message: &str);
}

/// Services that refuse everything: used while an agent describes itself,
/// when it must not call imports.
#[derive(Debug, Default)]
pub struct NoServices;

#[async_trait::async_trait]
impl HostServices for NoServices {
    async fn generate(&self, _request: AgentRequest) -> Result<AgentResponse, AgentInferenceError> {
        Err(AgentInferenceError::InvalidRequest("no inference while describing".into()))
    }

    fn model_info(&self, _model: Option<&str>) -> Result<ModelInfo, AgentInferenceError> {
        Err(AgentInferenceError::InvalidRequest("no models while describing".into()))
    }

    async fn call_agent(&self, node: String, _input: String) -> Result<String, AgentCallError> {
        Err(AgentCallError::NotAllowed(format!("no calls while describing (asked for `{node}`)")))
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}
