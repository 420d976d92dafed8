//! Model manifests (`models/*.toml`): which backend serves a model, from
//! where, with what defaults. A graph's `[models.ALIAS]` entry points at one.
//!
//! ```toml
//! name = "qwen2.5-vl-7b"
//! backend = "mistralrs"        # echo | mistralrs | openai
//! images = true                # accepts video frames
//!
//! [mistralrs]
//! source = { dir = "qwen2.5-vl-7b-instruct" }   # or { gguf = "x.gguf" } or { hub = "Qwen/…" }
//! architecture = "qwen2.5-vl"  # qwen2.5-vl | llama | qwen2 | mistral
//! dtype = "auto"               # auto | f32 | bf16 | f16
//! device = "cuda"              # cpu | cuda
//! isq = "q4k"                  # optional in-situ quantization
//!
//! [sampling]                   # defaults for agents that ask for none
//! temperature = 0.0
//! max_tokens = 512
//!
//! [outage]                     # waiting out a backend that is down (optional)
//! budget = "2m"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::echo::EchoOptions;
use super::mistralrs::MistralRsOptions;
use super::openai::OpenAiOptions;
use super::{RetryPolicy, Sampling};

/// Which backend serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Deterministic replies computed from the prompt; for orchestration
    /// tests and dry runs, not for predictions.
    Echo,
    /// A local model run by mistral.rs (CPU or CUDA).
    Mistralrs,
    /// A remote OpenAI-compatible chat endpoint.
    Openai,
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
    /// Longest prompt in tokens; longer prompts are refused (default: the model's own limit).
    #[serde(default)]
    pub context: Option<usize>,
    /// Sampling used when an agent asks for none.
    #[serde(default)]
    pub sampling: Sampling,
    /// Options of the `echo` backend.
    #[serde(default)]
    pub echo: Option<EchoOptions>,
    /// Options of the `mistralrs` backend.
    #[serde(default)]
    pub mistralrs: Option<MistralRsOptions>,
    /// Options of the `openai` backend.
    #[serde(default)]
    pub openai: Option<OpenAiOptions>,
    /// How long requests wait for the backend when it is down.
    #[serde(default)]
    pub outage: RetryPolicy,
    /// The manifest file (set on load).
    #[serde(skip)]
    pub path: PathBuf,
    /// SHA-256 (hex, first 16 digits) of the manifest's text as loaded: a
    /// changed manifest is another model.
    #[serde(skip)]
    pub fingerprint: String,
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
    /// The file is not a valid manifest, or the model it names cannot be used.
    #[error("model manifest {path}: {message}")]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        message: String,
    },
}

impl ManifestError {
    /// An `Invalid` error for `manifest`.
    pub fn invalid(manifest: &ModelManifest, message: impl std::fmt::Display) -> Self {
        Self::Invalid { path: manifest.path.clone(), message: message.to_string() }
    }
}

impl ModelManifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; relative paths in it resolve against `path`'s directory.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid { path: path.to_path_buf(), message };
        let mut manifest: ModelManifest =
            toml::from_str(text).map_err(|e| invalid(crate::problems::describe_toml_error(text, &e)))?;
        manifest.path = path.to_path_buf();
        manifest.fingerprint = {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
        };
        if manifest.sampling.n == 0 {
            return Err(invalid("sampling.n must be at least 1".into()));
        }
        let tables = [
            (BackendKind::Echo, "echo", manifest.echo.is_some()),
            (BackendKind::Mistralrs, "mistralrs", manifest.mistralrs.is_some()),
            (BackendKind::Openai, "openai", manifest.openai.is_some()),
        ];
        for (kind, table, present) in tables {
            if present && manifest.backend != kind {
                return Err(invalid(format!("a [{table}] table only applies to backend = \"{table}\"")));
            }
            if !present && manifest.backend == kind && kind != BackendKind::Echo {
                return Err(invalid(format!("backend = \"{table}\" needs a [{table}] table")));
            }
        }
        Ok(manifest)
    }

    /// A path from the manifest, resolved against the manifest's directory.
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(relative)
    }

    /// What a model's answers depend on, as text: the manifest's name and
    /// fingerprint and, for weights on disk, the name, size and modification
    /// time of each weight, config and tokenizer file — so weights written
    /// again under an unchanged manifest (`enf train --out` into the same
    /// directory) count as another model. Node memoisation keys on it.
    pub fn answer_identity(&self) -> String {
        let mut identity = format!("{}#{}", self.name, self.fingerprint);
        let location = self.mistralrs.as_ref().and_then(|options| match &options.source {
            super::mistralrs::ModelSource::Dir(dir) => Some(self.resolve(dir)),
            super::mistralrs::ModelSource::Gguf(file) => Some(self.resolve(file)),
            super::mistralrs::ModelSource::Hub(_) => None,
        });
        if let Some(location) = location {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&location) {
                Ok(entries) => entries.filter_map(|entry| entry.ok().map(|e| e.path())).collect(),
                Err(_) => vec![location.clone()],
            };
            files.sort();
            for file in files {
                let stamp = std::fs::metadata(&file).ok().map(|meta| {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    (meta.len(), modified)
                });
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                identity.push_str(&format!("|{name}:{stamp:?}"));
            }
        }
        identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_reported_with_its_line() {
        let err =
            ModelManifest::parse(Path::new("m.toml"), "name = \"x\"\nbackend = \"echo\"\ncolour = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("m.toml"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("colour"), "{text}");
    }

    #[test]
    fn unknown_backend_is_refused() {
        let err = ModelManifest::parse(Path::new("m.toml"), "name = \"x\"\nbackend = \"gpt\"\n").unwrap_err();
        assert!(err.to_string().contains("gpt"), "{err}");
    }

    #[test]
    fn zero_samples_is_refused() {
        let err = ModelManifest::parse(Path::new("m.toml"), "name = \"x\"\nbackend = \"echo\"\n[sampling]\nn = 0\n")
            .unwrap_err();
        assert!(err.to_string().contains("sampling.n"), "{err}");
    }

    #[test]
    fn a_backend_needs_its_table_and_only_its_table() {
        let missing = ModelManifest::parse(Path::new("m.toml"), "name = \"x\"\nbackend = \"mistralrs\"\n").unwrap_err();
        assert!(missing.to_string().contains("needs a [mistralrs] table"), "{missing}");
        let wrong = ModelManifest::parse(
            Path::new("m.toml"),
            "name = \"x\"\nbackend = \"echo\"\n[openai]\nendpoints = [\"http://x\"]\nmodel = \"m\"\n",
        )
        .unwrap_err();
        assert!(wrong.to_string().contains("[openai] table only applies"), "{wrong}");
    }

    #[test]
    fn the_shipped_manifests_parse() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        for entry in std::fs::read_dir(&models).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ModelManifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
