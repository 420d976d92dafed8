//! [`Decoder`]: a trainable decoder-only transformer on candle, written
//! with differentiable ops only — candle's fused softmax, RMSNorm and RoPE
//! kernels have no backward pass and would stop gradients silently, so
//! softmax, RMSNorm and the rotary embedding are composed here from
//! elementary ops. The same code serves the trainer's forward/backward
//! (every weight a [`Var`]) and its generation with a KV cache (the same
//! weights, detached: see [`Decoder::detached`]).
//!
//! Layout and names follow Hugging Face, so the weights saved by
//! [`Decoder::save`] load in mistral.rs (and transformers) unchanged.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};

use super::TrainError;
pub use super::kv_cache::KvCache;
use super::kv_cache::{self, LayerKv};
use super::lora::LoraSettings;
use super::model_config::{DecoderConfig, DecoderFamily};

/// Additive mask value for positions a query may not see (finite, so a
/// fully masked padding row gives a uniform distribution instead of NaN).
const MASKED: f64 = -1e9;

/// A linear layer `y = x·Wᵀ + b`, with an optional low-rank adapter adding
/// `scale · (x·Aᵀ)·Bᵀ` (LoRA; `W` is then frozen).
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<(Tensor, Tensor, f64)>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = linear(x, &self.weight, self.bias.as_ref())?;
        if let Some((a, b, scale)) = &self.lora {
            y = (y + (linear(&linear(x, a, None)?, b, None)? * *scale)?)?;
        }
        Ok(y)
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

struct Layer {
    input_norm: Tensor,
    attention: Attention,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// What every layer of one forward pass shares (see [`Decoder::pass`]).
pub(super) struct Pass {
    rotary: (Tensor, Tensor),
    mask: Tensor,
}

/// A decoder-only language model (see the module docs).
pub struct Decoder {
    /// Its shape.
    pub config: DecoderConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Option<Tensor>,
    /// The Hugging Face weights by name (trainable views, or frozen ones under LoRA).
    pub(super) weights: Vec<(String, Tensor)>,
    /// The trainable weights by name (empty for a detached copy).
    pub(super) vars: Vec<(String, Var)>,
    pub(super) lora: Option<LoraSettings>,
    pub(super) dtype: DType,
    /// Weights the decoder does not use but its directory needs (a vision
    /// tower), kept as loaded and written back unchanged by [`Decoder::save`].
    pub(super) frozen: Vec<(String, Tensor)>,
}

/// `x·Wᵀ (+ b)` for `x` of any rank. The product is taken on a 2-D view
/// (`[N, in] × [in, out]`): candle multiplies a transposed 2-D weight in
/// place, while a batched (broadcast) product copied the whole transposed
/// weight on every call — most of the time of a decode step.
fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let (input, output) = (weight.dim(1)?, weight.dim(0)?);
    let rows = x.elem_count() / input.max(1);
    let y = x.reshape((rows, input))?.matmul(&weight.t()?)?;
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = output;
    }
    let y = y.reshape(out_dims)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// RMSNorm from elementary ops (candle's fused kernel has no backward).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(variance + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Softmax over the last dimension from elementary ops. The shift by the
/// row maximum is detached: it cancels in the result, so its gradient is 0.
pub fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let e = shifted.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-sum-exp over the last dimension (kept), differentiable.
pub fn logsumexp_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    x.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()?.broadcast_add(&max)
}

fn rotate_half(x: &Tensor) -> candle_core::Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let first = x.narrow(D::Minus1, 0, half)?;
    let second = x.narrow(D::Minus1, half, half)?;
    Tensor::cat(&[&second.neg()?, &first], D::Minus1)
}

impl Decoder {
    /// Loads `dir` (config.json + *.safetensors) with every weight trainable,
    /// in `dtype` (F32 for training; F64 for numerical checks), on the CPU.
    pub fn load(dir: &Path, dtype: DType) -> Result<Self, TrainError> {
        Self::load_on(dir, dtype, &Device::Cpu)
    }

