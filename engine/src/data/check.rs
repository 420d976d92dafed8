//! `enf data check DIR`: every problem of a data set, each with file and
//! line — malformed JSON, missing fields, duplicate or unknown ids, frame
//! files that do not exist, reason classes the task does not declare,
//! impossible play rates — and, when there is none, what the set holds.

use std::path::Path;

use serde::Serialize;

use super::{DataError, DataProblem, Dataset, Video, item::reason_class, read_jsonl};

/// What a valid data set holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataSummary {
    /// Users.
    pub users: usize,
    /// Videos.
    pub videos: usize,
    /// Videos with frames.
    pub videos_with_frames: usize,
    /// Videos given as a video file (frames sampled by `enf run`).
    pub videos_with_files: usize,
    /// Interactions.
    pub interactions: usize,
    /// Items to predict.
    pub items: usize,
    /// Items whose truth is negative (implicit or explicit).
    pub negative_items: usize,
    /// Items with an explicit dislike.
    pub explicit_items: usize,
    /// Negative items with a labelled reason class.
    pub labelled_classes: usize,
    /// Negative items with the user's own reason.
    pub reason_texts: usize,
}

/// Checks a data set; `Err` lists every problem found.
pub fn check(dir: &Path) -> Result<DataSummary, DataError> {
    let dataset = Dataset::load(dir)?;
    let mut problems = Vec::new();
    let videos_file = dir.join("videos.jsonl");
    let mut scratch = Vec::new();
    for (line, video) in read_jsonl::<Video>(&videos_file, &mut scratch) {
        let mut problem =
            |message: String| problems.push(DataProblem { file: videos_file.clone(), line: Some(line), message });
        if video.title.trim().is_empty() {
            problem(format!("video `{}` has an empty title", video.video_id));
        }
        if !(video.duration_s.is_finite() && video.duration_s > 0.0) {
            problem(format!("video `{}`: duration_s must be a positive number", video.video_id));
        }
        for frame in &video.frames {
            if !dir.join(frame).is_file() {
                problem(format!("video `{}`: frame file {frame} does not exist", video.video_id));
            }
        }
        if let Some(path) = &video.video_path {
            if !dir.join(path).is_file() {
                problem(format!("video `{}`: video file {path} does not exist", video.video_id));
            } else if let Err(e) = super::video::probe(&dir.join(path)) {
                problem(format!("video `{}`: {e}", video.video_id));
            }
        }
    }
    let interactions_file = dir.join("interactions.jsonl");
    for (line, i) in &dataset.interactions {
        let mut problem = |message: String| {
            problems.push(DataProblem { file: interactions_file.clone(), line: Some(*line), message })
        };
        // Negative or non-finite play_rate and watch_s are refused by `Dataset::load`.
        if i.play_rate > 20.0 {
            problem(format!("play_rate {} is implausible (more than 20 replays)", i.play_rate));
        }
        if let Some(class) = &i.reason_class
            && !class.is_null()
            && reason_class(Some(class), &dataset.task).is_none()
        {
            let known: Vec<String> = dataset.task.classes.iter().map(|c| format!("{} ({})", c.id, c.name)).collect();
            problem(format!("reason_class {class} is not a class of the task (known: {})", known.join(", ")));
        }
    }
    let items = match dataset.items() {
        Ok(items) => items,
        Err(e) => {
            problems.extend(e.problems);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(DataError { problems });
    }
    Ok(DataSummary {
        users: dataset.users.len(),
        videos: dataset.videos.len(),
        videos_with_frames: dataset.videos.values().filter(|v| !v.frames.is_empty()).count(),
        videos_with_files: dataset.videos.values().filter(|v| v.file_to_sample().is_some()).count(),
        interactions: dataset.interactions.len(),
        items: items.len(),
        negative_items: items.iter().filter(|i| i.truth.negative).count(),
        explicit_items: items.iter().filter(|i| i.truth.explicit).count(),
        labelled_classes: items.iter().filter(|i| i.truth.reason_class.is_some()).count(),
        reason_texts: items.iter().filter(|i| i.truth.reason_text.is_some()).count(),
    })
}
