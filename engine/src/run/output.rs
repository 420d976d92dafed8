//! The predictions file: JSONL, appended and flushed one item at a time so
//! that a run killed at any point (even `kill -9`) can be resumed. On open,
//! the ids already written are collected and a torn last line (the process
//! died mid-write) is cut off, so every item ends up in the file exactly once.

use std::collections::HashSet;
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
}

#[derive(serde::Deserialize)]
struct IdOnly {
    item_id: String,
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
                    done.insert(record.item_id);
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
        Ok(Self { path: path.to_path_buf(), file, done })
    }

    /// Ids of the items already in the file.
    pub fn done(&self) -> &HashSet<String> {
        &self.done
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
        self.done.insert(record.item_id.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(id: &str) -> ItemRecord {
        ItemRecord {
            item_id: id.into(),
            user_id: "u".into(),
            video_id: "v".into(),
            ok: true,
            ms: 1.0,
            nodes: BTreeMap::new(),
        }
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
