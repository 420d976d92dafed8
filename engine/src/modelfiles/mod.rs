//! Model directories on disk that the project writes itself: the tiny
//! random-weight Qwen2.5-VL used by tests ([`tiny_vl`]), and the import of a
//! GGUF file into a Hugging Face safetensors directory ([`gguf_import`]), which
//! is how the embedded default model reaches mistral.rs (see
//! `docs/inference.md` for why).

pub mod gguf_import;
pub mod tiny_text;
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

/// Random weights (normal, σ = 0.02) and norm weights (ones) by tensor name,
/// drawn from a seeded generator: the tiny test models.
pub(crate) struct RandomWeights {
    rng: rand::rngs::StdRng,
    normal: rand_distr::Normal<f32>,
    pub(crate) tensors: std::collections::HashMap<String, candle_core::Tensor>,
}

impl RandomWeights {
    pub(crate) fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        let normal = rand_distr::Normal::new(0.0f32, 0.02).expect("a valid normal distribution");
        Self { rng: rand::rngs::StdRng::seed_from_u64(seed), normal, tensors: Default::default() }
    }

    pub(crate) fn random(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        use rand_distr::Distribution;
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| self.normal.sample(&mut self.rng)).collect();
        let tensor = candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?;
        self.tensors.insert(name.to_string(), tensor);
        Ok(())
    }

    pub(crate) fn ones(&mut self, name: &str, size: usize) -> candle_core::Result<()> {
        let tensor = candle_core::Tensor::ones(size, candle_core::DType::F32, &candle_core::Device::Cpu)?;
        self.tensors.insert(name.to_string(), tensor);
        Ok(())
    }
}
