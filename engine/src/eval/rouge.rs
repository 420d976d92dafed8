//! Reasoning scores: the mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures
//! between a predicted explanation and the user's real reason (rougers,
//! which reproduces Google's rouge-score). Text with CJK characters is
//! tokenized per character — word tokenizers score Chinese as 0.

use rougers::{RougeScorer, RougeType, Tokenizer};

/// Scores explanations against real reasons.
pub struct ReasonScorer {
    words: RougeScorer,
    characters: RougeScorer,
}

fn has_cjk(text: &str) -> bool {
    text.chars().any(
        |c| matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff),
    )
}

impl ReasonScorer {
    /// A scorer for ROUGE-1, ROUGE-2 and ROUGE-L.
    pub fn new() -> Self {
        let types = || vec![RougeType::N(1), RougeType::N(2), RougeType::L];
        let words = RougeScorer::with_tokenizer(types(), Tokenizer::unicode()).expect("valid ROUGE types");
        let characters = RougeScorer::with_tokenizer(types(), Tokenizer::character()).expect("valid ROUGE types");
        Self { words, characters }
    }

    /// Mean of the three F-measures, 0..=1.
    pub fn score(&self, reference: &str, prediction: &str) -> f64 {
        let scorer = if has_cjk(reference) || has_cjk(prediction) { &self.characters } else { &self.words };
        let scores = scorer.score(reference, prediction);
        let f = |t| scores.get(t).map_or(0.0, |s| s.fmeasure);
        (f(RougeType::N(1)) + f(RougeType::N(2)) + f(RougeType::L)) / 3.0
    }
}

impl Default for ReasonScorer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_one_and_disjoint_text_zero() {
        let s = ReasonScorer::new();
        assert!((s.score("too much blood", "too much blood") - 1.0).abs() < 1e-9);
        assert_eq!(s.score("too much blood", "lovely kittens"), 0.0);
    }

    #[test]
    fn chinese_is_scored_per_character() {
        let s = ReasonScorer::new();
        let score = s.score("画面太血腥了", "画面血腥");
        assert!(score > 0.3, "{score}");
    }

    #[test]
    fn hand_computed_unigram_overlap() {
        // rouge1: 2 of 3 reference words, 2 of 2 predicted → F = 0.8; rouge2: 1 bigram of 2 and 1 → F = 2/3;
        // rougeL: LCS 2 → F = 0.8. Mean = (0.8 + 0.6667 + 0.8) / 3.
        let s = ReasonScorer::new();
        let expected = (0.8 + 2.0 / 3.0 + 0.8) / 3.0;
        assert!((s.score("the video bored", "video bored") - expected).abs() < 1e-9);
    }
}
