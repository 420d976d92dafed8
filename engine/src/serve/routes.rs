//! The HTTP routes of `enf serve` (docs/serving.md): `POST /v1/predict`,
//! `POST /v1/explain`, `POST /v1/filter` (in `filter`), `GET /healthz`,
//! `GET /readyz`, `GET /metrics`, `POST /admin/reload`, `GET /openapi.json`. Every answer but the metrics is JSON; a
//! bad request is a 400 naming the field, never a 500; agent output is
//! returned as JSON data, never as markup.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ServerState;
use super::admission::{Places, Refusal};
use super::auth::{self, Guard};
use super::frames::{FramesError, RequestFrames};
use super::metrics::Gauges;
use super::reload::Version;
use super::request::{CheckedCandidate, RequestContext, RequestFrameRefs, check_item};
use crate::data::{Item, Truth};
use crate::run::{ItemRecord, NodeCache, RunContext, run_item};

pub(super) type Shared = Arc<ServerState>;

/// The router over `state`.
pub(super) fn router(state: Shared) -> axum::Router {
    let body_limit = state.rules.limits.max_body_bytes;
    let guard = |guard| middleware::from_fn_with_state((state.clone(), guard), auth::require);
    let api = axum::Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/explain", post(explain))
        .route("/v1/filter", post(super::filter::filter))
        .route(
            "/openapi.json",
            get(|State(state): State<Shared>| async move { Json(super::openapi::document(&state.rules.limits)) }),
        )
        .route_layer(guard(Guard::Api));
    let metrics = axum::Router::new().route("/metrics", get(metrics)).route_layer(guard(Guard::Metrics));
    let admin = axum::Router::new().route("/admin/reload", post(admin_reload)).route_layer(guard(Guard::Admin));
    axum::Router::new()
        .merge(api)
        .merge(metrics)
        .merge(admin)
        // Probes answer without a token: an orchestrator's probe cannot read a secret.
        .route("/healthz", get(|| async { Json(json!({"status": "live"})) }))
        .route("/readyz", get(readyz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route", None) })
        .layer(middleware::from_fn_with_state(state.clone(), super::http::read_body))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), super::http::observe))
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

