//! The HTTP routes of `enf serve` (docs/serving.md): `POST /v1/predict`,
//! `POST /v1/explain`, `POST /v1/filter` (in `filter`), `GET /healthz`,
//! `GET /readyz`, `GET /metrics`, `POST /admin/reload`, `GET /openapi.json`. Every answer but the metrics is JSON; a
//! bad request is a 400 naming the field, never a 500; agent output is
//! returned as JSON data, never as markup.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ServerState;
use super::frames::RequestFrames;
use super::metrics::Gauges;
use super::reload::Version;
use super::request::{CheckedItem, check_item};
use crate::data::{Item, Truth};
use crate::run::{ItemRecord, RunContext, run_item};

pub(super) type Shared = Arc<ServerState>;

/// The router over `state`.
pub(super) fn router(state: Shared) -> axum::Router {
    let body_limit = state.rules.limits.max_body_bytes;
    axum::Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/explain", post(explain))
        .route("/v1/filter", post(super::filter::filter))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(admin_reload))
        .route(
            "/openapi.json",
            get(|State(state): State<Shared>| async move { Json(super::openapi::document(&state.rules.limits)) }),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Probes answer without the token: an orchestrator's probe cannot read a secret.
        .route("/healthz", get(|| async { Json(json!({"status": "live"})) }))
        .route("/readyz", get(readyz))
        .route_layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route", None) })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A JSON error answer; `pointer` names the field at fault.
pub(super) fn error(status: StatusCode, message: impl Into<String>, pointer: Option<&str>) -> Response {
    let mut body = json!({"error": message.into()});
    if let Some(pointer) = pointer {
        body["field"] = json!(pointer);
    }
    (status, Json(body)).into_response()
}

async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {token}");
        // Compare in constant time, so the answer time says nothing of the token.
        let same = given.is_some_and(|g| {
            g.len() == expected.len() && g.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !same {
            let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required", None);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

async fn record_metrics(
    State(state): State<Shared>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = route.map_or_else(|| "unmatched".to_string(), |r| r.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<Shared>) -> Response {
    let version = state.current();
    let gauges = Gauges {
        queue_depth: state.queue - state.admitted.available_permits(),
        queue_capacity: state.queue,
        cache: version.pipeline.cache_stats.as_ref().map(|s| (s.hits(), s.misses())),
        version: version.number,
    };
    let text = state.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn admin_reload(State(state): State<Shared>) -> Response {
    match super::reload::reload(&state).await {
        Ok(version) => Json(json!({"reloaded": true, "version": version})).into_response(),
        Err(problems) => {
            let lines: Vec<&str> = problems.lines().collect();
            let body = json!({
                "reloaded": false,
                "error": "the new version does not build; the previous one keeps serving",
                "version": state.current().number,
                "problems": lines,
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
    }
}

async fn readyz(State(state): State<Shared>) -> Response {
    let models: serde_json::Map<String, Value> = state
        .models
        .iter()
        .map(|(alias, outcome)| {
            let status = match outcome {
                Ok(()) => json!({"answering": true}),
                Err(e) => json!({"answering": false, "error": e}),
            };
            (alias.clone(), status)
        })
        .collect();
    let ready = state.models.iter().all(|(_, outcome)| outcome.is_ok());
    let version = state.current();
    let body = json!({
        "ready": ready,
        "graph": version.pipeline.graph.name,
        "version": version.number,
        "plugins": version.pipeline.plugins.len(),
        "models": models,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The JSON body, or the answer to a body that is not JSON (400) or too large (413).
pub(super) fn json_body(state: &ServerState, body: Result<Json<Value>, JsonRejection>) -> Result<Value, Response> {
    body.map(|Json(body)| body).map_err(|rejection| match rejection {
        JsonRejection::BytesRejection(_) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} bytes", state.rules.limits.max_body_bytes),
            Some(""),
        ),
        other => error(StatusCode::BAD_REQUEST, other.body_text(), Some("")),
    })
}

/// `places` places in the queue, or a 503 with `Retry-After` when they are not free.
pub(super) fn admit(state: &ServerState, places: usize) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    let places = u32::try_from(places).unwrap_or(u32::MAX);
    state.admitted.clone().try_acquire_many_owned(places).map_err(|_| {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: the queue of {} places has too few free", state.queue),
            None,
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    })
}

/// Runs a checked item before the deadline (504 after it, its unfinished
/// node calls cancelled) and counts its nodes in the metrics. Items that
/// share `node_cache` (the candidates of one `/v1/filter` request) compute
/// each node's output once per distinct input — the user's Profile once.
pub(super) async fn execute(
    state: &ServerState,
    version: &Version,
    checked: CheckedItem,
    node_cache: Option<Arc<crate::run::NodeCache>>,
) -> Result<ItemRecord, Response> {
    let frames = RequestFrames::new(checked.frames).map_err(|e| {
        tracing::error!("cannot write the request's inline frames: {e}");
        error(StatusCode::INSUFFICIENT_STORAGE, "cannot store the request's frames", None)
    })?;
    let item = Item {
        item_id: checked.item_id,
        user_id: checked.user_id,
        video_id: checked.video_id,
        document: checked.document,
        truth: Truth { negative: false, explicit: false, reason_class: None, reason_text: None },
    };
    let context = RunContext { node_cache, ..RunContext::new(version.pipeline.clone(), Arc::new(frames)) };
    let record = tokio::time::timeout(state.deadline, run_item(context, Arc::new(item))).await.map_err(|_| {
        error(StatusCode::GATEWAY_TIMEOUT, format!("no answer within the deadline of {:?}", state.deadline), None)
    })?;
    state.metrics.item(&record);
    Ok(record)
}

/// Checks the body, takes a place in the queue and runs the item on `version`.
async fn run_request(
    state: &ServerState,
    version: &Version,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<ItemRecord, Response> {
    let body = json_body(state, body)?;
    let checked =
        check_item(&body, &state.rules).map_err(|e| error(StatusCode::BAD_REQUEST, e.message, Some(&e.pointer)))?;
    let _place = admit(state, 1)?;
    execute(state, version, checked, None).await
}

/// Each node's outcome in short: ok, milliseconds, output or error.
pub(super) fn node_summaries(record: &ItemRecord) -> Value {
    let nodes: serde_json::Map<String, Value> = record
        .nodes
        .iter()
        .map(|(name, node)| {
            let mut summary = json!({"ok": node.ok, "ms": node.ms});
            if let Some(output) = &node.output {
                summary["output"] = output.clone();
            }
            if let Some(error) = &node.error {
                summary["error"] = json!(error);
            }
            (name.clone(), summary)
        })
        .collect();
    Value::Object(nodes)
}

async fn predict(State(state): State<Shared>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let version = state.current();
    let record = match run_request(&state, &version, body).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let verdict = match record.verdict(&version.verdict_node) {
        Ok(verdict) => verdict.clone(),
        Err(why) => {
            let body = json!({
            "error": format!("node `{}` failed: {why}", version.verdict_node),
            "item_id": record.item_id,
                "nodes": node_summaries(&record),
            });
            return (StatusCode::BAD_GATEWAY, Json(body)).into_response();
        }
    };
    let body = json!({
        "item_id": record.item_id,
        "verdict": verdict.get("attitude"),
        "class": verdict.get("reason_class"),
        "reason": verdict.get("reason"),
        "guessed": verdict.get("guessed"),
        "confidence": verdict.get("confidence"),
        "node": version.verdict_node,
        "version": version.number,
        "ms": record.ms,
        "nodes": node_summaries(&record),
    });
    Json(body).into_response()
}

async fn explain(State(state): State<Shared>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let version = state.current();
    match run_request(&state, &version, body).await {
        // The record `enf run` writes for the item: every node's output, error,
        // timing, model usage and calls.
        Ok(record) => Json(record).into_response(),
        Err(response) => response,
    }
}
