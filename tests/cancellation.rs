//! Model calls abandoned mid-decode on the mistral.rs engine. A node's
//! timeout, a served request's deadline and a client that hung up all end
//! the same way: the call's future is dropped. On the embedded default
//! model (text) and on the tiny generated Qwen2.5-VL (with frames), a burst
//! of such calls leaves the engine alive (no panic recorded, no reboot),
//! holding no sequence within a bounded time, and answering the next
//! request with the text it gave before the burst. `enf run` with node
//! timeouts shorter than a decode reports its items as timed out and no
//! engine panic.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enf::inference::{Backend, ChatMessage, Frame, GenerateRequest, MistralRsBackend, ModelManifest, Role, Sampling};
use serde_json::Value;
use support::{Workspace, repo_root, shipped_graph, text};

/// How long an engine may take to let go of abandoned sequences (a few steps).
const LET_GO_WITHIN: Duration = Duration::from_secs(10);

fn request(text: &str, images: Vec<Frame>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage { role: Role::User, text: text.into(), images }],
        sampling: Sampling { max_tokens, ..Sampling::default() },
        origin: None,
    }
}

/// Sends `burst` long requests, waits until the engine is decoding them,
/// drops them all, and checks that the engine lets them go, recorded no
/// panic, and answers `probe` as it did on the fresh engine.
async fn abandon_a_burst(backend: Arc<MistralRsBackend>, burst: Vec<GenerateRequest>, probe: GenerateRequest) {
    enf::inference::incidents::install_panic_recorder();
    let panics_before = enf::inference::incidents::panics().len();
    let fresh = backend.generate(probe.clone()).await.expect("the fresh engine answers");
    let fresh: Vec<String> = fresh.completions.into_iter().map(|c| c.text).collect();

    let calls: Vec<_> = burst
        .into_iter()
        .map(|request| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.generate(request).await })
        })
        .collect();
    // Mid-decode: the engine holds the burst, and has run for a while.
    let started = Instant::now();
    while backend.engine_sequences().is_none_or(|(running, _)| running == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the burst never started: {:?}",
            backend.engine_sequences()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held = backend.engine_sequences().unwrap();
    assert!(held.0 + held.1 > 0, "the burst finished before it could be abandoned: {held:?}");
    for call in &calls {
        call.abort();
    }
    for call in calls {
        assert!(call.await.unwrap_err().is_cancelled());
    }

    let dropped = Instant::now();
    while backend.engine_sequences() != Some((0, 0)) {
        assert!(
            dropped.elapsed() < LET_GO_WITHIN,
            "the engine still holds {:?} sequences {LET_GO_WITHIN:?} after their requests were dropped",
            backend.engine_sequences()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = backend.generate(probe).await.expect("the engine answers after the burst");
    let after: Vec<String> = after.completions.into_iter().map(|c| c.text).collect();
    assert_eq!(after, fresh, "the engine answers as it did before the burst");
    let panics = enf::inference::incidents::panics();
    assert_eq!(panics.len(), panics_before, "no panic: {panics:?}");
}

fn manifest(path: PathBuf) -> ModelManifest {
    ModelManifest::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_model_survives_a_burst_of_calls_abandoned_mid_decode() {
    support::prepared_model("smollm2-135m-instruct");
    let manifest = manifest(repo_root().join("models/smollm2-135m.toml"));
    let backend = Arc::new(MistralRsBackend::load(&manifest).await.expect("the default model loads"));
    let story = |i: usize| request(&format!("Write a long story about lighthouse keeper number {i}."), vec![], 400);
    abandon_a_burst(backend, (0..6).map(story).collect(), request("What is the capital of France?", vec![], 12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_qwen2_5_vl_survives_a_burst_of_calls_with_frames_abandoned_mid_decode() {
    let ws = Workspace::new();
    let path = ws.tiny_vl_model("max_seqs = 4", "");
    let frame = |video: &str, index: u32, shade: u8| {
        let path = ws.path(&format!("frames/{video}-{index}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        support::write_png(&path, 56, shade);
        Frame { video_id: video.into(), index, path }
    };
    let backend = Arc::new(MistralRsBackend::load(&manifest(path)).await.expect("tiny-vl loads"));
    let burst: Vec<GenerateRequest> = (0..6u8)
        .map(|i| {
            let frames = if i % 2 == 0 { vec![frame("v", u32::from(i), 40 * i), frame("v", 100, 7)] } else { vec![] };
            request(&format!("Describe video {i} at length."), frames, 3000)
        })
        .collect();
    let probe = request("What do you see?", vec![frame("p", 0, 200)], 8);
    abandon_a_burst(backend, burst, probe).await;
}

#[test]
fn enf_run_with_node_timeouts_shorter_than_a_decode_fails_its_items_cleanly() {
    let ws = Workspace::new();
    support::prepared_model("smollm2-135m-instruct");
    let model = repo_root().join("models/smollm2-135m.toml");
    let graph = shipped_graph(&ws, "enf", &model);
    let text_of_graph = std::fs::read_to_string(&graph).unwrap();
    // Every node gets a 1 s budget and no retry: each item's first model call is dropped mid-call.
    let tight = text_of_graph.replacen("timeout = \"600s\"\nretries = 1", "timeout = \"1s\"\nretries = 0", 1);
    assert_ne!(tight, text_of_graph);
    std::fs::write(&graph, tight).unwrap();
    let data = ws.data(2, 3);
    let summary = ws.path("summary.json");
    let (output, records) =
        ws.run(&graph, &data, &ws.path("out.jsonl"), &["--summary-json", summary.to_str().unwrap()]);
    support::assert_finished_with_failures(&output);
    assert_eq!(records.len(), 6);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["panics"], serde_json::json!([]), "no engine panic: {}", text(&output));
    let log = text(&output);
    assert!(!log.contains("rebooting") && !log.contains("panicked"), "{log}");
    for record in &records {
        let failed: Vec<&str> = record["nodes"]
            .as_object()
            .unwrap()
            .values()
            .filter(|n| n["ok"] == false)
            .filter_map(|n| n["error"].as_str())
            .collect();
        assert!(failed.iter().any(|e| e.contains("timed out")), "{record}");
    }
}
