//! The `mistralrs` backend: a local model run by mistral.rs — Qwen2.5-VL
//! with video frames, or a text model (Hugging Face directory or GGUF) —
//! on CPU or, built with `--features cuda`, on a GPU. One loaded model serves
//! every node and item that names it; mistral.rs batches concurrent requests.
//!
//! Sampling: a temperature of 0 decodes greedily; otherwise requests start
//! from mistral.rs's neutral sampler (its request builder defaults to greedy
//! even with a temperature set). mistral.rs takes no per-request seed, so
//! `seed` is not honoured here.

use std::path::PathBuf;
use std::time::Instant;

use mistralrs::{
    Model, ModelDType, MultimodalLoaderType, NormalLoaderType, RequestBuilder, SamplingParams, StopTokens,
    TextMessageRole,
};
use serde::Deserialize;

use super::manifest::{ManifestError, ModelManifest};
use super::{
    Backend, ChatMessage, Completion, FinishReason, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity,
    Role, Sampling,
};

/// Where the weights come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum ModelSource {
    /// A Hugging Face model directory, relative to the manifest.
    Dir(PathBuf),
    /// A GGUF file, relative to the manifest (text models only).
    Gguf(PathBuf),
    /// A model-hub id, downloaded by mistral.rs (needs internet).
    Hub(String),
}

/// Model architectures this backend loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Architecture {
    /// Qwen2.5-VL (images + text).
    #[serde(rename = "qwen2.5-vl")]
    Qwen25Vl,
    /// Llama-family text model (SmolLM2, Llama 3, …).
    #[serde(rename = "llama")]
    Llama,
    /// Qwen2 / Qwen2.5 text model.
    #[serde(rename = "qwen2")]
    Qwen2,
    /// Mistral text model.
    #[serde(rename = "mistral")]
    Mistral,
}

/// Compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// CPU.
    #[default]
    Cpu,
    /// The first CUDA GPU (needs a `--features cuda` build).
    Cuda,
}

/// The manifest's `[mistralrs]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MistralRsOptions {
    /// Where the weights come from.
    pub source: ModelSource,
    /// The model architecture.
    pub architecture: Architecture,
    /// Weight and activation dtype: `auto`, `f32`, `bf16`, `f16` (CPU: use `f32`).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Compute device.
    #[serde(default)]
    pub device: DeviceKind,
    /// In-situ quantization, e.g. `q4k`, `q8_0`.
    #[serde(default)]
    pub isq: Option<String>,
    /// Most sequences decoded together.
    #[serde(default)]
    pub max_seqs: Option<usize>,
    /// Resize frames so their longer edge is at most this many pixels.
    #[serde(default)]
    pub max_edge: Option<u32>,
    /// Finished sequences whose KV cache mistral.rs keeps to reuse for
    /// prompts that share their prefix; 0 turns the prefix cache off.
    #[serde(default = "default_prefix_cache")]
    pub prefix_cache: usize,
}

fn default_prefix_cache() -> usize {
    16
}

/// A model loaded by mistral.rs.
pub struct MistralRsBackend {
    identity: ModelIdentity,
    model: Model,
}

fn dtype(manifest: &ModelManifest, text: Option<&str>) -> Result<ModelDType, ManifestError> {
    Ok(match text.unwrap_or("auto") {
        "auto" => ModelDType::Auto,
        "f32" => ModelDType::F32,
        "bf16" => ModelDType::BF16,
        "f16" => ModelDType::F16,
        other => {
            return Err(ManifestError::invalid(
                manifest,
                format!("dtype `{other}` is not one of auto, f32, bf16, f16"),
            ));
        }
    })
}

/// A manifest's `[mistralrs]` options, checked and parsed without loading weights.
struct CheckedOptions<'a> {
    options: &'a MistralRsOptions,
    dtype: ModelDType,
    isq: Option<mistralrs::IsqType>,
    /// The weights' file or directory, resolved and present (`None`: a hub id).
    location: Option<String>,
}

impl MistralRsBackend {
    /// Checks what can be checked without loading weights: the options, the
    /// device this build supports, and that the weights are where the
    /// manifest says.
    pub fn preflight(manifest: &ModelManifest) -> Result<(), ManifestError> {
        Self::check(manifest).map(|_| ())
    }

