//! The Reason agent's prompt over the four dimensions.

use crate::task::Task;
use crate::{clip, length};
use serde_json::Value;

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
        .filter(|s| !s.is_empty())
}

/// The judgement prompt over the four dimensions.
pub fn judge(user: &Value, profile: &Value, video: &Value, candidate: &Value, task: &Task) -> String {
    let mut prompt = String::from("You predict how one user reacts to a recommended short video.\n");
    prompt.push_str(&format!("User: {}\n", crate::profile_prompts::describe_user(user)));
    let profile_lines: Vec<String> = [
        ("values", "Values"),
        ("negativity_tolerance", "Negativity tolerance"),
        ("sensory_tolerance", "Sensory tolerance"),
        ("bored_by", "Bored by"),
    ]
    .iter()
    .filter_map(|(key, label)| text(profile, key).map(|v| format!("{label}: {}", clip(&v, 200))))
    .collect();
    if !profile_lines.is_empty() {
        prompt.push_str(&format!("Profile:\n{}\n", profile_lines.join("\n")));
    }
    prompt.push_str(&format!("\nVideo: \"{}\"", clip(&text(candidate, "title").unwrap_or_default(), 200)));
    if let Some(category) = text(candidate, "category") {
        prompt.push_str(&format!(" ({category})"));
    }
    prompt.push('\n');
    if let Some(length) = candidate.get("duration_s").and_then(Value::as_f64).and_then(length) {
        prompt.push_str(&format!("Length: {length}\n"));
    }
    for (key, label) in [("content", "Content"), ("controversial", "Controversial"), ("values", "Values it conveys")] {
        if let Some(value) = text(video, key) {
            prompt.push_str(&format!("{label}: {}\n", clip(&value, 300)));
        }
    }
    prompt.push_str(&format!(
        "\nConsider: 1) does it match the user's interests? 2) is the plot appealing to them? 3) does it contain negative events or extreme opinions they reject? 4) do its visuals suit their sensory tolerance?\n\nReasons for a negative reaction:\n{}\n\nThink step by step inside <think></think>. Then answer inside <answer></answer> with \"like\", or \"negative: N\" where N is the number of the reason.",
        task.class_menu()
    ));
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_prompt_carries_profile_analysis_and_classes() {
        let prompt = judge(
            &json!({"age": 30, "occupation": "chef", "interests": ["food"]}),
            &json!({"values": "craft", "sensory_tolerance": "low"}),
            &json!({"content": "fish gutting", "controversial": "blood"}),
            &json!({"title": "Fresh catch", "category": "food", "duration_s": 94.5}),
            &Task::default(),
        );
        for part in [
            "30-year-old chef; interests: food",
            "Values: craft",
            "Sensory tolerance: low",
            "Content: fish gutting",
            "\"Fresh catch\" (food)\nLength: 95 seconds",
            "2. boring",
            "<answer>",
        ] {
            assert!(prompt.contains(part), "missing `{part}` in:\n{prompt}");
        }
    }

    /// The prompts both Reason agents (this crate's and the Python port in
    /// plugins/python/enf_kit) must build, byte for byte.
    #[test]
    fn the_shared_prompt_cases_are_built_as_recorded() {
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("../reason-prompt-cases.json")).expect("reason-prompt-cases.json");
        assert!(cases.len() >= 5);
        for case in cases {
            let input = &case["input"];
            let task = Task::from_value(input.get("task").filter(|t| !t.is_null()));
            let prompt = judge(&input["user"], &input["profile"], &input["video"], &input["candidate"], &task);
            assert_eq!(Some(prompt.as_str()), case["prompt"].as_str(), "input: {input}");
        }
    }

    #[test]
    fn works_without_profile_or_analysis() {
        let prompt = judge(&json!({}), &Value::Null, &Value::Null, &json!({"title": "x"}), &Task::default());
        assert!(!prompt.contains("Profile:"));
        assert!(prompt.contains("\"x\""));
    }
}
