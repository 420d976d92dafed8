//! Rewards of one completion, as the paper's S-GRPO defines them (and the
//! flat reward its ablation compares with). The verdict is judged by
//! [`crate::eval::score::score_item`] — the function `enf eval` folds over —
//! so a verdict is never right for training and wrong for evaluation.
//!
//! - **format**: exactly one `<think>…</think>` followed by exactly one
//!   non-empty `<answer>…</answer>`, nothing but white space around them
//!   (repeated tags, an empty answer, text outside the tags, tags in another
//!   case get nothing) — stricter than the agents' tolerant parser
//!   (`enf_kit::answer`), which accepts either order and a stray character;
//! - the ladder reads the answer, never a guess: where the agent's tolerant
//!   parser had to infer the attitude or the class (no valid `<answer>`, or
//!   one that does not say it: the verdict is flagged `guessed`), the
//!   ladder pays nothing — else an output with no answer, which the parser
//!   defaults to `like`, would earn the judge reward on every liked item;
//! - **stepwise** ladder: attitude right → `judge`, else stop; truly liked →
//!   stop; reason class right → `class`, else stop; where the user's own
//!   reason exists (explicit data) → `reason` × mean ROUGE-1/2/L F of the
//!   `<think>` text against it;
//! - **flat**: the attitude step only.

use enf_kit::verdict::Verdict;
use serde::{Deserialize, Serialize};

use crate::eval::rouge::ReasonScorer;
use crate::eval::score::{Truth, score_item};

/// Which reward the policy is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardScheme {
    /// Format + attitude (GRPO with one reward, the ablation).
    Flat,
    /// Format + the ladder (S-GRPO).
    Stepwise,
}

/// What each step is worth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardWeights {
    /// A well-formed answer.
    pub format: f64,
    /// The attitude (like / negative) is right.
    pub judge: f64,
    /// The reason class is right.
    pub class: f64,
    /// Multiplies the mean ROUGE of the reasoning (0 turns the third step off).
    pub reason: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        Self { format: 0.5, judge: 0.5, class: 1.0, reason: 1.0 }
    }
}

/// One completion's reward, part by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RewardParts {
    /// Format reward.
    pub format: f64,
    /// Attitude step.
    pub judge: f64,
    /// Class step.
    pub class: f64,
    /// Reason step.
    pub reason: f64,
}

impl RewardParts {
    /// The reward.
    pub fn total(&self) -> f64 {
        self.format + self.judge + self.class + self.reason
    }
}

/// Whether `raw` is exactly `<think>…</think><answer>…</answer>` with a
/// non-empty answer (white space around and between the parts allowed).
pub fn well_formed(raw: &str) -> bool {
    let text = raw.trim();
    let Some(rest) = text.strip_prefix("<think>") else { return false };
    let Some((think, rest)) = rest.split_once("</think>") else { return false };
    let Some(rest) = rest.trim_start().strip_prefix("<answer>") else { return false };
    let Some(answer) = rest.strip_suffix("</answer>") else { return false };
    let tags = ["<think>", "</think>", "<answer>", "</answer>"];
    let nested = |s: &str| tags.iter().any(|t| s.to_lowercase().contains(t));
    !nested(think) && !nested(answer) && !answer.trim().is_empty()
}

