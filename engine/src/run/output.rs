//! The predictions file: JSONL, appended and flushed one item at a time so
//! that a run killed at any point (even `kill -9`) can be resumed. On open,
//! the ids already written are collected and a torn last line (the process
//! died mid-write) is cut off, so every item ends up in the file exactly once.
//!
//! Rerunning failed items (`enf run --retry-failed`) appends their new
//! records; a later line for an item supersedes an earlier one. The file is
//! then compacted — rewritten to a temporary file, synced and renamed over
//! the old one, so a kill at any moment leaves either file whole — keeping
//! each item's last record at the place of its first. Opening a file that
//! still holds superseded lines (a retry run that was killed) compacts it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::ItemRecord;

/// Why the predictions file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// I/O failed.
    #[error("predictions file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A complete line in the middle of the file is not a record.
    #[error(
        "predictions file {path}:{line}: not a prediction record ({message}); move the file away or pass another --out"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Parse error.
        message: String,
    },
}

/// An open predictions file.
pub struct PredictionsFile {
    path: PathBuf,
    file: File,
    done: HashSet<String>,
    failed: HashSet<String>,
    superseded: usize,
}

#[derive(serde::Deserialize)]
struct IdOnly {
    item_id: String,
    #[serde(default = "yes")]
    ok: bool,
}

fn yes() -> bool {
    true
}

impl PredictionsFile {
    /// Opens (or creates) `path` for appending, recovering from a torn last line.
    pub fn open(path: &Path) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let mut done = HashSet::new();
        let mut failed = HashSet::new();
        let mut superseded = 0usize;
        let mut good_end = 0usize;
        let mut offset = 0usize;
        let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        for (index, line) in lines.iter().enumerate() {
            let complete = line.ends_with(b"\n");
            offset += line.len();
            let text = String::from_utf8_lossy(line);
            if text.trim().is_empty() {
                if complete {
                    good_end = offset;
                }
                continue;
            }
            match serde_json::from_str::<IdOnly>(text.trim_end()) {
                Ok(record) if complete => {
                    if !done.insert(record.item_id.clone()) {
                        superseded += 1;
                    }
                    if record.ok {
                        failed.remove(&record.item_id);
                    } else {
                        failed.insert(record.item_id);
                    }
                    good_end = offset;
                }
                Ok(_) => {}
                Err(e) if index + 1 < lines.len() => {
                    return Err(OutputError::Corrupt {
                        path: path.to_path_buf(),
                        line: index + 1,
                        message: e.to_string(),
                    });
                }
                Err(_) => {}
            }
        }
        if good_end < bytes.len() {
            tracing::warn!(path = %path.display(), bytes = bytes.len() - good_end, "cutting off a torn last line left by an interrupted run");
            file.set_len(good_end as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        let mut out = Self { path: path.to_path_buf(), file, done, failed, superseded };
        if out.superseded > 0 {
            tracing::info!(path = %path.display(), lines = out.superseded, "dropping superseded records left by an interrupted retry");
            out.compact()?;
        }
        Ok(out)
    }

    /// Ids of the items already in the file (whether they succeeded or not).
    pub fn done(&self) -> &HashSet<String> {
        &self.done
    }

    /// Ids of the items whose record in the file has a failed node.
    pub fn failed(&self) -> &HashSet<String> {
        &self.failed
    }

    /// Rewrites the file with one line per item — its last record, at the
    /// place of its first — atomically (temporary file, sync, rename).
    /// Nothing to do when no record was superseded.
    pub fn compact(&mut self) -> Result<(), OutputError> {
        if self.superseded == 0 {
            return Ok(());
        }
        let io = |source| OutputError::Io { path: self.path.clone(), source };
        let bytes = std::fs::read(&self.path).map_err(io)?;
        let lines: Vec<&[u8]> =
            bytes.split_inclusive(|&b| b == b'\n').filter(|l| !String::from_utf8_lossy(l).trim().is_empty()).collect();
        let mut last: HashMap<String, usize> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let Ok(record) = serde_json::from_slice::<IdOnly>(line) else { continue };
            if last.insert(record.item_id.clone(), index).is_none() {
                order.push(record.item_id);
            }
        }
        let mut compacted = Vec::with_capacity(bytes.len());
        for id in &order {
            compacted.extend_from_slice(lines[last[id]]);
        }
        let directory = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(io)?;
        temporary.write_all(&compacted).and_then(|_| temporary.as_file().sync_all()).map_err(io)?;
        temporary.persist(&self.path).map_err(|e| io(e.error))?;
        self.file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(io)?;
        self.superseded = 0;
        Ok(())
    }

