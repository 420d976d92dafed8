//! Regression tests for mistral.rs batching concurrent requests (fixed in
//! engine/patches/):
//!
//! - the CPU decode attention gave every sequence of a batch the attention
//!   output of the batch's last sequence, so concurrent requests with
//!   different prompts got one another's answers (the first version of
//!   this test, same idea with other prompts, failed on it);
//! - sequences whose KV-cache buffers differ in size (buffers grow in steps
//!   of 512 positions, and the prefix cache starts a new sequence with the
//!   buffer of an earlier one that shares its prefix) could not be batched:
//!   the engine panicked ("shape mismatch on dim 2, 512 <> 1024"). The
//!   scenario below is built to mix such buffers, but mistral.rs's batching
//!   depends on timing, and it has not been seen to reproduce that panic
//!   without the fix; it guards against its return.
//!
//! On the real mistral.rs backend — the default model (whose shipped
//! manifest turns the prefix cache off, so there only batching is checked)
//! and the tiny Qwen2.5-VL (prefix cache on) — a prompt past 1024
//! positions, one past 512 and a short one are served first; then nine
//! different requests of equal length, three sharing a first word with each,
//! are sent at once. Every answer must equal the answer to the same request
//! sent alone after the same warm-up, and no engine may panic (a request
//! whose engine dies fails at once here: the outage budget is 0).

mod support;

use std::path::Path;
use std::sync::Arc;

use enf::inference::{Backend, ChatMessage, GenerateRequest, ModelManifest, Role, Sampling, incidents, start_backend};
use support::{Workspace, prepared_model, repo_root};

fn request(prompt: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage { role: Role::User, text: prompt.to_string(), images: Vec::new() }],
        sampling: Sampling { max_tokens, ..Sampling::default() },
        origin: None,
    }
}

/// `word ` repeated `n` times (every word the same width, one token each
/// for the BPE tokenizer and four for the byte-level one).
fn words(word: &str, n: usize) -> String {
    format!("{word} ").repeat(n)
}

async fn answer(backend: &Arc<dyn Backend>, prompt: &str, max_tokens: u32) -> (String, u32) {
    let response = backend.generate(request(prompt, max_tokens)).await.unwrap_or_else(|e| panic!("{prompt:.40}…: {e}"));
    (response.completions[0].text.clone(), response.prompt_tokens)
}

/// Loads a model fresh (empty prefix cache) from `manifest`, with an outage
/// budget of 0: a request whose engine dies fails instead of waiting for the
/// restarted engine (which would hide the panic).
async fn load(manifest: &Path) -> Arc<dyn Backend> {
    let text = std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let manifest = ModelManifest::parse(manifest, &format!("{text}\n[outage]\nbudget = \"0s\"\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    start_backend(&manifest).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Loads a fresh model and serves the warm-up prompts: one past 1024
/// positions (`long` words), one past 512 (`mid` words), one short.
async fn warmed_up(manifest: &Path, long: usize, mid: usize) -> Arc<dyn Backend> {
    let backend = load(manifest).await;
    for (prompt, past) in [(words("cat", long), 1024), (words("red", mid), 512), (words("dog", 8), 0)] {
        let (_, tokens) = answer(&backend, &prompt, 4).await;
        assert!(tokens as usize > past, "a warm-up prompt of {tokens} tokens crosses {past} positions");
    }
    backend
}

/// Runs the scenario on the model of `manifest` (`short` words a request).
async fn mixed_buffers_batch_like_alone(manifest: &Path, long: usize, mid: usize, short: usize, max_tokens: u32) {
    let panics_before = incidents::panics().len();
    // Nine different prompts of one length; each shares its first word (and
    // so its prefix-cache match, of equal length) with one warm-up prompt.
    let concurrent: Vec<String> = (0..9)
        .map(|i| format!("{} {}", ["cat", "red", "dog"][i % 3], words(["sun", "sky", "sea"][i / 3], short)))
        .collect();

    // Each request alone after the warm-up: the reference answers.
    let alone = warmed_up(manifest, long, mid).await;
    let mut expected = Vec::new();
    for prompt in &concurrent {
        expected.push(answer(&alone, prompt, max_tokens).await);
    }
    drop(alone);
    let lengths: Vec<u32> = expected.iter().map(|(_, tokens)| *tokens).collect();
    assert!(
        lengths.iter().all(|&l| l == lengths[0] && l < 512),
        "the concurrent prompts have one short length: {lengths:?}"
    );
    let distinct: std::collections::HashSet<&String> = expected.iter().map(|(text, _)| text).collect();
    assert!(distinct.len() > 1, "different prompts get different answers: {expected:?}");

    // A fresh model, the same warm-up, then everything at once.
    let backend = warmed_up(manifest, long, mid).await;
    let tasks: Vec<_> = concurrent
        .iter()
        .map(|prompt| {
            let (backend, prompt) = (backend.clone(), prompt.clone());
            tokio::spawn(async move { answer(&backend, &prompt, max_tokens).await })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.expect("request task"));
    }
    let new_panics: Vec<_> = incidents::panics().into_iter().skip(panics_before).collect();
    assert!(new_panics.is_empty(), "the engine panicked: {new_panics:?}");
    assert_eq!(got, expected, "batched greedy answers equal the answers alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_vl_batches_requests_whose_cache_buffers_differ() {
    let ws = Workspace::new();
    let manifest = ws.tiny_vl_model("", "");
    // Byte-level tokenizer: 4 tokens a word (300 words: 1200 positions).
    mixed_buffers_batch_like_alone(&manifest, 300, 150, 20, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_model_batches_requests_whose_cache_buffers_differ() {
    prepared_model("smollm2-135m-instruct");
    // The shipped manifest runs one sequence at a time (faster on 2 cores);
    // this test is about batching, so its copy lets mistral.rs batch.
    let shipped = std::fs::read_to_string(repo_root().join("models/smollm2-135m.toml")).unwrap();
    let model_dir = repo_root().join("models/smollm2-135m-instruct");
    let text = shipped
        .replace("max_seqs = 1\n", "max_seqs = 32\n")
        .replace("source = { dir = \"smollm2-135m-instruct\" }", &format!("source = {{ dir = {:?} }}", model_dir));
    assert!(text.contains("max_seqs = 32") && text.contains(model_dir.to_str().unwrap()), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("smollm2-batched.toml");
    std::fs::write(&manifest, text).unwrap();
    // One token a word (1100 words: 1100+ positions).
    mixed_buffers_batch_like_alone(&manifest, 1100, 600, 60, 12).await;
}
