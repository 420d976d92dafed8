//! The rule that takes candidates out of a ranked list by their verdicts —
//! one rule shared by `POST /v1/filter` and `enf replay`, so the offline
//! replay measures exactly what the service does.
//!
//! A candidate is dropped when its verdict is `negative` with a confidence
//! (1 when the agent gives none) of at least the threshold. A candidate
//! without a verdict (its item failed) is kept: a broken agent never empties
//! a feed. When fewer than `keep_at_least` remain, the best-ranked dropped
//! candidates are put back.

use serde_json::Value;

/// How a ranked list is filtered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterRule {
    /// A negative verdict drops its candidate when its confidence is at least this.
    pub threshold: f64,
    /// Dropped candidates are put back, best ranked first, until this many are kept.
    pub keep_at_least: usize,
}

impl Default for FilterRule {
    fn default() -> Self {
        Self { threshold: 0.5, keep_at_least: 0 }
    }
}

/// What became of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Stays in the list.
    Kept,
    /// Taken out.
    Dropped,
    /// Taken out, then put back to keep at least `keep_at_least`.
    Restored,
}

impl Placement {
    /// Whether the candidate is in the filtered list.
    pub fn in_list(self) -> bool {
        self != Placement::Dropped
    }
}

impl FilterRule {
    /// Whether this verdict (`None`: no verdict) takes its candidate out.
    pub fn drops(&self, verdict: Option<&Value>) -> bool {
        verdict.is_some_and(|v| {
            v.get("attitude").and_then(Value::as_str) == Some("negative")
                && v.get("confidence").and_then(Value::as_f64).unwrap_or(1.0) >= self.threshold
        })
    }

    /// The placement of each candidate of a ranked list, best first, by its verdict.
    pub fn apply(&self, verdicts: &[Option<&Value>]) -> Vec<Placement> {
        let mut placements: Vec<Placement> =
            verdicts.iter().map(|v| if self.drops(*v) { Placement::Dropped } else { Placement::Kept }).collect();
        let mut kept = placements.iter().filter(|p| p.in_list()).count();
        for placement in &mut placements {
            if kept >= self.keep_at_least {
                break;
            }
            if *placement == Placement::Dropped {
                *placement = Placement::Restored;
                kept += 1;
            }
        }
        placements
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_verdicts_drop_by_confidence_and_missing_ones_keep() {
        let rule = FilterRule::default();
        assert!(rule.drops(Some(&json!({"attitude": "negative"}))), "no confidence counts as sure");
        assert!(rule.drops(Some(&json!({"attitude": "negative", "confidence": 0.5}))));
        assert!(!rule.drops(Some(&json!({"attitude": "negative", "confidence": 0.4}))));
        assert!(!rule.drops(Some(&json!({"attitude": "like"}))));
        assert!(!rule.drops(None), "fail open");
    }

    #[test]
    fn the_best_ranked_dropped_are_put_back_until_enough_are_kept() {
        let negative = json!({"attitude": "negative"});
        let like = json!({"attitude": "like"});
        let verdicts = [Some(&negative), Some(&like), Some(&negative), Some(&negative), None];
        let rule = FilterRule { keep_at_least: 4, ..FilterRule::default() };
        use Placement::*;
        assert_eq!(rule.apply(&verdicts), [Restored, Kept, Restored, Dropped, Kept]);
        assert_eq!(FilterRule::default().apply(&verdicts), [Dropped, Kept, Dropped, Dropped, Kept]);
    }
}
