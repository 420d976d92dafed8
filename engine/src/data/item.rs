//! Items: what one pass through a graph predicts — one user × one
//! candidate video, with the user's watch history before it. Items are the
//! interactions listed in `items.jsonl` or, without that file, every
//! interaction. The item document that agents see (`$item`) carries no label.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::{DataError, DataProblem, Dataset, Interaction};

/// Most recent history entries included in an item.
pub const HISTORY_LIMIT: usize = 50;

/// One item to push through a graph.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable id: `USER/VIDEO` (with `@TS` when the pair repeats).
    pub item_id: String,
    /// The user.
    pub user_id: String,
    /// The candidate video.
    pub video_id: String,
    /// The `$item` document handed to graph inputs.
    pub document: Value,
}

fn history_entry(dataset: &Dataset, interaction: &Interaction) -> Value {
    let video = dataset.videos.get(&interaction.video_id);
    json!({
        "video_id": interaction.video_id,
        "title": video.map(|v| v.title.as_str()),
        "category": video.and_then(|v| v.category.as_deref()),
        "duration_s": video.map(|v| v.duration_s),
        "watch_s": interaction.watch_s,
        "play_rate": interaction.play_rate,
        "disliked": interaction.disliked,
        "ts": interaction.ts,
    })
}

impl Dataset {
    /// Builds the items, in data-set order.
    pub fn items(&self) -> Result<Vec<Item>, DataError> {
        let mut by_user: HashMap<&str, Vec<&Interaction>> = HashMap::new();
        for (_, interaction) in &self.interactions {
            by_user.entry(interaction.user_id.as_str()).or_default().push(interaction);
        }
        for list in by_user.values_mut() {
            list.sort_by_key(|i| i.ts);
        }
        let targets: Vec<&Interaction> = match &self.selection {
            None => self.interactions.iter().map(|(_, i)| i).collect(),
            Some(selection) => {
                let mut problems = Vec::new();
                let mut found = Vec::new();
                for (line, s) in selection {
                    let hit =
                        by_user.get(s.user_id.as_str()).and_then(|l| l.iter().rev().find(|i| i.video_id == s.video_id));
                    match hit {
                        Some(i) => found.push(*i),
                        None => problems.push(DataProblem {
                            file: self.dir.join("items.jsonl"),
                            line: Some(*line),
                            message: format!("no interaction of user `{}` with video `{}`", s.user_id, s.video_id),
                        }),
                    }
                }
                if !problems.is_empty() {
                    return Err(DataError { problems });
                }
                found
            }
        };
        let mut pair_counts: HashMap<(&str, &str), usize> = HashMap::new();
        for i in &targets {
            *pair_counts.entry((i.user_id.as_str(), i.video_id.as_str())).or_default() += 1;
        }
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(targets.len());
        for target in targets {
            let repeated = pair_counts[&(target.user_id.as_str(), target.video_id.as_str())] > 1;
            let item_id = if repeated {
                format!("{}/{}@{}", target.user_id, target.video_id, target.ts)
            } else {
                format!("{}/{}", target.user_id, target.video_id)
            };
            if !seen.insert(item_id.clone()) {
                continue;
            }
            let (Some(user), Some(video)) = (self.users.get(&target.user_id), self.videos.get(&target.video_id)) else {
                continue;
            };
            let earlier: Vec<&&Interaction> = by_user
                .get(target.user_id.as_str())
                .map(|l| l.iter().filter(|i| i.ts < target.ts).collect())
                .unwrap_or_default();
            let history: Vec<Value> = earlier
                .iter()
                .skip(earlier.len().saturating_sub(HISTORY_LIMIT))
                .map(|i| history_entry(self, i))
                .collect();
            let document = json!({
                "item_id": item_id,
                "user": user,
                "history": history,
                "candidate": {
                    "video_id": video.video_id,
                    "title": video.title,
                    "category": video.category,
                    "duration_s": video.duration_s,
                    "url": video.url,
                    "frames": video.frames.len(),
                },
            });
            items.push(Item { item_id, user_id: user.user_id.clone(), video_id: video.video_id.clone(), document });
        }
        Ok(items)
    }
}
