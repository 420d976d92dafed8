//! [`DecoderConfig`]: the shape of a decoder-only text model, read from a
//! Hugging Face `config.json` (Llama / SmolLM2 and Qwen2 families, and the
//! language model of Qwen2.5-VL, whose vision tower is kept frozen).

use std::path::Path;

use serde::Deserialize;

use super::TrainError;

/// Which family the weights follow; they differ in q/k/v biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderFamily {
    /// Llama, SmolLM2, Mistral: no attention biases.
    Llama,
    /// Qwen2 / Qwen2.5: biases on q, k and v.
    Qwen2,
}

/// The shape of a decoder-only model.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Weight layout.
    pub family: DecoderFamily,
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP size.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// The LM head is the embedding matrix.
    pub tied_embeddings: bool,
    /// Tokens that end a completion.
    pub eos_tokens: Vec<u32>,
    /// Prefix of the weights of a vision tower the directory also holds
    /// (Qwen2.5-VL: `visual.`): loaded frozen, unused by text prompts, and
    /// written back unchanged so that the export stays a vision model.
    pub vision_prefix: Option<&'static str>,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_theta() -> f64 {
    10_000.0
}

fn ids(value: Option<&serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).into_iter().collect(),
        Some(serde_json::Value::Array(all)) => {
            all.iter().filter_map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok())).collect()
        }
        _ => Vec::new(),
    }
}

impl DecoderConfig {
    /// Reads `dir/config.json` (and the end-of-sequence ids of
    /// `dir/generation_config.json`, which serving also stops at).
    pub fn load(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
        let raw: RawConfig = serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))?;
        // Qwen2.5-VL's language model is Qwen2 with multimodal RoPE: on a
        // prompt without images its three position axes (time, height, width)
        // are the same token index, which makes it the ordinary RoPE.
        let (family, vision_prefix) = match raw.model_type.as_str() {
            "llama" | "mistral" => (DecoderFamily::Llama, None),
            "qwen2" => (DecoderFamily::Qwen2, None),
            "qwen2_5_vl" => (DecoderFamily::Qwen2, Some("visual.")),
            other => {
                return Err(TrainError::file(
                    &path,
                    format!("model_type `{other}` cannot be trained yet (llama, mistral, qwen2 and qwen2_5_vl can)"),
                ));
            }
        };
        if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(TrainError::file(&path, format!("hidden_act `{act}` is not supported (silu is)")));
        }
        let kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.num_attention_heads % kv_heads != 0 {
            return Err(TrainError::file(&path, "num_attention_heads is not a multiple of num_key_value_heads"));
        }
        let mut eos_tokens = ids(raw.eos_token_id.as_ref());
        let generation = dir.join("generation_config.json");
        if let Ok(text) = std::fs::read_to_string(&generation)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        {
            for id in ids(value.get("eos_token_id")) {
                if !eos_tokens.contains(&id) {
                    eos_tokens.push(id);
                }
            }
        }
        Ok(Self {
            family,
            vocab: raw.vocab_size,
            hidden: raw.hidden_size,
            intermediate: raw.intermediate_size,
            layers: raw.num_hidden_layers,
            heads: raw.num_attention_heads,
            kv_heads,
            head_dim: raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads),
            rms_eps: raw.rms_norm_eps,
            rope_theta: raw.rope_theta,
            tied_embeddings: raw.tie_word_embeddings,
            eos_tokens,
            vision_prefix,
        })
    }

    /// Hugging Face names and shapes of every weight the model has.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, q, kv) = (self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let mut shapes = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab, h])];
        for layer in 0..self.layers {
            let p = format!("model.layers.{layer}.");
            let mut add = |name: &str, dims: Vec<usize>| shapes.push((format!("{p}{name}"), dims));
            add("input_layernorm.weight", vec![h]);
            add("self_attn.q_proj.weight", vec![q, h]);
            add("self_attn.k_proj.weight", vec![kv, h]);
            add("self_attn.v_proj.weight", vec![kv, h]);
            if self.family == DecoderFamily::Qwen2 {
                add("self_attn.q_proj.bias", vec![q]);
                add("self_attn.k_proj.bias", vec![kv]);
                add("self_attn.v_proj.bias", vec![kv]);
            }
            add("self_attn.o_proj.weight", vec![h, q]);
            add("post_attention_layernorm.weight", vec![h]);
            add("mlp.gate_proj.weight", vec![self.intermediate, h]);
            add("mlp.up_proj.weight", vec![self.intermediate, h]);
            add("mlp.down_proj.weight", vec![h, self.intermediate]);
        }
        shapes.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tied_embeddings {
            shapes.push(("lm_head.weight".to_string(), vec![self.vocab, h]));
        }
        shapes
    }
}
