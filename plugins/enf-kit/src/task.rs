//! The task configuration every item carries as `$item.task` (written by the
//! host from the data set's `dataset.toml`, or the defaults): which play rate
//! counts as an implicit negative and the reason classes, so prompts and
//! parsing follow the data rather than code.

use serde::{Deserialize, Serialize};

/// One reason class for negative feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonClass {
    /// Number used in answers (1, 2, 3, …).
    pub id: u32,
    /// Short name, e.g. `boring`.
    pub name: String,
    /// What the class covers, shown to the model.
    pub description: String,
    /// Words that point to this class when a model names no number.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// The task configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// A play rate below this is an implicit negative.
    pub negative_play_rate: f64,
    /// The reason classes.
    pub classes: Vec<ReasonClass>,
}

impl Default for Task {
    /// The paper's three classes and its 0.3 play-rate rule.
    fn default() -> Self {
        let class = |id, name: &str, description: &str, keywords: &[&str]| ReasonClass {
            id,
            name: name.into(),
            description: description.into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        Self {
            negative_play_rate: 0.3,
            classes: vec![
                class(
                    1,
                    "negative-content",
                    "negative events, vulgar content, or values that conflict with the user's",
                    &["negative", "vulgar", "values", "offensive", "violent", "scandal", "conflict", "controvers"],
                ),
                class(
                    2,
                    "boring",
                    "the content lacks appeal and fails to arouse the user's interest",
                    &["boring", "dull", "interest", "appeal", "slow", "repetitive", "uninteresting"],
                ),
                class(
                    3,
                    "visually-disturbing",
                    "disturbing visual elements that make the user uncomfortable",
                    &["disturbing", "visual", "graphic", "gore", "blood", "uncomfortable", "gross", "scary"],
                ),
            ],
        }
    }
}

impl Task {
    /// Reads `value` as a task, or the defaults when it is absent or malformed.
    pub fn from_value(value: Option<&serde_json::Value>) -> Self {
        value.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }

    /// The classes as prompt lines: `1. name: description`.
    pub fn class_menu(&self) -> String {
        self.classes.iter().map(|c| format!("{}. {}: {}", c.id, c.name, c.description)).collect::<Vec<_>>().join("\n")
    }

    /// The class with this id.
    pub fn class(&self, id: u32) -> Option<&ReasonClass> {
        self.classes.iter().find(|c| c.id == id)
    }
}
