//! Splitting a run across machines and putting it back together.
//!
//! `enf run --shard K/N` runs only the items whose id hashes to `K` modulo
//! `N` — a stable hash (64-bit FNV-1a of the id's bytes), so the same item
//! lands in the same shard on every machine, in every release. Each shard
//! writes its own predictions file; [`merge`] folds the `N` files into one
//! that holds exactly what a one-machine run over the whole data set holds:
//! every item once, in the data set's order. A Kubernetes Indexed Job passes
//! `JOB_COMPLETION_INDEX` as `K`; any job array works the same way.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One shard of a run: the items whose id hashes to `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u32,
    /// How many shards the run is split into.
    pub count: u32,
}

/// Why a `K/N` shard spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard `{spec}`: {reason} (expected K/N with 0 <= K < N, e.g. 0/4; K is 0-based like JOB_COMPLETION_INDEX)")]
pub struct ShardSpecError {
    /// What was given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for Shard {
    type Err = ShardSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let error = |reason| ShardSpecError { spec: spec.to_string(), reason };
        let (index, count) = spec.split_once('/').ok_or_else(|| error("no `/`"))?;
        let index: u32 = index.trim().parse().map_err(|_| error("K is not a whole number"))?;
        let count: u32 = count.trim().parse().map_err(|_| error("N is not a whole number"))?;
        if count == 0 {
            return Err(error("N must be at least 1"));
        }
        if index >= count {
            return Err(error("K must be less than N"));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the item with this id belongs to this shard.
    pub fn contains(&self, item_id: &str) -> bool {
        stable_hash(item_id) % u64::from(self.count) == u64::from(self.index)
    }
}

/// 64-bit FNV-1a: fixed by its definition, so shard membership never
/// changes between machines, platforms or releases.
fn stable_hash(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes().fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// Why shard files could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a prediction record.
    #[error("{path}:{line}: not a prediction record ({message})")]
    Corrupt {
        /// The shard file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Parse error.
        message: String,
    },
    /// The last line is cut off: the shard's run was interrupted.
    #[error(
        "{path}:{line}: the last record is cut off — the shard's run was interrupted; rerun it with the same --shard and --out to finish it"
    )]
    Torn {
        /// The shard file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// Two shard files hold the same item: they are not shards of one split.
    #[error(
        "item `{item_id}` is in both {first} and {second}: the files are not shards of one split (same N, different K)"
    )]
    Overlap {
        /// The item.
        item_id: String,
        /// The file it was first seen in.
        first: PathBuf,
        /// The file it was seen in again.
        second: PathBuf,
    },
    /// A shard holds an item that the data set does not have.
    #[error("{path}: item `{item_id}` is not an item of this data set (a shard of another data set?)")]
    Foreign {
        /// The shard file.
        path: PathBuf,
        /// The item.
        item_id: String,
    },
}

/// What a merge wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Items written to the merged file.
    pub merged: usize,
    /// Of those, items with a failed node.
    pub failed: usize,
    /// Items of the data set that no shard holds, in data set order.
    pub missing: Vec<String>,
}

/// A record of a shard file, kept as its line so the merge changes nothing in it.
struct ShardRecord {
    line: String,
    ok: bool,
    path_index: usize,
}

#[derive(serde::Deserialize)]
struct IdAndOutcome {
    item_id: String,
    #[serde(default = "yes")]
    ok: bool,
}

fn yes() -> bool {
    true
}

