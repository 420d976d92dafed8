//! Low-rank adapters (LoRA): the base weights frozen, `α/r · B·A` added to
//! the chosen linear layers of every decoder layer, A and B the only
//! trainable weights. Named as PEFT names them
//! (`model.layers.N.self_attn.q_proj.lora_A.weight`); checkpoints hold the
//! adapters, and [`Decoder::save`] merges them into the exported weights.
//! [`Decoder::save_peft_adapter`] also writes them alone in PEFT's layout.
//! The reference policy of the KL term is the same base weights with the
//! adapters off ([`Decoder::adapters_off`]), never a second copy.

use std::collections::HashMap;

use std::path::Path;

use candle_core::{DType, Tensor, Var};

use super::TrainError;
use super::decoder::Decoder;

/// Low-rank adapters: which linear layers get one, their rank and α.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSettings {
    /// Rank r of `B·A`.
    pub rank: usize,
    /// Scale numerator: the adapter adds `α/r · B·A`.
    pub alpha: f64,
    /// Module names (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`).
    pub targets: Vec<String>,
}

/// The modules an adapter can target, with the block they live in.
pub const LORA_MODULES: &[(&str, &str)] = &[
    ("q_proj", "self_attn"),
    ("k_proj", "self_attn"),
    ("v_proj", "self_attn"),
    ("o_proj", "self_attn"),
    ("gate_proj", "mlp"),
    ("up_proj", "mlp"),
    ("down_proj", "mlp"),
];

impl Decoder {
    /// The same model with its weights frozen and low-rank adapters on the
    /// `settings.targets` of every layer as the only trainable weights (A
    /// uniform in ±1/√in from `seed`, B zero — so training starts at the
    /// base model, as PEFT does). Adapters are named like PEFT's,
    /// `….q_proj.lora_A.weight`; [`Decoder::save`] merges them.
    pub fn with_lora(self, settings: &LoraSettings, seed: u64) -> Result<Self, TrainError> {
        use rand::{Rng, SeedableRng};
        if settings.rank == 0 {
            return Err(TrainError::Model("LoRA rank must be at least 1".into()));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let base: Vec<(String, Tensor)> = self.weights.iter().map(|(n, t)| (n.clone(), t.detach())).collect();
        let mut lookup: HashMap<String, Tensor> = base.iter().map(|(n, t)| (n.clone(), t.clone())).collect();
        let mut vars = Vec::new();
        for layer in 0..self.config.layers {
            for target in &settings.targets {
                let block = LORA_MODULES
                    .iter()
                    .find(|(m, _)| m == target)
                    .map(|(_, b)| *b)
                    .ok_or_else(|| TrainError::Model(format!("unknown LoRA target `{target}`")))?;
                let prefix = format!("model.layers.{layer}.{block}.{target}");
                let (out, input) = lookup[&format!("{prefix}.weight")].dims2()?;
                let bound = 1.0 / (input as f64).sqrt();
                let a: Vec<f64> = (0..settings.rank * input).map(|_| rng.random_range(-bound..bound)).collect();
                let a = Tensor::from_vec(a, (settings.rank, input), self.device())?.to_dtype(self.dtype)?;
                let b = Tensor::zeros((out, settings.rank), self.dtype, self.device())?;
                for (name, tensor) in [(format!("{prefix}.lora_A.weight"), a), (format!("{prefix}.lora_B.weight"), b)] {
                    let var = Var::from_tensor(&tensor)?;
                    lookup.insert(name.clone(), var.as_tensor().clone());
                    vars.push((name, var));
                }
            }
        }
        let scale = settings.alpha / settings.rank as f64;
        let lookup: HashMap<&str, Tensor> = lookup.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let mut model = Self::assemble(self.config.clone(), &lookup, Some(scale), self.dtype);
        model.weights = base;
        model.frozen = self.frozen.clone();
        model.vars = vars;
        model.lora = Some(settings.clone());
        Ok(model)
    }

    /// Writes the adapters alone in Hugging Face PEFT's layout into `dir`:
    /// `adapter_config.json` (LoRA, rank, α, target modules, no dropout or
    /// bias) and `adapter_model.safetensors` (f32, keys
    /// `base_model.model.<module>.lora_A.weight`, as PEFT saves them), with
    /// `base_model` recorded as the base model's path. Nothing is written
    /// without adapters.
    pub fn save_peft_adapter(&self, dir: &Path, base_model: &Path) -> Result<bool, TrainError> {
        let Some(lora) = &self.lora else { return Ok(false) };
        std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": lora.rank,
            "lora_alpha": lora.alpha,
            "lora_dropout": 0.0,
            "target_modules": lora.targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "base_model_name_or_path": base_model.display().to_string(),
            "revision": null,
        });
        let config_path = dir.join("adapter_config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|e| TrainError::file(&config_path, e))?;
        super::checkpoint::write_atomically(&config_path, text.as_bytes())?;
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(name, var)| Ok((format!("base_model.model.{name}"), var.as_detached_tensor().to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<_>>()?;
        let weights = dir.join("adapter_model.safetensors");
        super::checkpoint::write_file_atomically(&weights, |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(|e| TrainError::file(tmp, e))
        })?;
        Ok(true)
    }

    /// The base model under the adapters — the same frozen weight tensors
    /// (shared storage, no copy) with every adapter switched off, detached:
    /// LoRA's reference policy for the KL term. `None` without adapters.
    pub fn adapters_off(&self) -> Option<Decoder> {
        self.lora.as_ref()?;
        let lookup: HashMap<&str, Tensor> = self.weights.iter().map(|(n, t)| (n.as_str(), t.detach())).collect();
        let mut model = Self::assemble(self.config.clone(), &lookup, None, self.dtype);
        model.weights = self.weights.iter().map(|(n, t)| (n.clone(), t.detach())).collect();
        model.frozen = self.frozen.clone();
        Some(model)
    }
}
