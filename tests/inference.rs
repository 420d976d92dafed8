//! Host inference end to end, through `enf` and real models: the tiny
//! generated Qwen2.5-VL run by mistral.rs with frames (alone and batched),
//! the embedded default model answering a factual question, a remote
//! OpenAI-compatible endpoint served by a local test server, the inference
//! cache, and the errors for bad models and bad inputs.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::{Workspace, fixture, prepared_model, text};

/// Writes a tiny Qwen2.5-VL into the workspace and a manifest for it.
fn tiny_vl(ws: &Workspace, extra: &str) -> PathBuf {
    let dir = ws.path("models/tiny-vl");
    if !dir.join("model.safetensors").is_file() {
        let output = ws.enf(&["model", "tiny-vl", dir.to_str().unwrap()]);
        assert!(output.status.success(), "{}", text(&output));
    }
    ws.write(
        "models/tiny.toml",
        &format!(
            "name = \"tiny-vl\"\nbackend = \"mistralrs\"\nimages = true\n{extra}\n[mistralrs]\nsource = {{ dir = \"tiny-vl\" }}\narchitecture = \"qwen2.5-vl\"\ndtype = \"f32\"\ndevice = \"cpu\"\n[sampling]\ntemperature = 0.0\nmax_tokens = 12\n"
        ),
    )
}

/// A graph whose node asks `model` about the candidate, with its frames.
fn asking_graph(ws: &Workspace, manifest: &str, frames: &str) -> PathBuf {
    ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"ask\"\n[models.m]\nmanifest = \"{manifest}\"\n[nodes.ask]\nplugin = \"{}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\"{frames} }}\n",
            fixture("echo_agent").display()
        ),
    )
}

fn answers(records: &[Value]) -> Vec<(String, String)> {
    let mut answers: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let node = &r["nodes"]["ask"];
            assert_eq!(node["ok"], true, "{r}");
            (r["item_id"].as_str().unwrap().to_string(), node["output"]["answer"].as_str().unwrap().to_string())
        })
        .collect();
    answers.sort();
    answers
}

#[test]
fn tiny_vl_answers_with_frames_and_batching_changes_nothing() {
    let ws = Workspace::new();
    tiny_vl(&ws, "");
    let data = ws.data(3, 2);
    let graph = asking_graph(&ws, "models/tiny.toml", ", frames = \"$item.candidate.frames\"");
    // Node memoisation off: every run asks the model.
    let (alone, one_by_one) =
        ws.run(&graph, &data, &ws.path("alone.jsonl"), &["--concurrency", "1", "--no-node-cache"]);
    assert!(alone.status.success(), "{}", text(&alone));
    assert_eq!(one_by_one.len(), 6);
    for record in &one_by_one {
        let usage = &record["nodes"]["ask"]["usage"];
        assert_eq!(usage["requests"], 1, "{record}");
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 20, "the prompt carries image tokens: {record}");
    }
    // Six items at once: mistral.rs batches sequences with images together.
    let (batched_run, batched) =
        ws.run(&graph, &data, &ws.path("batched.jsonl"), &["--concurrency", "6", "--no-node-cache"]);
    assert!(batched_run.status.success(), "{}", text(&batched_run));
    assert_eq!(answers(&batched), answers(&one_by_one), "greedy answers do not depend on batching");
}

