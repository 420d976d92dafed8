//! `POST /v1/filter`: the paper's deployment — a base recommender's ranked
//! candidates for one user go in; those ENF predicts will draw negative
//! feedback come out, with the verdict and the reason, and the rest stay in
//! their order. Each candidate is one item through the pipeline (they run
//! concurrently and take one queue place each). Which are dropped is
//! [`crate::feed_filter`]'s rule, the one `enf replay` measures offline.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::request::{
    CheckedCandidate, FieldError, RequestContext, RequestFrameRefs, check_candidate, check_context, field_error,
};
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

/// A checked filter request: the shared user, history and task (one copy),
/// each candidate, and every frame they name.
struct CheckedFilter {
    rule: FilterRule,
    context: RequestContext,
    candidates: Vec<CheckedCandidate>,
    frames: RequestFrameRefs,
}

fn check(body: Value, max_candidates: usize, rules: &super::RequestRules) -> Result<CheckedFilter, FieldError> {
    let Value::Object(mut fields) = body else {
        return Err(field_error("", "must be an object"));
    };
    let known = ["user", "history", "candidates", "task", "threshold", "keep_at_least"];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(field_error(format!("/{unknown}"), format!("unknown field (known: {})", known.join(", "))));
    }
    let rule = settings(&fields)?;
    let candidates = match fields.remove("candidates") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(field_error("/candidates", "is empty")),
        Some(_) => return Err(field_error("/candidates", "must be a list")),
        None => return Err(field_error("/candidates", "is required")),
    };
    if candidates.len() > max_candidates {
        return Err(field_error("/candidates", format!("{} candidates; at most {max_candidates}", candidates.len())));
    }
    let mut frames = HashMap::new();
    let context = check_context(&mut fields, rules, &mut frames)?;
    let candidates = candidates
        .into_iter()
        .enumerate()
        .map(|(i, candidate)| {
            check_candidate(candidate, &format!("/candidates/{i}"), None, &context, rules, &mut frames)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CheckedFilter { rule, context, candidates, frames })
}

pub(super) async fn filter(State(state): State<Shared>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let body = match json_body(body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let CheckedFilter { rule, context, candidates, frames } =
        match check(body, state.rules.limits.max_candidates, &state.rules) {
            Ok(checked) => checked,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.message, Some(&e.pointer)),
        };
    let started = std::time::Instant::now();
    let version = state.current();
    // The candidates share one user and history: a node cache scoped to this
    // request runs the Profile once.
    let admitted = match admit(&state, candidates.len(), frames, Some(&version)).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let results = futures::future::join_all(
        candidates.iter().map(|candidate| execute(&state, &version, &admitted, &context, candidate)),
    )
    .await;
    let verdicts: Vec<Result<Value, String>> = results
        .into_iter()
        .map(|result| match result {
            Ok(record) => record.verdict(&version.verdict_node).cloned(),
            Err(response) => Err(format!("no verdict (HTTP {})", response.status().as_u16())),
        })
        .collect();
    let placements = rule.apply(&verdicts.iter().map(|v| v.as_ref().ok()).collect::<Vec<_>>());
    let (mut kept, mut dropped, mut restored) = (Vec::new(), Vec::new(), 0);
    for (rank, ((candidate, verdict), placement)) in candidates.iter().zip(verdicts).zip(placements).enumerate() {
        let video_id = &candidate.video_id;
        let mut entry = match &verdict {
            Ok(v) => json!({
                "video_id": video_id, "rank": rank, "verdict": v.get("attitude"), "class": v.get("reason_class"),
                "reason": v.get("reason"), "confidence": v.get("confidence"),
            }),
            Err(e) => json!({"video_id": video_id, "rank": rank, "error": e}),
        };
        let failed_open = verdict.is_err();
        state.metrics.filtered(placement, failed_open);
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
