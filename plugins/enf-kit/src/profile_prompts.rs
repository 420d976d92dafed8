//! The Profile agent's logic: its prompts and how refinements merge.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clip;
use crate::profile::Profile;

/// One watched video, as items list them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Watched {
    /// Its id.
    pub video_id: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Fraction watched.
    #[serde(default)]
    pub play_rate: f64,
    /// Frames the host holds.
    #[serde(default)]
    pub frames: u32,
}

/// Merges a refined profile into the current one: fields the model left out keep their value.
pub fn merge(current: &Profile, refined: Profile) -> Profile {
    let pick = |new: String, old: &String| if new.is_empty() { old.clone() } else { new };
    Profile {
        values: pick(refined.values, &current.values),
        negativity_tolerance: pick(refined.negativity_tolerance, &current.negativity_tolerance),
        sensory_tolerance: pick(refined.sensory_tolerance, &current.sensory_tolerance),
        bored_by: pick(refined.bored_by, &current.bored_by),
        summary: refined.summary,
    }
}

/// "34-year-old female nurse; interests: food, travel".
pub fn describe_user(user: &Value) -> String {
    let field = |key: &str| {
        user.get(key).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
    };
    let mut parts = Vec::new();
    if let Some(age) = field("age") {
        parts.push(format!("{age}-year-old"));
    }
    if let Some(gender) = field("gender") {
        parts.push(gender);
    }
    parts.push(field("occupation").unwrap_or_else(|| "person".into()));
    let interests: Vec<&str> = user
        .get("interests")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = parts.join(" ");
    if !interests.is_empty() {
        text.push_str(&format!("; interests: {}", interests.join(", ")));
    }
    text
}

fn title(watched: &Watched) -> String {
    clip(watched.title.as_deref().unwrap_or("(untitled)"), 120)
}

/// The first prompt: a profile from demographics and the recent history.
pub fn initial(user: &Value, recent: &[&Watched], threshold: f64) -> String {
    let finished: Vec<String> =
        recent.iter().filter(|w| w.play_rate >= threshold).map(|w| format!("- {}", title(w))).collect();
    let skipped: Vec<String> = recent
        .iter()
        .filter(|w| w.play_rate < threshold)
        .map(|w| format!("- {} (watched {:.0}%)", title(w), w.play_rate * 100.0))
        .collect();
    let list = |lines: Vec<String>| if lines.is_empty() { "- none".to_string() } else { lines.join("\n") };
    format!(
        "You study a user of a short-video app to understand which videos they skip.\nUser: {}\n\nVideos they watched:\n{}\n\nVideos they skipped quickly:\n{}\n\nDescribe the user's psychology in exactly four lines:\nValues: what they care about.\nNegativity tolerance: how they take negative events or extreme opinions.\nSensory tolerance: how they take graphic or disturbing images.\nBored by: what bores them.",
        describe_user(user),
        list(finished),
        list(skipped)
    )
}

/// A refinement prompt: explain one more skip.
pub fn refine(profile: &Profile, watched: &Watched, reading: Option<&Value>) -> String {
    let mut video = format!("\"{}\"", title(watched));
    if let Some(category) = &watched.category {
        video.push_str(&format!(" ({category})"));
    }
    if let Some(reading) = reading {
        let line = |key: &str| reading.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        video.push_str(&format!(
            "\nWhat the video shows: {}\nControversial: {}",
            line("content"),
            line("controversial")
        ));
    }
    format!(
        "Current profile of a user:\n{}\n\nThe user skipped this video after watching {:.0}% of it: {video}\n\nUpdate the profile so it explains this skip. Answer in the same four lines (Values, Negativity tolerance, Sensory tolerance, Bored by).",
        profile.to_lines(),
        watched.play_rate * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_fields_the_refinement_left_out() {
        let current = Profile { values: "family".into(), bored_by: "news".into(), ..Profile::default() };
        let refined = Profile { values: "family, honesty".into(), summary: "s".into(), ..Profile::default() };
        let merged = merge(&current, refined);
        assert_eq!(merged.values, "family, honesty");
        assert_eq!(merged.bored_by, "news");
        assert_eq!(merged.summary, "s");
    }

    #[test]
    fn describes_users_with_missing_fields() {
        assert_eq!(
            describe_user(&json!({"age": 34, "gender": "female", "occupation": "nurse", "interests": ["food"]})),
            "34-year-old female nurse; interests: food"
        );
        assert_eq!(describe_user(&json!({})), "person");
    }

    #[test]
    fn initial_prompt_separates_watched_and_skipped() {
        let history = [
            Watched { video_id: "a".into(), title: Some("Street food".into()), play_rate: 0.9, ..Watched::default() },
            Watched { video_id: "b".into(), title: Some("Car crash".into()), play_rate: 0.05, ..Watched::default() },
        ];
        let refs: Vec<&Watched> = history.iter().collect();
        let prompt = initial(&json!({}), &refs, 0.3);
        let watched_at = prompt.find("- Street food").unwrap();
        let skipped_at = prompt.find("- Car crash (watched 5%)").unwrap();
        assert!(prompt.find("watched:").unwrap() < watched_at && prompt.find("skipped quickly:").unwrap() < skipped_at);
    }
}