/// The patched engine's step profile (`ENF_STEP_PROFILE`, for GPU
/// profiling, docs/benchmarks.md) on tiny-vl: one line per engine step, every
/// phase of the step and of the model's forward timed, and at level 2 the
/// decoder layers split, batch size and prefill/decode told apart.
#[test]
fn the_step_profile_times_every_phase_of_prefill_and_decode_steps() {
    let ws = Workspace::new();
    let manifest = tiny_vl(&ws, "");
    let output = ws
        .enf_command(&[
            "bench",
            "inference",
            manifest.to_str().unwrap(),
            "--shape",
            "2:1:224",
            "--new-tokens",
            "4",
            "--repeat",
            "1",
        ])
        .env("ENF_STEP_PROFILE", "2")
        .output()
        .expect("running enf");
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let steps: Vec<Value> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("ENF_STEP_PROFILE "))
        .map(|json| serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}")))
        .collect();
    let prefill: Vec<&Value> = steps.iter().filter(|s| s["prompt"] == true).collect();
    let decode: Vec<&Value> = steps.iter().filter(|s| s["prompt"] == false).collect();
    assert!(!prefill.is_empty() && !decode.is_empty(), "{stderr}");
    assert!(decode.iter().any(|s| s["batch"] == 2), "two requests decode together: {stderr}");
    for step in prefill.iter().chain(&decode) {
        let phases = step["phases"].as_object().unwrap();
        for phase in
            ["inputs", "embed_and_vision", "positions", "layer.attention", "layer.mlp", "lm_head", "sample_and_respond"]
        {
            assert!(phases.get(phase).and_then(Value::as_f64).is_some_and(|ms| ms >= 0.0), "{phase} in {step}");
        }
        let sum: f64 = phases.values().filter_map(Value::as_f64).sum();
        let total = step["step_ms"].as_f64().unwrap();
        assert!((sum - total).abs() <= 0.05 * total + 0.05, "phases add up to the step: {sum} vs {total} in {step}");
    }
    // Off by default: no profile lines.
    let plain = ws.enf(&[
        "bench",
        "inference",
        manifest.to_str().unwrap(),
        "--shape",
        "1:0:0",
        "--new-tokens",
        "2",
        "--repeat",
        "1",
    ]);
    assert!(plain.status.success(), "{}", text(&plain));
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("ENF_STEP_PROFILE"));
}

#[test]
fn tiny_vl_serves_text_only_and_image_requests_side_by_side() {
    let ws = Workspace::new();
    tiny_vl(&ws, "");
    let data = ws.data(2, 3);
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"mixed\"\n[models.m]\nmanifest = \"models/tiny.toml\"\n[nodes.text]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.title\" }}\n[nodes.frames]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\", frames = \"$item.candidate.frames\" }}\n",
            echo = fixture("echo_agent").display()
        ),
    );
    let (output, records) = ws.run(&graph, &data, &ws.path("out.jsonl"), &["--concurrency", "6"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record["ok"], true, "{record}");
    }
}

#[test]
fn the_default_model_answers_a_factual_question_correctly() {
    prepared_model("smollm2-135m-instruct");
    let ws = Workspace::new();
    let manifest = support::repo_root().join("models/smollm2-135m.toml");
    let output =
        ws.enf(&["model", "ask", manifest.to_str().unwrap(), "What is the capital of France?", "--max-tokens", "24"]);
    let answer = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{}", text(&output));
    assert!(answer.contains("Paris"), "greedy answer: {answer}");
}

#[test]
fn the_inference_cache_replays_unchanged_calls() {
    let ws = Workspace::new();
    tiny_vl(&ws, "");
    let data = ws.data(2, 2);
    let graph = asking_graph(&ws, "models/tiny.toml", ", frames = \"$item.candidate.frames\"");
    let cache = ws.path("inference-cache");
    let run = |out: &str| {
        let summary = ws.path(&format!("{out}.summary.json"));
        let (output, records) = ws.run(
            &graph,
            &data,
            &ws.path(out),
            &[
                "--inference-cache",
                cache.to_str().unwrap(),
                "--summary-json",
                summary.to_str().unwrap(),
                "--no-node-cache",
            ],
        );
        assert!(output.status.success(), "{}", text(&output));
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
        (records, summary["inference_cache"].clone())
    };
    let (first, first_stats) = run("first.jsonl");
    assert_eq!(first_stats, json!({ "hits": 0, "misses": 4 }));
    let (second, second_stats) = run("second.jsonl");
    assert_eq!(second_stats, json!({ "hits": 4, "misses": 0 }));
    assert_eq!(answers(&first), answers(&second));
}

