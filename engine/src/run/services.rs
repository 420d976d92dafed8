//! [`NodeServices`]: how the scheduler serves one node call's imports —
//! inference through the node's granted models with frames resolved on the
//! host, on-demand calls to the nodes the graph lets it call, and logging
//! tagged with node and item. Usage and calls are recorded for the output.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::memo::FrameUse;
use super::node::{RunContext, invoke_node};
use super::pipeline::MAX_CALL_DEPTH;
use super::record::{CallRecord, Usage};
use crate::inference::{Backend, ChatMessage, Frame, GenerateRequest, RequestOrigin};
use crate::plugin::services::{
    AgentCallError, AgentInferenceError, AgentRequest, AgentResponse, HostServices, LogLevel, ModelInfo,
};

/// Most samples one request may ask for.
pub const MAX_SAMPLES: u32 = 64;

/// Where frames named by agents are found.
pub trait FrameSource: Send + Sync {
    /// The image file of frame `index` of `video_id`, or why there is none.
    fn frame(&self, video_id: &str, index: u32) -> Result<PathBuf, String>;
}

impl FrameSource for crate::data::Dataset {
    fn frame(&self, video_id: &str, index: u32) -> Result<PathBuf, String> {
        let frames = self.frames(video_id).ok_or_else(|| format!("video `{video_id}` is not in the data set"))?;
        if let Some(error) = self.videos.get(video_id).and_then(|v| v.frame_error.as_ref())
            && index as usize >= frames.len()
        {
            return Err(format!("video `{video_id}`: no frames: {error}"));
        }
        frames
            .get(index as usize)
            .cloned()
            .ok_or_else(|| format!("video `{video_id}` has {} frame(s); frame {index} does not exist", frames.len()))
    }
}

/// Serves the imports of one call of one node for one item.
pub struct NodeServices {
    pub(super) context: RunContext,
    pub(super) node: usize,
    pub(super) item_id: Arc<str>,
    pub(super) depth: u32,
    pub(super) usage: Mutex<Usage>,
    pub(super) calls: Mutex<Vec<CallRecord>>,
    /// Cleared by a model call that sampled (or an on-demand call that did).
    pub(super) deterministic: AtomicBool,
    /// Frames shown to a model, on-demand calls included.
    pub(super) frames: Mutex<Vec<FrameUse>>,
}

impl NodeServices {
    fn node_name(&self) -> &str {
        &self.context.pipeline.graph.nodes[self.node].name
    }

    /// The backend behind a model alias this node may use (`None`: its own model).
    fn backend(&self, model: Option<&str>) -> Result<(String, Arc<dyn Backend>), AgentInferenceError> {
        let node = &self.context.pipeline.graph.nodes[self.node];
        let alias = match (model, &node.model) {
            (Some(alias), _) => alias.to_string(),
            (None, Some(default)) => default.clone(),
            (None, None) => {
                return Err(AgentInferenceError::UnknownModel(format!("node `{}` declares no model", node.name)));
            }
        };
        if !node.grants.contains(&alias) {
            return Err(AgentInferenceError::UnknownModel(format!(
                "model `{alias}` is not granted to node `{}` (granted: {})",
                node.name,
                node.grants.join(", ")
            )));
        }
        let backend = self
            .context
            .pipeline
            .backends
            .get(&alias)
            .ok_or_else(|| AgentInferenceError::UnknownModel(format!("model `{alias}` is not loaded")))?
            .clone();
        Ok((alias, backend))
    }

    /// Whether every model call so far decoded greedily, and the frames
    /// shown to a model (sorted, each once).
    pub(super) fn determinism(&self) -> (bool, Vec<FrameUse>) {
        let mut frames = self.frames.lock().map(|f| f.clone()).unwrap_or_default();
        frames.sort();
        frames.dedup();
        (self.deterministic.load(Ordering::Relaxed), frames)
    }

    fn note_frames(&self, used: impl IntoIterator<Item = FrameUse>) {
        if let Ok(mut frames) = self.frames.lock() {
            frames.extend(used);
        }
    }

    /// The request's messages with every named frame resolved to its file.
    fn messages(&self, request: &AgentRequest) -> Result<Vec<ChatMessage>, AgentInferenceError> {
        let mut messages = Vec::with_capacity(request.messages.len());
        for message in &request.messages {
            let mut images = Vec::with_capacity(message.images.len());
            for image in &message.images {
                let path = self
                    .context
                    .frames
                    .frame(&image.video_id, image.frame)
                    .map_err(AgentInferenceError::InvalidRequest)?;
                images.push(Frame { video_id: image.video_id.clone(), index: image.frame, path });
            }
            messages.push(ChatMessage { role: message.role, text: message.text.clone(), images });
        }
        Ok(messages)
    }
}

