//! `enf model tiny-vl DIR`: a tiny random-weight Qwen2.5-VL directory
//! (config, byte-level tokenizer, chat template, preprocessor config,
//! safetensors in the original Hugging Face key layout) that mistral.rs
//! loads on CPU in well under a second. Its answers are noise; it exists so
//! tests and benchmarks run the real loading, vision encoder, prefill and
//! decode of the Qwen2.5-VL path without a model hub.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde_json::json;

use super::tokenizer::{special_id, vocab_size, write_byte_tokenizer, write_tokenizer_config};
use super::{ModelFileError, RandomWeights, write_json};

/// Sizes of the tiny model (text hidden 64, 2 layers; vision hidden 32, 2 blocks).
pub struct TinyVlShape {
    /// Text hidden size.
    pub hidden: usize,
    /// Text MLP size.
    pub intermediate: usize,
    /// Text layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Vision hidden size.
    pub vision_hidden: usize,
    /// Vision MLP size.
    pub vision_intermediate: usize,
    /// Vision blocks.
    pub vision_depth: usize,
    /// Vision heads.
    pub vision_heads: usize,
}

impl Default for TinyVlShape {
    fn default() -> Self {
        Self {
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vision_hidden: 32,
            vision_intermediate: 64,
            vision_depth: 2,
            vision_heads: 2,
        }
    }
}

/// Qwen2.5-VL's chat format: ChatML, with `<|vision_start|><|image_pad|><|vision_end|>`
/// in place of each image of a message.
pub const CHAT_TEMPLATE: &str = concat!(
    "{% for message in messages %}",
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}",
    "<|im_start|>{{ message['role'] }}\n",
    "{% if message['content'] is string %}{{ message['content'] }}",
    "{% else %}{% for part in message['content'] %}",
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}<|vision_start|><|image_pad|><|vision_end|>",
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>",
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}",
    "{% endfor %}{% endif %}<|im_end|>\n",
    "{% endfor %}",
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
);

fn weights(shape: &TinyVlShape, seed: u64) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut w = RandomWeights::new(seed);
    let (h, i, v) = (shape.hidden, shape.intermediate, vocab_size());
    let kv = shape.kv_heads * (h / shape.heads);
    w.random("model.embed_tokens.weight", &[v, h])?;
    for layer in 0..shape.layers {
        let p = format!("model.layers.{layer}.");
        for (name, dims) in [
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.q_proj.bias", vec![h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            w.random(&format!("{p}{name}"), &dims)?;
        }
        w.ones(&format!("{p}input_layernorm.weight"), h)?;
        w.ones(&format!("{p}post_attention_layernorm.weight"), h)?;
    }
    w.ones("model.norm.weight", h)?;
    w.random("lm_head.weight", &[v, h])?;
    let (c, vi) = (shape.vision_hidden, shape.vision_intermediate);
    let merged = c * 4;
    w.random("visual.patch_embed.proj.weight", &[c, 3, 2, 14, 14])?;
    for block in 0..shape.vision_depth {
        let p = format!("visual.blocks.{block}.");
        w.ones(&format!("{p}norm1.weight"), c)?;
        w.ones(&format!("{p}norm2.weight"), c)?;
        for (name, dims) in [
            ("attn.qkv.weight", vec![3 * c, c]),
            ("attn.qkv.bias", vec![3 * c]),
            ("attn.proj.weight", vec![c, c]),
            ("attn.proj.bias", vec![c]),
            ("mlp.gate_proj.weight", vec![vi, c]),
            ("mlp.gate_proj.bias", vec![vi]),
            ("mlp.up_proj.weight", vec![vi, c]),
            ("mlp.up_proj.bias", vec![vi]),
            ("mlp.down_proj.weight", vec![c, vi]),
            ("mlp.down_proj.bias", vec![c]),
        ] {
            w.random(&format!("{p}{name}"), &dims)?;
        }
    }
    w.ones("visual.merger.ln_q.weight", c)?;
    w.random("visual.merger.mlp.0.weight", &[merged, merged])?;
    w.random("visual.merger.mlp.0.bias", &[merged])?;
    w.random("visual.merger.mlp.2.weight", &[h, merged])?;
    w.random("visual.merger.mlp.2.bias", &[h])?;
    Ok(w.tensors)
}

/// Writes a tiny random Qwen2.5-VL model into `dir` (created if needed).
pub fn write_tiny_vl(dir: &Path, seed: u64) -> Result<(), ModelFileError> {
    let shape = TinyVlShape::default();
    std::fs::create_dir_all(dir).map_err(|source| ModelFileError::Io { path: dir.to_path_buf(), source })?;
    write_byte_tokenizer(dir)?;
    let config = json!({
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "bos_token_id": special_id("<|endoftext|>"),
        "eos_token_id": special_id("<|im_end|>"),
        "vision_start_token_id": special_id("<|vision_start|>"),
        "vision_end_token_id": special_id("<|vision_end|>"),
        "vision_token_id": special_id("<|vision_pad|>"),
        "image_token_id": special_id("<|image_pad|>"),
        "video_token_id": special_id("<|video_pad|>"),
        "hidden_act": "silu",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": 32768,
        "max_window_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": 32768,
        "use_sliding_window": false,
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
        "vocab_size": vocab_size(),
        "rope_scaling": { "type": "mrope", "rope_type": "default", "mrope_section": [2, 3, 3] },
        "vision_config": {
            "depth": shape.vision_depth,
            "hidden_act": "silu",
            "hidden_size": shape.vision_hidden,
            "intermediate_size": shape.vision_intermediate,
            "num_heads": shape.vision_heads,
            "in_chans": 3,
            "out_hidden_size": shape.hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2
        }
    });
    write_json(dir, "config.json", &config)?;
    write_json(
        dir,
        "generation_config.json",
        &json!({ "bos_token_id": special_id("<|endoftext|>"), "eos_token_id": [special_id("<|im_end|>"), special_id("<|endoftext|>")] }),
    )?;
    write_tokenizer_config(dir, CHAT_TEMPLATE, 32768, Some("Qwen2Tokenizer"))?;
    write_json(
        dir,
        "preprocessor_config.json",
        &json!({
            "min_pixels": 3136,
            "max_pixels": 200704,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_resize": true,
            "do_rescale": true,
            "do_normalize": true,
            "do_convert_rgb": true,
            "rescale_factor": 0.00392156862745098,
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2_5_VLProcessor"
        }),
    )?;
    let path = dir.join("model.safetensors");
    let tensors = weights(&shape, seed).map_err(|e| ModelFileError::invalid(&path, e))?;
    candle_core::safetensors::save(&tensors, &path).map_err(|e| ModelFileError::invalid(&path, e))
}
