//! `enf model tiny-text DIR --arch llama|qwen2`: a tiny random-weight text
//! model directory (config, byte-level tokenizer, ChatML template,
//! safetensors with Hugging Face names) that both mistral.rs and the trainer
//! load — so tests and `examples/train/tiny.toml` run the whole
//! train → serve loop in seconds without a model hub.

use std::path::Path;

use serde_json::json;

use super::tiny_vl::CHAT_TEMPLATE;
use super::tokenizer::{special_id, vocab_size, write_byte_tokenizer, write_tokenizer_config};
use super::{ModelFileError, RandomWeights, write_json};

/// Which text architecture to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyTextArch {
    /// Llama (no attention biases; SmolLM2's architecture), tied embeddings.
    Llama,
    /// Qwen2 (q/k/v biases), separate LM head.
    Qwen2,
}

impl std::str::FromStr for TinyTextArch {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            other => Err(format!("unknown architecture `{other}` (expected llama or qwen2)")),
        }
    }
}

/// Hidden size of the tiny text models.
pub const HIDDEN: usize = 32;
const INTERMEDIATE: usize = 64;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;

/// Writes a tiny random text model of `arch` into `dir` (created if needed).
pub fn write_tiny_text(dir: &Path, arch: TinyTextArch, seed: u64) -> Result<(), ModelFileError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelFileError::Io { path: dir.to_path_buf(), source })?;
    write_byte_tokenizer(dir)?;
    let (model_type, architecture, tied) = match arch {
        TinyTextArch::Llama => ("llama", "LlamaForCausalLM", true),
        TinyTextArch::Qwen2 => ("qwen2", "Qwen2ForCausalLM", false),
    };
    let config = json!({
        "architectures": [architecture],
        "model_type": model_type,
        "bos_token_id": special_id("<|endoftext|>"),
        "eos_token_id": special_id("<|im_end|>"),
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": 4096,
        "max_window_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "use_sliding_window": false,
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
        "vocab_size": vocab_size(),
    });
    write_json(dir, "config.json", &config)?;
    write_json(
        dir,
        "generation_config.json",
        &json!({ "bos_token_id": special_id("<|endoftext|>"), "eos_token_id": [special_id("<|im_end|>")] }),
    )?;
    write_tokenizer_config(dir, CHAT_TEMPLATE, 4096, None)?;
    let path = dir.join("model.safetensors");
    let tensors = weights(arch, seed).map_err(|e| ModelFileError::invalid(&path, e))?;
    candle_core::safetensors::save(&tensors, &path).map_err(|e| ModelFileError::invalid(&path, e))
}

fn weights(
    arch: TinyTextArch,
    seed: u64,
) -> candle_core::Result<std::collections::HashMap<String, candle_core::Tensor>> {
    let mut w = RandomWeights::new(seed);
    let (h, i, v) = (HIDDEN, INTERMEDIATE, vocab_size());
    let kv = KV_HEADS * (h / HEADS);
    w.random("model.embed_tokens.weight", &[v, h])?;
    for layer in 0..LAYERS {
        let p = format!("model.layers.{layer}.");
        for (name, dims) in [
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            w.random(&format!("{p}{name}"), &dims)?;
        }
        if arch == TinyTextArch::Qwen2 {
            w.random(&format!("{p}self_attn.q_proj.bias"), &[h])?;
            w.random(&format!("{p}self_attn.k_proj.bias"), &[kv])?;
            w.random(&format!("{p}self_attn.v_proj.bias"), &[kv])?;
        }
        w.ones(&format!("{p}input_layernorm.weight"), h)?;
        w.ones(&format!("{p}post_attention_layernorm.weight"), h)?;
    }
    w.ones("model.norm.weight", h)?;
    if arch == TinyTextArch::Qwen2 {
        w.random("lm_head.weight", &[v, h])?;
    }
    Ok(w.tensors)
}
