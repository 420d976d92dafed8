//! The OpenAPI 3.1 description of `enf serve`'s HTTP API, served at
//! `GET /openapi.json` and committed as docs/openapi.json (regenerate it
//! with `enf serve --print-openapi > docs/openapi.json`). Request limits are
//! the server's own, so a client reads the bounds it will meet; the
//! committed copy shows the defaults. The serve tests post the documented
//! examples to a live server and check its answers against the documented
//! required fields, so the description stays true to the routes.

use serde_json::{Value, json};

use super::request::Limits;

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn answer(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": json_content(reference(schema))})
}

/// Answers every JSON route may give besides its own.
fn error_answers(extra: &[(&str, &str)]) -> Value {
    let mut answers = serde_json::Map::new();
    for (status, description) in extra {
        answers.insert((*status).into(), answer(description, "Error"));
    }
    answers.insert("401".into(), answer("A bearer token is required and was not given or is wrong", "Error"));
    Value::Object(answers)
}

/// Answers every route that takes a body may give.
const BODY_ANSWERS: [(&str, &str); 4] = [
    ("400", "The body is malformed; `field` is the JSON pointer of the field at fault"),
    ("408", "The body did not arrive within the server's body timeout"),
    ("413", "The body is over the size limit"),
    ("500", "The server failed on this request (logged with its `x-request-id`)"),
];

fn item_route(summary: &str, description: &str, ok: Value) -> Value {
    let mut responses = error_answers(&BODY_ANSWERS);
    for (status, description) in [
        (
            "503",
            "Overloaded: too few free queue places, or the wait would pass the deadline; retry after the `Retry-After` seconds (derived from the measured service rate)",
        ),
        ("504", "No answer within the server's deadline (waiting included)"),
    ] {
        responses[status] = answer(description, "Error");
    }
    responses["200"] = ok;
    json!({"post": {
        "summary": summary,
        "description": description,
        "requestBody": {"required": true, "content": {"application/json": {
            "schema": reference("ItemRequest"),
            "example": example_item(),
        }}},
        "responses": responses,
    }})
}

/// A request body for `/v1/predict` and `/v1/explain` (the document `enf
/// data items` prints for one user × one candidate).
pub fn example_item() -> Value {
    json!({
        "user": {"user_id": "u1", "age": 31, "gender": "f", "occupation": "nurse", "interests": ["cooking"]},
        "history": [{"video_id": "v7", "title": "Quick pasta", "category": "food", "play_rate": 0.95, "disliked": false}],
        "candidate": {"video_id": "v9", "title": "Street brawl, uncut", "category": "news", "duration_s": 312.0},
    })
}

/// A request body for `/v1/filter`.
pub fn example_filter() -> Value {
    let item = example_item();
    json!({
        "user": item["user"],
        "history": item["history"],
        "candidates": [
            item["candidate"],
            {"video_id": "v10", "title": "Knife skills for beginners", "category": "food", "duration_s": 420.0},
        ],
        "threshold": 0.5,
        "keep_at_least": 1,
    })
}

