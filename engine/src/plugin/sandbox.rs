//! The per-call sandbox: the store state of one agent call, its memory
//! limiter and its WASI context, which grants nothing (no preopened
//! directories, environment, arguments, stdin/stdout or network). The
//! guest's stderr goes to a small in-memory buffer so that a panicking agent's
//! message can be attached to its error.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::services::HostServices;

/// Bytes of guest stderr kept per call.
const STDERR_CAPACITY: usize = 16 << 10;
/// Log lines an agent may write per call before the rest are dropped.
pub const LOG_LINES_PER_CALL: u32 = 1_000;

/// Caps linear memory and remembers whether the cap was hit, so a failed
/// allocation can be reported as what it is.
#[derive(Debug)]
pub struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl MemoryCap {
    /// A cap of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { limit: usize::try_from(limit).unwrap_or(usize::MAX), hit: false }
    }

    /// Whether the guest tried to grow past the cap.
    pub fn was_hit(&self) -> bool {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Store data of one agent call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory cap of this call.
    pub memory: MemoryCap,
    /// What the agent's imports are served by.
    pub services: Arc<dyn HostServices>,
    stderr: MemoryOutputPipe,
    /// Log lines left before further lines are dropped.
    pub log_budget: u32,
}

impl CallState {
    /// A fresh state with a deny-everything WASI context.
    pub fn new(services: Arc<dyn HostServices>, memory_limit: u64) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_limit),
            services,
            stderr,
            log_budget: LOG_LINES_PER_CALL,
        }
    }

    /// What the guest wrote to stderr (e.g. a panic message), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).trim().to_string()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
