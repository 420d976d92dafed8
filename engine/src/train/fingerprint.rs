//! What a training run starts from, as hashes a checkpoint keeps: the
//! configuration (with the seed), the data set and the starting model.
//! `--resume` continues a run only from the same data and model — a
//! checkpoint's moments and step count mean nothing for other ones — and
//! warns when only the configuration changed (a longer schedule is a
//! legitimate reason to resume).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TrainError;
use super::config::{Stage, TrainConfig};

/// Hashes of what a run starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The configuration file and the seed.
    pub config: String,
    /// The data set's files (users, videos, interactions, items, the task
    /// and, for SFT, the targets). Frame images are named in the videos
    /// file; their pixels are not hashed.
    pub data: String,
    /// Every file of the starting model's directory (weights, configuration, tokenizer).
    pub model: String,
}

const DATA_FILES: &[&str] = &["users.jsonl", "videos.jsonl", "interactions.jsonl", "items.jsonl", "dataset.toml"];

impl Fingerprint {
    /// Hashes `config`'s file, data set and starting model.
    pub fn of(config: &TrainConfig) -> Result<Self, TrainError> {
        let mut text = std::fs::read(&config.path).map_err(|e| TrainError::file(&config.path, e))?;
        // The seed may come from `--seed` rather than the file.
        text.extend_from_slice(&config.seed.to_le_bytes());
        let mut data: Vec<PathBuf> = DATA_FILES.iter().map(|name| config.data.join(name)).collect();
        if config.stage == Stage::Sft {
            data.push(config.sft_targets.clone());
        }
        Ok(Self {
            config: short(&Sha256::digest(&text)),
            data: hash_files(&config.data, &data)?,
            model: hash_files(&config.model_dir, &files_in(&config.model_dir)?)?,
        })
    }
}

fn short(digest: &[u8]) -> String {
    hex::encode(digest)[..16].to_string()
}

/// The regular files directly in `dir`, sorted.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::file(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// One hash over the names (relative to `base`) and contents of `files`;
/// a file that does not exist counts as absent, not as an error.
fn hash_files(base: &Path, files: &[PathBuf]) -> Result<String, TrainError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    for path in files {
        let name = path.strip_prefix(base).unwrap_or(path).to_string_lossy().to_string();
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(TrainError::file(path, e)),
        };
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        loop {
            let read = file.read(&mut buffer).map_err(|e| TrainError::file(path, e))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        hasher.update(b"\0end");
    }
    Ok(short(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_absent_or_renamed_file_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        std::fs::write(&a, "1\n").unwrap();
        let files = [a.clone(), b.clone()];
        let first = hash_files(dir.path(), &files).unwrap();
        assert_eq!(first, hash_files(dir.path(), &files).unwrap(), "stable");
        std::fs::write(&b, "").unwrap();
        let with_empty = hash_files(dir.path(), &files).unwrap();
        assert_ne!(first, with_empty, "an empty file is not an absent one");
        std::fs::write(&a, "2\n").unwrap();
        assert_ne!(with_empty, hash_files(dir.path(), &files).unwrap());
        // The same bytes under another name.
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "").unwrap();
        let one = hash_files(dir.path(), &files).unwrap();
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "x").unwrap();
        assert_ne!(one, hash_files(dir.path(), &files).unwrap());
    }
}
