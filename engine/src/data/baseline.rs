//! Predictions files that need no model: the trivial baselines a trained
//! model must beat (`enf data baseline DIR --kind always-negative|coin`) and
//! the one-node record shape they share with `enf data synth`'s oracle, so
//! `enf eval` scores them exactly like a run.

use std::path::Path;

use enf_kit::task::Task;
use enf_kit::verdict::{Attitude, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{DataError, DataProblem, Dataset};
use crate::run::{ItemRecord, NodeRecord, Usage};

/// A trivial predictor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaselineKind {
    /// Every item negative, with the task's most frequent reason class among
    /// the data set's labelled interactions.
    AlwaysNegative,
    /// A fair coin for the attitude; a class drawn uniformly for negatives.
    Coin,
}

/// A predictions-file record whose single node `node` gives `verdict`.
pub fn verdict_record(item_id: &str, user_id: &str, video_id: &str, node: &str, verdict: &Verdict) -> ItemRecord {
    let record = NodeRecord {
        ok: true,
        output: Some(json!({ "verdict": verdict })),
        error: None,
        start_ms: 0.0,
        ms: 0.0,
        attempts: 0,
        usage: Usage::default(),
        calls: Vec::new(),
        cached: false,
    };
    ItemRecord {
        item_id: item_id.to_string(),
        user_id: user_id.to_string(),
        video_id: video_id.to_string(),
        ok: true,
        ms: 0.0,
        nodes: [(node.to_string(), record)].into(),
    }
}

/// The baseline's predictions for every item of `dataset` (node `baseline`).
pub fn predictions(dataset: &Dataset, kind: BaselineKind, seed: u64) -> Result<Vec<ItemRecord>, DataError> {
    let items = dataset.items()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let frequent = most_frequent_class(dataset);
    let verdicts = items.iter().map(|item| {
        let negative = match kind {
            BaselineKind::AlwaysNegative => true,
            BaselineKind::Coin => rng.random_bool(0.5),
        };
        let reason_class = match kind {
            _ if !negative || dataset.task.classes.is_empty() => None,
            BaselineKind::AlwaysNegative => frequent,
            BaselineKind::Coin => Some(dataset.task.classes[rng.random_range(0..dataset.task.classes.len())].id),
        };
        let verdict = Verdict {
            attitude: if negative { Attitude::Negative } else { Attitude::Like },
            reason_class,
            reason: String::new(),
            guessed: false,
            notes: Vec::new(),
        };
        verdict_record(&item.item_id, &item.user_id, &item.video_id, "baseline", &verdict)
    });
    Ok(verdicts.collect())
}

/// The class most labelled interactions name (the first class on a tie).
fn most_frequent_class(dataset: &Dataset) -> Option<u32> {
    let task: &Task = &dataset.task;
    let count = |id: u32| {
        dataset
            .interactions
            .iter()
            .filter(|(_, i)| super::reason_class(i.reason_class.as_ref(), task) == Some(id))
            .count()
    };
    task.classes.iter().map(|c| c.id).rev().max_by_key(|&id| count(id))
}

/// Writes `records` to `path` as a predictions file (JSONL).
pub fn write(path: &Path, records: &[ItemRecord]) -> Result<(), DataProblem> {
    super::write_jsonl(path, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample");
        Dataset::load(&dir).expect("the sample loads")
    }

    #[test]
    fn always_negative_names_the_most_frequent_class_for_every_item() {
        let dataset = sample();
        let records = predictions(&dataset, BaselineKind::AlwaysNegative, 0).unwrap();
        assert_eq!(records.len(), dataset.items().unwrap().len());
        let class = most_frequent_class(&dataset);
        assert!(class.is_some());
        for record in &records {
            let verdict: Verdict =
                serde_json::from_value(record.nodes["baseline"].output.as_ref().unwrap()["verdict"].clone()).unwrap();
            assert_eq!(verdict.attitude, Attitude::Negative);
            assert_eq!(verdict.reason_class, class);
        }
    }

    #[test]
    fn the_coin_is_seeded_and_draws_both_sides() {
        let dataset = sample();
        let attitudes = |seed| -> Vec<String> {
            predictions(&dataset, BaselineKind::Coin, seed)
                .unwrap()
                .iter()
                .map(|r| r.nodes["baseline"].output.as_ref().unwrap()["verdict"]["attitude"].to_string())
                .collect()
        };
        let first = attitudes(1);
        assert_eq!(first, attitudes(1), "same seed, same draws");
        assert_ne!(first, attitudes(2), "another seed, other draws");
        assert!(first.iter().any(|a| a.contains("like")) && first.iter().any(|a| a.contains("negative")));
    }
}
