//! One agent call: a fresh store from the pool, the node's limits (memory
//! cap, epoch deadline for running wasm, an outer timeout for time spent
//! waiting on the host), and the classification of everything that can go
//! wrong into a [`PluginFailure`].

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::Descriptor;
use super::sandbox::CallState;
use super::services::{HostServices, NoServices};
use super::{LoadedPlugin, PluginHost};
use crate::graph::NodeLimits;

/// How long an agent may take to describe itself.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of guest stderr quoted in an error.
const STDERR_QUOTE: usize = 1_000;

/// Why one agent call failed. Each is that call's failure only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    /// The deadline passed (in wasm or while waiting on the host).
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The guest tried to grow memory past its cap.
    #[error("exceeded its memory limit of {}", bytesize::ByteSize(*.0))]
    MemoryLimit(u64),
    /// The guest trapped (panic, abort, out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The agent returned an error.
    #[error("returned an error: {0}")]
    Agent(String),
    /// The output document is larger than the node allows.
    #[error("returned {} of output, over its max_output of {}", bytesize::ByteSize(*.size), bytesize::ByteSize(*.limit))]
    OutputTooLarge {
        /// Output size in bytes.
        size: u64,
        /// The node's limit.
        limit: u64,
    },
    /// Instantiation or the host failed around the call.
    #[error("host error: {0}")]
    Host(String),
}

impl PluginHost {
    fn store(&self, services: Arc<dyn HostServices>, limits: &NodeLimits) -> Store<CallState> {
        let mut store = Store::new(&self.engine, CallState::new(services, limits.memory));
        store.limiter(|state| &mut state.memory);
        // Running wasm yields to the executor at every epoch tick, so a guest
        // that never calls the host (a busy loop) still shares its worker
        // thread and can be cancelled (a dropped item, a request past its
        // deadline); past the node's timeout it traps.
        let (started, timeout) = (std::time::Instant::now(), limits.timeout);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if started.elapsed() >= timeout { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        store
    }

    /// Runs the agent once on `input` under `limits`, with its imports
    /// served by `services`.
    pub async fn run(
        &self,
        plugin: &LoadedPlugin,
        services: Arc<dyn HostServices>,
        limits: &NodeLimits,
        input: &str,
    ) -> Result<String, PluginFailure> {
        let mut store = self.store(services, limits);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.enf_agent_agent().call_run(&mut store, input).await
        };
        let outcome = tokio::time::timeout(limits.timeout, call).await;
        match outcome {
            Err(_) => Err(PluginFailure::Timeout(limits.timeout)),
            Ok(Err(error)) => Err(classify(error, &store, limits)),
            // An agent whose runtime turns a refused memory growth into an
            // error of its own (CPython's MemoryError) failed for its cap.
            Ok(Ok(Err(message))) if store.data().memory.was_hit() => {
                tracing::debug!(%message, "agent error after its memory cap was hit");
                Err(PluginFailure::MemoryLimit(limits.memory))
            }
            Ok(Ok(Err(message))) => Err(PluginFailure::Agent(message)),
            Ok(Ok(Ok(output))) if output.len() as u64 > limits.max_output => {
                Err(PluginFailure::OutputTooLarge { size: output.len() as u64, limit: limits.max_output })
            }
            Ok(Ok(Ok(output))) => Ok(output),
        }
    }

    /// Asks the agent to describe itself (imports refused, short deadline).
    pub async fn describe(&self, plugin: &LoadedPlugin) -> Result<Descriptor, PluginFailure> {
        let limits = NodeLimits { timeout: DESCRIBE_TIMEOUT, memory: 64 << 20, ..NodeLimits::default() };
        let mut store = self.store(Arc::new(NoServices), &limits);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.enf_agent_agent().call_describe(&mut store).await
        };
        match tokio::time::timeout(limits.timeout, call).await {
            Err(_) => Err(PluginFailure::Timeout(limits.timeout)),
            Ok(Err(error)) => Err(classify(error, &store, &limits)),
            Ok(Ok(descriptor)) => Ok(descriptor),
        }
    }
}

/// Turns a wasmtime error of a call into the failure it stands for.
fn classify(error: wasmtime::Error, store: &Store<CallState>, limits: &NodeLimits) -> PluginFailure {
    let state = store.data();
    if state.memory.was_hit() {
        return PluginFailure::MemoryLimit(limits.memory);
    }
    let stderr = state
        .stderr_text()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join(" | ");
    let quoted = if stderr.is_empty() {
        String::new()
    } else {
        let start = stderr.len().saturating_sub(STDERR_QUOTE);
        let start = (start..stderr.len()).find(|&i| stderr.is_char_boundary(i)).unwrap_or(stderr.len());
        format!(" — agent stderr: {}", &stderr[start..])
    };
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginFailure::Timeout(limits.timeout),
        Some(Trap::UnreachableCodeReached) => {
            PluginFailure::Trap(format!("the agent panicked or aborted (wasm `unreachable`){quoted}"))
        }
        Some(Trap::StackOverflow) => PluginFailure::Trap(format!("stack overflow{quoted}")),
        Some(trap) => PluginFailure::Trap(format!("{trap}{quoted}")),
        None => PluginFailure::Host(format!("{error:#}{quoted}")),
    }
}
