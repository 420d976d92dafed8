//! The host side of the agent's imports (`enf:agent/inference` and
//! `enf:agent/host`): translate WIT values to host types, apply the
//! per-call caps, and hand the work to the call's [`HostServices`].

use super::bindings::{host, inference};
use super::sandbox::CallState;
use super::services::{AgentCallError, AgentInferenceError, AgentMessage, AgentRequest, FrameRef, LogLevel};
use crate::inference::{FinishReason, Role, Sampling};

/// Longest log line kept; longer lines are cut.
const MAX_LOG_LINE: usize = 4 << 10;

fn role(role: inference::Role) -> Role {
    match role {
        inference::Role::System => Role::System,
        inference::Role::User => Role::User,
        inference::Role::Assistant => Role::Assistant,
    }
}

fn sampling(s: inference::Sampling) -> Sampling {
    Sampling {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        max_tokens: s.max_tokens,
        n: s.n,
        seed: s.seed,
        stop: s.stop,
    }
}

fn request(request: inference::GenerateRequest) -> AgentRequest {
    AgentRequest {
        model: request.model,
        messages: request
            .messages
            .into_iter()
            .map(|m| AgentMessage {
                role: role(m.role),
                text: m.text,
                images: m.images.into_iter().map(|i| FrameRef { video_id: i.video_id, frame: i.frame }).collect(),
            })
            .collect(),
        sampling: request.sampling.map(sampling),
    }
}

impl inference::Host for CallState {
    async fn generate(
        &mut self,
        req: inference::GenerateRequest,
    ) -> wasmtime::Result<Result<inference::GenerateResponse, inference::InferenceError>> {
        let services = self.services.clone();
        Ok(match services.generate(request(req)).await {
            Ok(answer) => Ok(inference::GenerateResponse {
                completions: answer
                    .response
                    .completions
                    .into_iter()
                    .map(|c| inference::Completion {
                        text: c.text,
                        finish_reason: match c.finish_reason {
                            FinishReason::Stop => inference::FinishReason::Stop,
                            FinishReason::Length => inference::FinishReason::Length,
                        },
                        completion_tokens: c.completion_tokens,
                    })
                    .collect(),
                prompt_tokens: answer.response.prompt_tokens,
                model: answer.model,
            }),
            Err(error) => Err(inference_error(error)),
        })
    }

    async fn describe_model(
        &mut self,
        model: Option<String>,
    ) -> wasmtime::Result<Result<inference::ModelInfo, inference::InferenceError>> {
        Ok(self
            .services
            .model_info(model.as_deref())
            .map(|info| inference::ModelInfo { name: info.name, images: info.images, context: info.context })
            .map_err(inference_error))
    }
}

fn inference_error(error: AgentInferenceError) -> inference::InferenceError {
    match error {
        AgentInferenceError::UnknownModel(m) => inference::InferenceError::UnknownModel(m),
        AgentInferenceError::InvalidRequest(m) => inference::InferenceError::InvalidRequest(m),
        AgentInferenceError::Backend(m) => inference::InferenceError::Backend(m),
    }
}

impl host::Host for CallState {
    async fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        if self.log_budget == 0 {
            return Ok(());
        }
        self.log_budget -= 1;
        let level = match level {
            host::Level::Trace => LogLevel::Trace,
            host::Level::Debug => LogLevel::Debug,
            host::Level::Info => LogLevel::Info,
            host::Level::Warn => LogLevel::Warn,
            host::Level::Error => LogLevel::Error,
        };
        if self.log_budget == 0 {
            self.services.log(LogLevel::Warn, "log budget of this call used up; further lines are dropped");
            return Ok(());
        }
        let mut line = message;
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        self.services.log(level, &line);
        Ok(())
    }

    async fn call_agent(&mut self, node: String, input: String) -> wasmtime::Result<Result<String, host::CallError>> {
        let services = self.services.clone();
        Ok(services.call_agent(node, input).await.map_err(|e| match e {
            AgentCallError::NotAllowed(m) => host::CallError::NotAllowed(m),
            AgentCallError::Failed(m) => host::CallError::Failed(m),
        }))
    }
}
