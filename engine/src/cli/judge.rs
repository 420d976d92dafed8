//! The optional LLM judge of `enf eval --judge MANIFEST`: the model rates,
//! from 0 to 1, how relevant each correct explanation is to the user's real
//! reason (the paper's Reasoning column for explicit feedback used GPT-4o).

use std::path::Path;

use enf::eval::Judged;
use enf::inference::{ChatMessage, GenerateRequest, ModelManifest, Role, start_backend};

/// The first number in `text`, if it lies in 0..=1.
fn score(text: &str) -> Option<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse::<f64>().ok())
        .find(|v| (0.0..=1.0).contains(v))
}

/// Mean relevance over the items that have a scored reason, and their count.
pub async fn relevance(manifest: &Path, judged: &[Judged]) -> anyhow::Result<Option<(f64, usize)>> {
    let manifest = ModelManifest::load(manifest)?;
    let backend = start_backend(&manifest).await?;
    let mut scores = Vec::new();
    for item in judged.iter().filter(|j| j.reasoning.is_some()) {
        let (Some(real), Some(verdict)) = (&item.truth_reason, &item.verdict) else { continue };
        let prompt = format!(
            "A user disliked a video and said why. Rate from 0 to 1 how well the explanation matches the user's real reason.\nReal reason: {real}\nExplanation: {}\nAnswer with one number between 0 and 1.",
            enf_kit::clip(&verdict.reason, 600)
        );
        let mut sampling = backend.default_sampling().clone();
        sampling.temperature = 0.0;
        sampling.max_tokens = 8;
        let request = GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: prompt, images: vec![] }],
            sampling,
            origin: None,
        };
        let answer = backend.generate(request).await?;
        let text = answer.completions.first().map(|c| c.text.as_str()).unwrap_or_default();
        match score(text) {
            Some(v) => scores.push(v),
            None => tracing::warn!(item = %item.item_id, "the judge gave no score: {text:?}"),
        }
    }
    Ok((!scores.is_empty()).then(|| (scores.iter().sum::<f64>() / scores.len() as f64, scores.len())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_first_score_in_range() {
        assert_eq!(super::score("Score: 0.7"), Some(0.7));
        assert_eq!(super::score("I'd say 8/10, so 0.8"), Some(0.8));
        assert_eq!(super::score("none"), None);
    }
}
