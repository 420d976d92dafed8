//! Items: what one pass through a graph predicts — one user × one
//! candidate video, with the user's watch history before it. Items are the
//! pairs listed in `items.jsonl` or, without that file, every interaction.
//!
//! The `$item` document agents see carries the user, the history, the
//! candidate and the task configuration — never the label. The label
//! ([`Truth`]) stays on the host, for `enf eval`.

use std::collections::{HashMap, HashSet};

use enf_kit::task::Task;
use enf_kit::verdict::Attitude;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DataError, DataProblem, Dataset, Interaction, Video};

/// Most recent history entries included in an item.
pub const HISTORY_LIMIT: usize = 50;

/// What really happened for an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// Negative feedback: an explicit dislike, or a play rate under the task's threshold.
    pub negative: bool,
    /// An explicit dislike.
    pub explicit: bool,
    /// The reason class, where labelled.
    pub reason_class: Option<u32>,
    /// The user's own words, where given.
    pub reason_text: Option<String>,
}

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
    /// The label (host-side only).
    pub truth: Truth,
}

fn video_fields(video: Option<&Video>) -> Value {
    json!({
        "title": video.map(|v| v.title.as_str()),
        "category": video.and_then(|v| v.category.as_deref()),
        "duration_s": video.map(|v| v.duration_s),
        "frames": video.map_or(0, frame_count),
    })
}

/// Frames an agent may ask for: those listed, or for a video file that could
/// not be decoded the frames it should have had, so that asking for them
/// fails the item with the decoding error instead of silently going without.
fn frame_count(video: &Video) -> usize {
    if video.frame_error.is_some() { super::video::FRAMES_PER_VIDEO } else { video.frames.len() }
}

fn history_entry(dataset: &Dataset, interaction: &Interaction) -> Value {
    let mut entry = video_fields(dataset.videos.get(&interaction.video_id));
    entry["video_id"] = json!(interaction.video_id);
    entry["watch_s"] = json!(interaction.watch_s);
    entry["play_rate"] = json!(interaction.play_rate);
    entry["disliked"] = json!(interaction.disliked);
    entry["ts"] = json!(interaction.ts);
    entry
}

/// The reason class an interaction names (by id or by class name).
pub fn reason_class(value: Option<&Value>, task: &Task) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|id| task.class(*id).is_some()),
        Value::String(name) => task.classes.iter().find(|c| c.name.eq_ignore_ascii_case(name)).map(|c| c.id),
        _ => None,
    }
}

fn truth_of(interaction: &Interaction, task: &Task) -> Truth {
    let negative = interaction.disliked || interaction.play_rate < task.negative_play_rate;
    Truth {
        negative,
        explicit: interaction.disliked,
        reason_class: if negative { reason_class(interaction.reason_class.as_ref(), task) } else { None },
        reason_text: if negative { interaction.reason_text.clone() } else { None },
    }
}

/// A candidate to build an item for: the pair, its time and its truth.
struct Target<'a> {
    user_id: &'a str,
    video_id: &'a str,
    ts: Option<i64>,
    truth: Truth,
}

