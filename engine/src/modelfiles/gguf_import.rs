//! `enf model import-gguf FILE DIR`: turns a llama-architecture GGUF file
//! (e.g. SmolLM2-135M-Instruct) into a Hugging Face model directory —
//! `config.json`, `tokenizer.json` (byte-level BPE rebuilt from the GGUF
//! vocabulary and merges), `tokenizer_config.json` (with the GGUF's chat
//! template) and `model.safetensors` (dequantized to f32, HF tensor names).
//!
//! Why: mistral.rs 0.8.1 answers nonsense from this GGUF on CPU, while the
//! same weights are right through its plain safetensors path (see
//! `docs/inference.md`); the trainer needs safetensors anyway.
//!
//! llama.cpp stores Q and K projections with each head's rows interleaved for
//! its rotary layout; the import undoes that permutation.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use serde_json::json;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::{ModelFileError, write_json};

/// What an import produced.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// Tensors written.
    pub tensors: usize,
    /// Parameters written.
    pub parameters: usize,
    /// Vocabulary size.
    pub vocab: usize,
}

struct Gguf<'a> {
    path: &'a Path,
    content: Content,
}

impl Gguf<'_> {
    fn value(&self, key: &str) -> Result<&Value, ModelFileError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| ModelFileError::invalid(self.path, format!("no `{key}` in the GGUF metadata")))
    }

    fn u32(&self, key: &str) -> Result<u32, ModelFileError> {
        self.value(key)?.to_u32().map_err(|e| ModelFileError::invalid(self.path, format!("`{key}`: {e}")))
    }

    fn f32_or(&self, key: &str, default: f32) -> Result<f32, ModelFileError> {
        match self.content.metadata.get(key) {
            None => Ok(default),
            Some(v) => v.to_f32().map_err(|e| ModelFileError::invalid(self.path, format!("`{key}`: {e}"))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ModelFileError> {
        let values =
            self.value(key)?.to_vec().map_err(|e| ModelFileError::invalid(self.path, format!("`{key}`: {e}")))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| ModelFileError::invalid(self.path, format!("`{key}`: {e}"))))
            .collect()
    }
}

/// Undoes llama.cpp's Q/K row permutation: rows of each head were stored as
/// (pairs, 2) → (2, pairs); this maps them back.
fn unpermute(weight: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = weight.dims2()?;
    let head_dim = rows / heads;
    weight.reshape((heads, head_dim / 2, 2, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))
}

fn hf_name(gguf: &str) -> Option<String> {
    let direct = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = direct {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (part, kind) = tail.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Imports `gguf_path` into the Hugging Face directory `dir`.
pub fn import_gguf(gguf_path: &Path, dir: &Path) -> Result<ImportSummary, ModelFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelFileError::Io { path, source }
    };
    let mut reader = BufReader::new(File::open(gguf_path).map_err(io(gguf_path))?);
    let content = Content::read(&mut reader)
        .map_err(|e| ModelFileError::invalid(gguf_path, format!("not a readable GGUF file: {e}")))?;
    let gguf = Gguf { path: gguf_path, content };
    let arch =
        gguf.value("general.architecture")?.to_string().map_err(|e| ModelFileError::invalid(gguf_path, e))?.clone();
    if arch != "llama" {
        return Err(ModelFileError::invalid(
            gguf_path,
            format!("architecture `{arch}` is not supported (only `llama`)"),
        ));
    }
    let heads = gguf.u32("llama.attention.head_count")? as usize;
    let kv_heads = gguf.u32("llama.attention.head_count_kv").unwrap_or(heads as u32) as usize;
    let hidden = gguf.u32("llama.embedding_length")? as usize;
    let layers = gguf.u32("llama.block_count")? as usize;

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut parameters = 0usize;
    let names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
    for name in names {
        let Some(hf) = hf_name(&name) else {
            tracing::warn!(tensor = %name, "GGUF tensor has no Hugging Face counterpart; skipped");
            continue;
        };
        let invalid = |e: candle_core::Error| ModelFileError::invalid(gguf_path, format!("tensor `{name}`: {e}"));
        let qtensor = gguf.content.tensor(&mut reader, &name, &Device::Cpu).map_err(invalid)?;
        let mut tensor = qtensor.dequantize(&Device::Cpu).map_err(invalid)?;
        if name.ends_with("attn_q.weight") {
            tensor = unpermute(&tensor, heads).map_err(invalid)?;
        } else if name.ends_with("attn_k.weight") {
            tensor = unpermute(&tensor, kv_heads).map_err(invalid)?;
        }
        parameters += tensor.elem_count();
        tensors.insert(hf, tensor);
    }
    let vocab = tensors
        .get("model.embed_tokens.weight")
        .map(|t| t.dims()[0])
        .ok_or_else(|| ModelFileError::invalid(gguf_path, "no token_embd.weight tensor"))?;
    let tied = !tensors.contains_key("lm_head.weight");

    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tokens = gguf.strings("tokenizer.ggml.tokens")?;
    let bos = gguf.u32("tokenizer.ggml.bos_token_id").ok();
    let eos = gguf.u32("tokenizer.ggml.eos_token_id")?;
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": gguf.u32("llama.feed_forward_length")?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": gguf.u32("llama.context_length").unwrap_or(2048),
        "rms_norm_eps": gguf.f32_or("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
        "rope_theta": gguf.f32_or("llama.rope.freq_base", 10000.0)?,
        "hidden_act": "silu",
        "tie_word_embeddings": tied,
        "vocab_size": vocab,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    });
    write_json(dir, "config.json", &config)?;
    write_json(dir, "generation_config.json", &json!({ "bos_token_id": bos, "eos_token_id": eos }))?;
    write_tokenizer(&gguf, dir, &tokens)?;
    let chat_template = gguf.value("tokenizer.chat_template").ok().and_then(|v| v.to_string().ok()).cloned();
    let token = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).cloned();
    write_json(
        dir,
        "tokenizer_config.json",
        &json!({
            "add_bos_token": false,
            "bos_token": token(bos),
            "eos_token": token(Some(eos)),
            "unk_token": token(gguf.u32("tokenizer.ggml.unknown_token_id").ok()),
            "pad_token": token(gguf.u32("tokenizer.ggml.padding_token_id").ok()),
            "chat_template": chat_template,
            "model_max_length": gguf.u32("llama.context_length").unwrap_or(2048),
        }),
    )?;
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).map_err(|e| ModelFileError::invalid(&path, e))?;
    Ok(ImportSummary { tensors: tensors.len(), parameters, vocab })
}