/// Merges the predictions files of a run's shards into `out`, one line per
/// item of the data set, in `item_ids`' order (the data set's), written
/// atomically. Within a
/// file a later record of an item supersedes an earlier one, as in a
/// predictions file after `--retry-failed`; an item in two files, an item the
/// data set lacks, a corrupt or cut-off line is an error. Items that no shard
/// holds are listed in the summary (run them by pointing `enf run` at `out`).
pub fn merge<'a>(
    shards: &[PathBuf],
    item_ids: impl IntoIterator<Item = &'a str>,
    out: &Path,
) -> Result<MergeSummary, MergeError> {
    let mut records: HashMap<String, ShardRecord> = HashMap::new();
    for (path_index, path) in shards.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|source| MergeError::Io { path: path.clone(), source })?;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if !line.ends_with('\n') {
                return Err(MergeError::Torn { path: path.clone(), line: index + 1 });
            }
            let record: IdAndOutcome = serde_json::from_str(line.trim_end()).map_err(|e| MergeError::Corrupt {
                path: path.clone(),
                line: index + 1,
                message: e.to_string(),
            })?;
            let entry = ShardRecord { line: line.to_string(), ok: record.ok, path_index };
            if let Some(earlier) = records.get(&record.item_id)
                && earlier.path_index != path_index
            {
                return Err(MergeError::Overlap {
                    item_id: record.item_id,
                    first: shards[earlier.path_index].clone(),
                    second: path.clone(),
                });
            }
            records.insert(record.item_id, entry);
        }
    }
    let mut summary = MergeSummary::default();
    let mut merged = String::new();
    for item_id in item_ids {
        match records.remove(item_id) {
            Some(record) => {
                merged.push_str(&record.line);
                summary.merged += 1;
                summary.failed += usize::from(!record.ok);
            }
            None => summary.missing.push(item_id.to_string()),
        }
    }
    if let Some((item_id, record)) = records.into_iter().min_by(|a, b| a.0.cmp(&b.0)) {
        return Err(MergeError::Foreign { path: shards[record.path_index].clone(), item_id });
    }
    write_atomically(out, merged.as_bytes())?;
    Ok(summary)
}

/// Writes `bytes` to `path` through a synced temporary file renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MergeError> {
    let io = |source| MergeError::Io { path: path.to_path_buf(), source };
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(io)?;
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(io)?;
    temporary.write_all(bytes).and_then(|_| temporary.as_file().sync_all()).map_err(io)?;
    temporary.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_shard_specs() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard { index: 0, count: 1 });
        for bad in ["8/8", "1/0", "3", "a/4", "-1/4", "1/b", ""] {
            let error = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")) && error.contains("K/N"), "{bad}: {error}");
        }
    }

    #[test]
    fn every_id_is_in_exactly_one_shard_and_the_split_is_fixed() {
        let ids: Vec<String> = (0..500).map(|i| format!("u{:03}/v{:04}", i / 7, i)).collect();
        let count = 4;
        let mut sizes = vec![0usize; count];
        for id in &ids {
            let owners: Vec<u32> =
                (0..count as u32).filter(|&index| Shard { index, count: count as u32 }.contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id} is in shards {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|&size| size > 75), "uneven split {sizes:?}");
        // The hash is part of the file format of a split run: pinned.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    fn line(id: &str, ok: bool) -> String {
        format!("{{\"item_id\":\"{id}\",\"ok\":{ok},\"nodes\":{{}}}}\n")
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn merges_in_data_set_order_keeping_each_items_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.jsonl", &(line("c", false) + &line("a", true) + &line("c", true)));
        let b = write(dir.path(), "b.jsonl", &(line("d", false) + "\n"));
        let out = dir.path().join("merged/all.jsonl");
        let summary = merge(&[a, b], ["a", "b", "c", "d"], &out).unwrap();
        assert_eq!(summary, MergeSummary { merged: 3, failed: 1, missing: vec!["b".into()] });
        assert_eq!(std::fs::read_to_string(&out).unwrap(), line("a", true) + &line("c", true) + &line("d", false));
    }

    #[test]
    fn refuses_overlapping_foreign_torn_and_corrupt_shards() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let a = write(dir.path(), "a.jsonl", &line("a", true));
        let again = write(dir.path(), "again.jsonl", &line("a", true));
        let error = merge(&[a.clone(), again], ["a"], &out).unwrap_err().to_string();
        assert!(error.contains("`a`") && error.contains("a.jsonl") && error.contains("again.jsonl"), "{error}");
        let error = merge(std::slice::from_ref(&a), ["b"], &out).unwrap_err().to_string();
        assert!(error.contains("a.jsonl") && error.contains("not an item of this data set"), "{error}");
        let torn = write(dir.path(), "torn.jsonl", &(line("a", true) + "{\"item_id\":\"b"));
        let error = merge(&[torn], ["a", "b"], &out).unwrap_err().to_string();
        assert!(error.contains("torn.jsonl:2") && error.contains("interrupted"), "{error}");
        let corrupt = write(dir.path(), "corrupt.jsonl", &("oops\n".to_string() + &line("a", true)));
        let error = merge(&[corrupt], ["a"], &out).unwrap_err().to_string();
        assert!(error.contains("corrupt.jsonl:1"), "{error}");
        assert!(!out.exists(), "a refused merge writes nothing");
    }
}