    /// [`Decoder::load`] onto `device`: the decoder's weights and every
    /// tensor it makes live there (a vision tower's weights, only written
    /// back, stay on the CPU).
    pub fn load_on(dir: &Path, dtype: DType, device: &Device) -> Result<Self, TrainError> {
        let config = DecoderConfig::load(dir)?;
        let tensors = load_safetensors(dir)?;
        Self::from_tensors(config, tensors, dtype, device, &dir.display().to_string())
    }

    /// Builds the model from named tensors (Hugging Face names); every weight
    /// the config calls for must be there with its shape.
    pub fn from_tensors(
        config: DecoderConfig,
        mut tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
        source: &str,
    ) -> Result<Self, TrainError> {
        let mut vars = Vec::new();
        let mut problems = Vec::new();
        for (name, shape) in config.weight_shapes() {
            match tensors.remove(&name) {
                Some(t) if t.dims() == shape.as_slice() => {
                    let var = t
                        .to_dtype(dtype)
                        .and_then(|t| t.to_device(device))
                        .and_then(|t| Var::from_tensor(&t))
                        .map_err(TrainError::candle)?;
                    vars.push((name, var));
                }
                Some(t) => problems.push(format!("`{name}` has shape {:?}, expected {shape:?}", t.dims())),
                None => problems.push(format!("`{name}` is missing")),
            }
        }
        let mut frozen: Vec<(String, Tensor)> = match config.vision_prefix {
            Some(prefix) => tensors.into_iter().filter(|(name, _)| name.starts_with(prefix)).collect(),
            None => Vec::new(),
        };
        if let Some(prefix) = config.vision_prefix
            && frozen.is_empty()
        {
            problems.push(format!("no vision tower weights (`{prefix}*`)"));
        }
        if !problems.is_empty() {
            return Err(TrainError::Model(format!("{source}: {}", problems.join("; "))));
        }
        frozen.sort_by(|a, b| a.0.cmp(&b.0));
        let weights: Vec<(String, Tensor)> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        let lookup: HashMap<&str, Tensor> = weights.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let mut model = Self::assemble(config, &lookup, None, dtype);
        model.weights = weights;
        model.vars = vars;
        model.frozen = frozen;
        Ok(model)
    }

    pub(super) fn assemble(
        config: DecoderConfig,
        w: &HashMap<&str, Tensor>,
        lora_scale: Option<f64>,
        dtype: DType,
    ) -> Self {
        let get = |name: &str| w[name].clone();
        let linear = |prefix: String, bias: bool| Linear {
            weight: get(&format!("{prefix}.weight")),
            bias: (bias && config.family == DecoderFamily::Qwen2).then(|| get(&format!("{prefix}.bias"))),
            lora: match (
                w.get(format!("{prefix}.lora_A.weight").as_str()),
                w.get(format!("{prefix}.lora_B.weight").as_str()),
            ) {
                (Some(a), Some(b)) => Some((a.clone(), b.clone(), lora_scale.unwrap_or(1.0))),
                _ => None,
            },
        };
        let layers = (0..config.layers)
            .map(|i| {
                let p = |name: &str| format!("model.layers.{i}.{name}");
                Layer {
                    input_norm: get(&p("input_layernorm.weight")),
                    attention: Attention {
                        q: linear(p("self_attn.q_proj"), true),
                        k: linear(p("self_attn.k_proj"), true),
                        v: linear(p("self_attn.v_proj"), true),
                        o: linear(p("self_attn.o_proj"), false),
                    },
                    post_norm: get(&p("post_attention_layernorm.weight")),
                    gate: linear(p("mlp.gate_proj"), false),
                    up: linear(p("mlp.up_proj"), false),
                    down: linear(p("mlp.down_proj"), false),
                }
            })
            .collect();
        let lm_head = (!config.tied_embeddings).then(|| get("lm_head.weight"));
        Self {
            embed: get("model.embed_tokens.weight"),
            norm: get("model.norm.weight"),
            layers,
            lm_head,
            config,
            weights: Vec::new(),
            vars: Vec::new(),
            lora: None,
            dtype,
            frozen: Vec::new(),
        }
    }

