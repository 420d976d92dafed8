//! The HTTP/1.1 server under `enf serve`'s routes, and what every request
//! goes through before and after its route:
//!
//! - [`serve_connections`] accepts connections and serves each with hyper,
//!   closing one that does not send a request's head within
//!   `--header-timeout` — a new connection or an idle keep-alive one alike
//!   (hyper times the head from the moment it waits for one) — and, on
//!   shutdown, lets the requests in flight finish before it returns;
//! - [`observe`] gives each request an id (its `x-request-id` if it sends a
//!   usable one, else a new one), returns it, puts it on every log line of
//!   the request (a `request` span), writes one access-log line (method,
//!   route, status, milliseconds), counts the request in the metrics, and
//!   answers 500 with a JSON body if the route panics;
//! - [`read_body`] reads the whole body within `--body-timeout` (else 408)
//!   and `--max-body-bytes` (else 413) before the route sees it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use tracing::Instrument;

use super::metrics::Metrics;
use super::routes::{Shared, error};

/// The header carrying a request's id, both ways.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Timeouts on a client's connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionTimeouts {
    /// The longest a client may take to send a request's head; also how
    /// long an idle keep-alive connection is kept.
    pub(crate) header: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for
/// the requests in flight (each connection is closed once its current
/// request is answered).
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let mut stopping = stopping.clone();
                connections.spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeouts.header);
                    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(e) = result {
                                tracing::debug!(%peer, "connection closed: {e}");
                            }
                        }
                        _ = stopping.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// A client's request id when it is usable (1–128 visible ASCII characters).
fn given_id(request: &Request) -> Option<String> {
    let value = request.headers().get(REQUEST_ID)?.to_str().ok()?;
    (!value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())).then(|| value.to_string())
}

/// A new request id: 16 random hex digits.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// See the module docs.
pub(crate) async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let id = given_id(&request).unwrap_or_else(new_id);
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |r| r.as_str()).to_string();
    let method = request.method().clone();
    let span = tracing::info_span!("request", id = %id);
    let started = Instant::now();
    let answered = std::panic::AssertUnwindSafe(next.run(request).instrument(span.clone())).catch_unwind().await;
    let mut response = answered.unwrap_or_else(|_| {
        span.in_scope(|| tracing::error!(%route, "the route panicked; answered 500"));
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error (the server logged it with this request's id)", None)
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    metrics.request(&route, status, seconds);
    span.in_scope(|| {
        tracing::info!(target: "enf::access", %method, %route, status, ms = format!("{:.1}", seconds * 1e3), "answered")
    });
    response
}

/// See the module docs.
pub(crate) async fn read_body(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let limit = state.rules.limits.max_body_bytes;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {limit} bytes"), Some(""));
    let declared = request.headers().get(axum::http::header::CONTENT_LENGTH);
    if declared.and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let over = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .any(|e| e.to_string().contains("length limit exceeded"));
            return if over {
                too_large()
            } else {
                error(StatusCode::BAD_REQUEST, format!("the body could not be read: {e}"), Some(""))
            };
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {:?}", state.body_timeout),
                Some(""),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    /// `router` served on a loopback port by [`serve_connections`] until the test ends.
    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let timeouts = ConnectionTimeouts { header: Duration::from_secs(5) };
        tokio::spawn(serve_connections(listener, router, timeouts, std::future::pending()));
        format!("http://{address}")
    }

    async fn boom() -> &'static str {
        panic!("a bug in a route")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_route_that_panics_is_answered_500_json_with_the_request_id_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let router = axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn_with_state(metrics.clone(), observe));
        let base = serve(router).await;
        let client = reqwest::Client::new();
        let response = client.get(format!("{base}/boom")).header(REQUEST_ID, "req-42").send().await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[REQUEST_ID], "req-42");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("internal error"), "{body}");
        // The server goes on serving.
        let response = client.get(format!("{base}/fine")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let made = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(made.len(), 16, "{made}");
        let text = metrics.render(&super::super::metrics::Gauges::default());
        assert!(text.contains("enf_requests_total{route=\"/boom\",status=\"500\"} 1"), "{text}");
    }

    #[test]
    fn a_client_id_is_kept_only_when_usable() {
        let with = |value: &str| {
            let request = Request::builder().header(REQUEST_ID, value).body(Body::empty()).unwrap();
            given_id(&request)
        };
        assert_eq!(with("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(with(""), None);
        assert_eq!(with("has space"), None);
        assert_eq!(with(&"x".repeat(129)), None);
    }
}