impl Dataset {
    fn targets(&self, by_user: &HashMap<&str, Vec<&Interaction>>) -> Result<Vec<Target<'_>>, DataError> {
        let Some(selection) = &self.selection else {
            return Ok(self
                .interactions
                .iter()
                .map(|(_, i)| Target {
                    user_id: &i.user_id,
                    video_id: &i.video_id,
                    ts: Some(i.ts),
                    truth: truth_of(i, &self.task),
                })
                .collect());
        };
        let mut problems = Vec::new();
        let mut targets = Vec::new();
        for (line, s) in selection {
            let seen = by_user.get(s.user_id.as_str()).and_then(|l| l.iter().rev().find(|i| i.video_id == s.video_id));
            let problem =
                |message: String| DataProblem { file: self.dir.join("items.jsonl"), line: Some(*line), message };
            if !self.users.contains_key(&s.user_id) {
                problems.push(problem(format!("unknown user_id `{}`", s.user_id)));
                continue;
            }
            if !self.videos.contains_key(&s.video_id) {
                problems.push(problem(format!("unknown video_id `{}`", s.video_id)));
                continue;
            }
            let truth = match (s.label, seen) {
                (Some(label), _) => {
                    let negative = label == Attitude::Negative;
                    Truth {
                        negative,
                        explicit: false,
                        reason_class: s.reason_class.filter(|_| negative),
                        reason_text: s.reason_text.clone().filter(|_| negative),
                    }
                }
                (None, Some(i)) => truth_of(i, &self.task),
                (None, None) => {
                    problems.push(problem(format!(
                        "no interaction of user `{}` with video `{}`, and no `label` to say what is true",
                        s.user_id, s.video_id
                    )));
                    continue;
                }
            };
            targets.push(Target { user_id: &s.user_id, video_id: &s.video_id, ts: seen.map(|i| i.ts), truth });
        }
        if problems.is_empty() { Ok(targets) } else { Err(DataError { problems }) }
    }

    /// Builds the items, in data-set order.
    pub fn items(&self) -> Result<Vec<Item>, DataError> {
        let mut by_user: HashMap<&str, Vec<&Interaction>> = HashMap::new();
        for (_, interaction) in &self.interactions {
            by_user.entry(interaction.user_id.as_str()).or_default().push(interaction);
        }
        for list in by_user.values_mut() {
            list.sort_by_key(|i| i.ts);
        }
        let targets = self.targets(&by_user)?;
        let mut pair_counts: HashMap<(&str, &str), usize> = HashMap::new();
        for t in &targets {
            *pair_counts.entry((t.user_id, t.video_id)).or_default() += 1;
        }
        let task = serde_json::to_value(&self.task).unwrap_or(Value::Null);
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(targets.len());
        for target in targets {
            let item_id = match target.ts {
                Some(ts) if pair_counts[&(target.user_id, target.video_id)] > 1 => {
                    format!("{}/{}@{ts}", target.user_id, target.video_id)
                }
                _ => format!("{}/{}", target.user_id, target.video_id),
            };
            if !seen.insert(item_id.clone()) {
                continue;
            }
            let (Some(user), Some(video)) = (self.users.get(target.user_id), self.videos.get(target.video_id)) else {
                continue;
            };
            // History: what the user watched before the candidate (everything, for an unseen candidate).
            let earlier: Vec<&&Interaction> = by_user
                .get(target.user_id)
                .map(|l| {
                    l.iter().filter(|i| target.ts.is_none_or(|ts| i.ts < ts) && i.video_id != target.video_id).collect()
                })
                .unwrap_or_default();
            let history: Vec<Value> = earlier
                .iter()
                .skip(earlier.len().saturating_sub(HISTORY_LIMIT))
                .map(|i| history_entry(self, i))
                .collect();
            let mut candidate = video_fields(Some(video));
            candidate["video_id"] = json!(video.video_id);
            candidate["url"] = json!(video.url);
            let document = json!({
                "item_id": item_id,
                "user": user,
                "history": history,
                "candidate": candidate,
                "task": task,
            });
            items.push(Item {
                item_id,
                user_id: user.user_id.clone(),
                video_id: video.video_id.clone(),
                document,
                truth: target.truth,
            });
        }
        Ok(items)
    }
}

/// The request document `enf serve` takes for `item`: its `$item` document
/// with every video's `frames` count replaced by the list of its frame
/// files, relative to the data set directory (`enf data items`).
pub fn request_document(dataset: &Dataset, item: &Item) -> Value {
    let mut document = item.document.clone();
    let frames_of = |entry: &mut Value| {
        if let Some(video) = entry["video_id"].as_str().and_then(|id| dataset.videos.get(id)) {
            entry["frames"] = json!(video.frames);
        }
    };
    frames_of(&mut document["candidate"]);
    if let Some(history) = document["history"].as_array_mut() {
        history.iter_mut().for_each(frames_of);
    }
    document
}
