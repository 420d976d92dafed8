//! Model manifests (`models/*.toml`): which backend serves a model, with
//! what defaults. A graph's `[models.ALIAS]` entry points at one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::echo::{EchoBackend, EchoOptions};
use super::{Backend, Sampling};

/// Which backend serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Deterministic replies computed from the prompt; for orchestration
    /// tests and dry runs, not for predictions.
    Echo,
}

/// A parsed model manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// The model's name, used in logs, outputs and cache keys.
    pub name: String,
    /// Which backend serves it.
    pub backend: BackendKind,
    /// Whether it accepts frames.
    #[serde(default)]
    pub images: bool,
    /// Sampling used when an agent asks for none.
    #[serde(default)]
    pub sampling: Sampling,
    /// Options of the `echo` backend.
    #[serde(default)]
    pub echo: Option<EchoOptions>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("model manifest {path}: {source}")]
    Read {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("model manifest {path}: {message}")]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
}

impl ModelManifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let manifest: ModelManifest = toml::from_str(text)
            .map_err(|e| invalid(crate::graph::describe_toml_error(text, &e)))?;
        if manifest.sampling.n == 0 {
            return Err(invalid("sampling.n must be at least 1".into()));
        }
        if manifest.backend != BackendKind::Echo && manifest.echo.is_some() {
            return Err(invalid(
                "an [echo] table only applies to backend = \"echo\"".into(),
            ));
        }
        Ok(manifest)
    }
}

/// Starts the backend a manifest names.
pub fn start_backend(manifest: &ModelManifest) -> Result<Arc<dyn Backend>, ManifestError> {
    match manifest.backend {
        BackendKind::Echo => Ok(Arc::new(EchoBackend::new(
            manifest.name.clone(),
            manifest.sampling.clone(),
            manifest.images,
            manifest.echo.clone().unwrap_or_default(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_reported_with_its_line() {
        let err = ModelManifest::parse(
            Path::new("m.toml"),
            "name = \"x\"\nbackend = \"echo\"\ncolour = 1\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("m.toml"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("colour"), "{text}");
    }

    #[test]
    fn unknown_backend_is_refused() {
        let err = ModelManifest::parse(Path::new("m.toml"), "name = \"x\"\nbackend = \"gpt\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("gpt"), "{err}");
    }

    #[test]
    fn zero_samples_is_refused() {
        let err = ModelManifest::parse(
            Path::new("m.toml"),
            "name = \"x\"\nbackend = \"echo\"\n[sampling]\nn = 0\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("sampling.n"), "{err}");
    }
}