#[async_trait::async_trait]
impl HostServices for NodeServices {
    async fn generate(&self, request: AgentRequest) -> Result<AgentResponse, AgentInferenceError> {
        let (alias, backend) = self.backend(request.model.as_deref())?;
        let messages = self.messages(&request)?;
        if !backend.takes_images() && messages.iter().any(|m| !m.images.is_empty()) {
            return Err(AgentInferenceError::InvalidRequest(format!(
                "model `{alias}` ({}) does not take images",
                backend.model_name()
            )));
        }
        let sampling = request.sampling.unwrap_or_else(|| backend.default_sampling().clone());
        if sampling.temperature > 0.0 {
            self.deterministic.store(false, Ordering::Relaxed);
        }
        self.note_frames(messages.iter().flat_map(|m| &m.images).map(|frame| FrameUse {
            video_id: frame.video_id.clone(),
            index: frame.index,
            path: frame.path.clone(),
        }));
        if sampling.n == 0 || sampling.n > MAX_SAMPLES {
            return Err(AgentInferenceError::InvalidRequest(format!(
                "n must be 1..={MAX_SAMPLES}, got {}",
                sampling.n
            )));
        }
        let started = Instant::now();
        let origin =
            RequestOrigin { item_id: self.item_id.to_string(), node: self.node_name().to_string(), depth: self.depth };
        let result = backend.generate(GenerateRequest { messages, sampling, origin: Some(origin) }).await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if result.is_err() {
            // An output made around a failed model call (an agent's fallback)
            // may differ next time: it is not memoised.
            self.deterministic.store(false, Ordering::Relaxed);
        }
        let response = result.map_err(|e| match e {
            crate::inference::InferenceError::InvalidRequest(m) => AgentInferenceError::InvalidRequest(m),
            crate::inference::InferenceError::Backend(m) | crate::inference::InferenceError::Unavailable(m) => {
                AgentInferenceError::Backend(m)
            }
        })?;
        if let Ok(mut usage) = self.usage.lock() {
            usage.requests += 1;
            usage.prompt_tokens += u64::from(response.prompt_tokens);
            usage.completion_tokens += response.completions.iter().map(|c| u64::from(c.completion_tokens)).sum::<u64>();
            usage.ms += ms;
            usage.compute_ms += response.compute_ms.unwrap_or(0.0);
        }
        Ok(AgentResponse { model: backend.model_name().to_string(), response })
    }

    fn model_info(&self, model: Option<&str>) -> Result<ModelInfo, AgentInferenceError> {
        let (_, backend) = self.backend(model)?;
        Ok(ModelInfo {
            name: backend.model_name().to_string(),
            images: backend.takes_images(),
            context: backend.context().and_then(|c| u32::try_from(c).ok()),
        })
    }

    async fn call_agent(&self, target: String, input: String) -> Result<String, AgentCallError> {
        let graph = &self.context.pipeline.graph;
        let node = &graph.nodes[self.node];
        if !node.calls.contains(&target) {
            let allowed = if node.calls.is_empty() { "none".to_string() } else { node.calls.join(", ") };
            let refusal = format!("node `{}` may not call `{target}` (its `calls`: {allowed})", node.name);
            tracing::warn!(item = %self.item_id, node = %node.name, "{refusal}");
            self.record_call(&target, Some(refusal.clone()), 0.0, Usage::default());
            return Err(AgentCallError::NotAllowed(refusal));
        }
        if self.depth >= MAX_CALL_DEPTH {
            let refusal = format!("call depth limit of {MAX_CALL_DEPTH} reached");
            self.record_call(&target, Some(refusal.clone()), 0.0, Usage::default());
            return Err(AgentCallError::NotAllowed(refusal));
        }
        let index =
            graph.node_index(&target).ok_or_else(|| AgentCallError::NotAllowed(format!("no node `{target}`")))?;
        let started = Instant::now();
        let outcome = invoke_node(self.context.clone(), index, self.item_id.clone(), input, self.depth + 1).await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if !outcome.deterministic || outcome.output.is_err() {
            self.deterministic.store(false, Ordering::Relaxed);
        }
        self.note_frames(outcome.frames);
        match outcome.output {
            Ok(output) => {
                self.record_call(&target, None, ms, outcome.usage);
                Ok(output.to_string())
            }
            Err(error) => {
                self.record_call(&target, Some(error.clone()), ms, outcome.usage);
                Err(AgentCallError::Failed(error))
            }
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        let (item, node) = (&*self.item_id, self.node_name());
        match level {
            LogLevel::Trace => tracing::trace!(target: "enf::agent", item, node, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "enf::agent", item, node, "{message}"),
            LogLevel::Info => tracing::info!(target: "enf::agent", item, node, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "enf::agent", item, node, "{message}"),
            LogLevel::Error => tracing::error!(target: "enf::agent", item, node, "{message}"),
        }
    }
}

impl NodeServices {
    fn record_call(&self, node: &str, error: Option<String>, ms: f64, usage: Usage) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(CallRecord { node: node.to_string(), ok: error.is_none(), error, ms, usage });
        }
    }
}