fn schemas(limits: &Limits) -> Value {
    let frame = json!({
        "description": "A frame: a path under the server's --frames-root (nothing outside it is read), or an inline PNG/JPEG/WebP image in base64 (a data: URL too)",
        "oneOf": [
            {"type": "string", "description": "Relative path under the frames root"},
            {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}, "additionalProperties": false},
            {"type": "object", "required": ["base64"], "properties": {"base64": {"type": "string", "description": format!("At most {} bytes decoded", limits.max_frame_bytes)}}, "additionalProperties": false},
        ],
    });
    let video = json!({
        "type": "object",
        "description": "A video: the candidate or a history entry (history entries also carry the user's play_rate, watch_s, disliked; other fields pass through to the agents)",
        "required": ["video_id"],
        "properties": {
            "video_id": {"type": "string", "minLength": 1},
            "title": {"type": ["string", "null"]},
            "category": {"type": ["string", "null"]},
            "duration_s": {"type": ["number", "null"], "minimum": 0},
            "frames": {"type": "array", "maxItems": limits.max_frames, "items": reference("Frame")},
        },
    });
    let user = json!({
        "type": "object",
        "description": "The user; fields besides user_id pass through to the agents",
        "required": ["user_id"],
        "properties": {"user_id": {"type": "string", "minLength": 1}},
    });
    let task = json!({
        "type": "object",
        "description": "The task configuration (negative play-rate threshold, reason classes); the server's when absent",
    });
    let item_request = json!({
        "type": "object",
        "required": ["user", "candidate"],
        "additionalProperties": false,
        "properties": {
            "item_id": {"type": "string", "minLength": 1, "description": "Defaults to USER/VIDEO"},
            "user": reference("User"),
            "history": {"type": "array", "maxItems": limits.max_history, "items": reference("Video")},
            "candidate": reference("Video"),
            "task": reference("Task"),
        },
    });
    let filter_request = json!({
        "type": "object",
        "required": ["user", "candidates"],
        "additionalProperties": false,
        "properties": {
            "user": reference("User"),
            "history": {"type": "array", "maxItems": limits.max_history, "items": reference("Video")},
            "candidates": {"type": "array", "minItems": 1, "maxItems": limits.max_candidates, "items": reference("Video"), "description": "The base recommender's ranking, best first; each takes one queue place"},
            "task": reference("Task"),
            "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5, "description": "A negative verdict drops its candidate when its confidence (1 when the agent gives none) is at least this"},
            "keep_at_least": {"type": "integer", "minimum": 0, "default": 0, "description": "Dropped candidates are put back, best ranked first, until this many are kept"},
        },
    });
    let node_summary = json!({
        "type": "object",
        "required": ["ok", "ms"],
        "properties": {"ok": {"type": "boolean"}, "ms": {"type": "number"}, "output": {"description": "The node's JSON output"}, "error": {"type": "string"}},
    });
    let prediction = json!({
        "type": "object",
        "required": ["item_id", "verdict", "node", "version", "ms", "nodes"],
        "properties": {
            "item_id": {"type": "string"},
            "verdict": {"type": ["string", "null"], "description": "The verdict node's attitude: `negative` or `like`"},
            "class": {"type": ["integer", "null"], "description": "The reason class, when the verdict is negative and the agent names one"},
            "reason": {"type": ["string", "null"], "description": "The agent's reasoning, as text (data, never markup)"},
            "guessed": {"type": ["boolean", "null"], "description": "True when the answer was out of format and the verdict was guessed from its words"},
            "confidence": {"type": ["number", "null"], "description": "Where the model gives one"},
            "node": {"type": "string", "description": "The node that gave the verdict"},
            "version": {"type": "integer", "description": "The serving version (it grows with each reload)"},
            "ms": {"type": "number"},
            "nodes": {"type": "object", "additionalProperties": reference("NodeSummary")},
        },
    });
    let candidate_outcome = json!({
        "type": "object",
        "required": ["video_id", "rank"],
        "properties": {
            "video_id": {"type": "string"}, "rank": {"type": "integer", "description": "Place in the request's ranking, from 0"},
            "verdict": {"type": ["string", "null"]}, "class": {"type": ["integer", "null"]}, "reason": {"type": ["string", "null"]},
            "confidence": {"type": ["number", "null"]},
            "error": {"type": "string", "description": "Why there is no verdict (the candidate is kept: fail open)"},
            "restored": {"type": "boolean", "description": "Dropped, then put back to keep at least keep_at_least"},
        },
    });
    let filtered = json!({
        "type": "object",
        "required": ["kept", "dropped", "restored", "node", "version", "ms"],
        "properties": {
            "kept": {"type": "array", "items": reference("CandidateOutcome"), "description": "In the request's order"},
            "dropped": {"type": "array", "items": reference("CandidateOutcome")},
            "restored": {"type": "integer"}, "node": {"type": "string"}, "version": {"type": "integer"}, "ms": {"type": "number"},
        },
    });
    let record = json!({
        "type": "object",
        "description": "The record `enf run` writes for the item: every node's output, error, timing, attempts, model usage and calls",
        "required": ["item_id", "user_id", "video_id", "ok", "ms", "nodes"],
        "properties": {
            "item_id": {"type": "string"}, "user_id": {"type": "string"}, "video_id": {"type": "string"},
            "ok": {"type": "boolean"}, "ms": {"type": "number"}, "nodes": {"type": "object"},
        },
    });
    let error = json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string", "description": "JSON pointer (RFC 6901) of the field at fault; empty for the whole body"}},
    });
    let ready = json!({
        "type": "object",
        "required": ["ready", "graph", "version", "plugins", "models"],
        "properties": {
            "ready": {"type": "boolean"}, "graph": {"type": "string"}, "version": {"type": "integer"}, "plugins": {"type": "integer"},
            "models": {"type": "object", "description": "Per model alias: answering, the error of its latest probe, and when it was checked (RFC 3339)"},
        },
    });
    let reload = json!({
        "type": "object",
        "required": ["reloaded", "version"],
        "properties": {
            "reloaded": {"type": "boolean"}, "version": {"type": "integer"}, "error": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}, "description": "What `enf graph check` reports on the refused version"},
        },
    });
    json!({
        "Frame": frame, "Video": video, "User": user, "Task": task, "ItemRequest": item_request,
        "FilterRequest": filter_request, "NodeSummary": node_summary, "Prediction": prediction,
        "CandidateOutcome": candidate_outcome, "Filtered": filtered, "ItemRecord": record, "Error": error,
        "Ready": ready, "Reload": reload,
    })
}