/// Scores one completion (`raw`, parsed by the agent into `verdict`) against `truth`.
pub fn reward(
    raw: &str,
    verdict: &Verdict,
    truth: &Truth<'_>,
    scheme: RewardScheme,
    weights: &RewardWeights,
    scorer: &ReasonScorer,
) -> RewardParts {
    let mut parts = RewardParts { format: if well_formed(raw) { weights.format } else { 0.0 }, ..Default::default() };
    if verdict.guessed {
        return parts;
    }
    let score = score_item(truth, verdict, scorer);
    if !score.attitude_right {
        return parts;
    }
    parts.judge = weights.judge;
    if scheme == RewardScheme::Flat || !truth.negative {
        return parts;
    }
    if score.class_right != Some(true) {
        return parts;
    }
    parts.class = weights.class;
    if let Some(rouge) = score.reasoning {
        parts.reason = weights.reason * rouge;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use enf_kit::task::Task;
    use enf_kit::verdict::parse;

    const REAL: &str = "too graphic, the blood made me feel sick";

    fn score(raw: &str, truth: Truth<'_>, scheme: RewardScheme) -> RewardParts {
        let verdict = parse(raw, &Task::default());
        reward(raw, &verdict, &truth, scheme, &RewardWeights::default(), &ReasonScorer::new())
    }

    fn negative(class: u32, text: Option<&str>) -> Truth<'_> {
        Truth { negative: true, reason_class: Some(class), reason_text: text }
    }

    const LIKED: Truth<'static> = Truth { negative: false, reason_class: None, reason_text: None };

    #[test]
    fn format_reward_needs_one_think_then_one_non_empty_answer() {
        assert!(well_formed("<think>x</think><answer>like</answer>"));
        assert!(well_formed("  <think>x</think>\n<answer>negative: 2</answer>\n"));
        for hack in [
            "<think>x</think><answer></answer>",
            "<think>x</think><answer>  </answer>",
            "<think>x</think><answer>like</answer><answer>like</answer>",
            "<think>x</think><think>y</think><answer>like</answer>",
            "Sure! <think>x</think><answer>like</answer>",
            "<think>x</think><answer>like</answer> thanks",
            "<think>x</think>like<answer>like</answer>",
            "<answer>like</answer><think>x</think>",
            "<THINK>x</THINK><ANSWER>like</ANSWER>",
            "<think>x<answer>like</answer>",
            "like",
            "",
        ] {
            assert!(!well_formed(hack), "{hack:?} must get no format reward");
        }
    }

    #[test]
    fn a_wrong_attitude_stops_the_ladder() {
        let parts = score("<think>fun</think><answer>like</answer>", negative(3, Some(REAL)), RewardScheme::Stepwise);
        assert_eq!(parts, RewardParts { format: 0.5, ..Default::default() });
        let parts = score("<think>no</think><answer>negative: 1</answer>", LIKED, RewardScheme::Stepwise);
        assert_eq!(parts.total(), 0.5);
    }

    #[test]
    fn a_liked_item_stops_after_the_attitude() {
        let parts = score("<think>fun</think><answer>like</answer>", LIKED, RewardScheme::Stepwise);
        assert_eq!(parts, RewardParts { format: 0.5, judge: 0.5, ..Default::default() });
    }

    #[test]
    fn a_wrong_class_stops_before_the_reason() {
        let raw = format!("<think>{REAL}</think><answer>negative: 2</answer>");
        let parts = score(&raw, negative(3, Some(REAL)), RewardScheme::Stepwise);
        assert_eq!(parts, RewardParts { format: 0.5, judge: 0.5, ..Default::default() });
    }

    #[test]
    fn the_right_class_earns_the_class_step_and_the_reason_its_rouge() {
        let raw = format!("<think>{REAL}</think><answer>negative: 3</answer>");
        let parts = score(&raw, negative(3, Some(REAL)), RewardScheme::Stepwise);
        assert_eq!((parts.format, parts.judge, parts.class), (0.5, 0.5, 1.0));
        assert!((parts.reason - 1.0).abs() < 1e-9, "identical reasoning scores 1: {parts:?}");
        let partial = score(
            "<think>the blood was too much</think><answer>negative: 3</answer>",
            negative(3, Some(REAL)),
            RewardScheme::Stepwise,
        );
        assert!(partial.reason > 0.0 && partial.reason < 1.0, "{partial:?}");
        // Implicit data (no reason text): two steps only.
        let parts = score(&raw, negative(3, None), RewardScheme::Stepwise);
        assert_eq!((parts.class, parts.reason), (1.0, 0.0));
    }

    #[test]
    fn the_flat_scheme_rewards_the_attitude_only() {
        let raw = format!("<think>{REAL}</think><answer>negative: 3</answer>");
        let parts = score(&raw, negative(3, Some(REAL)), RewardScheme::Flat);
        assert_eq!(parts, RewardParts { format: 0.5, judge: 0.5, ..Default::default() });
    }

    #[test]
    fn a_guessed_verdict_earns_nothing_on_the_ladder() {
        // No <answer>: the parser finds "negative" and 3 in the text, but that is a guess.
        let parts = score("negative: 3 because of the blood", negative(3, None), RewardScheme::Stepwise);
        assert_eq!(parts, RewardParts::default());
        // No attitude anywhere: the parser defaults to `like`, right for a liked item — still nothing.
        let parts = score("<think>hmm</think><answer>maybe</answer>", LIKED, RewardScheme::Stepwise);
        assert_eq!(parts.judge, 0.0, "{parts:?}");
        // An answer that gives the attitude but no class: the class is inferred from the reasoning.
        let raw = format!("<think>{REAL}, class 3</think><answer>negative</answer>");
        let parts = score(&raw, negative(3, Some(REAL)), RewardScheme::Stepwise);
        assert_eq!((parts.format, parts.judge, parts.class, parts.reason), (0.5, 0.0, 0.0, 0.0), "{parts:?}");
        // The same verdict stated in the answer earns the ladder.
        let raw = format!("<think>{REAL}</think><answer>negative: 3</answer>");
        assert!(score(&raw, negative(3, Some(REAL)), RewardScheme::Stepwise).class > 0.0);
    }
}
