//! What a training run leaves for serving, under its output directory:
//! `model/` — a Hugging Face directory (config, tokenizer files,
//! `model.safetensors` with Hugging Face names) that mistral.rs loads
//! unchanged; `model.toml` — a model manifest for it (the trained node's
//! manifest with its name and weights changed); `graph.toml` — the training
//! graph with the trained node pointed at that manifest and every other node
//! left on its own model, so `enf run --graph OUT/graph.toml` and `enf eval`
//! measure the trained agent in its pipeline; and, for LoRA, `adapter/` —
//! the adapters alone in Hugging Face PEFT's layout (`adapter_config.json`,
//! `adapter_model.safetensors`), for tools that load a base model plus an
//! adapter.

use std::path::{Path, PathBuf};

use super::TrainError;
use super::checkpoint::{write_atomically, write_file_atomically};
use super::decoder::Decoder;

/// Files copied from the base model directory beside the trained weights.
const MODEL_FILES: &[&str] =
    &["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"];

/// Paths of an export.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The model directory.
    pub model_dir: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// The graph serving the trained node.
    pub graph: PathBuf,
    /// The adapters in PEFT's layout (LoRA only).
    pub adapter: Option<PathBuf>,
}

fn absolute(base: &Path, relative: &str) -> String {
    let joined = base.join(relative);
    joined.canonicalize().unwrap_or(joined).display().to_string()
}

/// Writes the export of `model` (trained from `base_dir`) for `node` of
/// `graph`, whose model manifest is `manifest`, into `out`.
pub fn export(
    out: &Path,
    model: &Decoder,
    base_dir: &Path,
    graph: &Path,
    node: &str,
    manifest: &Path,
    suffix: &str,
) -> Result<Exported, TrainError> {
    let model_dir = out.join("model");
    std::fs::create_dir_all(&model_dir).map_err(|e| TrainError::file(&model_dir, e))?;
    for name in MODEL_FILES {
        let from = base_dir.join(name);
        if from.is_file() {
            std::fs::copy(&from, model_dir.join(name)).map_err(|e| TrainError::file(&from, e))?;
        }
    }
    let weights = model_dir.join("model.safetensors");
    // A crash leaves the old weights or the new ones, never a name pointing at unwritten data.
    write_file_atomically(&weights, |tmp| model.save(tmp))?;
    let adapter_dir = out.join("adapter");
    let adapter = model.save_peft_adapter(&adapter_dir, base_dir)?.then_some(adapter_dir);

    let text = std::fs::read_to_string(manifest).map_err(|e| TrainError::file(manifest, e))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| TrainError::file(manifest, e))?;
    let name = table.get("name").and_then(|n| n.as_str()).unwrap_or("model").to_string();
    table.insert("name".into(), toml::Value::String(format!("{name}-{suffix}")));
    let mistralrs = table
        .entry("mistralrs")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| TrainError::file(manifest, "`mistralrs` is not a table"))?;
    let mut source = toml::Table::new();
    source.insert("dir".into(), toml::Value::String("model".into()));
    mistralrs.insert("source".into(), toml::Value::Table(source));
    let manifest_out = out.join("model.toml");
    let body = toml::to_string(&table).map_err(|e| TrainError::file(&manifest_out, e))?;
    write_atomically(
        &manifest_out,
        format!("# Written by `enf train` from {}: the trained weights in model/.\n{body}", manifest.display())
            .as_bytes(),
    )?;

    let graph_text = std::fs::read_to_string(graph).map_err(|e| TrainError::file(graph, e))?;
    let mut g: toml::Table = toml::from_str(&graph_text).map_err(|e| TrainError::file(graph, e))?;
    let graph_dir = graph.parent().unwrap_or(Path::new("."));
    if let Some(models) = g.get_mut("models").and_then(|m| m.as_table_mut()) {
        for (_, spec) in models.iter_mut() {
            if let Some(path) = spec.get("manifest").and_then(|p| p.as_str()).map(str::to_string)
                && let Some(spec) = spec.as_table_mut()
            {
                spec.insert("manifest".into(), toml::Value::String(absolute(graph_dir, &path)));
            }
        }
        let mut trained = toml::Table::new();
        trained.insert("manifest".into(), toml::Value::String("model.toml".into()));
        models.insert("trained".into(), toml::Value::Table(trained));
    }
    let nodes =
        g.get_mut("nodes").and_then(|n| n.as_table_mut()).ok_or_else(|| TrainError::file(graph, "no [nodes]"))?;
    for (name, spec) in nodes.iter_mut() {
        let Some(spec) = spec.as_table_mut() else { continue };
        if let Some(plugin) = spec.get("plugin").and_then(|p| p.as_str()).map(str::to_string) {
            spec.insert("plugin".into(), toml::Value::String(absolute(graph_dir, &plugin)));
        }
        if name == node {
            spec.insert("model".into(), toml::Value::String("trained".into()));
        }
    }
    let graph_out = out.join("graph.toml");
    let body = toml::to_string(&g).map_err(|e| TrainError::file(&graph_out, e))?;
    write_atomically(
        &graph_out,
        format!("# Written by `enf train` from {}: node `{node}` runs the trained model.\n{body}", graph.display())
            .as_bytes(),
    )?;
    Ok(Exported { model_dir, manifest: manifest_out, graph: graph_out, adapter })
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::*;
    use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};
    use crate::train::checkpoint::SYNCED;

    #[test]
    fn the_weights_and_their_directory_are_synced_around_the_rename() {
        let base = tempfile::tempdir().unwrap();
        write_tiny_text(base.path(), TinyTextArch::Qwen2, 1).unwrap();
        let model = Decoder::load(base.path(), DType::F32).unwrap();
        let work = tempfile::tempdir().unwrap();
        let manifest = work.path().join("tiny.toml");
        std::fs::write(&manifest, "name = \"tiny\"\n[mistralrs]\n").unwrap();
        let graph = work.path().join("graph.toml");
        std::fs::write(
            &graph,
            "[models.m]\nmanifest = \"tiny.toml\"\n[nodes.reason]\nplugin = \"reason.wasm\"\nmodel = \"m\"\n",
        )
        .unwrap();
        let out = work.path().join("out");
        SYNCED.with(|s| s.borrow_mut().clear());
        let exported = export(&out, &model, base.path(), &graph, "reason", &manifest, "sft").unwrap();
        let synced = SYNCED.with(|s| s.borrow().clone());
        let at = |path: &Path| synced.iter().position(|p| p == path);
        let file = at(&exported.model_dir.join("model.safetensors.tmp"));
        let dir = at(&exported.model_dir);
        assert!(file.is_some() && dir.is_some() && file < dir, "file then directory: {synced:?}");
        assert!(exported.model_dir.join("model.safetensors").is_file());
        assert!(!exported.model_dir.join("model.safetensors.tmp").exists());
        assert!(at(&out).is_some(), "the manifest's and graph's renames are synced too: {synced:?}");
    }
}
