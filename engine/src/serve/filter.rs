//! `POST /v1/filter`: the paper's deployment — a base recommender's ranked
//! candidates for one user go in; those ENF predicts will draw negative
//! feedback come out, with the verdict and the reason, and the rest stay in
//! their order. Each candidate is one item through the pipeline (they run
//! concurrently and take one queue place each). Which are dropped is
//! [`crate::feed_filter`]'s rule, the one `enf replay` measures offline.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::request::{FieldError, check_item, field_error};
use super::routes::{Shared, admit, error, execute, json_body};
use crate::feed_filter::{FilterRule, Placement};

fn settings(fields: &Map<String, Value>) -> Result<FilterRule, FieldError> {
    let threshold = match fields.get("threshold") {
        None | Some(Value::Null) => FilterRule::default().threshold,
        Some(v) => v
            .as_f64()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| field_error("/threshold", "must be a number in [0, 1]"))?,
    };
    let keep_at_least = match fields.get("keep_at_least") {
        None | Some(Value::Null) => FilterRule::default().keep_at_least,
        Some(v) => v
            .as_u64()
            .and_then(|k| usize::try_from(k).ok())
            .ok_or_else(|| field_error("/keep_at_least", "must be a whole number ≥ 0"))?,
    };
    Ok(FilterRule { threshold, keep_at_least })
}

/// One candidate's item bodies: the request's user, history and task with
/// that candidate; errors point into `/candidates/i`.
fn candidate_bodies(fields: &Map<String, Value>, max: usize) -> Result<Vec<Value>, FieldError> {
    let known = ["user", "history", "candidates", "task", "threshold", "keep_at_least"];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(field_error(format!("/{unknown}"), format!("unknown field (known: {})", known.join(", "))));
    }
    let candidates = match fields.get("candidates") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(field_error("/candidates", "is empty")),
        Some(_) => return Err(field_error("/candidates", "must be a list")),
        None => return Err(field_error("/candidates", "is required")),
    };
    if candidates.len() > max {
        return Err(field_error("/candidates", format!("{} candidates; at most {max}", candidates.len())));
    }
    Ok(candidates
        .iter()
        .map(|candidate| {
            let mut body = Map::new();
            for key in ["user", "history", "task"] {
                if let Some(value) = fields.get(key) {
                    body.insert(key.into(), value.clone());
                }
            }
            body.insert("candidate".into(), candidate.clone());
            Value::Object(body)
        })
        .collect())
}

pub(super) async fn filter(State(state): State<Shared>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let body = match json_body(&state, body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(fields) = body.as_object() else {
        return error(StatusCode::BAD_REQUEST, "must be an object", Some(""));
    };
    let checked = settings(fields).and_then(|settings| {
        let bodies = candidate_bodies(fields, state.rules.limits.max_candidates)?;
        let items = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                check_item(body, &state.rules).map_err(|e| FieldError {
                    pointer: e
                        .pointer
                        .strip_prefix("/candidate")
                        .map_or(e.pointer.clone(), |rest| format!("/candidates/{i}{rest}")),
                    message: e.message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((settings, items))
    });
    let (settings, items) = match checked {
        Ok(checked) => checked,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message, Some(&e.pointer)),
    };
    let _places = match admit(&state, items.len()) {
        Ok(places) => places,
        Err(response) => return response,
    };
    let started = std::time::Instant::now();
    let version = state.current();
    let ids: Vec<String> = items.iter().map(|i| i.video_id.clone()).collect();
    // The candidates share one user and history: a node cache scoped to this
    // request (a temporary directory, gone with it) runs the Profile once.
    let scratch = tempfile::tempdir()
        .inspect_err(|e| tracing::warn!("no scratch directory for the request's node cache: {e}"))
        .ok();
    let node_cache =
        scratch.as_ref().map(|dir| std::sync::Arc::new(crate::run::NodeCache::new(dir.path(), &version.pipeline)));
    let results =
        futures::future::join_all(items.into_iter().map(|item| execute(&state, &version, item, node_cache.clone())))
            .await;
    let verdicts: Vec<Result<Value, String>> = results
        .into_iter()
        .map(|result| match result {
            Ok(record) => record.verdict(&version.verdict_node).cloned(),
            Err(response) => Err(format!("no verdict (HTTP {})", response.status().as_u16())),
        })
        .collect();
    let placements = settings.apply(&verdicts.iter().map(|v| v.as_ref().ok()).collect::<Vec<_>>());
    let (mut kept, mut dropped, mut restored) = (Vec::new(), Vec::new(), 0);
    for (rank, ((video_id, verdict), placement)) in ids.into_iter().zip(verdicts).zip(placements).enumerate() {
        let mut entry = match &verdict {
            Ok(v) => json!({
                "video_id": video_id, "rank": rank, "verdict": v.get("attitude"), "class": v.get("reason_class"),
                "reason": v.get("reason"), "confidence": v.get("confidence"),
            }),
            Err(e) => json!({"video_id": video_id, "rank": rank, "error": e}),
        };
        match placement {
            Placement::Kept => kept.push(entry),
            Placement::Dropped => dropped.push(entry),
            Placement::Restored => {
                entry["restored"] = json!(true);
                restored += 1;
                kept.push(entry);
            }
        }
    }
    let body = json!({
        "kept": kept,
        "dropped": dropped,
        "restored": restored,
        "node": version.verdict_node,
        "version": version.number,
        "ms": started.elapsed().as_secs_f64() * 1000.0,
    });
    Json(body).into_response()
}