async fn metrics(State(state): State<Shared>) -> Response {
    let version = state.current();
    let gauges = Gauges {
        queue_depth: state.admission.depth(),
        queue_capacity: state.admission.capacity(),
        pipeline_running: state.admission.running(),
        mean_item_seconds: state.admission.mean_item_time().map(|t| t.as_secs_f64()),
        cache: version.pipeline.cache_stats.as_ref().map(|s| (s.hits(), s.misses())),
        version: version.number,
        models: state.readiness.models().into_iter().map(|m| (m.alias, m.outcome.is_ok())).collect(),
        calls_in_flight: version.calls_in_flight(),
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
    let probes = state.readiness.models();
    let models: serde_json::Map<String, Value> = probes
        .iter()
        .map(|probe| {
            let checked = humantime::format_rfc3339_seconds(probe.checked).to_string();
            let status = match &probe.outcome {
                Ok(()) => json!({"answering": true, "checked": checked}),
                Err(e) => json!({"answering": false, "error": e, "checked": checked}),
            };
            (probe.alias.clone(), status)
        })
        .collect();
    let ready = state.readiness.ready();
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

/// The JSON body, or the answer to a body that is not JSON (400).
pub(super) fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, Response> {
    body.map(|Json(body)| body).map_err(|rejection| error(StatusCode::BAD_REQUEST, rejection.body_text(), Some("")))
}

/// An admitted request: its queue places, its frames (decoded once for all
/// its candidates), the node cache its candidates share, and its deadline.
pub(super) struct Admitted {
    _places: Places,
    frames: Arc<RequestFrames>,
    node_cache: Option<Arc<NodeCache>>,
    /// Holds the node cache's files; removed with the request.
    _scratch: Option<tempfile::TempDir>,
    deadline: tokio::time::Instant,
}

/// Admits a request of `items` items whose videos name `frames`, or
/// answers 503 with `Retry-After`. Once admitted, its inline frames are
/// decoded; `shared_nodes` gives its items a node cache of their own (the
/// candidates of one `/v1/filter` request: the Profile runs once).
pub(super) async fn admit(
    state: &ServerState,
    items: usize,
    frames: RequestFrameRefs,
    shared_nodes: Option<&Version>,
) -> Result<Admitted, Response> {
    let deadline = tokio::time::Instant::now() + state.deadline;
    let places = state.admission.admit(items, state.deadline).map_err(busy)?;
    // Decoding and writing the frames is blocking work: off the async workers.
    let decoded = tokio::task::spawn_blocking(move || RequestFrames::new(frames)).await.map_err(|e| {
        tracing::error!("decoding the request's frames failed: {e}");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error while decoding the request's frames", None)
    })?;
    let frames = decoded.map_err(|e| match e {
        FramesError::Field(e) => error(StatusCode::BAD_REQUEST, e.message, Some(&e.pointer)),
        FramesError::Io(e) => {
            tracing::error!("cannot write the request's inline frames: {e}");
            error(StatusCode::INSUFFICIENT_STORAGE, "cannot store the request's frames", None)
        }
    })?;
    let scratch = shared_nodes.and_then(|_| {
        tempfile::tempdir()
            .inspect_err(|e| tracing::warn!("no scratch directory for the request's node cache: {e}"))
            .ok()
    });
    let node_cache = match (shared_nodes, &scratch) {
        (Some(version), Some(dir)) => Some(Arc::new(NodeCache::new(dir.path(), &version.pipeline))),
        _ => None,
    };
    Ok(Admitted { _places: places, frames: Arc::new(frames), node_cache, _scratch: scratch, deadline })
}

/// The 503 answer to a refusal, with its `Retry-After`.
fn busy(refusal: Refusal) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, refusal.message, None);
    if let Ok(value) = HeaderValue::from_str(&refusal.retry_after_s.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Runs one candidate of an admitted request: it waits its turn for a
/// pipeline slot (FIFO), then runs, all before the request's deadline. An
/// item still waiting for its turn at the deadline is answered 503 with
/// `Retry-After` (overload); one that started and did not finish, 504 (its
/// unfinished node calls cancelled). Its `$item` document is built when it
/// enters the pipeline and dropped when it leaves.
pub(super) async fn execute(
    state: &ServerState,
    version: &Version,
    admitted: &Admitted,
    context: &RequestContext,
    candidate: &CheckedCandidate,
) -> Result<ItemRecord, Response> {
    let started = std::sync::atomic::AtomicBool::new(false);
    let run = async {
        let _slot = state.admission.slot().await;
        started.store(true, std::sync::atomic::Ordering::Relaxed);
        let item = Item {
            item_id: candidate.item_id.clone(),
            user_id: context.user_id.clone(),
            video_id: candidate.video_id.clone(),
            document: context.document(candidate),
            truth: Truth { negative: false, explicit: false, reason_class: None, reason_text: None },
        };
        let run_context = RunContext {
            node_cache: admitted.node_cache.clone(),
            ..RunContext::new(version.pipeline.clone(), admitted.frames.clone())
        };
        run_item(run_context, Arc::new(item)).await
    };
    let record = tokio::time::timeout_at(admitted.deadline, run).await.map_err(|_| {
        state.metrics.deadline_passed();
        if started.load(std::sync::atomic::Ordering::Relaxed) {
            error(StatusCode::GATEWAY_TIMEOUT, format!("no answer within the deadline of {:?}", state.deadline), None)
        } else {
            busy(state.admission.late(state.deadline))
        }
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
    let body = json_body(body)?;
    let checked =
        check_item(body, &state.rules).map_err(|e| error(StatusCode::BAD_REQUEST, e.message, Some(&e.pointer)))?;
    let admitted = admit(state, 1, checked.frames, None).await?;
    execute(state, version, &admitted, &checked.context, &checked.candidate).await
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
