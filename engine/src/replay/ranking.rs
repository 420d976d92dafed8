//! The base recommender's ranking that `enf replay` filters: a popularity
//! baseline built from interactions, or a ranking file a team exports from
//! its own recommender (JSONL, one line per user:
//! `{"user_id": "u1", "ranking": ["v9", "v3", …]}`, best first).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::Interaction;

/// Why a ranking file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RankingError {
    /// The file cannot be read.
    #[error("ranking file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a ranking.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A base ranking of videos per user.
#[derive(Debug, Clone)]
pub enum BaseRanking {
    /// Every user's candidates ordered by how many interactions each video
    /// has (most first; ties by video id).
    Popularity {
        /// Interactions per video.
        counts: HashMap<String, usize>,
    },
    /// Each user's ranking as listed in a file.
    File {
        /// The file.
        path: PathBuf,
        /// Video ids per user, best first.
        per_user: HashMap<String, Vec<String>>,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RankingLine {
    user_id: String,
    ranking: Vec<String>,
}

impl BaseRanking {
    /// The popularity baseline: interactions counted per video, whatever
    /// their outcome (so the ranking knows nothing of what went wrong).
    pub fn popularity<'a>(interactions: impl IntoIterator<Item = &'a Interaction>) -> Self {
        let mut counts = HashMap::new();
        for interaction in interactions {
            *counts.entry(interaction.video_id.clone()).or_default() += 1;
        }
        Self::Popularity { counts }
    }

    /// Reads a ranking file; every problem names its line.
    pub fn read(path: &Path) -> Result<Self, RankingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RankingError::Io { path: path.to_path_buf(), source })?;
        let mut per_user: HashMap<String, Vec<String>> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let problem = |message: String| RankingError::Line { path: path.to_path_buf(), line: index + 1, message };
            let parsed: RankingLine = serde_json::from_str(line).map_err(|e| {
                problem(format!("not a ranking ({e}); expected {{\"user_id\": …, \"ranking\": [video ids]}}"))
            })?;
            if let Some(earlier) = first_line.insert(parsed.user_id.clone(), index + 1) {
                return Err(problem(format!("user `{}` is ranked again (first on line {earlier})", parsed.user_id)));
            }
            per_user.insert(parsed.user_id, parsed.ranking);
        }
        Ok(Self::File { path: path.to_path_buf(), per_user })
    }

    /// A short name for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Popularity { .. } => "popularity".into(),
            Self::File { path, .. } => path.display().to_string(),
        }
    }

    /// Orders a user's candidate videos, best first. With a file, only the
    /// videos the user's line lists are candidates, in its order; the second
    /// value counts listed videos that are not among `candidates`.
    pub fn order(&self, user_id: &str, candidates: &[&str]) -> (Vec<String>, usize) {
        match self {
            Self::Popularity { counts } => {
                let mut ordered: Vec<&str> = candidates.to_vec();
                ordered.sort_by(|a, b| {
                    let count = |video: &str| counts.get(video).copied().unwrap_or(0);
                    count(b).cmp(&count(a)).then_with(|| a.cmp(b))
                });
                ordered.dedup();
                (ordered.into_iter().map(str::to_string).collect(), 0)
            }
            Self::File { per_user, .. } => {
                let listed = per_user.get(user_id).map(Vec::as_slice).unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                let ordered: Vec<String> = listed
                    .iter()
                    .filter(|video| candidates.contains(&video.as_str()) && seen.insert(video.as_str()))
                    .cloned()
                    .collect();
                let unlogged = listed.iter().filter(|video| !candidates.contains(&video.as_str())).count();
                (ordered, unlogged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interaction(video: &str) -> Interaction {
        Interaction {
            user_id: "u".into(),
            video_id: video.into(),
            ts: 0,
            watch_s: 1.0,
            play_rate: 0.5,
            disliked: false,
            reason_text: None,
            reason_class: None,
        }
    }

    #[test]
    fn popularity_orders_by_interaction_count_then_id() {
        let log = [interaction("b"), interaction("c"), interaction("c"), interaction("a")];
        let ranking = BaseRanking::popularity(&log);
        assert_eq!(ranking.order("u", &["a", "b", "c", "z"]).0, ["c", "a", "b", "z"]);
    }

    #[test]
    fn a_ranking_file_keeps_its_order_and_counts_unlogged_videos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranking.jsonl");
        std::fs::write(&path, "{\"user_id\": \"u\", \"ranking\": [\"x\", \"b\", \"a\", \"b\"]}\n\n").unwrap();
        let ranking = BaseRanking::read(&path).unwrap();
        assert_eq!(ranking.order("u", &["a", "b", "c"]), (vec!["b".to_string(), "a".to_string()], 1));
        assert!(ranking.order("other", &["a"]).0.is_empty());
    }

    #[test]
    fn a_bad_ranking_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranking.jsonl");
        std::fs::write(&path, "{\"user_id\": \"u\", \"ranking\": []}\n{\"user\": \"v\"}\n").unwrap();
        let error = BaseRanking::read(&path).unwrap_err().to_string();
        assert!(error.contains("ranking.jsonl:2"), "{error}");
        std::fs::write(&path, "{\"user_id\": \"u\", \"ranking\": []}\n{\"user_id\": \"u\", \"ranking\": []}\n")
            .unwrap();
        let error = BaseRanking::read(&path).unwrap_err().to_string();
        assert!(error.contains("ranking.jsonl:2") && error.contains("first on line 1"), "{error}");
    }
}
