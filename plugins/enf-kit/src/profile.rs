//! The psychographic profile the Profile agent derives: value orientation,
//! tolerance for negativity, sensory tolerance and what bores the user.
//! Models are asked for four labelled lines; [`parse`] reads them leniently
//! and keeps the whole text as the summary.

use serde::{Deserialize, Serialize};

/// A user's psychographic profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// What the user values.
    pub values: String,
    /// How the user takes negative events and extreme opinions.
    pub negativity_tolerance: String,
    /// How the user takes graphic or disturbing visuals.
    pub sensory_tolerance: String,
    /// What bores the user.
    pub bored_by: String,
    /// The model's whole description.
    pub summary: String,
}

/// The labels asked for, in order, with the field each fills.
pub const LABELS: [&str; 4] = ["Values", "Negativity tolerance", "Sensory tolerance", "Bored by"];

impl Profile {
    /// The profile as the four labelled lines (for prompts).
    pub fn to_lines(&self) -> String {
        let fields = [&self.values, &self.negativity_tolerance, &self.sensory_tolerance, &self.bored_by];
        LABELS
            .iter()
            .zip(fields)
            .map(|(label, value)| format!("{label}: {}", if value.is_empty() { "unknown" } else { value }))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads a profile from a model's text; lines it cannot place are kept in
/// the summary only.
pub fn parse(text: &str) -> Profile {
    let mut profile = Profile { summary: crate::clip(text.trim(), 1200), ..Profile::default() };
    for line in text.lines() {
        let line = line.trim().trim_start_matches(['-', '*', ' ']);
        let Some((label, value)) = line.split_once(':') else { continue };
        let label = label.trim().trim_matches('*').to_lowercase();
        let value = crate::clip(value.trim(), 300);
        let slot = if label.starts_with("value") {
            &mut profile.values
        } else if label.starts_with("negativ") {
            &mut profile.negativity_tolerance
        } else if label.starts_with("sensory") || label.starts_with("visual") {
            &mut profile.sensory_tolerance
        } else if label.starts_with("bored") || label.starts_with("boring") {
            &mut profile.bored_by
        } else {
            continue;
        };
        if slot.is_empty() {
            *slot = value;
        }
    }
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labelled_lines_in_any_order_and_case() {
        let p = parse(
            "- **Bored by**: slow documentaries\nvalues: family, fairness\nSensory tolerance: low\nNegativity Tolerance: medium\nextra words",
        );
        assert_eq!(p.values, "family, fairness");
        assert_eq!(p.negativity_tolerance, "medium");
        assert_eq!(p.sensory_tolerance, "low");
        assert_eq!(p.bored_by, "slow documentaries");
        assert!(p.summary.contains("extra words"));
    }

    #[test]
    fn unlabelled_text_becomes_the_summary() {
        let p = parse("A cheerful person who likes cooking.");
        assert_eq!(p.values, "");
        assert_eq!(p.summary, "A cheerful person who likes cooking.");
        assert!(p.to_lines().contains("Values: unknown"));
    }
}
