//! Checking a request body into the `$item` document `enf run` builds for
//! one user × one candidate, and the frames it names. Every problem is
//! reported with the JSON pointer of the field at fault, so a client knows
//! what to fix; nothing a request says is trusted beyond its checked shape.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::frames::FrameRef;

/// Request limits (`enf serve --max-…`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most history entries.
    pub max_history: usize,
    /// Most frames per video (candidate or history entry).
    pub max_frames: usize,
    /// Largest decoded inline frame in bytes.
    pub max_frame_bytes: usize,
    /// Most candidates in one `/v1/filter` request.
    pub max_candidates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_history: 200,
            max_frames: 32,
            max_frame_bytes: 4 << 20,
            max_candidates: 100,
        }
    }
}

/// What a request is checked against.
#[derive(Debug, Clone, Default)]
pub struct RequestRules {
    /// Size and count limits.
    pub limits: Limits,
    /// The only directory frame paths may name (canonical); `None`: frames
    /// by path are refused, inline ones still served.
    pub frames_root: Option<std::path::PathBuf>,
    /// The task configuration of a request that gives none.
    pub default_task: Value,
}

/// A field that is missing or malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct FieldError {
    /// JSON pointer of the field (RFC 6901), `""` for the whole body.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

pub(super) fn field_error(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { pointer: pointer.into(), message: message.into() }
}

/// The frames each video of a request names, by video id.
pub type RequestFrameRefs = HashMap<String, Vec<FrameRef>>;

/// What every candidate of a request shares: the user, the history and the
/// task, checked once per request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestContext {
    /// The user.
    pub user_id: String,
    user: Value,
    /// The history entries (frames as counts).
    history: Value,
    task: Value,
}

/// One candidate of a request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCandidate {
    /// The request's item id, or a name built from user and candidate.
    pub item_id: String,
    /// The candidate video.
    pub video_id: String,
    candidate: Value,
}

impl RequestContext {
    /// The `$item` document `enf run` builds for `candidate` (frames as
    /// counts). It copies the user and the history: the server builds it
    /// when the item enters the pipeline and drops it when the item leaves.
    pub fn document(&self, candidate: &CheckedCandidate) -> Value {
        json!({
            "item_id": candidate.item_id,
            "user": self.user,
            "history": self.history,
            "candidate": candidate.candidate,
            "task": self.task,
        })
    }
}

/// A checked `POST /v1/predict` or `/v1/explain` request.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedItem {
    /// The user, history and task.
    pub context: RequestContext,
    /// The candidate.
    pub candidate: CheckedCandidate,
    /// The frames each video of the request names.
    pub frames: RequestFrameRefs,
}

impl CheckedItem {
    /// The `$item` document.
    pub fn document(&self) -> Value {
        self.context.document(&self.candidate)
    }
}

fn into_object(value: Value, pointer: &str) -> Result<Map<String, Value>, FieldError> {
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(field_error(pointer, "must be an object")),
    }
}

fn string_field(object: &Map<String, Value>, pointer: &str, name: &str) -> Result<String, FieldError> {
    match object.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(field_error(format!("{pointer}/{name}"), "must not be empty")),
        Some(_) => Err(field_error(format!("{pointer}/{name}"), "must be a string")),
        None => Err(field_error(format!("{pointer}/{name}"), "is required")),
    }
}

