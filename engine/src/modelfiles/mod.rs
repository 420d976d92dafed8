//! Model directories on disk that the project writes itself: the tiny
//! random-weight Qwen2.5-VL used by tests ([`tiny_vl`]), and the import of a
//! GGUF file into a Hugging Face safetensors directory ([`gguf_import`]), which
//! is how the embedded default model reaches mistral.rs (see
//! `docs/inference.md` for why).

pub mod gguf_import;
pub mod tiny_vl;
mod tokenizer;

use std::path::PathBuf;

/// Why a model directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// I/O on a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content is not what was expected.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ModelFileError {
    pub(crate) fn invalid(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::Invalid { path: path.to_path_buf(), message: message.to_string() }
    }
}

/// Writes `value` as pretty JSON to `dir/name`.
pub(crate) fn write_json(dir: &std::path::Path, name: &str, value: &serde_json::Value) -> Result<(), ModelFileError> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelFileError::invalid(&path, e))?;
    std::fs::write(&path, text).map_err(|source| ModelFileError::Io { path, source })
}
