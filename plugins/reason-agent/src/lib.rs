//! The Reason agent (paper §Method): from the user, the refined profile and
//! the video analysis it judges four dimensions — interest match, plot
//! appeal, negative events or extreme opinions, visual tolerance — and
//! predicts like vs. negative feedback, the reason class and the reason, in
//! `<think>…</think><answer>…</answer>` form, parsed tolerantly.

use enf_kit::reason as prompts;
use enf_kit::task::Task;
use enf_kit::verdict;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(default)]
    user: Value,
    /// The Profile agent's profile (optional: the agent works without it).
    #[serde(default)]
    profile: Value,
    /// The Video agent's analysis (optional).
    #[serde(default)]
    video: Value,
    /// The candidate as the item lists it.
    #[serde(default)]
    candidate: Value,
    #[serde(default)]
    task: Option<Value>,
}

struct ReasonAgent;

impl enf_agent_sdk::Guest for ReasonAgent {
    fn describe() -> enf_agent_sdk::Descriptor {
        enf_agent_sdk::descriptor!(
            "reason-agent",
            "Predicts like vs. negative feedback with its reason class and reason",
            r#"{"type":"object","properties":{"user":{"type":"object"},"profile":{"type":"object"},"video":{"type":"object"},"candidate":{"type":"object"},"task":{"type":"object"}}}"#,
            r#"{"type":"object","properties":{"verdict":{"type":"object"},"raw":{"type":"string"}}}"#
        )
    }

    fn run(input: String) -> Result<String, String> {
        let input: Input = enf_agent_sdk::parse_input(&input)?;
        let task = Task::from_value(input.task.as_ref());
        let prompt = prompts::judge(&input.user, &input.profile, &input.video, &input.candidate, &task);
        let raw = enf_agent_sdk::ask(&prompt, Vec::new())?;
        let verdict = verdict::parse(&raw, &task);
        enf_agent_sdk::to_output(&json!({ "verdict": verdict, "raw": raw }))
    }
}

enf_agent_sdk::export_agent!(ReasonAgent);