/// Checks a video's fields (candidate or history entry) and takes its
/// `frames` out: the document keeps their count, `frames` gets the refs
/// (inline images moved, not copied).
fn video(
    value: Value,
    pointer: &str,
    rules: &RequestRules,
    frames: &mut RequestFrameRefs,
) -> Result<Value, FieldError> {
    let limits = &rules.limits;
    let mut fields = into_object(value, pointer)?;
    let video_id = string_field(&fields, pointer, "video_id")?;
    for (name, check) in [("title", Value::is_string as fn(&Value) -> bool), ("category", Value::is_string)] {
        if let Some(v) = fields.get(name).filter(|v| !v.is_null() && !check(v)) {
            return Err(field_error(format!("{pointer}/{name}"), format!("must be a string, not {v}")));
        }
    }
    if let Some(v) = fields.get("duration_s").filter(|v| !v.is_null() && !v.as_f64().is_some_and(|d| d >= 0.0)) {
        return Err(field_error(format!("{pointer}/duration_s"), format!("must be a number ≥ 0, not {v}")));
    }
    let refs = match fields.get_mut("frames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Vec::new(),
        Some(Value::Number(_)) => {
            return Err(field_error(
                format!("{pointer}/frames"),
                "a frame count means nothing to the server: list the frames (paths under its frames root, or inline base64 images)",
            ));
        }
        Some(Value::Array(list)) => {
            if list.len() > limits.max_frames {
                return Err(field_error(
                    format!("{pointer}/frames"),
                    format!("{} frames; at most {} per video", list.len(), limits.max_frames),
                ));
            }
            list.iter_mut()
                .enumerate()
                .map(|(i, f)| FrameRef::parse(f, &format!("{pointer}/frames/{i}"), rules))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(field_error(format!("{pointer}/frames"), "must be a list of frames")),
    };
    let mut count = refs.len();
    match frames.get(&video_id) {
        Some(earlier) if earlier != &refs && !refs.is_empty() && !earlier.is_empty() => {
            return Err(field_error(
                format!("{pointer}/frames"),
                format!("video `{video_id}` appears twice with different frames"),
            ));
        }
        Some(earlier) if !earlier.is_empty() => count = earlier.len(),
        _ => {
            frames.insert(video_id, refs);
        }
    }
    fields.insert("frames".into(), json!(count));
    Ok(Value::Object(fields))
}

/// Checks the parts of a body every candidate shares — `user` (required),
/// `history` and `task` — taking them out of `fields`; the history's
/// frames go to `frames`.
pub fn check_context(
    fields: &mut Map<String, Value>,
    rules: &RequestRules,
    frames: &mut RequestFrameRefs,
) -> Result<RequestContext, FieldError> {
    let limits = &rules.limits;
    let user = into_object(fields.remove("user").ok_or_else(|| field_error("/user", "is required"))?, "/user")?;
    let user_id = string_field(&user, "/user", "user_id")?;
    let history = match fields.remove("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => {
            if entries.len() > limits.max_history {
                return Err(field_error(
                    "/history",
                    format!("{} entries; at most {}", entries.len(), limits.max_history),
                ));
            }
            entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| video(entry, &format!("/history/{i}"), rules, frames))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(field_error("/history", "must be a list")),
    };
    let task = match fields.remove("task") {
        None | Some(Value::Null) => rules.default_task.clone(),
        Some(task) => {
            enf_kit::task::Task::deserialize(&task)
                .map_err(|e| field_error("/task", format!("not a task configuration: {e}")))?;
            task
        }
    };
    Ok(RequestContext { user_id, user: Value::Object(user), history: Value::Array(history), task })
}

/// Checks one candidate video at `pointer`; `item_id` is the request's own
/// (else `USER/VIDEO`). Its frames go to `frames`.
pub fn check_candidate(
    value: Value,
    pointer: &str,
    item_id: Option<String>,
    context: &RequestContext,
    rules: &RequestRules,
    frames: &mut RequestFrameRefs,
) -> Result<CheckedCandidate, FieldError> {
    let candidate = video(value, pointer, rules, frames)?;
    let video_id = candidate["video_id"].as_str().unwrap_or_default().to_string();
    let item_id = item_id.unwrap_or_else(|| format!("{}/{video_id}", context.user_id));
    Ok(CheckedCandidate { item_id, video_id, candidate })
}

