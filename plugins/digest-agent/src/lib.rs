//! The history digest agent: a Profile agent without a model. It counts,
//! per reason class, the history's videos whose titles carry the class's
//! words and how many the user skipped or disliked, and returns the profile
//! that evidence shows (`enf_kit::digest`), in the Profile agent's output
//! shape (`{"profile": …}`), so it replaces that agent in a graph by its
//! plugin path alone. Node config: `classes = [{ id, field, keywords }]`.

use enf_kit::digest::{self, DigestConfig};
use enf_kit::task::Task;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(default)]
    history: Vec<Value>,
    #[serde(default)]
    task: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
}

struct DigestAgent;

impl enf_agent_sdk::Guest for DigestAgent {
    fn describe() -> enf_agent_sdk::Descriptor {
        enf_agent_sdk::descriptor!(
            "digest-agent",
            "Profile counted from the watch history: per reason class, how many such videos the user skipped",
            r#"{"type":"object","properties":{"history":{"type":"array"},"task":{"type":"object"},"config":{"type":"object"}}}"#,
            r#"{"type":"object","properties":{"profile":{"type":"object"}}}"#
        )
    }

    fn run(input: String) -> Result<String, String> {
        let input: Input = enf_agent_sdk::parse_input(&input)?;
        let task = Task::from_value(input.task.as_ref());
        let config: DigestConfig = match input.config {
            Some(value) => serde_json::from_value(value).map_err(|e| format!("digest-agent config: {e}"))?,
            None => DigestConfig::default(),
        };
        let profile = digest::digest(&input.history, &task, &config);
        enf_agent_sdk::to_output(&json!({ "profile": profile }))
    }
}

enf_agent_sdk::export_agent!(DigestAgent);
