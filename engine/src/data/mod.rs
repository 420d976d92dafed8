//! Data sets in the TVNF format (a directory of JSONL files) and the items
//! they yield: one user × one candidate video, with the user's earlier
//! watch history.
//!
//! Every problem names the file and line it comes from.

pub mod baseline;
pub mod check;
mod item;
pub mod movielens;
mod records;
pub mod synth;
pub mod video;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use enf_kit::task::Task;

pub use item::{HISTORY_LIMIT, Item, Truth, reason_class, request_document};
pub use records::{Interaction, ItemSelector, User, Video};

/// One problem in a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProblem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A data set that cannot be used, with every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct DataError {
    /// The problems.
    pub problems: Vec<DataProblem>,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the data set", self.problems.len())?;
        for problem in self.problems.iter().take(50) {
            write!(f, "\n  {problem}")?;
        }
        if self.problems.len() > 50 {
            write!(f, "\n  … and {} more", self.problems.len() - 50)?;
        }
        Ok(())
    }
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Users by id.
    pub users: HashMap<String, User>,
    /// Videos by id.
    pub videos: HashMap<String, Video>,
    /// Interactions in file order, each with its line.
    pub interactions: Vec<(usize, Interaction)>,
    /// The optional item selection, each with its line.
    pub selection: Option<Vec<(usize, ItemSelector)>>,
    /// The task configuration (`dataset.toml`, or the paper's defaults).
    pub task: Task,
}

/// Writes `lines` to `path` as JSONL (one compact JSON document per line).
pub(crate) fn write_jsonl<T: serde::Serialize>(path: &Path, lines: &[T]) -> Result<(), DataProblem> {
    use std::io::Write;
    let problem = |e: &dyn fmt::Display| DataProblem { file: path.to_path_buf(), line: None, message: e.to_string() };
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| problem(&e))?);
    for line in lines {
        serde_json::to_writer(&mut file, line).map_err(|e| problem(&e))?;
        file.write_all(b"\n").map_err(|e| problem(&e))?;
    }
    file.flush().map_err(|e| problem(&e))
}

pub(crate) fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
    problems: &mut Vec<DataProblem>,
) -> Vec<(usize, T)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(DataProblem { file: path.to_path_buf(), line: None, message: format!("cannot read: {e}") });
            return Vec::new();
        }
    };
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push((index + 1, record)),
            Err(e) => {
                problems.push(DataProblem { file: path.to_path_buf(), line: Some(index + 1), message: e.to_string() })
            }
        }
    }
    records
}

/// Reads `dataset.toml` (the task configuration); absent means the defaults.
fn read_task(path: &Path, problems: &mut Vec<DataProblem>) -> Task {
    let Ok(text) = std::fs::read_to_string(path) else { return Task::default() };
    match toml::from_str::<Task>(&text) {
        Ok(task) if task.classes.is_empty() => {
            problems.push(DataProblem {
                file: path.to_path_buf(),
                line: None,
                message: "declares no reason classes".into(),
            });
            task
        }
        Ok(task) => task,
        Err(e) => {
            problems.push(DataProblem {
                file: path.to_path_buf(),
                line: e.span().map(|s| crate::problems::line_of(&text, s.start)),
                message: e.message().to_string(),
            });
            Task::default()
        }
    }
}

impl Dataset {
    /// Reads `users.jsonl`, `videos.jsonl`, `interactions.jsonl` and, if
    /// present, `items.jsonl` from `dir`, checking ids are unique and
    /// interactions refer to known users and videos.
    pub fn load(dir: &Path) -> Result<Dataset, DataError> {
        let mut problems = Vec::new();
        if !dir.is_dir() {
            problems.push(DataProblem { file: dir.to_path_buf(), line: None, message: "is not a directory".into() });
            return Err(DataError { problems });
        }
        let users_file = dir.join("users.jsonl");
        let videos_file = dir.join("videos.jsonl");
        let interactions_file = dir.join("interactions.jsonl");
        let items_file = dir.join("items.jsonl");
        let mut users = HashMap::new();
        for (line, user) in read_jsonl::<User>(&users_file, &mut problems) {
            if let Some(_earlier) = users.insert(user.user_id.clone(), user.clone()) {
                problems.push(DataProblem {
                    file: users_file.clone(),
                    line: Some(line),
                    message: format!("duplicate user_id `{}`", user.user_id),
                });
            }
        }
        let mut videos = HashMap::new();
        for (line, video) in read_jsonl::<Video>(&videos_file, &mut problems) {
            if let Some(_earlier) = videos.insert(video.video_id.clone(), video.clone()) {
                problems.push(DataProblem {
                    file: videos_file.clone(),
                    line: Some(line),
                    message: format!("duplicate video_id `{}`", video.video_id),
                });
            }
        }
        let interactions = read_jsonl::<Interaction>(&interactions_file, &mut problems);
        for (line, i) in &interactions {
            let mut problem = |message: String| {
                problems.push(DataProblem { file: interactions_file.clone(), line: Some(*line), message })
            };
            if !users.contains_key(&i.user_id) {
                problem(format!("unknown user_id `{}`", i.user_id));
            }
            if !videos.contains_key(&i.video_id) {
                problem(format!("unknown video_id `{}`", i.video_id));
            }
            if !(i.play_rate.is_finite() && i.play_rate >= 0.0) {
                problem(format!("play_rate must be a number ≥ 0, got {}", i.play_rate));
            }
            if !(i.watch_s.is_finite() && i.watch_s >= 0.0) {
                problem(format!("watch_s must be a number ≥ 0, got {}", i.watch_s));
            }
        }
        let selection = items_file.is_file().then(|| read_jsonl::<ItemSelector>(&items_file, &mut problems));
        let task = read_task(&dir.join("dataset.toml"), &mut problems);
        if problems.is_empty() {
            Ok(Dataset { dir: dir.to_path_buf(), users, videos, interactions, selection, task })
        } else {
            Err(DataError { problems })
        }
    }

    /// Samples [`video::FRAMES_PER_VIDEO`] frames from the video file of every
    /// video in `videos` that has a `video_path` and no `frames`, through the
    /// frame cache in `cache_dir`, and lists them as the video's frames. A
    /// video that cannot be decoded keeps no frames and records why
    /// ([`Video::frame_error`]); the error is returned too, so the caller can
    /// report it. Runs the decoding on blocking threads.
    pub async fn sample_video_files(
        &mut self,
        videos: &std::collections::HashSet<String>,
        cache_dir: &Path,
    ) -> Vec<(String, video::VideoError)> {
        let mut jobs = tokio::task::JoinSet::new();
        for id in videos {
            if let Some(file) = self.videos.get(id).and_then(Video::file_to_sample) {
                let (id, file, cache_dir) = (id.clone(), self.dir.join(file), cache_dir.to_path_buf());
                jobs.spawn_blocking(move || (id, video::cached_frames(&file, &cache_dir)));
            }
        }
        let mut failures = Vec::new();
        while let Some(joined) = jobs.join_next().await {
            let Ok((id, result)) = joined else { continue };
            let Some(video) = self.videos.get_mut(&id) else { continue };
            match result {
                Ok(frames) => video.frames = frames.iter().map(|f| f.display().to_string()).collect(),
                Err(e) => {
                    video.frame_error = Some(e.to_string());
                    failures.push((id, e));
                }
            }
        }
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        failures
    }

    /// The frame image files of a video, resolved against the data directory.
    pub fn frames(&self, video_id: &str) -> Option<Vec<PathBuf>> {
        self.videos.get(video_id).map(|v| v.frames.iter().map(|f| self.dir.join(f)).collect())
    }
}
