//! `enf replay`: the paper's deployment test (its Table 7) replayed offline
//! on logged interactions. A base ranking orders each user's logged
//! candidates; ENF's filter — the same [`FilterRule`] `POST /v1/filter`
//! applies — runs on the top K; and the logged outcomes of the kept
//! candidates are compared with those of the unfiltered top K: fast-skip
//! rate (play rate under the task's threshold, 0.3 by default), dislike rate
//! and mean play rate, each with a bootstrap confidence interval over users.
//!
//! Only candidates with a logged outcome can be replayed, so the candidates
//! are a user's logged interactions; a ranking file's other videos are
//! counted and left out.
//!
//! - [`ranking`]: the base ranking (popularity, or a file);
//! - [`stats`]: rates and their bootstrap intervals.

pub mod ranking;
pub mod stats;

use std::collections::HashMap;

use crate::data::{Dataset, Interaction, Item};
use crate::feed_filter::{FilterRule, Placement};
use crate::run::ItemRecord;
pub use ranking::BaseRanking;
pub use stats::{Estimate, Rates, SlateOutcomes};

/// The logged outcome of one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Fraction of the video played.
    pub play_rate: f64,
    /// Disliked explicitly.
    pub disliked: bool,
}

/// One user's top K, best first: indices into the items, with outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Slate {
    /// The user.
    pub user_id: String,
    /// The candidates: index into the items, and the logged outcome.
    pub candidates: Vec<(usize, Outcome)>,
}

/// The slates of a replay and what was left out building them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// One per user with at least one candidate.
    pub slates: Vec<Slate>,
    /// Videos a ranking file lists that the user has no logged interaction with.
    pub unlogged: usize,
    /// Items without a logged interaction (an `items.jsonl` label only).
    pub without_outcome: usize,
}

/// The interaction an item stands for (`USER/VIDEO`, or `USER/VIDEO@TS` when the pair repeats).
fn interaction_of<'a>(item: &Item, by_pair: &HashMap<(&str, &str), Vec<&'a Interaction>>) -> Option<&'a Interaction> {
    let logged = by_pair.get(&(item.user_id.as_str(), item.video_id.as_str()))?;
    let ts = item.item_id.rsplit_once('@').and_then(|(_, ts)| ts.parse::<i64>().ok());
    match ts {
        Some(ts) => logged.iter().find(|i| i.ts == ts).or(logged.first()).copied(),
        None => logged.first().copied(),
    }
}

/// Builds each user's top `top` by `ranking` among the items with a logged outcome.
pub fn select(dataset: &Dataset, items: &[Item], ranking: &BaseRanking, top: usize) -> Selection {
    let mut by_pair: HashMap<(&str, &str), Vec<&Interaction>> = HashMap::new();
    for (_, interaction) in &dataset.interactions {
        by_pair.entry((interaction.user_id.as_str(), interaction.video_id.as_str())).or_default().push(interaction);
    }
    let mut selection = Selection::default();
    // Per user, in data set order: one candidate per video (its first item).
    let mut users: Vec<&str> = Vec::new();
    let mut per_user: HashMap<&str, Vec<(&str, usize, Outcome)>> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let Some(interaction) = interaction_of(item, &by_pair) else {
            selection.without_outcome += 1;
            continue;
        };
        let candidates = per_user.entry(item.user_id.as_str()).or_insert_with(|| {
            users.push(item.user_id.as_str());
            Vec::new()
        });
        if candidates.iter().all(|(video, _, _)| *video != item.video_id) {
            let outcome = Outcome { play_rate: interaction.play_rate, disliked: interaction.disliked };
            candidates.push((item.video_id.as_str(), index, outcome));
        }
    }
    for user_id in users {
        let candidates = &per_user[user_id];
        let videos: Vec<&str> = candidates.iter().map(|(video, _, _)| *video).collect();
        let (ordered, unlogged) = ranking.order(user_id, &videos);
        selection.unlogged += unlogged;
        let slate: Vec<(usize, Outcome)> = ordered
            .iter()
            .take(top)
            .filter_map(|video| candidates.iter().find(|(v, _, _)| v == video).map(|(_, index, o)| (*index, *o)))
            .collect();
        if !slate.is_empty() {
            selection.slates.push(Slate { user_id: user_id.to_string(), candidates: slate });
        }
    }
    selection
}

/// How the slates are filtered and measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplaySettings {
    /// The filter, as `POST /v1/filter` applies it.
    pub rule: FilterRule,
    /// A play rate under this is a fast skip (the task's negative threshold).
    pub fast_skip_below: f64,
    /// Bootstrap resamples of the users.
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

/// What a replay measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplayReport {
    /// Users replayed.
    pub users: usize,
    /// The unfiltered top K.
    pub base: Rates,
    /// What ENF's filter kept of it.
    pub kept: Rates,
    /// What it dropped.
    pub dropped: Rates,
    /// Kept minus base, per measure.
    pub change: Rates,
    /// Candidates without a verdict (kept: fail open).
    pub without_verdict: usize,
    /// Dropped candidates put back to keep `keep_at_least`.
    pub restored: usize,
}

/// Applies the filter rule to each slate by the verdicts `node` gave in
/// `records` (by item id) and measures the logged outcomes of base, kept and
/// dropped candidates, with bootstrap intervals over the users.
pub fn replay(
    selection: &Selection,
    items: &[Item],
    records: &HashMap<String, ItemRecord>,
    node: &str,
    settings: &ReplaySettings,
) -> ReplayReport {
    let mut without_verdict = 0;
    let mut restored = 0;
    let outcomes: Vec<SlateOutcomes> = selection
        .slates
        .iter()
        .map(|slate| {
            let verdicts: Vec<Option<&serde_json::Value>> = slate
                .candidates
                .iter()
                .map(|(index, _)| records.get(&items[*index].item_id).and_then(|r| r.verdict(node).ok()))
                .collect();
            without_verdict += verdicts.iter().filter(|v| v.is_none()).count();
            let placements = settings.rule.apply(&verdicts);
            restored += placements.iter().filter(|p| **p == Placement::Restored).count();
            let mut outcomes = SlateOutcomes::default();
            for ((_, outcome), placement) in slate.candidates.iter().zip(placements) {
                outcomes.add(outcome, placement.in_list(), settings.fast_skip_below);
            }
            outcomes
        })
        .collect();
    let (base, kept, dropped, change) = stats::bootstrap(&outcomes, settings.resamples, settings.seed);
    ReplayReport { users: outcomes.len(), base, kept, dropped, change, without_verdict, restored }
}

/// The replay as a text table.
pub fn table(report: &ReplayReport) -> String {
    let row = |name: &str, pick: &dyn Fn(&Rates) -> Estimate| {
        format!(
            "{name:<16} {:>24} {:>24} {:>24} {:>24}\n",
            pick(&report.base).to_string(),
            pick(&report.kept).to_string(),
            pick(&report.dropped).to_string(),
            pick(&report.change).to_string()
        )
    };
    let mut text = format!(
        "{:<16} {:>24} {:>24} {:>24} {:>24}\n",
        "", "top K (unfiltered)", "kept by ENF", "dropped by ENF", "kept - top K"
    );
    text += &format!(
        "{:<16} {:>24} {:>24} {:>24}\n",
        "candidates", report.base.candidates, report.kept.candidates, report.dropped.candidates
    );
    text += &row("fast-skip rate", &|r| r.fast_skip);
    text += &row("dislike rate", &|r| r.dislike);
    text += &row("mean play rate", &|r| r.mean_play_rate);
    text
}
