//! Checking a request body into the `$item` document `enf run` builds for
//! one user × one candidate, and the frames it names. Every problem is
//! reported with the JSON pointer of the field at fault, so a client knows
//! what to fix; nothing a request says is trusted beyond its checked shape.

use std::collections::HashMap;

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

/// A checked prediction request.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedItem {
    /// The request's item id, or a name built from user and candidate.
    pub item_id: String,
    /// The user.
    pub user_id: String,
    /// The candidate video.
    pub video_id: String,
    /// The `$item` document (frames as counts, as agents see them in `enf run`).
    pub document: Value,
    /// The frames each video of the request names, by video id.
    pub frames: HashMap<String, Vec<FrameRef>>,
}

fn object<'a>(value: &'a Value, pointer: &str) -> Result<&'a Map<String, Value>, FieldError> {
    value.as_object().ok_or_else(|| field_error(pointer, "must be an object"))
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
/// `frames` out: the document keeps their count, `frames` gets the refs.
fn video(
    value: &Value,
    pointer: &str,
    rules: &RequestRules,
    frames: &mut HashMap<String, Vec<FrameRef>>,
) -> Result<Value, FieldError> {
    let limits = &rules.limits;
    let fields = object(value, pointer)?;
    let video_id = string_field(fields, pointer, "video_id")?;
    for (name, check) in [("title", Value::is_string as fn(&Value) -> bool), ("category", Value::is_string)] {
        if let Some(v) = fields.get(name).filter(|v| !v.is_null() && !check(v)) {
            return Err(field_error(format!("{pointer}/{name}"), format!("must be a string, not {v}")));
        }
    }
    if let Some(v) = fields.get("duration_s").filter(|v| !v.is_null() && !v.as_f64().is_some_and(|d| d >= 0.0)) {
        return Err(field_error(format!("{pointer}/duration_s"), format!("must be a number ≥ 0, not {v}")));
    }
    let mut document = Value::Object(fields.clone());
    let refs = match fields.get("frames") {
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
            list.iter()
                .enumerate()
                .map(|(i, f)| FrameRef::parse(f, &format!("{pointer}/frames/{i}"), rules))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(field_error(format!("{pointer}/frames"), "must be a list of frames")),
    };
    document["frames"] = json!(refs.len());
    match frames.get(&video_id) {
        Some(earlier) if earlier != &refs && !refs.is_empty() && !earlier.is_empty() => {
            return Err(field_error(
                format!("{pointer}/frames"),
                format!("video `{video_id}` appears twice with different frames"),
            ));
        }
        Some(earlier) if !earlier.is_empty() => document["frames"] = json!(earlier.len()),
        _ => {
            frames.insert(video_id, refs);
        }
    }
    Ok(document)
}

/// Checks a `POST /v1/predict` or `/v1/explain` body: the item document
/// (`user`, `history`, `candidate`, optional `item_id` and `task`).
pub fn check_item(body: &Value, rules: &RequestRules) -> Result<CheckedItem, FieldError> {
    let limits = &rules.limits;
    let fields = object(body, "")?;
    let known = ["item_id", "user", "history", "candidate", "task"];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(field_error(format!("/{unknown}"), format!("unknown field (known: {})", known.join(", "))));
    }
    let user = object(fields.get("user").ok_or_else(|| field_error("/user", "is required"))?, "/user")?;
    let user_id = string_field(user, "/user", "user_id")?;
    let mut frames = HashMap::new();
    let candidate = video(
        fields.get("candidate").ok_or_else(|| field_error("/candidate", "is required"))?,
        "/candidate",
        rules,
        &mut frames,
    )?;
    let history = match fields.get("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => {
            if entries.len() > limits.max_history {
                return Err(field_error(
                    "/history",
                    format!("{} entries; at most {}", entries.len(), limits.max_history),
                ));
            }
            entries
                .iter()
                .enumerate()
                .map(|(i, entry)| video(entry, &format!("/history/{i}"), rules, &mut frames))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(field_error("/history", "must be a list")),
    };
    let task = match fields.get("task") {
        None | Some(Value::Null) => rules.default_task.clone(),
        Some(task) => {
            serde_json::from_value::<enf_kit::task::Task>(task.clone())
                .map_err(|e| field_error("/task", format!("not a task configuration: {e}")))?;
            task.clone()
        }
    };
    let video_id = candidate["video_id"].as_str().unwrap_or_default().to_string();
    let item_id = match fields.get("item_id") {
        None | Some(Value::Null) => format!("{user_id}/{video_id}"),
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(_) => return Err(field_error("/item_id", "must be a non-empty string")),
    };
    let document = json!({
        "item_id": item_id,
        "user": Value::Object(user.clone()),
        "history": history,
        "candidate": candidate,
        "task": task,
    });
    Ok(CheckedItem { item_id, user_id, video_id, document, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(limits: Limits) -> RequestRules {
        RequestRules { limits, frames_root: None, default_task: json!({"negative_play_rate": 0.3, "classes": []}) }
    }

    fn check(body: Value) -> Result<CheckedItem, FieldError> {
        check_item(&body, &rules(Limits::default()))
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
        assert_eq!((item.item_id.as_str(), item.user_id.as_str(), item.video_id.as_str()), ("u1/v2", "u1", "v2"));
        assert_eq!(item.document["candidate"]["frames"], 0);
        assert_eq!(item.document["history"][0]["title"], "Cats");
        assert_eq!(item.document["user"]["age"], 30, "user fields pass through");
        assert_eq!(item.document["task"]["negative_play_rate"], 0.3, "the server's task when none is given");
        let mut named = valid();
        named["item_id"] = json!("req-7");
        assert_eq!(check(named).unwrap().document["item_id"], "req-7");
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
        assert_eq!(check_item(&body, &rules).unwrap_err().pointer, "/history");
        let mut body = valid();
        body["candidate"]["frames"] = json!(["frames/a.png", "frames/b.png"]);
        assert_eq!(check_item(&body, &rules).unwrap_err().pointer, "/candidate/frames");
    }
}
