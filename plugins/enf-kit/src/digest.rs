//! The history digest: a profile without a model. For each reason class it
//! counts the videos in the watch history whose titles carry that class's
//! words and how many of them the user skipped fast or disliked, and states
//! the tolerance that evidence shows ("low (skipped 2 of 2 such videos)").
//! It fills the same [`Profile`] fields the Profile agent's model fills, so
//! the Reason agent reads it unchanged. The training demonstration uses it
//! so that what is trained is the Reason agent alone, with a profile that
//! costs nothing to compute (docs/training.md).

use serde::Deserialize;
use serde_json::Value;

use crate::profile::Profile;
use crate::task::Task;

/// How the digest reads a history: which profile field each class fills and
/// the words, beyond the task's own keywords, that mark a title as that class.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestConfig {
    /// One entry per class the digest reports.
    pub classes: Vec<ClassEvidence>,
}

/// One class: its id in the task, the profile field it fills, extra words.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEvidence {
    /// The task's class id.
    pub id: u32,
    /// The profile field it fills.
    pub field: ProfileField,
    /// Words (matched case-insensitively inside titles) besides the task's keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// A field of [`Profile`] the digest can fill (named as in the profile:
/// `negativity_tolerance`, `sensory_tolerance`, `bored_by`, `values`; any
/// other name is refused with the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    /// How the user takes negative events.
    NegativityTolerance,
    /// How the user takes disturbing visuals.
    SensoryTolerance,
    /// What bores the user.
    BoredBy,
    /// What the user values.
    Values,
}

impl Default for DigestConfig {
    /// The paper's three classes: negative content → negativity tolerance,
    /// boring → what bores the user, visually disturbing → sensory tolerance.
    fn default() -> Self {
        let class = |id, field| ClassEvidence { id, field, keywords: Vec::new() };
        Self {
            classes: vec![
                class(1, ProfileField::NegativityTolerance),
                class(2, ProfileField::BoredBy),
                class(3, ProfileField::SensoryTolerance),
            ],
        }
    }
}

/// Evidence for one class in one history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    seen: usize,
    rejected: usize,
}

/// The profile the history shows. An entry counts as rejected when it was
/// disliked or played below the task's threshold; a title counts for the
/// first configured class whose words it contains.
pub fn digest(history: &[Value], task: &Task, config: &DigestConfig) -> Profile {
    let words: Vec<Vec<String>> = config
        .classes
        .iter()
        .map(|c| {
            let task_words = task.class(c.id).map(|t| t.keywords.clone()).unwrap_or_default();
            task_words.into_iter().chain(c.keywords.iter().cloned()).map(|w| w.to_lowercase()).collect()
        })
        .collect();
    let mut tallies = vec![Tally::default(); config.classes.len()];
    for entry in history {
        let title = entry.get("title").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        let Some(class) = words.iter().position(|w| w.iter().any(|word| title.contains(word.as_str()))) else {
            continue;
        };
        let play_rate = entry.get("play_rate").and_then(Value::as_f64).unwrap_or(1.0);
        let disliked = entry.get("disliked").and_then(Value::as_bool).unwrap_or(false);
        tallies[class].seen += 1;
        if disliked || play_rate < task.negative_play_rate {
            tallies[class].rejected += 1;
        }
    }
    let mut profile = Profile::default();
    let mut summary = Vec::new();
    for (class, tally) in config.classes.iter().zip(&tallies) {
        let name = task.class(class.id).map_or("such", |t| t.name.as_str());
        let text = describe(class.field, name, *tally);
        summary.push(format!("{name}: {text}"));
        let slot = match class.field {
            ProfileField::NegativityTolerance => &mut profile.negativity_tolerance,
            ProfileField::SensoryTolerance => &mut profile.sensory_tolerance,
            ProfileField::BoredBy => &mut profile.bored_by,
            ProfileField::Values => &mut profile.values,
        };
        *slot = text;
    }
    profile.summary = summary.join("; ");
    profile
}

