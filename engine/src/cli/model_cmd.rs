//! `enf model …`: write model directories and ask a model a question.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use enf::inference::{ChatMessage, Frame, GenerateRequest, ModelManifest, Role, start_backend};

/// `enf model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Write a tiny random-weight Qwen2.5-VL directory (for tests and benchmarks).
    TinyVl {
        /// Output directory.
        dir: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a tiny random-weight text model directory (llama or qwen2; for tests and `examples/train/tiny.toml`).
    TinyText {
        /// Output directory.
        dir: PathBuf,
        /// Architecture: llama or qwen2.
        #[arg(long, default_value = "llama")]
        arch: enf::modelfiles::tiny_text::TinyTextArch,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Import a llama-architecture GGUF file into a Hugging Face directory.
    ImportGguf {
        /// The GGUF file.
        file: PathBuf,
        /// Output directory.
        dir: PathBuf,
    },
    /// Ask the model of a manifest one question, greedily.
    Ask {
        /// The model manifest.
        manifest: PathBuf,
        /// The question.
        prompt: String,
        /// New tokens at most.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// Show this image file with the question (repeat for several; models that take images).
        #[arg(long = "image", value_name = "FILE")]
        images: Vec<PathBuf>,
        /// Print one JSON object (text, finish reason, prompt and completion tokens) instead of the text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `enf model` subcommand.
pub async fn run(command: ModelCommand) -> anyhow::Result<ExitCode> {
    match command {
        ModelCommand::TinyText { dir, arch, seed } => {
            enf::modelfiles::tiny_text::write_tiny_text(&dir, arch, seed)?;
            println!("wrote a tiny random {arch:?} text model to {}", dir.display());
        }
        ModelCommand::TinyVl { dir, seed } => {
            enf::modelfiles::tiny_vl::write_tiny_vl(&dir, seed)?;
            println!("wrote a tiny random Qwen2.5-VL model to {}", dir.display());
        }
        ModelCommand::ImportGguf { file, dir } => {
            let started = Instant::now();
            let summary = enf::modelfiles::gguf_import::import_gguf(&file, &dir)
                .with_context(|| format!("cannot import {}", file.display()))?;
            println!(
                "imported {} tensors ({:.1} M parameters, vocabulary {}) into {} in {:.1}s",
                summary.tensors,
                summary.parameters as f64 / 1e6,
                summary.vocab,
                dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
        ModelCommand::Ask { manifest, prompt, max_tokens, images, json } => {
            let manifest = ModelManifest::load(&manifest)?;
            for image in &images {
                anyhow::ensure!(image.is_file(), "--image {}: no such file", image.display());
            }
            let backend = start_backend(&manifest).await?;
            let mut sampling = backend.default_sampling().clone();
            sampling.temperature = 0.0;
            sampling.max_tokens = max_tokens;
            let images = images
                .into_iter()
                .enumerate()
                .map(|(index, path)| Frame { video_id: "ask".into(), index: index as u32, path })
                .collect();
            let request = GenerateRequest {
                messages: vec![ChatMessage { role: Role::User, text: prompt, images }],
                sampling,
                origin: None,
            };
            let started = Instant::now();
            let response = backend.generate(request).await?;
            if json {
                let completion = response.completions.first().context("the model gave no completion")?;
                println!(
                    "{}",
                    serde_json::json!({
                        "text": completion.text,
                        "finish_reason": completion.finish_reason,
                        "prompt_tokens": response.prompt_tokens,
                        "completion_tokens": completion.completion_tokens,
                    })
                );
            } else {
                for completion in &response.completions {
                    println!("{}", completion.text);
                }
            }
            eprintln!("({} prompt tokens, {:.2}s)", response.prompt_tokens, started.elapsed().as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}
