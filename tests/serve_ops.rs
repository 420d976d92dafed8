//! Operating `enf serve`, over real sockets on loopback: `/readyz` follows
//! a model that stops answering and comes back; a request past its
//! deadline drops its call to a remote endpoint; the API token, the admin
//! token and public metrics open different doors (the `Bearer` scheme in
//! any case, an empty token refused at start-up); a maximal `/v1/filter`
//! body stays within its stated memory bound; five reloads with a changed
//! manifest of the default model keep the server's memory flat.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::server::{Server, get, items, post, rss_kib, sample, without_frames};
use support::{Workspace, fixture, repo_root, shipped_graph, text};

/// A local OpenAI-compatible endpoint that answers at once while `up`, and
/// not in any useful time while it is not; `dropped` counts the requests
/// whose caller hung up before the answer.
async fn switchable_endpoint(up: Arc<AtomicBool>, dropped: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use axum::routing::post;
    /// Counts its request as dropped unless it was answered.
    struct Answering(Arc<AtomicUsize>, bool);
    impl Drop for Answering {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (up, dropped) = (up.clone(), dropped.clone());
            async move {
                let mut answering = Answering(dropped, false);
                if !up.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                answering.1 = true;
                axum::Json(json!({
                    "choices": [{ "message": { "role": "assistant", "content": "OK" }, "finish_reason": "stop" }],
                    "usage": { "prompt_tokens": 3, "completion_tokens": 1 }
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A manifest of the endpoint at `address` (no retries, no outage wait) and
/// a graph whose one node asks it about the candidate.
fn remote_graph(ws: &Workspace, address: std::net::SocketAddr) -> std::path::PathBuf {
    ws.write(
        "models/remote.toml",
        &format!(
            "name = \"remote\"\nbackend = \"openai\"\n[openai]\nendpoints = [\"http://{address}/v1\"]\nmodel = \"m\"\ntimeout = \"30s\"\nretries = 0\n[outage]\nbudget = \"0s\"\n"
        ),
    );
    ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"ask\"\n[models.m]\nmanifest = \"models/remote.toml\"\n[nodes.ask]\nplugin = \"{}\"\nmodel = \"m\"\ninputs = {{ prompt = \"$item.candidate.title\" }}\n",
            fixture("echo_agent").display()
        ),
    )
}

/// Polls `/readyz` until its status is `wanted`; the last answer.
async fn wait_for_readiness(server: &Server, wanted: u16, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, answer) = get(&server.url("/readyz")).await;
        if status == wanted {
            return answer;
        }
        assert!(started.elapsed() < within, "/readyz still answers {status} after {within:?}: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_model_that_stops_answering_and_comes_back() {
    let up = Arc::new(AtomicBool::new(true));
    let address = switchable_endpoint(up.clone(), Arc::new(AtomicUsize::new(0))).await;
    let ws = Workspace::new();
    let graph = remote_graph(&ws, address);
    let server = Server::start(
        &ws,
        &["--graph", graph.to_str().unwrap(), "--probe-interval", "200ms", "--probe-timeout", "1s", "--no-watch"],
    );
    let answer = wait_for_readiness(&server, 200, Duration::from_secs(5)).await;
    assert_eq!(answer["models"]["m"]["answering"], true, "{answer}");
    assert_eq!(sample(&server.metrics(None).await, "enf_model_ready{model=\"m\"}"), Some(1.0));

    up.store(false, Ordering::SeqCst);
    let answer = wait_for_readiness(&server, 503, Duration::from_secs(8)).await;
    assert_eq!(answer["models"]["m"]["answering"], false, "{answer}");
    assert!(answer["models"]["m"]["error"].as_str().is_some_and(|e| e.contains("within")), "{answer}");
    assert_eq!(sample(&server.metrics(None).await, "enf_model_ready{model=\"m\"}"), Some(0.0));

    up.store(true, Ordering::SeqCst);
    let answer = wait_for_readiness(&server, 200, Duration::from_secs(8)).await;
    assert_eq!(answer["ready"], true, "{answer}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_drops_its_call_to_a_remote_endpoint() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let address = switchable_endpoint(up.clone(), dropped.clone()).await;
    let ws = Workspace::new();
    let graph = remote_graph(&ws, address);
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--deadline", "1s", "--no-watch"]);
    let data = ws.data(1, 1);
    let body = without_frames(&items(&ws, &data)[0]);
    up.store(false, Ordering::SeqCst);
    let (status, _, answer) = post(&server.url("/v1/predict"), &body, None).await;
    assert_eq!(status, 504, "{answer}");
    let started = Instant::now();
    while dropped.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the endpoint is still asked after the 504");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = server.metrics(None).await;
    assert_eq!(sample(&metrics, "enf_model_calls_in_flight{model=\"m\"}"), Some(0.0), "{metrics}");
    assert_eq!(sample(&metrics, "enf_deadline_exceeded_total"), Some(1.0), "{metrics}");
    assert!(server.stop().success());
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_the_admin_token_and_public_metrics_open_different_doors() {
    let ws = Workspace::new();
    let model = ws.echo_model("echo", "");
    let graph = shipped_graph(&ws, "enf", &model);
    let data = ws.data(1, 1);
    let body = without_frames(&items(&ws, &data)[0]);
    let client = reqwest::Client::new();
    let graph_arg = graph.to_str().unwrap();

    let server = Server::start(
        &ws,
        &["--graph", graph_arg, "--token", "api", "--admin-token", "adm", "--public-metrics", "--no-watch"],
    );
    let predict = || client.post(server.url("/v1/predict")).json(&body);
    assert_eq!(status_of(predict().header("authorization", "bearer api")).await, 200, "the scheme in any case");
    assert_eq!(status_of(predict().header("authorization", "BEARER api")).await, 200);
    assert_eq!(status_of(predict().bearer_auth("adm")).await, 401, "the admin token is not the API token");
    let reload = || client.post(server.url("/admin/reload"));
    assert_eq!(status_of(reload().bearer_auth("api")).await, 401, "the API token opens no admin route");
    assert_eq!(status_of(reload().bearer_auth("adm")).await, 200);
    assert_eq!(status_of(client.get(server.url("/metrics"))).await, 200, "public metrics need no token");
    assert!(server.stop().success());

    let server = Server::start(&ws, &["--graph", graph_arg, "--token", "api", "--no-watch"]);
    let (status, _, answer) = post(&server.url("/admin/reload"), &json!({}), Some("api")).await;
    assert_eq!(status, 403, "no admin token: admin routes are off");
    assert!(answer["error"].as_str().unwrap().contains("--admin-token"), "{answer}");
    assert_eq!(status_of(client.get(server.url("/metrics"))).await, 401);
    assert_eq!(status_of(client.get(server.url("/metrics")).bearer_auth("api")).await, 200);
    assert!(server.stop().success());

    // An empty token is a secret gone missing, not "no token".
    let output = ws.enf(&["serve", "--graph", graph_arg, "--token", ""]);
    assert!(!output.status.success() && text(&output).contains("--token is empty"), "{}", text(&output));
    let output = ws.enf_command(&["serve", "--graph", graph_arg]).env("ENF_SERVE_ADMIN_TOKEN", " ").output().unwrap();
    assert!(!output.status.success() && text(&output).contains("--admin-token is empty"), "{}", text(&output));
}

/// A PNG of about `bytes` bytes (a valid header, then noise): what the
/// server checks, not a picture anyone decodes.
fn png_of(bytes: usize, seed: u8) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png.extend((0..bytes.saturating_sub(png.len())).map(|i| (i as u8).wrapping_mul(31) ^ seed));
    png
}

/// What a maximal filter body may add to the server's peak memory: the
/// body (32 MiB) held as bytes and as parsed JSON, its frames decoded once,
/// and the pipeline's working set — stated in docs/serving.md.
const FILTER_BODY_GROWTH_BOUND_MIB: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maximal_filter_body_stays_within_its_memory_bound() {
    let ws = Workspace::new();
    let model = ws.echo_model("echo", "");
    let graph = shipped_graph(&ws, "enf", &model);
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--no-watch"]);
    // 22 history entries with a 1 MiB inline frame each (~30 MiB of base64)
    // and the most candidates a request may have (100).
    let encode = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let history: Vec<Value> = (0..22u8)
        .map(|i| json!({"video_id": format!("h{i}"), "title": format!("Seen {i}"), "play_rate": 0.5, "frames": [{"base64": encode(png_of(1 << 20, i))}]}))
        .collect();
    let candidates: Vec<Value> =
        (0..100).map(|i| json!({"video_id": format!("c{i}"), "title": format!("Candidate {i}")})).collect();
    let body = json!({"user": {"user_id": "u1"}, "history": history, "candidates": candidates});
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size > 28 << 20 && size < 32 << 20, "a body near the 32 MiB limit: {size}");
    // Warm up (plugins instantiated, allocator pools made), then measure.
    let small = json!({"user": {"user_id": "u1"}, "candidates": [{"video_id": "c0"}]});
    assert_eq!(post(&server.url("/v1/filter"), &small, None).await.0, 200);
    let (before, _) = rss_kib(server.pid());
    let (status, _, answer) = post(&server.url("/v1/filter"), &body, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["kept"].as_array().unwrap().len() + answer["dropped"].as_array().unwrap().len(), 100);
    let (_, peak) = rss_kib(server.pid());
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("a {:.1} MiB filter body grew the peak RSS by {growth_mib} MiB", size as f64 / f64::from(1 << 20));
    assert!(
        growth_mib < FILTER_BODY_GROWTH_BOUND_MIB,
        "a maximal filter body grew the server's peak memory by {growth_mib} MiB (bound {FILTER_BODY_GROWTH_BOUND_MIB})"
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_with_a_changed_manifest_unload_the_old_weights() {
    support::prepared_model("smollm2-135m-instruct");
    let ws = Workspace::new();
    let shipped = std::fs::read_to_string(repo_root().join("models/smollm2-135m.toml")).unwrap();
    let weights = repo_root().join("models/smollm2-135m-instruct");
    let manifest = |max_tokens: u32| {
        let text = shipped
            .replace(
                "source = { dir = \"smollm2-135m-instruct\" }",
                &format!("source = {{ dir = \"{}\" }}", weights.display()),
            )
            .replace("max_tokens = 128", &format!("max_tokens = {max_tokens}"));
        assert!(text.contains(&format!("max_tokens = {max_tokens}")));
        ws.write("models/default.toml", &text)
    };
    let model = manifest(16);
    let graph = shipped_graph(&ws, "enf", &model);
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--no-watch"]);
    let mut resident = vec![rss_kib(server.pid()).0 / 1024];
    for reload in 0..5 {
        manifest(17 + reload);
        let (status, _, answer) = post(&server.url("/admin/reload"), &json!({}), None).await;
        assert_eq!(status, 200, "{answer}");
        // The old weights go once their engine has stopped (its own thread, just after).
        tokio::time::sleep(Duration::from_secs(3)).await;
        resident.push(rss_kib(server.pid()).0 / 1024);
    }
    eprintln!("resident MiB at start and after each reload: {resident:?}");
    // One set of weights is ~540 MiB: five kept copies would add ~2.7 GiB.
    let (first, last) = (resident[1], resident[5]);
    assert!(last < first + 150, "memory grew over five reloads: {resident:?} MiB");
    assert!(server.stop().success());
}
