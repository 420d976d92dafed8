//! Readiness: whether every model of the serving graph answers. Each model
//! is asked for one token at start-up, after each reload, and every
//! `--probe-interval` after that; a probe that fails or takes longer than
//! `--probe-timeout` marks the model as not answering, and `/readyz` turns
//! 503 until a later probe gets an answer. An orchestrator thus stops
//! sending traffic to a replica whose model stopped, and sends it again
//! when the model is back.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::inference::{Backend, ChatMessage, GenerateRequest, Role, Sampling};
use crate::run::Pipeline;

/// One model's latest probe.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelState {
    /// The graph's alias of the model.
    pub(crate) alias: String,
    /// `Ok` when it answered, else why not.
    pub(crate) outcome: Result<(), String>,
    /// When the probe finished.
    pub(crate) checked: SystemTime,
    /// The pipeline version it was probed on.
    pub(crate) version: u64,
}

/// The latest probe of every model of the serving version.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    models: RwLock<Vec<ModelState>>,
}

/// How models are probed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbePolicy {
    /// The time between two rounds of probes.
    pub(crate) interval: Duration,
    /// The longest a model may take to answer a probe.
    pub(crate) timeout: Duration,
}

/// Asks `backend` for one token within `timeout`.
async fn probe(backend: &Arc<dyn Backend>, timeout: Duration) -> Result<(), String> {
    let request = GenerateRequest {
        messages: vec![ChatMessage { role: Role::User, text: "Say OK.".into(), images: vec![] }],
        sampling: Sampling { max_tokens: 1, ..Sampling::default() },
        origin: None,
    };
    match tokio::time::timeout(timeout, backend.generate(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer to a one-token probe within {timeout:?}")),
    }
}

impl Readiness {
    /// Probes every model of `pipeline` (version `version`) and keeps the
    /// outcomes, logging each change of a model's state.
    pub(crate) async fn probe_all(&self, pipeline: &Pipeline, version: u64, timeout: Duration) {
        let mut aliases: Vec<&String> = pipeline.backends.keys().collect();
        aliases.sort();
        let mut states = Vec::with_capacity(aliases.len());
        for alias in aliases {
            let outcome = probe(&pipeline.backends[alias], timeout).await;
            states.push(ModelState { alias: alias.clone(), outcome, checked: SystemTime::now(), version });
        }
        let mut models = self.models.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for state in &states {
            let before = models.iter().find(|m| m.alias == state.alias).map(|m| m.outcome.is_ok());
            match (&state.outcome, before) {
                (Err(error), Some(true) | None) => {
                    tracing::error!(model = %state.alias, "the model does not answer: {error}")
                }
                (Ok(()), Some(false)) => tracing::info!(model = %state.alias, "the model answers again"),
                _ => {}
            }
        }
        *models = states;
    }

    /// The latest probe of each model.
    pub(crate) fn models(&self) -> Vec<ModelState> {
        self.models.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether every model answered its latest probe.
    pub(crate) fn ready(&self) -> bool {
        self.models.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter().all(|m| m.outcome.is_ok())
    }
}

/// Probes the serving version's models every `policy.interval`, for as long
/// as the server runs.
pub(crate) async fn keep_probing(state: Arc<super::ServerState>, policy: ProbePolicy) {
    loop {
        tokio::time::sleep(policy.interval).await;
        let version = state.current();
        state.readiness.probe_all(&version.pipeline, version.number, policy.timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{EchoBackend, EchoOptions, ModelIdentity};

    fn echo(delay_ms: u64) -> Arc<dyn Backend> {
        let options = EchoOptions { delay: Duration::from_millis(delay_ms), ..EchoOptions::default() };
        Arc::new(EchoBackend::new(ModelIdentity::named("e"), options))
    }

    #[tokio::test]
    async fn a_probe_fails_on_a_late_answer_and_passes_on_a_prompt_one() {
        assert_eq!(probe(&echo(0), Duration::from_secs(1)).await, Ok(()));
        let late = probe(&echo(500), Duration::from_millis(20)).await.unwrap_err();
        assert!(late.contains("within"), "{late}");
    }
}
