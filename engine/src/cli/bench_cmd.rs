//! `enf bench inference`: prefill and decode throughput of a model through
//! the engine's own backend, at several concurrency levels, on synthetic
//! frames — the figures `docs/benchmarks.md` reports.
//!
//! Method (each concurrency level warmed up on the same shape first): `B`
//! concurrent requests with one new token give the prefill time; the same
//! with `N` new tokens give the decode time as the difference. Prefill tok/s
//! counts every prompt token of the batch (image tokens included); decode
//! tok/s counts the tokens generated after each request's first — `B × (N −
//! 1)` unless a model stops at end-of-sequence early, which is warned about
//! (and with none left to time, no rate is printed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use enf::inference::{Backend, ChatMessage, Frame, GenerateRequest, ModelManifest, Role, Sampling, start_backend};
use serde_json::json;

/// Arguments of `enf bench inference`.
#[derive(Debug, Args)]
pub struct InferenceBenchArgs {
    /// The model manifest.
    manifest: PathBuf,
    /// Shapes to measure, comma-separated, each `BATCH:FRAMES:PIXELS`
    /// (concurrent requests, frames per request, frame edge; `8:0:0` is text only).
    #[arg(long, default_value = "1:0:0,8:0:0", value_delimiter = ',', value_parser = parse_shape)]
    shape: Vec<Shape>,
    /// New tokens per request in the decode measurement.
    #[arg(long, default_value_t = 64)]
    new_tokens: u32,
    /// Words of prompt text.
    #[arg(long, default_value_t = 200)]
    prompt_words: usize,
    /// Timed repetitions per level (the best is kept).
    #[arg(long, default_value_t = 2)]
    repeat: usize,
    /// Write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A baseline's figures (same JSON shape, e.g. from benches/transformers_bench.py or
    /// benches/llamacpp_bench.py) to print ratios against; repeat for several baselines.
    #[arg(long, value_name = "FILE")]
    compare: Vec<PathBuf>,
}

/// One measured shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    batch: usize,
    frames: usize,
    size: u32,
}

fn parse_shape(text: &str) -> Result<Shape, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.trim().parse::<u64>().ok());
    match (parts.len(), number(0), number(1), number(2)) {
        (3, Some(batch), Some(frames), Some(size)) if batch > 0 => {
            Ok(Shape { batch: batch as usize, frames: frames as usize, size: size as u32 })
        }
        _ => Err(format!("`{text}` is not BATCH:FRAMES:PIXELS, e.g. 8:16:224")),
    }
}

/// `enf bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode throughput of a model.
    Inference(InferenceBenchArgs),
    /// Time of one GRPO training step (generation, update) on a fixed shape.
    Train(super::bench_train::TrainBenchArgs),
    /// Items/s of a graph at several concurrency levels, and where node time goes.
    Pipeline(super::bench_pipeline::PipelineBenchArgs),
}

/// Writes `count` frames; `round` varies their pixels so that no round reuses
/// another's images (mistral.rs caches vision-encoder outputs by image hash).
fn write_frames(dir: &std::path::Path, count: usize, size: u32, round: u32) -> anyhow::Result<Vec<Frame>> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("r{round}-frame{i:02}.png"));
            let image = image::RgbImage::from_fn(size, size, |x, y| {
                let seed = round.wrapping_mul(31).wrapping_add(i as u32 * 13);
                image::Rgb([
                    ((x * 7 + seed) % 256) as u8,
                    ((y * 5 + seed / 3) % 256) as u8,
                    ((x ^ y ^ seed) % 256) as u8,
                ])
            });
            image.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(Frame { video_id: "bench".into(), index: i as u32, path })
        })
        .collect()
}

/// What one round of requests took.
struct Round {
    /// Wall seconds from sending the first request to the last answer.
    seconds: f64,
    /// Prompt tokens of all requests.
    prompt_tokens: u64,
    /// Tokens generated for all requests (fewer than asked where a model
    /// stopped at end-of-sequence).
    completion_tokens: u64,
}

/// The fastest of a level's timed rounds.
fn best(seconds: &[f64]) -> f64 {
    seconds.iter().copied().fold(f64::MAX, f64::min)
}

/// Slowest minus fastest of a level's timed rounds (0 for a single round).
fn spread(seconds: &[f64]) -> f64 {
    seconds.iter().copied().fold(f64::MIN, f64::max) - best(seconds)
}

/// Tokens per second of `decoded` tokens in `seconds`, or none when there is
/// nothing to time or the time is within the rounds' spread (noise).
fn decode_rate(decoded: u64, seconds: f64, spread: f64) -> Option<f64> {
    (decoded > 0 && seconds > spread.max(0.0)).then(|| decoded as f64 / seconds)
}

/// Sends every request at once and waits for all.
async fn round(backend: &Arc<dyn Backend>, requests: Vec<GenerateRequest>) -> anyhow::Result<Round> {
    let started = Instant::now();
    let calls: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.generate(request).await })
        })
        .collect();
    let (mut prompt_tokens, mut completion_tokens) = (0u64, 0u64);
    for call in calls {
        let response = call.await.context("a benchmark request panicked")??;
        prompt_tokens += u64::from(response.prompt_tokens);
        completion_tokens += response.completions.iter().map(|c| u64::from(c.completion_tokens)).sum::<u64>();
    }
    Ok(Round { seconds: started.elapsed().as_secs_f64(), prompt_tokens, completion_tokens })
}