#[test]
fn bad_models_and_inputs_fail_with_the_manifest_and_item_named() {
    let ws = Workspace::new();
    tiny_vl(&ws, "context = 40");
    let data = ws.data(1, 2);
    // A long prompt (the history) against a 40-token context fails that node only.
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"bad\"\n[models.m]\nmanifest = \"models/tiny.toml\"\n[nodes.long]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.url\" }}\n[nodes.short]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.video_id\" }}\n",
            echo = fixture("echo_agent").display()
        ),
    );
    // Candidate urls are long in this data set.
    let mut videos = std::fs::read_to_string(data.join("videos.jsonl")).unwrap();
    videos = videos.replace("\"category\"", &format!("\"url\":\"{}\",\"category\"", "long words ".repeat(40)));
    std::fs::write(data.join("videos.jsonl"), videos).unwrap();
    let (output, records) = ws.run(&graph, &data, &ws.path("out.jsonl"), &[]);
    support::assert_finished_with_failures(&output);
    for record in &records {
        let error = record["nodes"]["long"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("longer than the manifest's context of 40"), "{record}");
        assert!(error.contains("tiny.toml"), "names the manifest: {error}");
        assert_eq!(record["nodes"]["short"]["ok"], true, "{record}");
    }

    // An unreadable frame fails that item's node, naming the file.
    let broken = data.join("frames/v1_1.png");
    std::fs::write(&broken, "not an image").unwrap();
    let graph = asking_graph(&ws, "models/tiny.toml", ", frames = \"$item.candidate.frames\"");
    let (output, records) = ws.run(&graph, &data, &ws.path("frames.jsonl"), &[]);
    support::assert_finished_with_failures(&output);
    let by_video = |v: &str| records.iter().find(|r| r["video_id"] == v).unwrap()["nodes"]["ask"].clone();
    assert_eq!(by_video("v0")["ok"], true);
    let error = by_video("v1")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("v1_1.png") && error.contains("cannot read frame 1 of video `v1`"), "{error}");

    // A missing model directory is a graph problem naming the manifest (found
    // without loading weights); a wrong architecture is found by loading them.
    ws.write("models/gone.toml", "name = \"gone\"\nbackend = \"mistralrs\"\n[mistralrs]\nsource = { dir = \"nowhere\" }\narchitecture = \"llama\"\ndevice = \"cpu\"\n");
    ws.write("models/wrong.toml", "name = \"wrong\"\nbackend = \"mistralrs\"\n[mistralrs]\nsource = { dir = \"tiny-vl\" }\narchitecture = \"llama\"\ndtype = \"f32\"\ndevice = \"cpu\"\n");
    for (manifest, command, expected) in
        [("gone", "check", "nowhere does not exist"), ("wrong", "run", "could not load the model")]
    {
        let graph = asking_graph(&ws, &format!("models/{manifest}.toml"), "");
        let output = if command == "check" {
            ws.enf(&["graph", "check", graph.to_str().unwrap()])
        } else {
            ws.run(&graph, &data, &ws.path("wrong.jsonl"), &[]).0
        };
        let message = text(&output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(message.contains(&format!("{manifest}.toml")) && message.contains(expected), "{message}");
    }
}

/// A local OpenAI-compatible server: the first `fail_first` requests get a 429,
/// later ones an answer quoting how many data-URL images the request carried.
async fn serve(fail_first: usize, seen: Arc<AtomicUsize>) -> SocketAddr {
    serve_on(0, fail_first, seen).await
}

