//! The WebAssembly component host.
//!
//! [`PluginHost`] owns one wasmtime engine (component model, async, pooling
//! allocator, epoch interruption) and the linker that provides the agent's
//! imports. [`PluginHost::load`] turns a `.wasm` file into a
//! [`LoadedPlugin`]: compiled once and cached on disk by content hash,
//! checked against the contract version, pre-instantiated and asked to
//! describe itself. [`PluginHost::run`] makes one call in a fresh store
//! under the node's limits; whatever the guest does (trap, loop, allocate,
//! return garbage) ends as a [`PluginFailure`] for that call, never as a
//! panic or an error of the host.
//!
//! One file per concern: [`bindings`] (generated), [`contract`] (versions),
//! [`cache`] (compile cache), [`sandbox`] (store state, limits, WASI),
//! [`imports`] (host side of the imports), [`services`] (what serves them),
//! [`invoke`] (one call and its failure modes).

mod bindings;
mod cache;
pub mod contract;
mod imports;
mod invoke;
mod sandbox;
pub mod services;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use bindings::Descriptor;
pub use cache::{CacheOutcome, CompileCache};
pub use contract::{CONTRACT_VERSION, ContractError};
pub use invoke::PluginFailure;
pub use sandbox::CallState;
pub use services::{HostServices, NoServices};

use bindings::{Plugin, PluginPre};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Compiled-component cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be alive at once (pooling allocator slots).
    pub instance_slots: u32,
    /// Largest linear memory any node may be granted, in bytes.
    pub max_memory: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { cache_dir: CompileCache::default_dir(), instance_slots: 128, max_memory: 4 << 30 }
    }
}

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file cannot be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable agent component.
    #[error("plugin {path} {source}")]
    Contract {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ContractError,
    },
    /// Compiling, linking or describing failed.
    #[error("plugin {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The engine could not be set up.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

/// A compiled, checked, pre-instantiated agent.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the file, hex.
    pub digest: String,
    /// Its self-description.
    pub descriptor: Descriptor,
    /// Whether compilation was skipped thanks to the cache.
    pub cache: CacheOutcome,
    pre: PluginPre<CallState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("name", &self.descriptor.name).finish()
    }
}

/// The component host; see the module docs.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompileCache,
}

impl PluginHost {
    /// Creates the engine, linker and epoch ticker.
    pub fn new(config: &HostConfig) -> Result<Self, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.instance_slots.max(1);
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots)
            .total_tables(slots.saturating_mul(2))
            .total_stacks(slots)
            .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX));
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        start_epoch_ticker(&engine);
        Ok(Self { engine, linker, cache: CompileCache::new(config.cache_dir.clone()) })
    }

    /// The wasmtime engine (shared by every plugin of this host).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads, checks and describes the agent at `path`.
    pub async fn load(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let started = Instant::now();
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.to_path_buf(), source })?;
        let contract = |source| PluginError::Contract { path: path.to_path_buf(), source };
        let load = |message: String| PluginError::Load { path: path.to_path_buf(), message };
        contract::check_binary(&bytes).map_err(contract)?;
        let (component, cache) =
            self.cache.get_or_compile(&self.engine, &bytes).map_err(|e| load(compile_failure(&e)))?;
        contract::check_exports(&self.engine, &component).map_err(contract)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| load(format!("cannot link: {e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| load(format!("does not match the agent world: {e:#}")))?;
        let mut plugin = LoadedPlugin {
            path: path.to_path_buf(),
            digest: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            descriptor: Descriptor {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                input_schema: String::new(),
                output_schema: String::new(),
            },
            cache,
            pre,
        };
        plugin.descriptor = self.describe(&plugin).await.map_err(|e| load(format!("describe failed: {e}")))?;
        tracing::debug!(path = %path.display(), ?cache, elapsed = ?started.elapsed(), "plugin loaded");
        Ok(plugin)
    }
}

/// Words a compile failure; a component whose linear memory starts larger
/// than the host's slots (a Python agent's interpreter under a small node
/// `memory`) is told what to change.
fn compile_failure(error: &wasmtime::Error) -> String {
    if cache::exceeds_memory_slots(error) {
        format!(
            "needs more linear memory to start than the graph's largest node `memory` allows; raise the node's `memory` ({error:#})"
        )
    } else {
        format!("cannot compile: {error:#}")
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("enf-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Lets `Arc<PluginHost>` be shared by the scheduler and services.
pub type SharedHost = Arc<PluginHost>;