/// Runs `enf bench inference`.
pub async fn inference(args: InferenceBenchArgs) -> anyhow::Result<ExitCode> {
    let manifest = ModelManifest::load(&args.manifest)?;
    let loading = Instant::now();
    let backend = start_backend(&manifest).await?;
    let load_s = loading.elapsed().as_secs_f64();
    let scratch = tempfile::tempdir()?;
    let text = format!(
        "Describe what happens in this short video and whether viewers might dislike it. {}",
        "The recommendation feed shows many videos every day to many people. ".repeat(args.prompt_words / 12 + 1)
    );
    println!(
        "model `{}` ({}), loaded in {load_s:.1}s; {} new tokens",
        manifest.name,
        args.manifest.display(),
        args.new_tokens
    );
    println!("| batch | frames | px | prompt tok/req | prefill s | prefill tok/s | decode s | decode tok/s |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for shape in &args.shape {
        let dir = scratch.path().join(format!("{}x{}", shape.frames, shape.size));
        std::fs::create_dir_all(&dir)?;
        let batch = shape.batch;
        // Every request of every round gets frames of its own.
        let mut serial = 0u32;
        let mut requests = |max_tokens: u32| -> anyhow::Result<Vec<GenerateRequest>> {
            (0..batch)
                .map(|_| {
                    serial += 1;
                    let images = write_frames(&dir, shape.frames, shape.size, serial)?;
                    Ok(GenerateRequest {
                        messages: vec![ChatMessage { role: Role::User, text: text.clone(), images }],
                        sampling: Sampling { temperature: 0.0, max_tokens, n: 1, ..Sampling::default() },
                        origin: None,
                    })
                })
                .collect()
        };
        round(&backend, requests(args.new_tokens)?).await?;
        let (mut prefills, mut fulls) = (Vec::new(), Vec::new());
        let mut prompt_tokens = 0;
        let mut generated = u64::MAX;
        for _ in 0..args.repeat.max(1) {
            let first = round(&backend, requests(1)?).await?;
            prefills.push(first.seconds);
            prompt_tokens = first.prompt_tokens;
            let whole = round(&backend, requests(args.new_tokens)?).await?;
            fulls.push(whole.seconds);
            generated = generated.min(whole.completion_tokens);
        }
        let (prefill, full) = (best(&prefills), best(&fulls));
        // Decode counts the tokens generated after each request's first; a
        // model that stops at end-of-sequence early (random weights do)
        // leaves too few to time, and its rate is not printed.
        let decoded = generated.saturating_sub(batch as u64);
        let asked = batch as u64 * u64::from(args.new_tokens.saturating_sub(1));
        if decoded < asked {
            tracing::warn!(
                "batch {batch}, {} frames: {decoded} of {asked} decode tokens generated (end-of-sequence reached early)",
                shape.frames
            );
        }
        let decode = full - prefill;
        // Decode time is a difference of two timings: when it is no larger
        // than their run-to-run spread, its rate would be noise.
        let spread = spread(&prefills).max(spread(&fulls));
        let decode_tok_s = decode_rate(decoded, decode, spread);
        if decoded > 0 && decode_tok_s.is_none() {
            tracing::warn!(
                "batch {batch}, {} frames: decode took {decode:.3} s, within the rounds' spread of {spread:.3} s — no rate; raise --new-tokens",
                shape.frames
            );
        }
        let per_request = prompt_tokens / batch.max(1) as u64;
        println!(
            "| {batch} | {} | {} | {per_request} | {prefill:.3} | {:.0} | {decode:.3} | {} |",
            shape.frames,
            shape.size,
            prompt_tokens as f64 / prefill,
            decode_tok_s.map_or_else(|| "–".to_string(), |r| format!("{r:.1}"))
        );
        rows.push(json!({
            "batch": batch,
            "frames": shape.frames,
            "frame_size": shape.size,
            "prompt_tokens_per_request": per_request,
            "prefill_s": prefill,
            "prefill_tok_s": prompt_tokens as f64 / prefill,
            "decode_s": decode,
            "decode_tokens": decoded,
            "decode_tok_s": decode_tok_s,
        }));
    }
    for path in &args.compare {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let baseline: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let empty = Vec::new();
        let theirs = baseline["rows"].as_array().unwrap_or(&empty);
        println!("\nratio enf / {} (> 1: enf is faster)", path.display());
        println!("| batch | frames | px | prefill tok/s ratio | decode tok/s ratio |");
        println!("|---|---|---|---|---|");
        for ours in &rows {
            let same = |key: &str, row: &serde_json::Value| row[key] == ours[key];
            let Some(other) = theirs.iter().find(|r| same("batch", r) && same("frames", r) && same("frame_size", r))
            else {
                continue;
            };
            let ratio = |key: &str| match (ours[key].as_f64(), other[key].as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "–".to_string(),
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                ours["batch"],
                ours["frames"],
                ours["frame_size"],
                ratio("prefill_tok_s"),
                ratio("decode_tok_s")
            );
        }
    }
    if let Some(path) = &args.json {
        let json = json!({
            "model": manifest.name,
            "new_tokens": args.new_tokens,
            "load_s": load_s,
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_time_within_the_rounds_spread_gets_no_rate() {
        assert_eq!(spread(&[0.5]), 0.0);
        assert!((spread(&[0.52, 0.5, 0.61]) - 0.11).abs() < 1e-12);
        assert_eq!(best(&[0.52, 0.5, 0.61]), 0.5);
        assert_eq!(decode_rate(100, 1.0, 0.1), Some(100.0));
        assert_eq!(decode_rate(100, 0.05, 0.1), None, "within the spread");
        assert_eq!(decode_rate(100, 0.1, 0.1), None, "equal to the spread");
        assert_eq!(decode_rate(0, 1.0, 0.0), None, "nothing decoded");
        assert_eq!(decode_rate(10, -0.01, 0.0), None, "negative difference");
    }
}
