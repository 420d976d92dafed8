//! [`ResilientBackend`]: waits out a backend that is down instead of failing
//! the request. An [`InferenceError::Unavailable`] — a local engine that
//! died (mistral.rs restarts it on the next request) or a remote endpoint
//! that drops connections — is an infrastructure failure, not the agent's:
//! the request is sent again after a bounded exponential backoff, so a
//! node's own `retries` are not burned while the engine restarts. When the
//! budget is spent the request fails with one error naming the backend, how
//! long it waited, the last failure and the panic behind it, if any.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::incidents;
use super::{Backend, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity};

/// How long and how often an unavailable backend is tried again: a model
/// manifest's `[outage]` table (every field optional).
///
/// ```toml
/// [outage]
/// budget = "2m"          # the longest a request waits in all ("0s": fail at once)
/// first_delay = "250ms"  # doubles with each retry…
/// max_delay = "8s"       # …up to this
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// The first wait; each further wait doubles, up to `max_delay`.
    #[serde(with = "humantime_serde")]
    pub first_delay: Duration,
    /// The longest single wait.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// The longest a request waits in all before it fails.
    #[serde(with = "humantime_serde")]
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            budget: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        self.first_delay.saturating_mul(1u32 << retry.min(20)).min(self.max_delay)
    }
}

/// Counts of what the backend went through (for run summaries).
#[derive(Debug, Default)]
pub struct OutageStats {
    unavailable: AtomicU64,
    recovered: AtomicU64,
    gave_up: AtomicU64,
}

impl OutageStats {
    /// Failed attempts that were retried or gave up.
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }
    /// Requests that succeeded after waiting.
    pub fn recovered(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }
    /// Requests that failed after the whole budget.
    pub fn gave_up(&self) -> u64 {
        self.gave_up.load(Ordering::Relaxed)
    }
}

/// A backend whose outages are waited out (see the module docs).
pub struct ResilientBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    stats: Arc<OutageStats>,
}

impl ResilientBackend {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> Self {
        incidents::install_panic_recorder();
        Self { inner, policy, stats: Arc::new(OutageStats::default()) }
    }

    /// What this backend went through so far.
    pub fn stats(&self) -> Arc<OutageStats> {
        self.stats.clone()
    }
}

#[async_trait::async_trait]
impl Backend for ResilientBackend {
    fn identity(&self) -> &ModelIdentity {
        self.inner.identity()
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        let started = Instant::now();
        let mark = incidents::panic_mark();
        let mut retry = 0u32;
        loop {
            match self.inner.generate(request.clone()).await {
                Err(InferenceError::Unavailable(message)) => {
                    self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    let delay = self.policy.delay(retry);
                    if started.elapsed() + delay > self.policy.budget {
                        self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
                        let cause = match incidents::panics_since(mark) {
                            Some(panic) => format!("; the engine panicked: {panic}"),
                            None => String::new(),
                        };
                        return Err(InferenceError::Unavailable(format!(
                            "model `{}` unavailable: gave up after {} attempt(s) over {:.1}s: {message}{cause}",
                            self.inner.model_name(),
                            retry + 1,
                            started.elapsed().as_secs_f64()
                        )));
                    }
                    if retry == 0 {
                        tracing::warn!(model = %self.inner.model_name(), "model unavailable, waiting for it to come back: {message}");
                    } else {
                        tracing::debug!(model = %self.inner.model_name(), retry, "still unavailable: {message}");
                    }
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                result => {
                    if retry > 0 && result.is_ok() {
                        self.stats.recovered.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(model = %self.inner.model_name(), retries = retry, "model answered again");
                    }
                    return result;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ChatMessage, Completion, FinishReason, Role, Sampling};
    use std::sync::atomic::AtomicU32;

    /// Unavailable for the first `outage` calls, then answers (or fails with
    /// a model error when `broken`).
    struct Flaky {
        identity: ModelIdentity,
        outage: u32,
        broken: bool,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Backend for Flaky {
        fn identity(&self) -> &ModelIdentity {
            &self.identity
        }
        async fn generate(&self, _: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call == 0 && self.outage == u32::MAX {
                // The engine dies for good: its panic is recorded, requests see a closed channel.
                incidents::record_panic(
                    "resilient-test: shape mismatch".into(),
                    Some("kv_cache/mod.rs:329:54".into()),
                    None,
                );
            }
            if call < self.outage {
                return Err(InferenceError::Unavailable("channel closed".into()));
            }
            if self.broken {
                return Err(InferenceError::Backend("bad weights".into()));
            }
            Ok(GenerateResponse {
                completions: vec![Completion {
                    text: "ok".into(),
                    finish_reason: FinishReason::Stop,
                    completion_tokens: 1,
                }],
                prompt_tokens: 1,
                compute_ms: None,
            })
        }
    }

    fn flaky(outage: u32, broken: bool) -> Arc<Flaky> {
        Arc::new(Flaky { identity: ModelIdentity::named("flaky"), outage, broken, calls: AtomicU32::new(0) })
    }

    fn request() -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: "hi".into(), images: Vec::new() }],
            sampling: Sampling::default(),
            origin: None,
        }
    }

    fn policy(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            budget: Duration::from_millis(budget_ms),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = policy(1_000);
        let delays: Vec<u128> = (0..5).map(|r| p.delay(r).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 40, 40]);
    }

    #[tokio::test]
    async fn waits_out_an_outage_with_growing_delays() {
        let inner = flaky(3, false);
        let backend = ResilientBackend::new(inner.clone(), policy(5_000));
        let started = Instant::now();
        let response = backend.generate(request()).await.expect("answers after the outage");
        assert_eq!(response.completions[0].text, "ok");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
        // 10 + 20 + 40 ms of backoff, not three instant retries.
        assert!(started.elapsed() >= Duration::from_millis(70), "{:?}", started.elapsed());
        assert_eq!(backend.stats().recovered(), 1);
        assert_eq!(backend.stats().unavailable(), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_budget_naming_the_model_and_the_panic() {
        let backend = ResilientBackend::new(flaky(u32::MAX, false), policy(150));
        let started = Instant::now();
        let error = backend.generate(request()).await.expect_err("never comes back");
        let text = error.to_string();
        assert!(matches!(error, InferenceError::Unavailable(_)));
        assert!(text.contains("model `flaky` unavailable"), "{text}");
        assert!(text.contains("channel closed"), "{text}");
        // The latest panic of the process is named (other tests may panic meanwhile).
        assert!(text.contains("; the engine panicked: "), "{text}");
        assert!(incidents::panics().iter().any(|p| p.message == "resilient-test: shape mismatch"));
        assert!(started.elapsed() <= Duration::from_millis(400), "{:?}", started.elapsed());
        assert_eq!(backend.stats().gave_up(), 1);
    }

    #[tokio::test]
    async fn model_errors_pass_through_at_once() {
        let inner = flaky(0, true);
        let backend = ResilientBackend::new(inner.clone(), policy(5_000));
        let error = backend.generate(request()).await.expect_err("a model error is not an outage");
        assert!(matches!(error, InferenceError::Backend(_)), "{error}");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    }
}