/// [`serve`] on a given port (0: any free one).
async fn serve_on(port: u16, fail_first: usize, seen: Arc<AtomicUsize>) -> SocketAddr {
    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sesame") {
                    return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad key" })));
                }
                if n < fail_first {
                    return (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": "slow down" })));
                }
                let images = body.to_string().matches("data:image/png;base64,").count();
                let answer = format!("{} saw {images} frames", body["model"].as_str().unwrap_or_default());
                (
                    StatusCode::OK,
                    Json(json!({
                        "choices": [{ "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
                        "usage": { "prompt_tokens": 11, "completion_tokens": 3 }
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_endpoint_gets_data_url_frames_the_key_and_retries() {
    let seen = Arc::new(AtomicUsize::new(0));
    let addr = serve(2, seen.clone()).await;
    let ws = Workspace::new();
    // The first endpoint refuses connections; requests rotate to the live one.
    ws.write(
        "models/remote.toml",
        &format!(
            "name = \"remote\"\nbackend = \"openai\"\nimages = true\n[openai]\nendpoints = [\"http://127.0.0.1:9/v1\", \"http://{addr}/v1\"]\nmodel = \"gpt-test\"\napi_key_env = \"ENF_TEST_KEY\"\nretries = 6\nbackoff = \"10ms\"\ntimeout = \"5s\"\n"
        ),
    );
    let data = ws.data(1, 2);
    let graph = asking_graph(&ws, "models/remote.toml", ", frames = \"$item.candidate.frames\"");
    let out = ws.path("out.jsonl");
    let output =
        ws.run_command(&graph, &data, &out, &["--concurrency", "1"]).env("ENF_TEST_KEY", "sesame").output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let records = support::read_records(&out);
    for record in &records {
        assert_eq!(record["nodes"]["ask"]["output"]["answer"], "gpt-test saw 2 frames", "{record}");
    }
    assert!(seen.load(Ordering::SeqCst) >= 4, "two 429s were retried");

    // Without the key variable the manifest is refused, naming the variable.
    let output =
        ws.enf_command(&["graph", "check", graph.to_str().unwrap()]).env_remove("ENF_TEST_KEY").output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("`ENF_TEST_KEY` is not set"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_endpoint_that_never_answers_in_time_fails_after_its_retries() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            "late"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ws = Workspace::new();
    ws.write(
        "models/slow.toml",
        &format!("name = \"slow\"\nbackend = \"openai\"\n[openai]\nendpoints = [\"http://{addr}/v1\"]\nmodel = \"m\"\ntimeout = \"200ms\"\nretries = 1\nbackoff = \"10ms\"\n[outage]\nbudget = \"0s\"\n"),
    );
    let data = ws.data(1, 1);
    let graph = asking_graph(&ws, "models/slow.toml", "");
    let (output, records) = ws.run(&graph, &data, &ws.path("out.jsonl"), &[]);
    support::assert_finished_with_failures(&output);
    let error = records[0]["nodes"]["ask"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("gave up after 2 attempt(s)") && error.contains("slow.toml"), "{error}");
}

/// An endpoint that is down (connections refused) for a while and then comes
/// up: requests wait for it (the manifest's `[outage]` policy) instead of
/// failing, and the node's own retries are not spent.
#[tokio::test(flavor = "multi_thread")]
async fn requests_wait_for_a_remote_endpoint_that_comes_back() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let ws = Workspace::new();
    ws.write(
        "models/late.toml",
        &format!(
            "name = \"late\"\nbackend = \"openai\"\nimages = true\n[openai]\nendpoints = [\"http://127.0.0.1:{port}/v1\"]\nmodel = \"gpt-test\"\napi_key_env = \"ENF_TEST_KEY\"\nretries = 0\ntimeout = \"5s\"\n[outage]\nfirst_delay = \"100ms\"\nmax_delay = \"400ms\"\nbudget = \"60s\"\n"
        ),
    );
    let data = ws.data(1, 2);
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"late\"\n[models.m]\nmanifest = \"models/late.toml\"\n[nodes.ask]\nplugin = \"{}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.title\" }}\nretries = 1\n",
            fixture("echo_agent").display()
        ),
    );
    let out = ws.path("out.jsonl");
    let mut command = ws.run_command(&graph, &data, &out, &[]);
    command.env("ENF_TEST_KEY", "sesame");
    let run = tokio::task::spawn_blocking(move || command.output().unwrap());
    // The endpoint comes up 1.5 s later, on the port the manifest names.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    serve_on(port, 0, seen.clone()).await;
    let output = run.await.unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let records = support::read_records(&out);
    assert_eq!(records.len(), 2);
    for record in &records {
        let node = &record["nodes"]["ask"];
        assert_eq!(node["output"]["answer"], "gpt-test saw 0 frames", "{record}");
        assert_eq!(node["attempts"], 1, "the node's retry was not spent on the outage: {record}");
    }
    assert!(text(&output).contains("waiting for it to come back"), "{}", text(&output));
}