    /// Appends one record as one line and flushes it to the OS.
    pub fn append(&mut self, record: &ItemRecord) -> Result<(), OutputError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| OutputError::Io { path: self.path.clone(), source: e.into() })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|source| OutputError::Io { path: self.path.clone(), source })?;
        if !self.done.insert(record.item_id.clone()) {
            self.superseded += 1;
        }
        if record.ok {
            self.failed.remove(&record.item_id);
        } else {
            self.failed.insert(record.item_id.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(id: &str) -> ItemRecord {
        record_ok(id, true)
    }

    fn record_ok(id: &str, ok: bool) -> ItemRecord {
        ItemRecord {
            item_id: id.into(),
            user_id: "u".into(),
            video_id: "v".into(),
            ok,
            ms: 1.0,
            nodes: BTreeMap::new(),
        }
    }

    fn lines(path: &Path) -> Vec<(String, bool)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let r = serde_json::from_str::<IdOnly>(l).unwrap();
                (r.item_id, r.ok)
            })
            .collect()
    }

    #[test]
    fn a_retried_item_replaces_its_line_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        {
            let mut out = PredictionsFile::open(&path).unwrap();
            out.append(&record("a")).unwrap();
            out.append(&record_ok("b", false)).unwrap();
            out.append(&record("c")).unwrap();
            assert_eq!(out.failed().iter().collect::<Vec<_>>(), ["b"]);
            out.append(&record_ok("b", true)).unwrap();
            assert!(out.failed().is_empty());
            out.compact().unwrap();
        }
        assert_eq!(lines(&path), [("a".into(), true), ("b".into(), true), ("c".into(), true)]);
    }

    #[test]
    fn opening_after_a_killed_retry_keeps_the_last_record_of_each_item() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        {
            let mut out = PredictionsFile::open(&path).unwrap();
            out.append(&record_ok("a", false)).unwrap();
            out.append(&record("b")).unwrap();
            // The retry's new line for `a` is written, then the process dies before compacting.
            out.append(&record("a")).unwrap();
        }
        let out = PredictionsFile::open(&path).unwrap();
        assert!(out.failed().is_empty());
        assert_eq!(out.done().len(), 2);
        assert_eq!(lines(&path), [("a".into(), true), ("b".into(), true)]);
    }

    #[test]
    fn resumes_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        {
            let mut out = PredictionsFile::open(&path).unwrap();
            out.append(&record("a")).unwrap();
            out.append(&record("b")).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"item_id\":\"c\",\"us");
        std::fs::write(&path, &bytes).unwrap();
        let mut out = PredictionsFile::open(&path).unwrap();
        assert_eq!(out.done().len(), 2);
        assert!(out.done().contains("a") && out.done().contains("b"));
        out.append(&record("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text.lines().map(|l| serde_json::from_str::<IdOnly>(l).unwrap().item_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn refuses_a_corrupt_middle_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"item_id\":\"a\"}\nnot json\n{\"item_id\":\"b\"}\n").unwrap();
        let err = PredictionsFile::open(&path).err().unwrap();
        assert!(err.to_string().contains("out.jsonl:2"), "{err}");
    }
}