    /// The same weights without gradient tracking (they share storage, so
    /// an optimizer step on the trainable model is seen here too): the
    /// generation path, which builds no autograd graph.
    pub fn detached(&self) -> Decoder {
        let mut lookup: HashMap<&str, Tensor> = self.weights.iter().map(|(n, t)| (n.as_str(), t.detach())).collect();
        for (name, var) in &self.vars {
            lookup.insert(name.as_str(), var.as_tensor().detach());
        }
        let scale = self.lora.as_ref().map(|l| l.alpha / l.rank as f64);
        let mut model = Self::assemble(self.config.clone(), &lookup, scale, self.dtype);
        model.weights = self.weights.iter().map(|(n, t)| (n.clone(), t.detach())).collect();
        model.lora = self.lora.clone();
        model.frozen = self.frozen.clone();
        model
    }

    /// The trainable weights by Hugging Face name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Element type of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Where the weights live (and every tensor the decoder makes).
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Parameters in the model.
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Writes every weight as f32 with its Hugging Face name to `path`,
    /// adapters merged (`W + α/r · B·A`), and a vision tower's weights as
    /// they were loaded: a model directory's weights.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let trainable: HashMap<&str, Tensor> =
            self.vars.iter().map(|(n, v)| (n.as_str(), v.as_detached_tensor())).collect();
        let mut tensors = HashMap::new();
        for (name, weight) in &self.weights {
            let mut weight = weight.detach();
            if let (Some(lora), Some(prefix)) = (&self.lora, name.strip_suffix(".weight"))
                && let (Some(a), Some(b)) = (
                    trainable.get(format!("{prefix}.lora_A.weight").as_str()),
                    trainable.get(format!("{prefix}.lora_B.weight").as_str()),
                )
            {
                weight = (weight + (b.matmul(a)? * (lora.alpha / lora.rank as f64))?)?;
            }
            tensors.insert(name.clone(), weight.to_dtype(DType::F32)?);
        }
        for (name, weight) in &self.frozen {
            tensors.insert(name.clone(), weight.clone());
        }
        candle_core::safetensors::save(&tensors, path).map_err(|e| TrainError::file(path, e))
    }

    /// Writes the trainable weights only (all weights in full fine-tuning,
    /// the adapters under LoRA), by name: a checkpoint's weights.
    pub fn save_trainable(&self, path: &Path) -> Result<(), TrainError> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_detached_tensor().to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<_>>()?;
        candle_core::safetensors::save(&tensors, path).map_err(|e| TrainError::file(path, e))
    }

    /// Cosine and sine tables for `positions` (shape `[L, head_dim]`).
    fn rotary(&self, start: usize, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let dim = self.config.head_dim;
        let inv: Vec<f64> =
            (0..dim / 2).map(|i| 1.0 / self.config.rope_theta.powf(2.0 * i as f64 / dim as f64)).collect();
        let mut angles = Vec::with_capacity(len * dim);
        for p in start..start + len {
            let row: Vec<f64> = inv.iter().map(|f| p as f64 * f).collect();
            angles.extend_from_slice(&row);
            angles.extend_from_slice(&row);
        }
        let angles = Tensor::from_vec(angles, (len, dim), self.device())?;
        Ok((angles.cos()?.to_dtype(self.dtype)?, angles.sin()?.to_dtype(self.dtype)?))
    }

    /// Additive mask `[B or 1, 1, 1, Lq, T]`: causal (query `i` at absolute
    /// position `offset + i` sees keys `≤` it), plus padding keys (`key_valid`
    /// `[B, T]`, 1 for a real token) masked.
    fn mask(&self, lq: usize, t: usize, offset: usize, key_valid: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let causal: Vec<f64> =
            (0..lq).flat_map(|i| (0..t).map(move |j| if j <= offset + i { 0.0 } else { MASKED })).collect();
        let causal = Tensor::from_vec(causal, (1, 1, 1, lq, t), self.device())?.to_dtype(self.dtype)?;
        match key_valid {
            None => Ok(causal),
            Some(valid) => {
                let b = valid.dim(0)?;
                let padding = ((valid.to_dtype(self.dtype)? - 1.0)? * -MASKED)?.reshape((b, 1, 1, 1, t))?;
                causal.broadcast_add(&padding)
            }
        }
    }

    fn attention(
        &self,
        a: &Attention,
        x: &Tensor,
        rotary: &(Tensor, Tensor),
        mask: &Tensor,
        cache: Option<&mut Option<LayerKv>>,
    ) -> candle_core::Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let (hq, hkv, d) = (self.config.heads, self.config.kv_heads, self.config.head_dim);
        let groups = hq / hkv;
        let q = a.q.forward(x)?.reshape((b, l, hq, d))?.transpose(1, 2)?;
        let k = a.k.forward(x)?.reshape((b, l, hkv, d))?.transpose(1, 2)?;
        let v = a.v.forward(x)?.reshape((b, l, hkv, d))?.transpose(1, 2)?;
        let (cos, sin) = (rotary.0.reshape((1, 1, l, d))?, rotary.1.reshape((1, 1, l, d))?);
        let q = (q.broadcast_mul(&cos)? + rotate_half(&q)?.broadcast_mul(&sin)?)?;
        let k = (k.broadcast_mul(&cos)? + rotate_half(&k)?.broadcast_mul(&sin)?)?;
        let (k_t, v) = match cache {
            Some(slot) => kv_cache::append(slot, k, v)?,
            None => (k.t()?.contiguous()?, v.contiguous()?),
        };
        let t = v.dim(2)?;
        // Grouped-query attention by grouping the queries (no repeated K/V):
        // query head `j·groups + g` reads key/value head `j`.
        let q = q.contiguous()?.reshape((b, hkv, groups * l, d))?;
        let scores = (q.matmul(&k_t)? / (d as f64).sqrt())?;
        let scores = scores.reshape((b, hkv, groups, l, t))?.broadcast_add(mask)?;
        let weights = softmax_last(&scores)?.reshape((b, hkv, groups * l, t))?;
        let out = weights.matmul(&v)?.reshape((b, hq, l, d))?;
        let out = out.transpose(1, 2)?.reshape((b, l, hq * d))?;
        a.o.forward(&out)
    }

    pub(super) fn run_layers(
        &self,
        ids: &Tensor,
        offset: usize,
        key_valid: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let mut x = self.embed_ids(ids)?;
        let pass = self.pass(ids.dim(1)?, offset, key_valid)?;
        if let Some(cache) = cache.as_deref_mut() {
            cache.ensure_layers(self.layers.len());
        }
        for i in 0..self.layers.len() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = self.layer_forward(i, &x, &pass, slot)?;
        }
        self.final_norm(&x)
    }

    /// Token embeddings `[B, L, hidden]` of `ids` `[B, L]`.
    pub(super) fn embed_ids(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l) = ids.dims2()?;
        self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, l, self.config.hidden))
    }

    /// What every layer of a pass over `len` positions after `offset`
    /// cached ones shares: rotary tables and the mask.
    pub(super) fn pass(&self, len: usize, offset: usize, key_valid: Option<&Tensor>) -> candle_core::Result<Pass> {
        Ok(Pass { rotary: self.rotary(offset, len)?, mask: self.mask(len, offset + len, offset, key_valid)? })
    }

    /// Decoder layer `index` on `x` `[B, L, hidden]` (pre-norm attention and
    /// MLP, each with its residual), extending `slot` when given.
    pub(super) fn layer_forward(
        &self,
        index: usize,
        x: &Tensor,
        pass: &Pass,
        slot: Option<&mut Option<LayerKv>>,
    ) -> candle_core::Result<Tensor> {
        let layer = &self.layers[index];
        let h = rms_norm(x, &layer.input_norm, self.config.rms_eps)?;
        let x = (x + self.attention(&layer.attention, &h, &pass.rotary, &pass.mask, slot)?)?;
        let h = rms_norm(&x, &layer.post_norm, self.config.rms_eps)?;
        let mlp = layer.down.forward(&(layer.gate.forward(&h)?.silu()? * layer.up.forward(&h)?)?)?;
        x + mlp
    }

    /// The final RMSNorm, applied to the last layer's output.
    pub(super) fn final_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        rms_norm(x, &self.norm, self.config.rms_eps)
    }

    /// Final hidden states `[B, L, hidden]` of right-padded sequences `ids`
    /// `[B, L]` (u32); `valid` `[B, L]` is 1 at real tokens, 0 at padding.
    pub fn hidden_states(&self, ids: &Tensor, valid: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.run_layers(ids, 0, valid, None)
    }

    /// Runs `ids` `[B, L]` after the positions already in `cache` (which it
    /// extends) and returns the last position's logits `[B, vocab]`.
    pub fn step(&self, ids: &Tensor, cache: &mut KvCache) -> candle_core::Result<Tensor> {
        let offset = cache.len();
        let hidden = self.run_layers(ids, offset, None, Some(cache))?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?.squeeze(1)?;
        self.logits(&last)
    }

    /// Logits `[N, vocab]` of hidden states `[N, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        linear(hidden, self.lm_head.as_ref().unwrap_or(&self.embed), None)
    }

    /// Log-probabilities (natural log) of `targets` at `positions`: entry
    /// `n` is `log p(targets[n] | tokens ≤ p)` where `p = positions[n]` is a
    /// flat index `b·L + t` into `hidden` `[B, L, hidden]` (the position
    /// *before* the target). Logits are computed only at those positions —
    /// never the whole sequence. The distribution is the one rollouts sample
    /// from: softmax of logits / `temperature` (1 for SFT targets), as
    /// TRL takes it. Also returns each position's entropy (detached, for logging).
    pub fn token_logprobs(
        &self,
        hidden: &Tensor,
        positions: &[u32],
        targets: &[u32],
        temperature: f64,
    ) -> candle_core::Result<(Tensor, Vec<f32>)> {
        let (b, l, h) = hidden.dims3()?;
        let index = Tensor::new(positions, hidden.device())?;
        let rows = hidden.reshape((b * l, h))?.index_select(&index, 0)?;
        let mut logits = self.logits(&rows)?;
        if temperature != 1.0 {
            logits = (logits / temperature)?;
        }
        let lse = logsumexp_last(&logits)?;
        let chosen = logits.gather(&Tensor::new(targets, hidden.device())?.unsqueeze(1)?, 1)?;
        let logprobs = (chosen - &lse)?.squeeze(1)?;
        let entropy = {
            let logits = logits.detach();
            let p = softmax_last(&logits)?;
            (lse.detach().squeeze(1)? - (p * &logits)?.sum(1)?)?.to_dtype(DType::F32)?.to_vec1::<f32>()?
        };
        Ok((logprobs, entropy))
    }
}

/// Every tensor of the `*.safetensors` files in `dir`.
pub fn load_safetensors(dir: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TrainError::file(dir, "no .safetensors file"));
    }
    let mut tensors = HashMap::new();
    for file in files {
        tensors.extend(candle_core::safetensors::load(&file, &Device::Cpu).map_err(|e| TrainError::file(&file, e))?);
    }
    Ok(tensors)
}
