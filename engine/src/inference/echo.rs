//! The `echo` backend: deterministic replies computed from the request.
//!
//! It exists for orchestration tests and dry runs of a graph (it exercises
//! frames, sampling, n samples and delays without a model); it predicts
//! nothing and is never what a graph should use for real results.

use std::time::Duration;

use serde::Deserialize;

use super::{
    Backend, Completion, FinishReason, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity, Role,
};

/// Options of the echo backend (the manifest's `[echo]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EchoOptions {
    /// Reply template: `{prompt}` is the last user message, `{images}` the
    /// number of frames in the request, `{sample}` the sample index.
    pub reply: String,
    /// Time to wait before answering, e.g. `"250ms"`.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
}

impl Default for EchoOptions {
    fn default() -> Self {
        Self { reply: "echo: {prompt}".into(), delay: Duration::ZERO }
    }
}

/// Deterministic backend; see the module docs.
pub struct EchoBackend {
    identity: ModelIdentity,
    options: EchoOptions,
}

impl EchoBackend {
    /// Creates an echo backend.
    pub fn new(identity: ModelIdentity, options: EchoOptions) -> Self {
        Self { identity, options }
    }
}

fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[async_trait::async_trait]
impl Backend for EchoBackend {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        if request.messages.is_empty() {
            return Err(InferenceError::InvalidRequest("no messages".into()));
        }
        if !self.options.delay.is_zero() {
            tokio::time::sleep(self.options.delay).await;
        }
        let prompt =
            request.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.text.as_str()).unwrap_or_default();
        let images: usize = request.messages.iter().map(|m| m.images.len()).sum();
        let prompt_tokens = request.messages.iter().map(|m| count_tokens(&m.text)).sum();
        let max_tokens = request.sampling.max_tokens as usize;
        let completions = (0..request.sampling.n.max(1))
            .map(|sample| {
                let text = self
                    .options
                    .reply
                    .replace("{prompt}", prompt)
                    .replace("{images}", &images.to_string())
                    .replace("{sample}", &sample.to_string());
                let words: Vec<&str> = text.split_whitespace().collect();
                let (text, finish_reason) = if words.len() > max_tokens {
                    (words[..max_tokens].join(" "), FinishReason::Length)
                } else {
                    (text, FinishReason::Stop)
                };
                Completion { completion_tokens: count_tokens(&text), text, finish_reason }
            })
            .collect();
        Ok(GenerateResponse { completions, prompt_tokens, compute_ms: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ChatMessage, Sampling};

    fn request(text: &str, n: u32, max_tokens: u32) -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: text.into(), images: vec![] }],
            sampling: Sampling { n, max_tokens, ..Sampling::default() },
            origin: None,
        }
    }

    #[tokio::test]
    async fn echoes_the_prompt_once_per_sample() {
        let backend = EchoBackend::new(
            ModelIdentity::named("e"),
            EchoOptions { reply: "{sample}: {prompt}".into(), ..EchoOptions::default() },
        );
        let response = backend.generate(request("hello there", 3, 100)).await.unwrap();
        let texts: Vec<_> = response.completions.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["0: hello there", "1: hello there", "2: hello there"]);
        assert_eq!(response.prompt_tokens, 2);
    }

    #[tokio::test]
    async fn truncates_at_max_tokens() {
        let backend = EchoBackend::new(ModelIdentity::named("e"), EchoOptions::default());
        let response = backend.generate(request("a b c d e", 1, 3)).await.unwrap();
        assert_eq!(response.completions[0].text, "echo: a b");
        assert_eq!(response.completions[0].finish_reason, FinishReason::Length);
    }

    #[tokio::test]
    async fn refuses_an_empty_conversation() {
        let backend = EchoBackend::new(ModelIdentity::named("e"), EchoOptions::default());
        let err =
            backend.generate(GenerateRequest { messages: vec![], sampling: Sampling::default(), origin: None }).await;
        assert!(matches!(err, Err(InferenceError::InvalidRequest(_))));
    }
}
