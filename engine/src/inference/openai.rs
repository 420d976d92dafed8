//! The `openai` backend: any OpenAI-compatible chat-completions endpoint
//! (OpenAI, vLLM, a mistral.rs server fleet, …). Frames travel as data URLs.
//! Requests rotate over the configured endpoints; 429s, 5xx answers,
//! timeouts and connection failures are retried on the next endpoint with
//! exponential backoff (honouring `Retry-After`); when those retries are
//! spent the endpoint counts as unavailable, which the manifest's `[outage]`
//! policy waits out (see `resilient`). Other errors fail at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::manifest::{ManifestError, ModelManifest};
use super::{
    Backend, Completion, FinishReason, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity, Role,
};

/// The manifest's `[openai]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiOptions {
    /// Base URLs (`…/v1`), tried in turn.
    pub endpoints: Vec<String>,
    /// The model name the endpoints serve.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Deadline of one HTTP request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra attempts after a retryable failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff delay; doubles with each retry (at most 30 s).
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_retries() -> u32 {
    3
}

fn default_backoff() -> Duration {
    Duration::from_millis(500)
}

/// A remote OpenAI-compatible model.
pub struct OpenAiBackend {
    identity: ModelIdentity,
    options: OpenAiOptions,
    api_key: Option<String>,
    client: reqwest::Client,
    next: AtomicUsize,
}

enum Failure {
    Retryable(String, Option<Duration>),
    Fatal(InferenceError),
}

impl OpenAiBackend {
    /// Prepares the client; checks endpoints and the API key variable.
    pub fn new(manifest: &ModelManifest) -> Result<Self, ManifestError> {
        let options = manifest.openai.clone().ok_or_else(|| ManifestError::invalid(manifest, "no [openai] table"))?;
        if options.endpoints.is_empty() {
            return Err(ManifestError::invalid(manifest, "[openai] endpoints is empty"));
        }
        for endpoint in &options.endpoints {
            reqwest::Url::parse(endpoint)
                .map_err(|e| ManifestError::invalid(manifest, format!("endpoint `{endpoint}`: {e}")))?;
        }
        let api_key =
            match &options.api_key_env {
                None => None,
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    ManifestError::invalid(manifest, format!("the API key variable `{var}` is not set"))
                })?),
            };
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| ManifestError::invalid(manifest, format!("cannot create an HTTP client: {e}")))?;
        Ok(Self {
            identity: ModelIdentity::from_manifest(manifest),
            options,
            api_key,
            client,
            next: AtomicUsize::new(0),
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> String {
        self.identity.fail(message)
    }

    async fn body(&self, request: &GenerateRequest) -> Result<Value, InferenceError> {
        let mut messages = Vec::with_capacity(request.messages.len());
        for message in &request.messages {
            let role = match message.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let content = if message.images.is_empty() {
                Value::String(message.text.clone())
            } else {
                let mut parts = Vec::with_capacity(message.images.len() + 1);
                for frame in &message.images {
                    let (bytes, mime) = super::frames::read_frame_bytes(frame)
                        .await
                        .map_err(|e| InferenceError::InvalidRequest(self.fail(e)))?;
                    let url = format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes));
                    parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
                }
                parts.push(json!({ "type": "text", "text": message.text }));
                Value::Array(parts)
            };
            messages.push(json!({ "role": role, "content": content }));
        }
        let s = &request.sampling;
        let mut body = json!({
            "model": self.options.model,
            "messages": messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "n": s.n.max(1),
        });
        if let Some(seed) = s.seed {
            body["seed"] = json!(seed);
        }
        if !s.stop.is_empty() {
            body["stop"] = json!(s.stop);
        }
        Ok(body)
    }

    async fn attempt(&self, endpoint: &str, body: &Value) -> Result<GenerateResponse, Failure> {
        let url = format!("{}/chat/completions", endpoint.trim_end_matches('/'));
        let mut request = self.client.post(&url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| Failure::Retryable(format!("{url}: {e}"), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| Failure::Retryable(format!("{url}: {e}"), None))?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Failure::Retryable(format!("{url}: HTTP {status}: {}", snippet(&text)), retry_after));
        }
        if !status.is_success() {
            return Err(Failure::Fatal(InferenceError::InvalidRequest(
                self.fail(format!("{url}: HTTP {status}: {}", snippet(&text))),
            )));
        }
        parse_response(&text).map_err(|e| Failure::Fatal(InferenceError::Backend(self.fail(format!("{url}: {e}")))))
    }
}

fn snippet(text: &str) -> &str {
    let end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

fn parse_response(text: &str) -> Result<GenerateResponse, String> {
    let parsed: ChatResponse =
        serde_json::from_str(text).map_err(|e| format!("not a chat-completions answer ({e}): {}", snippet(text)))?;
    let usage = parsed.usage.unwrap_or(ChatUsage { prompt_tokens: 0, completion_tokens: 0 });
    let per_choice = usage.completion_tokens / (parsed.choices.len().max(1) as u32);
    let completions = parsed
        .choices
        .into_iter()
        .map(|c| Completion {
            text: c.message.content.unwrap_or_default(),
            finish_reason: if c.finish_reason.as_deref() == Some("length") {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
            completion_tokens: per_choice,
        })
        .collect();
    Ok(GenerateResponse { completions, prompt_tokens: usage.prompt_tokens, compute_ms: None })
}

#[async_trait::async_trait]
impl Backend for OpenAiBackend {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        if request.messages.is_empty() {
            return Err(InferenceError::InvalidRequest(self.fail("no messages")));
        }
        let body = self.body(&request).await?;
        let endpoints = &self.options.endpoints;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        for attempt in 0..=self.options.retries {
            let endpoint = &endpoints[(start + attempt as usize) % endpoints.len()];
            match self.attempt(endpoint, &body).await {
                Ok(response) => return Ok(response),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retryable(message, retry_after)) => {
                    tracing::debug!(model = %self.identity.name, attempt, "retryable failure: {message}");
                    errors.push(message);
                    if attempt < self.options.retries {
                        let backoff =
                            self.options.backoff.saturating_mul(1 << attempt.min(16)).min(Duration::from_secs(30));
                        tokio::time::sleep(retry_after.unwrap_or(backoff).min(Duration::from_secs(60))).await;
                    }
                }
            }
        }
        Err(InferenceError::Unavailable(self.fail(format!(
            "gave up after {} attempt(s): {}",
            errors.len(),
            errors.join("; ")
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices_and_usage() {
        let r = parse_response(
            r#"{"choices":[{"message":{"content":"a"},"finish_reason":"stop"},{"message":{"content":"b"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(r.prompt_tokens, 7);
        assert_eq!(r.completions.len(), 2);
        assert_eq!(r.completions[1].finish_reason, FinishReason::Length);
        assert_eq!(r.completions[0].completion_tokens, 2);
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse_response("<html>").unwrap_err().contains("not a chat-completions answer"));
    }
}
