//! [`BackendRegistry`]: loaded backends keyed by model identity, shared by
//! every pipeline built from it. A model is loaded once however many graph
//! aliases (or reloaded graphs) name it, and a caller can put its own
//! backend behind an identity — a trainer's policy behind the model a node
//! uses — without the pipeline knowing.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backend, ManifestError, ModelManifest, start_backend};

/// Backends by model identity (see the module docs).
#[derive(Default)]
pub struct BackendRegistry {
    loaded: tokio::sync::Mutex<HashMap<String, Arc<dyn Backend>>>,
}

impl BackendRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The identity of the model a manifest describes: its name, its file
    /// and everything it says (a changed manifest is another model).
    pub fn identity(manifest: &ModelManifest) -> String {
        let path = manifest.path.canonicalize().unwrap_or_else(|_| manifest.path.clone());
        format!("{}@{}#{}", manifest.name, path.display(), manifest.fingerprint)
    }

    /// Serves `manifest`'s model with `backend` from now on.
    pub async fn put(&self, manifest: &ModelManifest, backend: Arc<dyn Backend>) {
        self.loaded.lock().await.insert(Self::identity(manifest), backend);
    }

    /// The backend of `manifest`'s model, started (weights loaded) on first use.
    pub async fn get_or_start(&self, manifest: &ModelManifest) -> Result<Arc<dyn Backend>, ManifestError> {
        let identity = Self::identity(manifest);
        // Held across the load: two pipelines asking for one model load it once.
        let mut loaded = self.loaded.lock().await;
        if let Some(backend) = loaded.get(&identity) {
            return Ok(backend.clone());
        }
        let backend = start_backend(manifest).await?;
        loaded.insert(identity, backend.clone());
        Ok(backend)
    }

    /// Forgets every model but those of `manifests`; returns how many were
    /// forgotten. A forgotten model's weights are freed when the last
    /// pipeline holding it is dropped.
    pub async fn retain(&self, manifests: &[ModelManifest]) -> usize {
        let keep: std::collections::HashSet<String> = manifests.iter().map(Self::identity).collect();
        let mut loaded = self.loaded.lock().await;
        let before = loaded.len();
        loaded.retain(|identity, _| keep.contains(identity));
        before - loaded.len()
    }

    /// How many models are loaded.
    pub async fn len(&self) -> usize {
        self.loaded.lock().await.len()
    }

    /// Whether no model is loaded.
    pub async fn is_empty(&self) -> bool {
        self.loaded.lock().await.is_empty()
    }
}

/// Gives the memory the allocator holds free back to the system. A model
/// loaded on one thread and freed later leaves its pages in that thread's
/// malloc arena, where a model loaded on another thread cannot reuse them:
/// without this, each reload of a changed model grew a server by most of a
/// model's size. glibc only (`malloc_trim`); elsewhere it does nothing.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no
    // precondition and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ChatMessage, EchoBackend, GenerateRequest, ModelIdentity, Role, Sampling};

    fn manifest(dir: &std::path::Path, name: &str, extra: &str) -> ModelManifest {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, format!("name = \"{name}\"\nbackend = \"echo\"\n{extra}")).unwrap();
        ModelManifest::load(&path).unwrap()
    }

    #[tokio::test]
    async fn one_backend_per_identity_and_a_put_backend_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackendRegistry::new();
        let a = manifest(dir.path(), "a", "");
        let first = registry.get_or_start(&a).await.unwrap();
        let again = registry.get_or_start(&a).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a model is started once");
        assert_eq!(registry.len().await, 1);
        // A changed manifest is another model.
        let changed = manifest(dir.path(), "a", "[echo]\nreply = \"x\"\n");
        assert_ne!(BackendRegistry::identity(&changed), BackendRegistry::identity(&a));

        // A policy put behind an identity answers for it.
        let b = manifest(dir.path(), "b", "");
        let policy: Arc<dyn Backend> = Arc::new(EchoBackend::new(ModelIdentity::named("policy"), Default::default()));
        registry.put(&b, policy.clone()).await;
        let served = registry.get_or_start(&b).await.unwrap();
        assert!(Arc::ptr_eq(&served, &policy));
        // Models no graph names any more are forgotten.
        assert_eq!(registry.retain(std::slice::from_ref(&b)).await, 1);
        assert_eq!(registry.len().await, 1);
        assert!(Arc::ptr_eq(&registry.get_or_start(&b).await.unwrap(), &policy));
        let request = GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: "hi".into(), images: vec![] }],
            sampling: Sampling::default(),
            origin: None,
        };
        assert!(served.generate(request).await.is_ok());
    }
}