    fn check(manifest: &ModelManifest) -> Result<CheckedOptions<'_>, ManifestError> {
        let options =
            manifest.mistralrs.as_ref().ok_or_else(|| ManifestError::invalid(manifest, "no [mistralrs] table"))?;
        if options.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            return Err(ManifestError::invalid(
                manifest,
                "device = \"cuda\" needs an `enf` built with `--features cuda`",
            ));
        }
        let dtype = dtype(manifest, options.dtype.as_deref())?;
        let isq = options
            .isq
            .as_deref()
            .map(|text| {
                mistralrs::parse_isq_value(text, None)
                    .map_err(|e| ManifestError::invalid(manifest, format!("isq `{text}`: {e}")))
            })
            .transpose()?;
        let (path, directory) = match (&options.source, options.architecture) {
            (ModelSource::Gguf(_), Architecture::Qwen25Vl) => {
                return Err(ManifestError::invalid(
                    manifest,
                    "Qwen2.5-VL cannot be loaded from GGUF; give a model directory",
                ));
            }
            (ModelSource::Gguf(file), _) => (manifest.resolve(file), false),
            (ModelSource::Dir(dir), _) => (manifest.resolve(dir), true),
            (ModelSource::Hub(_), _) => return Ok(CheckedOptions { options, dtype, isq, location: None }),
        };
        let exists = if directory { path.is_dir() } else { path.is_file() };
        if !exists {
            let what = if directory { "directory" } else { "file" };
            return Err(ManifestError::invalid(manifest, format!("model {what} {} does not exist", path.display())));
        }
        Ok(CheckedOptions { options, dtype, isq, location: Some(path.to_string_lossy().into_owned()) })
    }

    /// Loads the model a manifest describes.
    pub async fn load(manifest: &ModelManifest) -> Result<Self, ManifestError> {
        let CheckedOptions { options, dtype, isq, location } = Self::check(manifest)?;
        let cpu = options.device == DeviceKind::Cpu;
        let max_seqs = options.max_seqs.unwrap_or(32);
        let prefix_cache = (options.prefix_cache > 0).then_some(options.prefix_cache);
        // A local file or directory (checked above), else the hub id.
        let id = match (&options.source, location) {
            (ModelSource::Hub(id), _) => id.clone(),
            (_, Some(path)) => path,
            (_, None) => return Err(ManifestError::invalid(manifest, "no model location")),
        };
        let started = Instant::now();
        let model = match (&options.source, options.architecture) {
            (ModelSource::Gguf(_), _) => {
                let path = PathBuf::from(&id);
                let dir = path.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                tracing::warn!(manifest = %manifest.path.display(), "mistral.rs 0.8.1 answers wrongly from some GGUF files on CPU; prefer `enf model import-gguf`");
                let mut builder = mistralrs::GgufModelBuilder::new(dir, vec![name])
                    .with_max_num_seqs(max_seqs)
                    .with_prefix_cache_n(prefix_cache);
                if cpu {
                    builder = builder.with_force_cpu();
                }
                builder.build().await
            }
            (source, Architecture::Qwen25Vl) => {
                let mut builder = mistralrs::MultimodalModelBuilder::new(id)
                    .with_loader_type(MultimodalLoaderType::Qwen2_5VL)
                    .with_dtype(dtype)
                    .with_max_num_seqs(max_seqs)
                    .with_prefix_cache_n(prefix_cache);
                if matches!(source, ModelSource::Dir(_)) {
                    builder = builder.with_token_source(mistralrs::TokenSource::None);
                }
                if cpu {
                    builder = builder.with_force_cpu();
                }
                if let Some(isq) = isq {
                    builder = builder.with_isq(isq);
                }
                if let Some(edge) = options.max_edge {
                    builder = builder.with_max_edge(edge);
                }
                builder.build().await
            }
            (source, architecture) => {
                let loader = match architecture {
                    Architecture::Llama => NormalLoaderType::Llama,
                    Architecture::Qwen2 => NormalLoaderType::Qwen2,
                    _ => NormalLoaderType::Mistral,
                };
                let mut builder = mistralrs::TextModelBuilder::new(id)
                    .with_loader_type(loader)
                    .with_dtype(dtype)
                    .with_max_num_seqs(max_seqs)
                    .with_prefix_cache_n(prefix_cache);
                if matches!(source, ModelSource::Dir(_)) {
                    builder = builder.with_token_source(mistralrs::TokenSource::None);
                }
                if cpu {
                    builder = builder.with_force_cpu();
                }
                if let Some(isq) = isq {
                    builder = builder.with_isq(isq);
                }
                builder.build().await
            }
        }
        .map_err(|e| ManifestError::invalid(manifest, format!("mistral.rs could not load the model: {e:#}")))?;
        tracing::info!(model = %manifest.name, elapsed = ?started.elapsed(), "model loaded");
        Ok(Self { identity: ModelIdentity::from_manifest(manifest), model })
    }

    /// The prompt tokens mistral.rs computes for a text chat (its chat
    /// template, generation prompt, special tokens) — what the trainer's own
    /// tokenization is checked against.
    pub async fn chat_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, InferenceError> {
        let mut chat = mistralrs::TextMessages::new();
        for message in messages {
            chat = chat.add_message(role(message.role), message.text.clone());
        }
        self.model
            .tokenize(either::Either::Left(chat), None, true, true, None)
            .await
            .map_err(|e| InferenceError::Backend(self.fail(format!("cannot tokenize: {e}"))))
    }

    /// A greedy text completion with the natural-log probability of each
    /// generated token (mistral.rs reports log10; converted here).
    pub async fn greedy_with_logprobs(
        &self,
        messages: &[ChatMessage],
        max_tokens: u32,
    ) -> Result<(String, Vec<f32>), InferenceError> {
        let mut builder = RequestBuilder::new();
        for message in messages {
            builder = builder.add_message(role(message.role), message.text.clone());
        }
        let sampling = Sampling { max_tokens, ..Sampling::default() };
        builder = builder.set_sampling(sampling_params(&sampling)).return_logprobs(true);
        let response =
            self.model.send_chat_request(builder).await.map_err(|e| InferenceError::Backend(self.fail(e)))?;
        let choice =
            response.choices.into_iter().next().ok_or_else(|| InferenceError::Backend(self.fail("no choice")))?;
        let logprobs = choice
            .logprobs
            .and_then(|l| l.content)
            .unwrap_or_default()
            .iter()
            .map(|l| l.logprob * std::f32::consts::LN_10)
            .collect();
        Ok((choice.message.content.unwrap_or_default(), logprobs))
    }

    /// Sequences the mistral.rs engine holds after its last step: running
    /// and waiting (`None` if the engine cannot be asked). An engine whose
    /// requests were all answered or abandoned reads `(0, 0)`.
    pub fn engine_sequences(&self) -> Option<(usize, usize)> {
        let logger = self.model.inner().get_logger(None).ok()?;
        Some((logger.num_running(), logger.num_waiting()))
    }

    fn fail(&self, message: impl std::fmt::Display) -> String {
        self.identity.fail(message)
    }
}

