//! The TVNF record types, one JSON object per line in `users.jsonl`,
//! `videos.jsonl` and `interactions.jsonl` (schema: `docs/data.md`).

use serde::{Deserialize, Serialize};

/// A user (`users.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Unique id.
    pub user_id: String,
    /// Age in years.
    #[serde(default)]
    pub age: Option<u32>,
    /// Gender, as recorded.
    #[serde(default)]
    pub gender: Option<String>,
    /// Occupation, as recorded.
    #[serde(default)]
    pub occupation: Option<String>,
    /// Interest tags.
    #[serde(default)]
    pub interests: Vec<String>,
}

/// A video (`videos.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Video {
    /// Unique id.
    pub video_id: String,
    /// Title.
    pub title: String,
    /// Length in seconds.
    pub duration_s: f64,
    /// Where it can be watched.
    #[serde(default)]
    pub url: Option<String>,
    /// Frame image files, relative to the data directory.
    #[serde(default)]
    pub frames: Vec<String>,
    /// A video file to sample frames from, relative to the data directory.
    #[serde(default)]
    pub video_path: Option<String>,
    /// Category label.
    #[serde(default)]
    pub category: Option<String>,
    /// Why frames could not be sampled from `video_path` (set by
    /// [`Dataset::sample_video_files`](super::Dataset::sample_video_files)).
    #[serde(skip)]
    pub frame_error: Option<String>,
}

impl Video {
    /// The video file `enf run` samples frames from: `video_path`, when the
    /// video lists no frames of its own.
    pub fn file_to_sample(&self) -> Option<&str> {
        self.video_path.as_deref().filter(|_| self.frames.is_empty())
    }
}

/// One user watching one video (`interactions.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interaction {
    /// Who watched.
    pub user_id: String,
    /// What was watched.
    pub video_id: String,
    /// When (seconds since the epoch, or any increasing clock).
    pub ts: i64,
    /// Seconds watched.
    pub watch_s: f64,
    /// Fraction watched, 0..=1 (more than 1 for replays).
    pub play_rate: f64,
    /// Explicit dislike.
    #[serde(default)]
    pub disliked: bool,
    /// The user's own words on why, where given.
    #[serde(default)]
    pub reason_text: Option<String>,
    /// Reason class, where labelled.
    #[serde(default)]
    pub reason_class: Option<serde_json::Value>,
}

/// One line of the optional `items.jsonl`: a (user, video) pair to predict.
/// Without `label` the truth comes from the user's interaction with the
/// video; with it (e.g. a video the user never saw, in the Agent4Rec
/// protocol) the line itself is the truth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSelector {
    /// The user.
    pub user_id: String,
    /// The candidate video.
    pub video_id: String,
    /// The true attitude, when there is no interaction to read it from.
    #[serde(default)]
    pub label: Option<enf_kit::verdict::Attitude>,
    /// The true reason class, with `label = "negative"`.
    #[serde(default)]
    pub reason_class: Option<u32>,
    /// The user's own reason, with `label = "negative"`.
    #[serde(default)]
    pub reason_text: Option<String>,
}
