//! Evaluation like the paper: `enf eval PREDICTIONS --data DIR` scores the
//! verdicts in a predictions file against the data set's truth — Acc,
//! Precision, Recall, F1 (negative feedback is the positive class), Class_Acc,
//! Reasoning (ROUGE against real reasons, where the judgement is right) and,
//! optionally, an LLM judge's relevance — printed as the paper's tables,
//! written as JSON, and as a report a person reads ([`report`]).

pub mod metrics;
pub mod report;
pub mod rouge;
pub mod score;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use enf_kit::verdict::{Attitude, Verdict};
use serde::Serialize;

use crate::data::Item;
use crate::run::ItemRecord;
use metrics::{Binary, PositiveClass, Scored};

/// Which task the predictions answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Implicit negative feedback (fast skips or dislikes), the Reason agent (Table 3).
    Implicit,
    /// Explicit negative feedback (dislikes), the Video agent alone (Table 2).
    Explicit,
    /// Preference alignment on MovieLens, per-user averaged, "like" positive (Table 6).
    Agent4rec,
}

impl Task {
    /// What is being predicted, for headings.
    pub fn title(self) -> &'static str {
        match self {
            Task::Implicit => "implicit negative feedback",
            Task::Explicit => "explicit negative feedback",
            Task::Agent4rec => "preference alignment (Agent4Rec)",
        }
    }

    /// The paper's figures for its own method on this task: Acc, Precision, Recall, F1, Class_Acc, Reasoning.
    pub fn paper_row(self) -> (&'static str, [Option<f64>; 6]) {
        match self {
            Task::Implicit => {
                ("Paper, ENF 7b (Table 3)", [Some(0.612), Some(0.404), Some(0.782), Some(0.533), Some(0.543), None])
            }
            Task::Explicit => (
                "Paper, Video Agent 7b (Table 2)",
                [Some(0.861), Some(0.706), Some(0.808), Some(0.750), Some(0.654), Some(0.537)],
            ),
            Task::Agent4rec => {
                ("Paper, ENF on MovieLens (Table 6)", [Some(0.815), None, None, Some(0.808), None, None])
            }
        }
    }
}

/// Why predictions cannot be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The predictions file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a prediction record.
    #[error("{path}:{line}: not a prediction record: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Parse error.
        message: String,
    },
    /// The verdict node cannot be determined.
    #[error("{0}")]
    Node(String),
}

/// Reads a predictions file. Where an item has several records (a retry
/// run that was interrupted before compacting the file), the last one counts.
pub fn read_predictions(path: &Path) -> Result<Vec<ItemRecord>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read { path: path.to_path_buf(), source })?;
    let mut records: Vec<ItemRecord> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: ItemRecord = serde_json::from_str(line).map_err(|e| EvalError::Record {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        match position.get(&record.item_id) {
            Some(&at) => records[at] = record,
            None => {
                position.insert(record.item_id.clone(), records.len());
                records.push(record);
            }
        }
    }
    Ok(records)
}

/// The node whose output holds the verdicts: `wanted`, else `reason` when
/// present, else the only node with a `verdict`.
pub fn verdict_node(records: &[ItemRecord], wanted: Option<&str>) -> Result<String, EvalError> {
    if let Some(node) = wanted {
        return Ok(node.to_string());
    }
    let mut with_verdicts: Vec<&str> = records
        .iter()
        .flat_map(|r| r.nodes.iter())
        .filter(|(_, n)| n.output.as_ref().is_some_and(|o| o.get("verdict").is_some()))
        .map(|(name, _)| name.as_str())
        .collect();
    with_verdicts.sort_unstable();
    with_verdicts.dedup();
    match with_verdicts.as_slice() {
        [] => Err(EvalError::Node("no node output in the predictions has a `verdict`".into())),
        [one] => Ok(one.to_string()),
        many if many.contains(&"reason") => Ok("reason".into()),
        many => {
            Err(EvalError::Node(format!("several nodes give verdicts ({}); choose one with --node", many.join(", "))))
        }
    }
}

/// An item as evaluated: its truth, its verdict or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    /// The item.
    pub item_id: String,
    /// Its user.
    pub user_id: String,
    /// Its candidate video.
    pub video_id: String,
    /// The truth used for this task.
    pub truth_negative: bool,
    /// True class.
    pub truth_class: Option<u32>,
    /// True reason.
    pub truth_reason: Option<String>,
    /// The verdict, or `None` when the item failed or is not in the predictions.
    pub verdict: Option<Verdict>,
    /// Why there is no verdict.
    pub error: Option<String>,
    /// ROUGE of the reason, where scored.
    pub reasoning: Option<f64>,
    /// The verdict's score, step by step (none without a verdict).
    #[serde(skip)]
    pub score: Option<score::ItemScore>,
}

/// The evaluation of one predictions file.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The task.
    pub task: Task,
    /// The node read.
    pub node: String,
    /// Items in the data set.
    pub items: usize,
    /// Items with a verdict.
    pub scored: usize,
    /// Items without one (failed, or not run).
    pub missing: usize,
    /// Of those, items whose record has a failed verdict node (rerun them
    /// with `enf run --retry-failed`).
    pub failed: usize,
    /// Verdicts the parser had to guess.
    pub guessed: usize,
    /// Prediction lines for items the data set does not have.
    pub unknown: usize,
    /// Binary judgement.
    pub binary: Binary,
    /// Users averaged over (per-user evaluation).
    pub users: Option<usize>,
    /// Class accuracy and the number of labelled negatives it rests on.
    pub class_acc: Option<(f64, usize)>,
    /// Mean reasoning ROUGE and the number of scored reasons.
    pub reasoning: Option<(f64, usize)>,
    /// Mean LLM-judge relevance and the number of judged reasons.
    pub judge: Option<(f64, usize)>,
    /// The positive class of the binary figures.
    pub positive: PositiveClass,
}

