//! The paper's metrics (Tables 2, 3, 6). Negative feedback is the positive
//! class unless stated otherwise (the Agent4Rec protocol scores "like").
//! Every ratio with a zero denominator is 0, and counts are kept so a table
//! can say how many items a figure rests on.

use serde::Serialize;

/// One item's binary judgement: what was true and what was predicted (the
/// class and reason steps are scored by [`super::score`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The user (for per-user averaging).
    pub user_id: String,
    /// Truly negative.
    pub truth_negative: bool,
    /// Predicted negative.
    pub predicted_negative: bool,
}

/// Which attitude counts as the positive class of the binary metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PositiveClass {
    /// Negative feedback (the ENF tasks).
    Negative,
    /// Liking / watching (the Agent4Rec protocol).
    Like,
}

/// Binary-judgement figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Binary {
    /// Items scored.
    pub n: usize,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// True negatives.
    pub tn: usize,
    /// False negatives.
    pub fn_: usize,
    /// Accuracy.
    pub acc: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

/// Accuracy, precision, recall and F1 over `items`.
pub fn binary(items: &[Scored], positive: PositiveClass) -> Binary {
    let mut b = Binary { n: items.len(), ..Binary::default() };
    for item in items {
        let (truth, predicted) = match positive {
            PositiveClass::Negative => (item.truth_negative, item.predicted_negative),
            PositiveClass::Like => (!item.truth_negative, !item.predicted_negative),
        };
        match (truth, predicted) {
            (true, true) => b.tp += 1,
            (false, true) => b.fp += 1,
            (false, false) => b.tn += 1,
            (true, false) => b.fn_ += 1,
        }
    }
    b.acc = ratio(b.tp + b.tn, b.n);
    b.precision = ratio(b.tp, b.tp + b.fp);
    b.recall = ratio(b.tp, b.tp + b.fn_);
    b.f1 = if b.precision + b.recall == 0.0 { 0.0 } else { 2.0 * b.precision * b.recall / (b.precision + b.recall) };
    b
}

/// Averages the binary figures of each user's items (users with no items are skipped).
pub fn per_user_binary(items: &[Scored], positive: PositiveClass) -> (Binary, usize) {
    let mut users: Vec<&str> = items.iter().map(|i| i.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let per_user: Vec<Binary> = users
        .iter()
        .map(|u| {
            let mine: Vec<Scored> = items.iter().filter(|i| i.user_id == *u).cloned().collect();
            binary(&mine, positive)
        })
        .collect();
    let count = per_user.len();
    let mean =
        |f: fn(&Binary) -> f64| if count == 0 { 0.0 } else { per_user.iter().map(f).sum::<f64>() / count as f64 };
    let mut averaged = Binary {
        n: items.len(),
        acc: mean(|b| b.acc),
        precision: mean(|b| b.precision),
        recall: mean(|b| b.recall),
        f1: mean(|b| b.f1),
        ..Binary::default()
    };
    for b in &per_user {
        averaged.tp += b.tp;
        averaged.fp += b.fp;
        averaged.tn += b.tn;
        averaged.fn_ += b.fn_;
    }
    (averaged, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(user: &str, truth: bool, predicted: bool) -> Scored {
        Scored { user_id: user.into(), truth_negative: truth, predicted_negative: predicted }
    }

    #[test]
    fn hand_computed_confusion() {
        // TP 2, FP 1, TN 3, FN 2.
        let mut items = vec![item("u", true, true), item("u", true, true), item("u", false, true)];
        items.extend((0..3).map(|_| item("u", false, false)));
        items.extend((0..2).map(|_| item("u", true, false)));
        let b = binary(&items, PositiveClass::Negative);
        assert_eq!((b.tp, b.fp, b.tn, b.fn_), (2, 1, 3, 2));
        assert!((b.acc - 5.0 / 8.0).abs() < 1e-12);
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.recall - 0.5).abs() < 1e-12);
        assert!((b.f1 - 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn zero_denominators_give_zero_not_nan() {
        let b = binary(&[item("u", false, false), item("u", false, false)], PositiveClass::Negative);
        assert_eq!((b.acc, b.precision, b.recall, b.f1), (1.0, 0.0, 0.0, 0.0));
        let empty = binary(&[], PositiveClass::Negative);
        assert_eq!((empty.acc, empty.f1), (0.0, 0.0));
    }

    #[test]
    fn the_positive_class_can_be_like() {
        let items = [item("u", false, false), item("u", true, false)];
        let b = binary(&items, PositiveClass::Like);
        assert_eq!((b.tp, b.fp), (1, 1));
        assert!((b.precision - 0.5).abs() < 1e-12);
    }

    #[test]
    fn per_user_averages_each_users_figures() {
        // u1: all right (acc 1); u2: half right (acc 0.5) → mean 0.75, not the pooled 4/6.
        let items = [
            item("u1", true, true),
            item("u1", false, false),
            item("u2", true, true),
            item("u2", false, true),
            item("u2", true, false),
            item("u2", false, false),
        ];
        let (b, users) = per_user_binary(&items, PositiveClass::Negative);
        assert_eq!(users, 2);
        assert!((b.acc - 0.75).abs() < 1e-12);
    }
}
