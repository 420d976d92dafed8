//! One source of truth for "was this verdict right": the judgement of one
//! item's verdict against its truth. `enf eval` folds these into the paper's
//! figures; a trainer's stepwise rewards are built from the same steps
//! (attitude, then class, then reason), so a verdict is never right for one
//! and wrong for the other.

use enf_kit::verdict::{Attitude, Verdict};
use serde::Serialize;

use super::rouge::ReasonScorer;

/// What really happened with one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth<'a> {
    /// The feedback was negative (for the task at hand: implicit or explicit).
    pub negative: bool,
    /// The labelled reason class, where there is one.
    pub reason_class: Option<u32>,
    /// The user's own words on why, where given.
    pub reason_text: Option<&'a str>,
}

/// How one verdict fares against its truth, step by step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ItemScore {
    /// The predicted attitude is the true one.
    pub attitude_right: bool,
    /// For a truly negative item with a labelled class: whether the verdict
    /// is negative with that class (a "like" verdict has no class, so it
    /// misses). `None` for other items.
    pub class_right: Option<bool>,
    /// For a truly negative item with the user's own reason, judged negative:
    /// the mean ROUGE-1/2/L F-measure of the verdict's reason against it.
    pub reasoning: Option<f64>,
}

/// Scores `verdict` against `truth`.
pub fn score_item(truth: &Truth<'_>, verdict: &Verdict, scorer: &ReasonScorer) -> ItemScore {
    let predicted_negative = verdict.attitude == Attitude::Negative;
    let class_right = match (truth.negative, truth.reason_class) {
        (true, Some(class)) => Some(predicted_negative && verdict.reason_class == Some(class)),
        _ => None,
    };
    let reasoning = match truth.reason_text {
        Some(real) if truth.negative && predicted_negative => Some(scorer.score(real, &verdict.reason)),
        _ => None,
    };
    ItemScore { attitude_right: predicted_negative == truth.negative, class_right, reasoning }
}

/// Class accuracy over the items whose score has a class step: the share
/// right and how many it rests on; `None` when no item has a labelled class.
pub fn class_accuracy(scores: &[ItemScore]) -> Option<(f64, usize)> {
    let labelled: Vec<bool> = scores.iter().filter_map(|s| s.class_right).collect();
    if labelled.is_empty() {
        return None;
    }
    let right = labelled.iter().filter(|&&r| r).count();
    Some((right as f64 / labelled.len() as f64, labelled.len()))
}

/// Mean reasoning score and how many it rests on; `None` when none was scored.
pub fn mean_reasoning(scores: &[ItemScore]) -> Option<(f64, usize)> {
    let reasons: Vec<f64> = scores.iter().filter_map(|s| s.reasoning).collect();
    (!reasons.is_empty()).then(|| (reasons.iter().sum::<f64>() / reasons.len() as f64, reasons.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(attitude: Attitude, class: Option<u32>, reason: &str) -> Verdict {
        Verdict { attitude, reason_class: class, reason: reason.into(), guessed: false, notes: Vec::new() }
    }

    fn truth(negative: bool, class: Option<u32>, text: Option<&str>) -> Truth<'_> {
        Truth { negative, reason_class: class, reason_text: text }
    }

    #[test]
    fn each_step_is_judged_only_where_it_applies() {
        let scorer = ReasonScorer::new();
        let real = "the music was far too loud";
        // Right attitude, right class, reason scored.
        let s = score_item(&truth(true, Some(2), Some(real)), &verdict(Attitude::Negative, Some(2), real), &scorer);
        assert!(s.attitude_right);
        assert_eq!(s.class_right, Some(true));
        assert!((s.reasoning.unwrap() - 1.0).abs() < 1e-9);
        // Right attitude, wrong class: the reason is still scored (the judgement is right).
        let s = score_item(&truth(true, Some(2), Some(real)), &verdict(Attitude::Negative, Some(1), "boring"), &scorer);
        assert_eq!((s.attitude_right, s.class_right), (true, Some(false)));
        assert_eq!(s.reasoning, Some(0.0));
        // A "like" verdict on a negative item misses the class and has no reason score.
        let s = score_item(&truth(true, Some(2), Some(real)), &verdict(Attitude::Like, None, real), &scorer);
        assert_eq!((s.attitude_right, s.class_right, s.reasoning), (false, Some(false), None));
        // A liked item: only the attitude step exists.
        let s = score_item(&truth(false, None, None), &verdict(Attitude::Like, None, ""), &scorer);
        assert_eq!((s.attitude_right, s.class_right, s.reasoning), (true, None, None));
        let s = score_item(&truth(false, None, None), &verdict(Attitude::Negative, Some(1), "x"), &scorer);
        assert_eq!((s.attitude_right, s.class_right, s.reasoning), (false, None, None));
        // A negative item without a labelled class or reason.
        let s = score_item(&truth(true, None, None), &verdict(Attitude::Negative, Some(3), "x"), &scorer);
        assert_eq!((s.attitude_right, s.class_right, s.reasoning), (true, None, None));
    }

    #[test]
    fn class_accuracy_and_reasoning_fold_over_scores() {
        let score = |class_right, reasoning| ItemScore { attitude_right: true, class_right, reasoning };
        let scores =
            [score(Some(true), Some(0.5)), score(Some(false), None), score(None, Some(1.0)), score(Some(false), None)];
        let (acc, n) = class_accuracy(&scores).unwrap();
        assert_eq!(n, 3);
        assert!((acc - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mean_reasoning(&scores), Some((0.75, 2)));
        assert!(class_accuracy(&[]).is_none() && mean_reasoning(&[]).is_none());
    }
}