/// Checks a `POST /v1/predict` or `/v1/explain` body: the item document
/// (`user`, `history`, `candidate`, optional `item_id` and `task`).
pub fn check_item(body: Value, rules: &RequestRules) -> Result<CheckedItem, FieldError> {
    let mut fields = into_object(body, "")?;
    let known = ["item_id", "user", "history", "candidate", "task"];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(field_error(format!("/{unknown}"), format!("unknown field (known: {})", known.join(", "))));
    }
    let item_id = match fields.remove("item_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id),
        Some(_) => return Err(field_error("/item_id", "must be a non-empty string")),
    };
    let mut frames = HashMap::new();
    let candidate = fields.remove("candidate");
    let context = check_context(&mut fields, rules, &mut frames)?;
    let candidate = candidate.ok_or_else(|| field_error("/candidate", "is required"))?;
    let candidate = check_candidate(candidate, "/candidate", item_id, &context, rules, &mut frames)?;
    Ok(CheckedItem { context, candidate, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(limits: Limits) -> RequestRules {
        RequestRules { limits, frames_root: None, default_task: json!({"negative_play_rate": 0.3, "classes": []}) }
    }

    fn check(body: Value) -> Result<CheckedItem, FieldError> {
        check_item(body, &rules(Limits::default()))
    }

    fn pointer(body: Value) -> String {
        check(body).expect_err("must be refused").pointer
    }

    fn valid() -> Value {
        json!({
            "user": {"user_id": "u1", "age": 30},
            "history": [{"video_id": "v1", "title": "Cats", "play_rate": 0.9}],
            "candidate": {"video_id": "v2", "title": "Dogs", "category": "pets", "duration_s": 12.5},
        })
    }

    #[test]
    fn a_valid_body_becomes_the_item_document_enf_run_builds() {
        let item = check(valid()).unwrap();
        let ids = (item.candidate.item_id.as_str(), item.context.user_id.as_str(), item.candidate.video_id.as_str());
        assert_eq!(ids, ("u1/v2", "u1", "v2"));
        let document = item.document();
        assert_eq!(document["item_id"], "u1/v2");
        assert_eq!(document["candidate"]["frames"], 0);
        assert_eq!(document["history"][0]["title"], "Cats");
        assert_eq!(document["history"][0]["frames"], 0);
        assert_eq!(document["user"]["age"], 30, "user fields pass through");
        assert_eq!(document["task"]["negative_play_rate"], 0.3, "the server's task when none is given");
        let mut named = valid();
        named["item_id"] = json!("req-7");
        assert_eq!(check(named).unwrap().document()["item_id"], "req-7");
    }

    #[test]
    fn each_bad_field_is_named_by_its_json_pointer() {
        assert_eq!(pointer(json!([1, 2])), "");
        let mut body = valid();
        body.as_object_mut().unwrap().remove("user");
        assert_eq!(pointer(body), "/user");
        let mut body = valid();
        body["user"]["user_id"] = json!(5);
        assert_eq!(pointer(body), "/user/user_id");
        let mut body = valid();
        body["candidate"]["video_id"] = json!("  ");
        assert_eq!(pointer(body), "/candidate/video_id");
        let mut body = valid();
        body["history"][0]["title"] = json!(["x"]);
        assert_eq!(pointer(body), "/history/0/title");
        let mut body = valid();
        body["candidate"]["duration_s"] = json!(-1);
        assert_eq!(pointer(body), "/candidate/duration_s");
        let mut body = valid();
        body["history"] = json!({"video_id": "v1"});
        assert_eq!(pointer(body), "/history");
        let mut body = valid();
        body["task"] = json!({"classes": 3});
        assert_eq!(pointer(body), "/task");
        let mut body = valid();
        body["candidat"] = json!({});
        assert_eq!(pointer(body), "/candidat", "a misspelt field is not silently ignored");
        let mut body = valid();
        body["candidate"]["frames"] = json!(16);
        assert_eq!(pointer(body), "/candidate/frames", "a bare count cannot be served");
    }

    #[test]
    fn history_and_frames_are_bounded() {
        let rules = rules(Limits { max_history: 2, max_frames: 1, ..Limits::default() });
        let mut body = valid();
        body["history"] = json!([{"video_id": "a"}, {"video_id": "b"}, {"video_id": "c"}]);
        assert_eq!(check_item(body, &rules).unwrap_err().pointer, "/history");
        let mut body = valid();
        body["candidate"]["frames"] = json!(["frames/a.png", "frames/b.png"]);
        assert_eq!(check_item(body, &rules).unwrap_err().pointer, "/candidate/frames");
    }
}