/// Whether a mistral.rs error means its engine is gone (and will be
/// restarted by the next request), rather than that this request failed.
fn engine_is_down(error: &mistralrs::error::Error) -> bool {
    matches!(error, mistralrs::error::Error::Channel(_) | mistralrs::error::Error::Management(_))
}

/// mistral.rs sampling parameters for a request.
pub fn sampling_params(sampling: &Sampling) -> SamplingParams {
    let mut params =
        if sampling.temperature <= 0.0 { SamplingParams::deterministic() } else { SamplingParams::neutral() };
    if sampling.temperature > 0.0 {
        params.temperature = Some(f64::from(sampling.temperature));
        params.top_p = (sampling.top_p < 1.0).then_some(f64::from(sampling.top_p));
        params.top_k = (sampling.top_k > 0).then_some(sampling.top_k as usize);
    }
    params.max_len = Some(sampling.max_tokens as usize);
    params.n_choices = sampling.n.max(1) as usize;
    if !sampling.stop.is_empty() {
        params.stop_toks = Some(StopTokens::Seqs(sampling.stop.clone()));
    }
    params
}

fn role(role: Role) -> TextMessageRole {
    match role {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

#[async_trait::async_trait]
impl Backend for MistralRsBackend {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        if request.messages.is_empty() {
            return Err(InferenceError::InvalidRequest(self.fail("no messages")));
        }
        if let Some(context) = self.identity.context {
            // Text tokens only (frames are not counted): a cheap guard before prefill.
            let text: String = request.messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n");
            let tokens = self
                .model
                .tokenize(either::Either::Right(text), None, false, false, None)
                .await
                .map_err(|e| InferenceError::Backend(self.fail(format!("cannot tokenize the prompt: {e}"))))?;
            if tokens.len() > context {
                return Err(InferenceError::InvalidRequest(self.fail(format!(
                    "prompt of {} tokens is longer than the manifest's context of {context}",
                    tokens.len()
                ))));
            }
        }
        let mut builder = RequestBuilder::new();
        for message in request.messages {
            if message.images.is_empty() {
                builder = builder.add_message(role(message.role), message.text);
            } else {
                let images = super::frames::load_frames(&message.images)
                    .await
                    .map_err(|e| InferenceError::InvalidRequest(self.fail(e)))?;
                builder = builder.add_image_message(role(message.role), message.text, images);
            }
        }
        builder = builder.set_sampling(sampling_params(&request.sampling));
        let response = self.model.send_chat_request(builder).await.map_err(|e| {
            let text = format!("{e:#}");
            if text.contains("Prompt sequence length is greater than") {
                InferenceError::InvalidRequest(self.fail(format!("prompt longer than the model's context: {text}")))
            } else if engine_is_down(&e) {
                // The engine thread died (a panic): mistral.rs restarts it on the next request.
                InferenceError::Unavailable(self.fail(format!("the mistral.rs engine stopped: {text}")))
            } else {
                InferenceError::Backend(self.fail(text))
            }
        })?;
        let per_choice = response.usage.completion_tokens / response.choices.len().max(1);
        let completions = response
            .choices
            .into_iter()
            .map(|choice| Completion {
                text: choice.message.content.unwrap_or_default(),
                finish_reason: if choice.finish_reason == "length" { FinishReason::Length } else { FinishReason::Stop },
                completion_tokens: u32::try_from(per_choice).unwrap_or(u32::MAX),
            })
            .collect();
        let compute_s = response.usage.total_prompt_time_sec + response.usage.total_completion_time_sec;
        Ok(GenerateResponse {
            completions,
            prompt_tokens: u32::try_from(response.usage.prompt_tokens).unwrap_or(u32::MAX),
            compute_ms: Some(f64::from(compute_s) * 1e3),
        })
    }
}
