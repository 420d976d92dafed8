//! On-disk cache of compiled components, keyed by the SHA-256 of the
//! component's bytes and by the engine's compatibility hash (wasmtime
//! version and compilation settings). A second run deserializes instead of
//! compiling; a replaced `.wasm` has a new hash and is compiled afresh.
//!
//! Deserializing trusts the cache: it is a directory private to the user
//! (`$XDG_CACHE_HOME/enf/components` by default). An entry that fails to
//! load (corrupt, stale) is compiled again and overwritten.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled (and stored, when the cache is enabled).
    Compiled,
}

impl CompileCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The default location: `$ENF_CACHE_DIR`, else the user's cache directory + `enf`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("ENF_CACHE_DIR").map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("enf")))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hex::encode(Sha256::digest(bytes));
        Some(dir.join("components").join(format!("{digest}-{:016x}.cwasm", hasher.finish())))
    }

    /// Returns the compiled component for `bytes`, from the cache when possible.
    pub fn get_or_compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, CacheOutcome)> {
        let entry = self.entry(engine, bytes);
        if let Some(path) = entry.as_deref().filter(|p| p.is_file()) {
            // SAFETY: the cache directory holds only artifacts this host
            // serialized; see the module docs for the trust assumption.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                // The entry is fine; this host's memory slots are too small
                // for it, and compiling again would fail the same way.
                Err(e) if exceeds_memory_slots(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable compile-cache entry: {e}")
                }
            }
        }
        let component = Component::from_binary(engine, bytes)?;
        if let Some(path) = entry
            && let Err(e) = store(&path, &component)
        {
            tracing::warn!(path = %path.display(), "cannot write compile cache: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Whether loading or compiling a component failed because its linear memory
/// starts larger than the host's pooled memory slots (wasmtime says so only
/// in its error text).
pub(super) fn exceeds_memory_slots(error: &wasmtime::Error) -> bool {
    let detail = format!("{error:#}");
    detail.contains("pooling allocator") && detail.contains("exceeds the limit")
}

fn store(path: &Path, component: &Component) -> Result<(), String> {
    let dir = path.parent().ok_or("cache entry has no directory")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    file.write_all(&bytes).map_err(|e| e.to_string())?;
    file.persist(path).map_err(|e| e.to_string())?;
    Ok(())
}
