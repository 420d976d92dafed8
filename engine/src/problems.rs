//! Problems found in a user's files, each naming the file, line and (for a
//! graph) node — the form every check reports in: graph files here, model
//! manifests and data sets through [`line_of`] and [`describe_toml_error`].
//! Shared by `graph`, `inference` and `data`, so none of them depends on
//! another for it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem with a graph file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphProblem {
    /// The graph file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// The node (or `models.ALIAS`) concerned, where there is one.
    pub node: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for GraphProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a graph file; returned instead of a graph.
#[derive(Debug, Clone, thiserror::Error)]
pub struct GraphError {
    /// The problems, in file order where lines are known.
    pub problems: Vec<GraphProblem>,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{} in graph file", if n == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while a graph file is checked.
#[derive(Debug)]
pub struct Problems {
    file: PathBuf,
    text: String,
    found: Vec<GraphProblem>,
}

impl Problems {
    /// Starts a collection for `file`, whose contents are `text`.
    pub fn new(file: &Path, text: &str) -> Self {
        Self { file: file.to_path_buf(), text: text.to_string(), found: Vec::new() }
    }

    /// The 1-based line of a byte offset into the file.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(&self.text, offset)
    }

    /// Records a problem at a byte offset, about a node when given.
    pub fn at(&mut self, offset: Option<usize>, node: Option<&str>, message: impl Into<String>) {
        let line = offset.map(|o| self.line_of(o));
        self.found.push(GraphProblem {
            file: self.file.clone(),
            line,
            node: node.map(str::to_string),
            message: message.into(),
        });
    }

    /// Records a problem at a known line.
    pub fn at_line(&mut self, line: Option<usize>, node: Option<&str>, message: impl Into<String>) {
        self.found.push(GraphProblem {
            file: self.file.clone(),
            line,
            node: node.map(str::to_string),
            message: message.into(),
        });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Finishes: `Ok(())` when nothing was found.
    pub fn finish(mut self) -> Result<(), GraphError> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(GraphError { problems: self.found })
    }
}

/// The 1-based line of a byte offset into `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Renders a TOML parse error as "line L, column C: message".
pub fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
            let column = text[line_start..span.start.min(text.len())].chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}
