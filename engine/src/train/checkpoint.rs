//! Checkpoints that survive `kill -9` at any moment: a checkpoint is
//! written into a fresh temporary directory (weights, optimizer moments,
//! state), every file synced, then renamed into place as `step-NNNNNN`, and
//! only then is `LATEST` replaced (write to a temporary file, sync, rename).
//! A crash leaves either the previous `LATEST` or the new one, both
//! complete. The state is the step alone: data order and sampling are
//! derived from (seed, step), so resuming repeats exactly what an
//! uninterrupted run would have done.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainError;
use super::decoder::Decoder;
use super::optimizer::AdamW;

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Fingerprint of the configuration it was trained with.
    pub config_fingerprint: String,
    /// Hash of the data set it was trained on (absent in checkpoints
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// Hash of the model training started from (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
}

/// Checkpoints kept besides the latest.
const KEEP: usize = 1;

#[cfg(test)]
thread_local! {
    /// Every path synced on this thread, in order (tests check durability with it).
    pub(super) static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) fn sync_file(path: &Path) -> Result<(), TrainError> {
    #[cfg(test)]
    SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| TrainError::file(path, e))
}

pub(super) fn sync_dir(path: &Path) {
    #[cfg(test)]
    SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    // Directory fsync makes the rename durable; not every platform allows it.
    if let Ok(dir) = std::fs::File::open(path) {
        let _ = dir.sync_all();
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, never a part: a temporary file beside it, synced, renamed over it.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| TrainError::file(dir, e))?;
    file.write_all(bytes).and_then(|()| file.as_file().sync_all()).map_err(|e| TrainError::file(path, e))?;
    file.persist(path).map_err(|e| TrainError::file(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Replaces `path` with what `write` writes to `PATH.tmp` beside it, the
/// same way: synced before the rename, the directory after it.
pub(super) fn write_file_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::file(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes a checkpoint of `model` and `optimizer` into `root` (see the module docs).
pub fn save(root: &Path, model: &Decoder, optimizer: &AdamW, state: &CheckpointState) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(root).map_err(|e| TrainError::file(root, e))?;
    let name = format!("step-{:06}", state.step);
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    let weights = tmp.join("model.safetensors");
    model.save_trainable(&weights)?;
    let moments = tmp.join("optimizer.safetensors");
    let tensors = optimizer.state(model.vars())?;
    candle_core::safetensors::save(&tensors, &moments).map_err(|e| TrainError::file(&moments, e))?;
    let state_path = tmp.join("state.json");
    let text = serde_json::to_string_pretty(state).map_err(|e| TrainError::file(&state_path, e))?;
    std::fs::write(&state_path, text).map_err(|e| TrainError::file(&state_path, e))?;
    for file in [&weights, &moments, &state_path] {
        sync_file(file)?;
    }
    sync_dir(&tmp);
    let dest = root.join(&name);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest).map_err(|e| TrainError::file(&dest, e))?;
    sync_dir(root);
    write_atomically(&root.join("LATEST"), name.as_bytes())?;
    prune(root, state.step);
    Ok(dest)
}

/// Removes all but the newest [`KEEP`] older checkpoints and stale temporaries.
fn prune(root: &Path, latest: usize) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut steps: Vec<(usize, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<usize>().ok())
            && step < latest
        {
            steps.push((step, entry.path()));
        }
    }
    steps.sort();
    let drop = steps.len().saturating_sub(KEEP);
    for (_, path) in steps.into_iter().take(drop) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The latest complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>, TrainError> {
    let pointer = root.join("LATEST");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = root.join(name.trim());
            if !dir.join("state.json").is_file() {
                return Err(TrainError::file(
                    &pointer,
                    format!("names {} which is not a complete checkpoint", dir.display()),
                ));
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::file(&pointer, e)),
    }
}

/// Restores `model` and `optimizer` from checkpoint `dir`; returns its state.
pub fn load(dir: &Path, model: &Decoder, optimizer: &mut AdamW) -> Result<CheckpointState, TrainError> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::file(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| TrainError::file(&state_path, e))?;
    let weights = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu)
        .map_err(|e| TrainError::file(&weights, e))?;
    for (name, var) in model.vars() {
        let tensor = tensors.get(name).ok_or_else(|| TrainError::file(&weights, format!("no tensor `{name}`")))?;
        var.set(&tensor.to_dtype(var.dtype())?.to_device(var.device())?)
            .map_err(|e| TrainError::file(&weights, format!("`{name}`: {e}")))?;
    }
    let moments = dir.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&moments, &candle_core::Device::Cpu)
        .map_err(|e| TrainError::file(&moments, e))?;
    optimizer.restore(model.vars(), tensors, state.step).map_err(|e| TrainError::file(&moments, e))?;
    Ok(state)
}
