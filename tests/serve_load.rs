//! `enf serve` under load, over real sockets on loopback, on the shipped
//! ENF graph with the echo backend answering after a delay: a burst of
//! three times (queue + concurrency) requests gets only 200s and 503s with
//! `Retry-After`; a `/v1/filter` request with `--max-candidates` candidates
//! is served on an idle server (and a queue too small for one is refused
//! at start-up); a client that stops sending its request head or body, or
//! idles on a kept-alive connection, is let go within its timeout; a
//! request whose client hangs up stops its model call; every answer
//! carries a request id, which is on the request's log lines.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server::{Server, items, post, sample, without_frames};
use support::{Workspace, shipped_graph, text};

/// The shipped ENF graph on an echo model that answers after `delay`.
fn echo_graph(ws: &Workspace, delay: &str) -> std::path::PathBuf {
    let model = ws.echo_model("echo", &format!("[echo]\ndelay = \"{delay}\"\n"));
    shipped_graph(ws, "enf", &model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_queue_gets_only_200s_and_503s_and_a_full_filter_fits_an_idle_server() {
    let ws = Workspace::new();
    let graph = echo_graph(&ws, "100ms");
    let (queue, concurrency) = (32, 4);
    let server = Server::start(
        &ws,
        &[
            "--graph",
            graph.to_str().unwrap(),
            "--queue",
            &queue.to_string(),
            "--max-candidates",
            &queue.to_string(),
            "--concurrency",
            &concurrency.to_string(),
            "--no-watch",
        ],
    );
    let data = ws.data(1, 2);
    let body = without_frames(&items(&ws, &data)[0]);
    let client = reqwest::Client::new();
    let burst = 3 * (queue + concurrency);
    let answers = futures::future::join_all((0..burst).map(|_| {
        let request = client.post(server.url("/v1/predict")).json(&body);
        async move {
            let response = request.send().await.expect("an answer");
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let status = response.status().as_u16();
            (status, retry_after, response.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let ok = answers.iter().filter(|(status, ..)| *status == 200).count();
    let busy = answers.iter().filter(|(status, ..)| *status == 503).count();
    let others: Vec<_> = answers.iter().filter(|(status, ..)| ![200, 503].contains(status)).collect();
    assert!(others.is_empty(), "only 200 and 503 under load, not {others:?}");
    assert!(ok >= queue, "the {queue} admitted requests are answered (200: {ok}, 503: {busy})");
    assert!(busy > 0, "a burst of {burst} is more than the queue takes");
    for (status, retry_after, answer) in &answers {
        if *status == 503 {
            let seconds: u64 = retry_after.as_deref().expect("a 503 says when to retry").parse().unwrap();
            assert!(seconds >= 1, "{answer}");
        }
    }
    let metrics = server.metrics(None).await;
    assert_eq!(sample(&metrics, "enf_queue_depth"), Some(0.0), "{metrics}");
    assert!(sample(&metrics, "enf_item_seconds_mean").is_some_and(|s| s > 0.0), "{metrics}");

    // A filter request as large as the queue is served on the idle server.
    let mut filter = json!({"user": body["user"], "history": body["history"], "candidates": []});
    for i in 0..queue {
        filter["candidates"]
            .as_array_mut()
            .unwrap()
            .push(json!({"video_id": format!("c{i}"), "title": format!("Candidate {i}")}));
    }
    let (status, _, answer) = post(&server.url("/v1/filter"), &filter, None).await;
    assert_eq!(status, 200, "{answer}");
    let placed = answer["kept"].as_array().unwrap().len() + answer["dropped"].as_array().unwrap().len();
    assert_eq!(placed, queue);
    assert!(server.stop().success());

    // A queue too small for a full filter request is refused at start-up.
    let output = ws.enf(&["serve", "--graph", graph.to_str().unwrap(), "--queue", "8", "--max-candidates", "9"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("--max-candidates 9 is more than --queue 8"), "{}", text(&output));
}

/// Reads from `stream` until the server closes it; how long that took.
fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the server kept the connection open for {:?} ({e})", started.elapsed()),
        }
    }
}

#[test]
fn slow_and_idle_clients_are_let_go_within_their_timeouts() {
    let ws = Workspace::new();
    let graph = echo_graph(&ws, "0s");
    let server = Server::start(
        &ws,
        &["--graph", graph.to_str().unwrap(), "--header-timeout", "1s", "--body-timeout", "1s", "--no-watch"],
    );
    // A head that never ends.
    let mut slow = TcpStream::connect(server.address()).unwrap();
    slow.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    let waited = time_until_closed(&mut slow, Duration::from_secs(10));
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}, over the 1 s header timeout");

    // A body that never arrives: 408.
    let mut stalled = TcpStream::connect(server.address()).unwrap();
    stalled
        .write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user\"")
        .unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 512];
    let read = stalled.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A kept-alive connection that idles after its answer.
    let mut idle = TcpStream::connect(server.address()).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 15];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");
    let waited = time_until_closed(&mut idle, Duration::from_secs(10));
    assert!(waited < Duration::from_secs(3), "an idle connection was kept {waited:?}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_hangs_up_stops_its_model_call_and_ids_name_each_request() {
    let ws = Workspace::new();
    let graph = echo_graph(&ws, "8s");
    let log = ws.path("serve.log");
    let server = Server::start_with_log(
        &ws,
        &["--graph", graph.to_str().unwrap(), "--no-watch"],
        std::fs::File::create(&log).unwrap(),
    );
    let data = ws.data(1, 2);
    let body = without_frames(&items(&ws, &data)[0]);
    let in_flight = |metrics: &str| sample(metrics, "enf_model_calls_in_flight{model=\"default\"}");

    let request =
        reqwest::Client::new().post(server.url("/v1/predict")).header("x-request-id", "hung-up-1").json(&body);
    let client = tokio::spawn(request.send());
    let started = Instant::now();
    while in_flight(&server.metrics(None).await).is_none_or(|calls| calls < 1.0) {
        assert!(started.elapsed() < Duration::from_secs(5), "the model call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client hangs up while the model (8 s per answer) is still working.
    client.abort();
    let hung_up = Instant::now();
    loop {
        let metrics = server.metrics(None).await;
        if in_flight(&metrics) == Some(0.0) {
            break;
        }
        assert!(hung_up.elapsed() < Duration::from_secs(4), "the abandoned model call goes on: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ids: the client's is kept, else one is made; each answer carries it.
    let response =
        reqwest::Client::new().get(server.url("/readyz")).header("x-request-id", "known-7").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "known-7");
    let response = reqwest::get(server.url("/no/such/route")).await.unwrap();
    assert_eq!(response.status(), 404);
    let made = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
    assert!(server.stop().success());
    let log = std::fs::read_to_string(&log).unwrap();
    let access: Vec<&str> = log.lines().filter(|l| l.contains("answered")).collect();
    assert!(
        access.iter().any(|l| l.contains("id=known-7") && l.contains("route=/readyz") && l.contains("status=200")),
        "{log}"
    );
    assert!(access.iter().any(|l| l.contains(&format!("id={made}")) && l.contains("status=404")), "{log}");
}
