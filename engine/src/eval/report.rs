//! The report a person reads (Markdown): the metrics table, then per user —
//! who they are, the profile the agents derived, and every candidate with the
//! predicted verdict and reason next to what really happened.

use std::collections::BTreeMap;
use std::fmt::Write;

use enf_kit::verdict::Attitude;
use serde_json::Value;

use super::{Evaluation, Judged, table};
use crate::data::Dataset;
use crate::run::ItemRecord;

fn clip(text: &str, max: usize) -> String {
    enf_kit::clip(&text.replace(['\n', '|'], " "), max)
}

fn attitude(negative: bool) -> &'static str {
    if negative { "negative" } else { "like" }
}

fn class_name(dataset: &Dataset, id: Option<u32>) -> String {
    match id {
        None => String::new(),
        Some(id) => dataset.task.class(id).map_or(format!("{id}"), |c| format!("{id} {}", c.name)),
    }
}

/// Writes the Markdown report.
pub fn markdown(
    evaluation: &Evaluation,
    judged: &[Judged],
    records: &[ItemRecord],
    dataset: &Dataset,
    title: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "{} items, {} with a verdict, {} failed (left out of the figures; `enf run --retry-failed` reruns them), {} not run, {} verdicts the parser had to guess. Verdicts from node `{}`; positive class: {:?}.\n",
        evaluation.items,
        evaluation.scored,
        evaluation.failed,
        evaluation.missing - evaluation.failed,
        evaluation.guessed,
        evaluation.node,
        evaluation.positive
    );
    let _ = writeln!(out, "{}\n", table(evaluation, "This run"));
    let records: BTreeMap<&str, &ItemRecord> = records.iter().map(|r| (r.item_id.as_str(), r)).collect();
    let mut by_user: BTreeMap<&str, Vec<&Judged>> = BTreeMap::new();
    for j in judged {
        by_user.entry(j.user_id.as_str()).or_default().push(j);
    }
    for (user_id, items) in by_user {
        let _ = writeln!(out, "## User {user_id}\n");
        if let Some(user) = dataset.users.get(user_id) {
            let _ = writeln!(
                out,
                "{} {} {}, interests: {}\n",
                user.age.map(|a| format!("{a}-year-old")).unwrap_or_default(),
                user.gender.clone().unwrap_or_default(),
                user.occupation.clone().unwrap_or_default(),
                if user.interests.is_empty() { "none given".to_string() } else { user.interests.join(", ") }
            );
        }
        let profile = items.iter().filter_map(|j| records.get(j.item_id.as_str())).find_map(|r| {
            r.nodes.get("profile").and_then(|n| n.output.as_ref()).and_then(|o| o.get("profile")).cloned()
        });
        if let Some(profile) = profile {
            let _ = writeln!(out, "Profile (from the first of this user's items):\n");
            for (key, label) in [
                ("values", "Values"),
                ("negativity_tolerance", "Negativity tolerance"),
                ("sensory_tolerance", "Sensory tolerance"),
                ("bored_by", "Bored by"),
            ] {
                let value = profile.get(key).and_then(Value::as_str).unwrap_or_default();
                let _ =
                    writeln!(out, "- {label}: {}", if value.is_empty() { "—".to_string() } else { clip(value, 200) });
            }
            out.push('\n');
        }
        let _ = writeln!(out, "| Video | Truth | Predicted | Reason given | Real reason |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for j in items {
            let title = dataset.videos.get(&j.video_id).map_or(j.video_id.clone(), |v| clip(&v.title, 60));
            let truth = format!("{} {}", attitude(j.truth_negative), class_name(dataset, j.truth_class));
            let (predicted, reason) = match (&j.verdict, &j.error) {
                (Some(v), _) => {
                    let mark = if (v.attitude == Attitude::Negative) == j.truth_negative { "✓" } else { "✗" };
                    let guessed = if v.guessed { " (guessed)" } else { "" };
                    (
                        format!(
                            "{mark} {} {}{guessed}",
                            attitude(v.attitude == Attitude::Negative),
                            class_name(dataset, v.reason_class)
                        ),
                        clip(&v.reason, 160),
                    )
                }
                (None, Some(e)) => ("failed".to_string(), clip(e, 160)),
                (None, None) => ("—".to_string(), String::new()),
            };
            let real = j.truth_reason.as_deref().map(|r| clip(r, 100)).unwrap_or_default();
            let _ = writeln!(out, "| {title} | {} | {predicted} | {reason} | {real} |", truth.trim());
        }
        out.push('\n');
    }
    out
}