/// "low (skipped 2 of 2 such videos)", or for what bores the user
/// "boring videos (skipped 2 of 2 such videos)".
fn describe(field: ProfileField, class_name: &str, tally: Tally) -> String {
    let Tally { seen, rejected } = tally;
    let evidence = format!("skipped {rejected} of {seen} such videos");
    let level = if seen == 0 {
        return "unknown (no such video watched)".into();
    } else if 2 * rejected > seen {
        "low"
    } else if rejected == 0 {
        "high"
    } else {
        "mixed"
    };
    if field == ProfileField::BoredBy {
        let verdict = if level == "low" { class_name.to_string() } else { format!("not {class_name}") };
        format!("{verdict} videos ({evidence})")
    } else {
        format!("{level} ({evidence})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn watched(title: &str, play_rate: f64, disliked: bool) -> Value {
        json!({ "title": title, "play_rate": play_rate, "disliked": disliked })
    }

    #[test]
    fn counts_rejections_per_class_and_states_the_tolerance() {
        let history = [
            watched("Scandal at the match", 0.1, false),
            watched("Violent brawl", 0.9, true),
            watched("Graphic accident", 0.95, false),
            watched("Graphic surgery", 0.8, false),
            watched("A day with a chef", 0.2, false),
        ];
        let profile = digest(&history, &Task::default(), &DigestConfig::default());
        assert_eq!(profile.negativity_tolerance, "low (skipped 2 of 2 such videos)");
        assert_eq!(profile.sensory_tolerance, "high (skipped 0 of 2 such videos)");
        assert_eq!(profile.bored_by, "unknown (no such video watched)");
        assert!(profile.summary.contains("negative-content: low"), "{}", profile.summary);
    }

    #[test]
    fn mixed_evidence_and_what_bores() {
        let history = [
            watched("So dull", 0.1, false),
            watched("Slow and dull", 0.9, false),
            watched("Boring lecture", 0.9, false),
        ];
        let profile = digest(&history, &Task::default(), &DigestConfig::default());
        assert_eq!(profile.bored_by, "not boring videos (skipped 1 of 3 such videos)");
        let history = [watched("So dull", 0.1, false), watched("Slow and dull", 0.2, false)];
        let profile = digest(&history, &Task::default(), &DigestConfig::default());
        assert_eq!(profile.bored_by, "boring videos (skipped 2 of 2 such videos)");
        let history = [watched("Gore", 0.1, false), watched("Blood", 0.9, false), watched("Gross", 0.1, false)];
        let profile = digest(&history, &Task::default(), &DigestConfig::default());
        assert_eq!(profile.sensory_tolerance, "low (skipped 2 of 3 such videos)");
        let history = [watched("Gore", 0.1, false), watched("Blood", 0.9, false)];
        let profile = digest(&history, &Task::default(), &DigestConfig::default());
        assert_eq!(profile.sensory_tolerance, "mixed (skipped 1 of 2 such videos)");
    }

    #[test]
    fn extra_words_extend_the_task_keywords_and_malformed_entries_are_skipped() {
        let config: DigestConfig = serde_json::from_value(json!({
            "classes": [{ "id": 1, "field": "negativity_tolerance", "keywords": ["Hateful"] }]
        }))
        .unwrap();
        let history = [watched("A hateful rant", 0.1, false), json!("not an object"), json!({ "play_rate": 0.1 })];
        let profile = digest(&history, &Task::default(), &config);
        assert_eq!(profile.negativity_tolerance, "low (skipped 1 of 1 such videos)");
        assert!(profile.sensory_tolerance.is_empty(), "only configured classes are reported");
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let result: Result<DigestConfig, _> = serde_json::from_value(json!({ "clases": [] }));
        assert!(result.is_err());
    }

    #[test]
    fn an_unknown_profile_field_is_refused_not_written_elsewhere() {
        let result: Result<DigestConfig, _> =
            serde_json::from_value(json!({ "classes": [{ "id": 1, "field": "negativity_tolernace" }] }));
        let error = result.unwrap_err().to_string();
        assert!(error.contains("negativity_tolernace"), "{error}");
    }
}
