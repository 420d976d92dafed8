//! [`InFlightBackend`]: counts a backend's calls in flight. A call is
//! counted from its start until its future completes or is dropped, so a
//! call abandoned by a timeout, a deadline or a client that hung up stops
//! being counted the moment it is cancelled — what `enf serve`'s
//! `enf_model_calls_in_flight` gauge shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Backend, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity};

/// A backend whose calls in flight are counted (see the module docs).
pub struct InFlightBackend {
    inner: Arc<dyn Backend>,
    calls: Arc<AtomicUsize>,
}

/// Decrements the count when the call ends, however it ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlightBackend {
    /// Counts the calls made through `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self { inner, calls: Arc::new(AtomicUsize::new(0)) }
    }

    /// The live count of calls in flight.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }
}

#[async_trait::async_trait]
impl Backend for InFlightBackend {
    fn identity(&self) -> &ModelIdentity {
        self.inner.identity()
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(self.calls.clone());
        self.inner.generate(request).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inference::{ChatMessage, EchoBackend, Role, Sampling, echo::EchoOptions};

    #[tokio::test]
    async fn a_call_is_counted_until_it_returns_or_is_dropped() {
        let slow = EchoOptions { delay: Duration::from_secs(30), ..EchoOptions::default() };
        let backend = Arc::new(InFlightBackend::new(Arc::new(EchoBackend::new(ModelIdentity::named("e"), slow))));
        let calls = backend.counter();
        let request = GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: "hi".into(), images: vec![] }],
            sampling: Sampling::default(),
            origin: None,
        };
        let call = tokio::spawn({
            let (backend, request) = (backend.clone(), request.clone());
            async move { backend.generate(request).await }
        });
        while calls.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        call.abort();
        let _ = call.await;
        assert_eq!(calls.load(Ordering::Relaxed), 0, "an abandoned call stops being counted");
        let quick = InFlightBackend::new(Arc::new(EchoBackend::new(ModelIdentity::named("e"), EchoOptions::default())));
        assert!(quick.generate(request).await.is_ok());
        assert_eq!(quick.counter().load(Ordering::Relaxed), 0);
    }
}