/// The OpenAPI document of a server with these request limits.
pub fn document(limits: &Limits) -> Value {
    let mut filter_responses = error_answers(&BODY_ANSWERS);
    filter_responses["503"] = answer(
        "Too few free queue places for the candidates, or their wait would pass the deadline; retry after the `Retry-After` seconds",
        "Error",
    );
    filter_responses["200"] = answer("Kept and dropped candidates", "Filtered");
    let mut predict = item_route(
        "Predict the user's attitude to the candidate",
        "Runs the graph on one user × one candidate; the verdict node's answer with per-node outputs and timings",
        answer("The prediction", "Prediction"),
    );
    predict["post"]["responses"]["502"] = answer("The verdict node failed; `nodes` says how", "Error");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ENF engine",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Predicts which ranked videos a user will fast-skip or dislike, and why (docs/serving.md). The API routes take `Authorization: Bearer TOKEN` when the server has a token, /admin/* the admin token; the probes /healthz and /readyz take none, /metrics none with --public-metrics. Every answer carries `x-request-id` (the client's, or a new one).",
        },
        "components": {
            "schemas": schemas(limits),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "--token"},
                "admin": {"type": "http", "scheme": "bearer", "description": "--admin-token"},
            },
        },
        "paths": {
            "/v1/predict": predict,
            "/v1/explain": item_route(
                "Every node's output for one item",
                "The record `enf run` writes for the item",
                answer("The item's record", "ItemRecord"),
            ),
            "/v1/filter": {"post": {
                "summary": "Filter a ranked candidate list",
                "description": "Drops the candidates predicted to draw negative feedback, with verdicts and reasons; the kept ones stay in order. A candidate without a verdict is kept.",
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": reference("FilterRequest"),
                    "example": example_filter(),
                }}},
                "responses": filter_responses,
            }},
            "/healthz": {"get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "The process is serving", "content": json_content(json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "live"}}}))}},
            }},
            "/readyz": {"get": {
                "summary": "Readiness: every model answered its latest probe (at start, after each reload, and every --probe-interval)",
                "security": [],
                "responses": {"200": answer("Ready", "Ready"), "503": answer("A model does not answer", "Ready")},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": {"200": {"description": "Requests and latency per route, node latency and failures, model calls and calls in flight, model readiness, queue depth and pipeline load, deadlines passed, filter placements (failed-open apart), reloads, serving version, inference cache", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/admin/reload": {"post": {
                "summary": "Reload the graph, its plugins and model manifests now",
                "description": "Models whose manifests did not change keep their weights; requests in flight finish on the version they started on",
                "security": [{"admin": []}],
                "responses": {
                    "200": answer("The new version serves", "Reload"),
                    "401": answer("The admin token is required and was not given or is wrong", "Error"),
                    "403": answer("Admin routes are off: the server has no --admin-token", "Error"),
                    "422": answer("The new version does not build; the old one keeps serving", "Reload"),
                },
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": json_content(json!({"type": "object"}))}},
            }},
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value` names a schema the document defines.
    fn check_references(value: &Value, schemas: &serde_json::Map<String, Value>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let name = target.trim_start_matches("#/components/schemas/");
                    assert!(schemas.contains_key(name), "dangling reference {target}");
                }
                map.values().for_each(|v| check_references(v, schemas));
            }
            Value::Array(list) => list.iter().for_each(|v| check_references(v, schemas)),
            _ => {}
        }
    }

    #[test]
    fn references_resolve_and_limits_are_the_servers() {
        let limits = Limits { max_history: 7, max_candidates: 3, ..Limits::default() };
        let document = document(&limits);
        check_references(&document, document["components"]["schemas"].as_object().unwrap());
        assert_eq!(document["components"]["schemas"]["ItemRequest"]["properties"]["history"]["maxItems"], 7);
        assert_eq!(document["components"]["schemas"]["FilterRequest"]["properties"]["candidates"]["maxItems"], 3);
    }

    #[test]
    fn the_examples_pass_the_servers_own_checks() {
        let rules = super::super::RequestRules::default();
        super::super::request::check_item(example_item(), &rules).expect("the predict example is valid");
    }

    #[test]
    fn the_committed_copy_is_this_document() {
        let committed = include_str!("../../../docs/openapi.json");
        let committed: Value = serde_json::from_str(committed).expect("docs/openapi.json is JSON");
        assert!(
            committed == document(&Limits::default()),
            "docs/openapi.json is stale: regenerate it with `enf serve --print-openapi > docs/openapi.json`"
        );
    }
}