/// Rebuilds a byte-level BPE `tokenizer.json` from the GGUF vocabulary.
fn write_tokenizer(gguf: &Gguf<'_>, dir: &Path, tokens: &[String]) -> Result<(), ModelFileError> {
    let path = dir.join("tokenizer.json");
    let model = gguf.value("tokenizer.ggml.model")?.to_string().map_err(|e| ModelFileError::invalid(gguf.path, e))?;
    if model != "gpt2" {
        return Err(ModelFileError::invalid(
            gguf.path,
            format!("tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)"),
        ));
    }
    let merges: Vec<(String, String)> = gguf
        .strings("tokenizer.ggml.merges")?
        .iter()
        .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| ModelFileError::invalid(&path, e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // SmolLM-style pre-tokenization: each digit alone, then GPT-2 byte-level splitting.
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::default().add_prefix_space(false)),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    // Control tokens (GGUF token type 3) are special: never split, skipped on decode.
    let types = gguf.value("tokenizer.ggml.token_type").ok().and_then(|v| v.to_vec().ok());
    let specials: Vec<AddedToken> = types
        .map(|types| {
            types
                .iter()
                .enumerate()
                .filter(|(_, t)| t.to_i32().ok() == Some(3))
                .filter_map(|(i, _)| tokens.get(i).map(|t| AddedToken::from(t.clone(), true)))
                .collect()
        })
        .unwrap_or_default();
    tokenizer.add_special_tokens(&specials);
    tokenizer.save(&path, false).map_err(|e| ModelFileError::invalid(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_llama_tensor_names() {
        assert_eq!(hf_name("blk.3.attn_q.weight").as_deref(), Some("model.layers.3.self_attn.q_proj.weight"));
        assert_eq!(hf_name("blk.0.ffn_down.weight").as_deref(), Some("model.layers.0.mlp.down_proj.weight"));
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_the_llama_cpp_permutation() {
        // llama.cpp: reshape(heads, 2, d/2, cols).swap(1, 2); rows 0..8, 2 heads, d = 4.
        let original = Tensor::arange(0f32, 16., &Device::Cpu).unwrap().reshape((8, 2)).unwrap();
        let permuted = original
            .reshape((2, 2, 2, 2))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((8, 2))
            .unwrap();
        let restored = unpermute(&permuted, 2).unwrap();
        assert_eq!(restored.to_vec2::<f32>().unwrap(), original.to_vec2::<f32>().unwrap());
    }
}