/// Scores `records` against `items` for `task`.
pub fn evaluate(records: &[ItemRecord], items: &[Item], task: Task, node: &str) -> (Evaluation, Vec<Judged>) {
    let by_id: HashMap<&str, &ItemRecord> = records.iter().map(|r| (r.item_id.as_str(), r)).collect();
    let known: std::collections::HashSet<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
    let unknown = records.iter().filter(|r| !known.contains(r.item_id.as_str())).count();
    let scorer = rouge::ReasonScorer::new();
    let mut judged = Vec::with_capacity(items.len());
    for item in items {
        let truth_negative = if task == Task::Explicit { item.truth.explicit } else { item.truth.negative };
        let (verdict, error) = match by_id.get(item.item_id.as_str()) {
            None => (None, Some("not in the predictions file".to_string())),
            Some(record) => match record.nodes.get(node) {
                None => (None, Some(format!("no node `{node}` in the record"))),
                Some(n) if !n.ok => (None, Some(n.error.clone().unwrap_or_else(|| "failed".into()))),
                Some(n) => match n
                    .output
                    .as_ref()
                    .and_then(|o| o.get("verdict"))
                    .map(|v| serde_json::from_value::<Verdict>(v.clone()))
                {
                    Some(Ok(v)) => (Some(v), None),
                    Some(Err(e)) => (None, Some(format!("unreadable verdict: {e}"))),
                    None => (None, Some(format!("node `{node}` gave no verdict"))),
                },
            },
        };
        let truth = score::Truth {
            negative: truth_negative,
            reason_class: item.truth.reason_class,
            reason_text: item.truth.reason_text.as_deref(),
        };
        let scored = verdict.as_ref().map(|v| score::score_item(&truth, v, &scorer));
        judged.push(Judged {
            item_id: item.item_id.clone(),
            user_id: item.user_id.clone(),
            video_id: item.video_id.clone(),
            truth_negative,
            truth_class: item.truth.reason_class,
            truth_reason: item.truth.reason_text.clone(),
            verdict,
            error,
            reasoning: scored.and_then(|s| s.reasoning),
            score: scored,
        });
    }
    let scored: Vec<Scored> = judged
        .iter()
        .filter_map(|j| {
            j.verdict.as_ref().map(|v| Scored {
                user_id: j.user_id.clone(),
                truth_negative: j.truth_negative,
                predicted_negative: v.attitude == Attitude::Negative,
            })
        })
        .collect();
    let positive = if task == Task::Agent4rec { PositiveClass::Like } else { PositiveClass::Negative };
    let (binary, users) = if task == Task::Agent4rec {
        let (b, users) = metrics::per_user_binary(&scored, positive);
        (b, Some(users))
    } else {
        (metrics::binary(&scored, positive), None)
    };
    let scores: Vec<score::ItemScore> = judged.iter().filter_map(|j| j.score).collect();
    let evaluation = Evaluation {
        task,
        node: node.to_string(),
        items: items.len(),
        scored: scored.len(),
        missing: judged.iter().filter(|j| j.verdict.is_none()).count(),
        failed: judged.iter().filter(|j| j.verdict.is_none() && by_id.contains_key(j.item_id.as_str())).count(),
        guessed: judged.iter().filter(|j| j.verdict.as_ref().is_some_and(|v| v.guessed)).count(),
        unknown,
        binary,
        users,
        class_acc: if task == Task::Agent4rec { None } else { score::class_accuracy(&scores) },
        reasoning: score::mean_reasoning(&scores),
        judge: None,
        positive,
    };
    (evaluation, judged)
}

fn cell(value: Option<f64>, n: Option<usize>) -> String {
    match (value, n) {
        (Some(v), Some(n)) => format!("{v:.3} (n={n})"),
        (Some(v), None) => format!("{v:.3}"),
        (None, _) => "-".into(),
    }
}

/// The paper-style table: this run next to the paper's figures.
pub fn table(evaluation: &Evaluation, label: &str) -> String {
    let b = &evaluation.binary;
    let ours = [
        cell(Some(b.acc), None),
        cell(Some(b.precision), None),
        cell(Some(b.recall), None),
        cell(Some(b.f1), None),
        cell(evaluation.class_acc.map(|c| c.0), evaluation.class_acc.map(|c| c.1)),
        cell(evaluation.reasoning.map(|c| c.0), evaluation.reasoning.map(|c| c.1)),
    ];
    let (paper_label, paper) = evaluation.task.paper_row();
    let theirs: Vec<String> = paper.iter().map(|v| cell(*v, None)).collect();
    let mut header = vec!["", "Acc", "Precision", "Recall", "F1_Score", "Class_Acc", "Reasoning"];
    let mut rows: Vec<Vec<String>> = vec![
        std::iter::once(label.to_string()).chain(ours).collect(),
        std::iter::once(paper_label.to_string()).chain(theirs).collect(),
    ];
    if let Some((judge, n)) = evaluation.judge {
        header.push("Judge");
        rows[0].push(cell(Some(judge), Some(n)));
        rows[1].push("-".into());
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.push(format!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")));
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}
