//! `enf train`: turns the shipped agents into trained predictors. A node of
//! a graph (the Reason agent on implicit data, the Video agent on explicit
//! data) is trained in place: its own plugin runs on each training item, and
//! its inference import is answered by the policy being trained, so prompts,
//! chat template and answer parsing are exactly those of `enf run`.
//!
//! One concept per module:
//! - [`model_config`] and [`decoder`]: a trainable decoder-only model on
//!   candle (differentiable ops only), loading and saving Hugging Face weights;
//! - [`generate`]: grouped sampling with a KV cache (the rollouts' generator);
//! - [`lora`]: low-rank adapters, merged into the export;
//! - [`chat`]: the chat template and tokenization serving uses;
//! - [`rewards`]: the format reward and the stepwise ladder, built on
//!   [`crate::eval::score`];
//! - [`checkpointing`]: gradient checkpointing, one decoder layer's graph at a time;
//! - [`objective`]: group advantages, the clipped GRPO loss with k3 KL, SFT cross-entropy;
//! - [`optimizer`]: AdamW with gradient-norm clipping and warm-up + cosine schedule;
//! - [`config`]: the `enf train` configuration file;
//! - [`draws`]: which items each step rolls out (epochs, dynamic sampling);
//! - [`rollout`]: the policy put behind the trained node's model, recording what it answered;
//! - [`checkpoint`] and [`export`]: crash-safe checkpoints, and the model directory,
//!   manifest and graph that `enf run` serves;
//! - [`fingerprint`]: what a run starts from (configuration, data, model), so
//!   that `--resume` continues only the same run.

pub mod chat;
pub mod checkpoint;
pub mod checkpointing;
pub mod config;
pub mod decoder;
pub mod draws;
pub mod export;
pub mod fingerprint;
pub mod generate;
mod kv_cache;
pub mod lora;
pub mod model_config;
pub mod objective;
pub mod optimizer;
pub mod rewards;
pub mod rollout;
mod shared_prompt;
pub mod step;
mod trainer;

use std::path::{Path, PathBuf};

pub use config::{Stage, TrainConfig};
pub use decoder::Decoder;
pub use model_config::{DecoderConfig, DecoderFamily};
pub use step::{ScoredRollout, StepLog, UpdateSettings, update};
pub use trainer::{TrainOptions, TrainReport, train};

/// Why training could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read, written or understood.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model's weights do not fit its configuration.
    #[error("model: {0}")]
    Model(String),
    /// A tensor operation failed (a bug or an out-of-memory).
    #[error("tensor operation failed: {0}")]
    Tensor(String),
    /// The training configuration is wrong (every problem, by line).
    #[error("{0}")]
    Config(String),
    /// A rollout could not be made.
    #[error("rollout: {0}")]
    Rollout(String),
}

impl TrainError {
    pub(crate) fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File { path: path.to_path_buf(), message: message.to_string() }
    }

    pub(crate) fn candle(error: candle_core::Error) -> Self {
        Self::Tensor(error.to_string())
    }
}

impl From<candle_core::Error> for TrainError {
    fn from(error: candle_core::Error) -> Self {
        Self::candle(error)
    }
}

#[cfg(test)]
mod decoder_tests;
#[cfg(test)]
mod learning_tests;
