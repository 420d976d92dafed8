//! `enf serve` over real sockets on loopback: a prediction equals what
//! `enf run` writes for the same item on the same model (the tiny generated
//! Llama, greedy); bad requests are 400s naming the field; the bounded
//! queue answers 503 with Retry-After, the deadline 504; the bearer token
//! guards every route but the probes `/healthz` and `/readyz`; SIGTERM drains and exits 0; the
//! OpenAPI document served is the committed docs/openapi.json, and every
//! route it lists answers its documented example with the documented fields.

mod support;

use serde_json::{Value, json};
use support::server::{Server, get, items, post, terminate, without_frames};
use support::{Workspace, fixture, shipped_graph, text};

/// The tiny generated Llama (greedy) behind the shipped ENF graph, and a
/// synthetic data set of one user.
fn tiny_setup(ws: &Workspace) -> (std::path::PathBuf, std::path::PathBuf) {
    let manifest = ws.tiny_text_model();
    let graph = shipped_graph(ws, "enf", &manifest);
    let data = ws.path("data");
    let output = ws.enf(&["data", "synth", data.to_str().unwrap(), "--users", "1", "--seed", "5"]);
    assert!(output.status.success(), "{}", text(&output));
    (graph, data)
}

/// A graph whose one node (`reason`) spins until its 3 s timeout, no retry.
fn spinning_graph(ws: &Workspace) -> std::path::PathBuf {
    ws.write(
        "slow.toml",
        &format!(
            "[graph]\nname = \"slow\"\n[nodes.reason]\nplugin = \"{}\"\ntimeout = \"3s\"\nretries = 0\n",
            fixture("spin_agent").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prediction_over_http_is_what_enf_run_writes_for_the_item() {
    let ws = Workspace::new();
    let (graph, data) = tiny_setup(&ws);
    let documents = items(&ws, &data);
    assert_eq!(documents.len(), 3, "one user, three items");
    assert!(documents[0]["candidate"]["frames"].as_array().is_some_and(|f| !f.is_empty()), "frames by path");

    let (output, records) = ws.run(&graph, &data, &ws.path("pred.jsonl"), &[]);
    assert!(output.status.success(), "{}", text(&output));
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--frames-root", data.to_str().unwrap()]);

    assert_eq!(get(&server.url("/healthz")).await.0, 200);
    let (status, ready) = get(&server.url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["models"]["default"]["answering"], true, "{ready}");

    for document in &documents {
        let (status, _, answer) = post(&server.url("/v1/predict"), document, None).await;
        assert_eq!(status, 200, "{answer}");
        let item_id = document["item_id"].as_str().unwrap();
        let record = records.iter().find(|r| r["item_id"] == item_id).unwrap();
        let verdict = &record["nodes"]["reason"]["output"]["verdict"];
        assert_eq!(answer["item_id"], item_id);
        assert_eq!(answer["verdict"], verdict["attitude"], "{answer} vs {record}");
        assert_eq!(answer["class"], verdict["reason_class"]);
        assert_eq!(answer["reason"], verdict["reason"]);
        assert_eq!(answer["node"], "reason");
        for node in ["profile", "video", "reason"] {
            assert_eq!(answer["nodes"][node]["ok"], true, "{answer}");
            assert!(answer["nodes"][node]["ms"].as_f64().is_some());
        }
        assert_eq!(
            answer["nodes"]["video"]["output"], record["nodes"]["video"]["output"],
            "the Video agent saw the frames"
        );
    }

    // Explain: the record `enf run` writes, every node's output.
    let (status, _, explained) = post(&server.url("/v1/explain"), &documents[0], None).await;
    assert_eq!(status, 200, "{explained}");
    let record = records.iter().find(|r| r["item_id"] == documents[0]["item_id"]).unwrap();
    for node in ["profile", "video", "reason"] {
        assert_eq!(explained["nodes"][node]["output"], record["nodes"][node]["output"], "{node}");
    }

    // Inline frames serve as well as paths under the root.
    let mut inline = documents[0].clone();
    let frames: Vec<Value> = inline["candidate"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| {
            use base64::Engine;
            let bytes = std::fs::read(data.join(path.as_str().unwrap())).unwrap();
            json!({"base64": base64::engine::general_purpose::STANDARD.encode(bytes)})
        })
        .collect();
    inline["candidate"]["frames"] = json!(frames);
    let (status, _, answer) = post(&server.url("/v1/predict"), &inline, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["nodes"]["video"]["output"], record["nodes"]["video"]["output"]);

    // Filter: the ranked candidates of one user; each verdict is /v1/predict's
    // for the same user, history and candidate; kept ones keep their order.
    // The candidates share the user's Profile: it runs once, not once each.
    let base = &documents[0];
    let candidates: Vec<Value> = documents.iter().map(|d| d["candidate"].clone()).collect();
    let request = json!({"user": base["user"], "history": base["history"], "candidates": candidates});
    let profile_requests = async || {
        let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
        let line = metrics.lines().find(|l| l.starts_with("enf_model_requests_total{node=\"profile\"}"));
        line.and_then(|l| l.rsplit(' ').next()).map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let before = profile_requests().await;
    let single = json!({"user": base["user"], "history": base["history"], "candidate": candidates[0]});
    assert_eq!(post(&server.url("/v1/predict"), &single, None).await.0, 200);
    let one_profile = profile_requests().await - before;
    assert!(one_profile >= 1, "the Profile asks the model");
    let (status, _, filtered) = post(&server.url("/v1/filter"), &request, None).await;
    assert_eq!(status, 200, "{filtered}");
    assert_eq!(profile_requests().await - before, 2 * one_profile, "one Profile for 3 candidates: {filtered}");
    let (kept, dropped) = (filtered["kept"].as_array().unwrap(), filtered["dropped"].as_array().unwrap());
    let mut ranks: Vec<u64> = kept.iter().chain(dropped).map(|e| e["rank"].as_u64().unwrap()).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, vec![0, 1, 2], "every candidate once: {filtered}");
    assert!(kept.windows(2).all(|w| w[0]["rank"].as_u64() < w[1]["rank"].as_u64()), "order kept: {filtered}");
    for entry in kept.iter().chain(dropped) {
        let rank = entry["rank"].as_u64().unwrap() as usize;
        let single = json!({"user": base["user"], "history": base["history"], "candidate": candidates[rank]});
        let (_, _, answer) = post(&server.url("/v1/predict"), &single, None).await;
        assert_eq!(entry["verdict"], answer["verdict"], "{entry} vs {answer}");
        assert_eq!(entry["video_id"], candidates[rank]["video_id"]);
        let is_dropped = dropped.contains(entry);
        assert_eq!(is_dropped, answer["verdict"] == "negative", "{entry}");
    }
    let mut keep_all = request.clone();
    keep_all["keep_at_least"] = json!(3);
    let (_, _, filtered) = post(&server.url("/v1/filter"), &keep_all, None).await;
    assert_eq!(filtered["kept"].as_array().unwrap().len(), 3, "{filtered}");
    assert_eq!(filtered["restored"].as_u64().unwrap() as usize, dropped.len());
    let mut bad = request.clone();
    bad["candidates"][1]["video_id"] = json!(7);
    let (status, _, answer) = post(&server.url("/v1/filter"), &bad, None).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("/candidates/1/video_id")), "{answer}");

    // Metrics: requests by route and status, nodes, model calls, the queue.
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let predictions = 3 + 1 + 1 + 3; // per document, inline frames, beside the filter (before it, and per candidate)
    assert!(
        metrics.contains(&format!("enf_requests_total{{route=\"/v1/predict\",status=\"200\"}} {predictions}")),
        "{metrics}"
    );
    assert!(metrics.contains("enf_requests_total{route=\"/v1/filter\",status=\"400\"} 1"), "{metrics}");
    assert!(metrics.contains("enf_node_duration_seconds_bucket{node=\"reason\",le=\"+Inf\"}"), "{metrics}");
    assert!(metrics.contains("enf_model_requests_total{node=\"video\"}"), "{metrics}");
    assert!(metrics.contains("enf_queue_depth 0"), "{metrics}");

    assert!(server.stop().success(), "SIGTERM: a clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400s_naming_the_field_and_frames_stay_under_the_root() {
    let ws = Workspace::new();
    let model = ws.echo_model("echo", "");
    let graph = shipped_graph(&ws, "enf", &model);
    let data = ws.data(1, 2);
    std::fs::write(ws.path("secret.png"), b"not for clients").unwrap();
    let server = Server::start(
        &ws,
        &[
            "--graph",
            graph.to_str().unwrap(),
            "--frames-root",
            data.to_str().unwrap(),
            "--max-history",
            "1",
            "--max-body-bytes",
            "100000",
        ],
    );
    let documents = items(&ws, &data);
    let (status, _, answer) = post(&server.url("/v1/predict"), &documents[1], None).await;
    assert_eq!(status, 200, "the echo model serves: {answer}");

    let cases: Vec<(Value, &str)> = vec![
        (json!({"user": {"user_id": "u"}, "history": []}), "/candidate"),
        (json!({"user": {"user_id": "u"}, "candidate": {"title": "x"}}), "/candidate/video_id"),
        (
            json!({"user": {"user_id": "u"}, "candidate": {"video_id": "v", "frames": ["../secret.png"]}}),
            "/candidate/frames/0",
        ),
        (
            json!({"user": {"user_id": "u"}, "candidate": {"video_id": "v", "frames": [{"path": "/etc/passwd"}]}}),
            "/candidate/frames/0/path",
        ),
        (
            json!({"user": {"user_id": "u"}, "candidate": {"video_id": "v"}, "history": [{"video_id": "a"}, {"video_id": "b"}]}),
            "/history",
        ),
        (json!({"user": "u", "candidate": {"video_id": "v"}}), "/user"),
    ];
    for (body, pointer) in cases {
        let (status, _, answer) = post(&server.url("/v1/predict"), &body, None).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["field"], pointer, "{body} → {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Not JSON at all, and a route that does not exist.
    let response = reqwest::Client::new()
        .post(server.url("/v1/predict"))
        .body("{oops")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(get(&server.url("/v2/nothing")).await.0, 404);
    let mut huge = documents[0].clone();
    huge["user"]["notes"] = json!("x".repeat(200_000));
    let (status, _, answer) = post(&server.url("/v1/predict"), &huge, None).await;
    assert_eq!(status, 413, "{answer}");
    // The server is unharmed.
    let (status, _, _) = post(&server.url("/v1/predict"), &documents[0], None).await;
    assert_eq!(status, 200);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_a_late_answer_504_and_a_token_guards_the_routes() {
    let ws = Workspace::new();
    let data = ws.data(1, 2);
    // A node that spins until its 3 s deadline: each request holds its place that long.
    let slow = spinning_graph(&ws);
    let server = Server::start(
        &ws,
        &[
            "--graph",
            slow.to_str().unwrap(),
            "--queue",
            "1",
            "--max-candidates",
            "1",
            "--token",
            "s3cret",
            "--deadline",
            "10s",
        ],
    );
    let body = without_frames(&items(&ws, &data)[0]);
    // The token: required on the API, not on the liveness and readiness probes.
    let (status, headers, _) = post(&server.url("/v1/predict"), &body, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(post(&server.url("/v1/predict"), &body, Some("wrong")).await.0, 401);
    assert_eq!(get(&server.url("/healthz")).await.0, 200);
    assert_eq!(get(&server.url("/readyz")).await.0, 200);

    let first = {
        let (url, body) = (server.url("/v1/predict"), body.clone());
        tokio::spawn(async move { post(&url, &body, Some("s3cret")).await })
    };
    // Wait until the first request holds the one place (the queue depth says so).
    let mut waited = 0;
    loop {
        let metrics = reqwest::Client::new()
            .get(server.url("/metrics"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("enf_queue_depth 1") {
            break;
        }
        waited += 1;
        assert!(waited < 200, "the first request was never admitted: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, headers, answer) = post(&server.url("/v1/predict"), &body, Some("s3cret")).await;
    assert_eq!(status, 503, "the one place is taken: {answer}");
    assert_eq!(headers["retry-after"], "1");
    // SIGTERM while the first request runs: it is still answered, then the server exits 0.
    terminate(&server.child);
    let (status, _, answer) = first.await.unwrap();
    assert_eq!(status, 502, "the spinning node failed its own request: {answer}");
    assert!(answer["nodes"]["reason"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    assert!(server.stop().success());

    // A deadline shorter than the node's: 504, and the abandoned work stops
    // (else the spinning node would time out, and say so, 3 s after it began).
    let log = ws.path("serve.log");
    let server = Server::start_with_log(
        &ws,
        &["--graph", slow.to_str().unwrap(), "--deadline", "500ms"],
        std::fs::File::create(&log).unwrap(),
    );
    let (status, _, answer) = post(&server.url("/v1/predict"), &body, None).await;
    assert_eq!(status, 504, "{answer}");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(server.stop().success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("timed out"), "the node ran on after its request was answered: {log}");
}

#[test]
fn listening_beyond_loopback_needs_a_token() {
    let ws = Workspace::new();
    let model = ws.echo_model("echo", "");
    let graph = shipped_graph(&ws, "enf", &model);
    let output = ws.enf(&["serve", "--graph", graph.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("needs a bearer token"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_graph_while_requests_in_flight_finish_on_theirs_and_a_broken_one_is_refused() {
    let ws = Workspace::new();
    let data = ws.data(1, 2);
    let model = ws.echo_model("echo", "");
    let working = std::fs::read_to_string(shipped_graph(&ws, "enf", &model)).unwrap();
    let graph = spinning_graph(&ws);
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--no-watch"]);
    let body = without_frames(&items(&ws, &data)[0]);
    let in_flight = {
        let (url, body) = (server.url("/v1/predict"), body.clone());
        tokio::spawn(async move { post(&url, &body, None).await })
    };
    loop {
        let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
        if metrics.contains("enf_queue_depth 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A broken graph is refused with `enf graph check`'s problems; version 1 keeps serving.
    std::fs::write(&graph, "[graph]\nname = \"broken\"\n[nodes.reason]\nplugin = \"missing.wasm\"\n").unwrap();
    let (status, _, answer) = post(&server.url("/admin/reload"), &json!({}), None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["version"], 1);
    let problems = answer["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p.as_str().unwrap().contains("missing.wasm")), "{answer}");
    // A working one is swapped in while the first request still runs.
    std::fs::write(&graph, &working).unwrap();
    let (status, _, answer) = post(&server.url("/admin/reload"), &json!({}), None).await;
    assert_eq!((status, &answer["version"]), (200, &json!(2)), "{answer}");
    let (status, _, answer) = post(&server.url("/v1/predict"), &body, None).await;
    assert_eq!((status, &answer["version"]), (200, &json!(2)), "the new graph answers: {answer}");
    let (status, _, answer) = in_flight.await.unwrap();
    assert_eq!(status, 502, "the request in flight finished on the graph it started with: {answer}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("enf_reloads_total{outcome=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("enf_reloads_total{outcome=\"refused\"} 1"), "{metrics}");
    assert!(server.stop().success());

    // The watcher reloads a changed file by itself.
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap()]);
    assert_eq!(get(&server.url("/readyz")).await.1["version"], 1);
    std::fs::write(&graph, working.replacen("[graph]", "[graph]\n# edited", 1)).unwrap();
    let mut version = json!(1);
    for _ in 0..100 {
        version = get(&server.url("/readyz")).await.1["version"].clone();
        if version == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(version, 2, "the edited graph file was reloaded");
    assert!(server.stop().success());
}

/// The schema a `$ref` names, or the schema itself.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => document.pointer(target.trim_start_matches('#')).expect("a resolvable $ref"),
        None => schema,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_committed_and_true_to_every_route() {
    let ws = Workspace::new();
    let (graph, _data) = tiny_setup(&ws);
    let server = Server::start(&ws, &["--graph", graph.to_str().unwrap(), "--no-watch"]);
    let (status, served) = get(&server.url("/openapi.json")).await;
    assert_eq!(status, 200);
    let committed = std::fs::read_to_string(support::repo_root().join("docs/openapi.json")).unwrap();
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert!(
        served == committed,
        "docs/openapi.json differs from what the server serves: regenerate it with `enf serve --print-openapi > docs/openapi.json`"
    );
    // Each documented operation, called with its documented example, answers
    // 200 with every field its documented answer requires.
    let client = reqwest::Client::new();
    let mut operations = 0;
    for (path, methods) in served["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let url = server.url(path);
            let request = match method.as_str() {
                "get" => client.get(&url),
                "post" => match operation.pointer("/requestBody/content/application~1json/example") {
                    Some(example) => client.post(&url).json(example),
                    None => client.post(&url),
                },
                other => panic!("undocumented method {other} in the document"),
            };
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_eq!(status, 200, "{method} {path}: {body}");
            operations += 1;
            let Some(schema) = operation.pointer("/responses/200/content/application~1json/schema") else { continue };
            let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
            for field in resolve(&served, schema)["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap();
                assert!(answer.get(field).is_some(), "{method} {path}: no `{field}` in {answer}");
            }
        }
    }
    assert_eq!(operations, 8, "predict, explain, filter, healthz, readyz, metrics, admin/reload, openapi.json");
    assert!(server.stop().success());
}
