//! The forward pass of one rollout group: G completions of one prompt. In
//! each layer the prompt runs once (batch 1), its keys and values are
//! repeated for the G completions, and the completions then run as one
//! right-padded batch after it. The repeat is differentiable (its backward sums the G gradients), so
//! this is exactly the per-sequence forward and backward — without
//! recomputing the prompt G times, which is most of the cost when prompts
//! are long and completions short (the agents' case).

use candle_core::{Device, Tensor};

use super::decoder::{Decoder, Pass};
use super::kv_cache::LayerKv;

/// The token inputs of one group's forward pass.
pub(super) struct GroupInputs {
    /// The prompt `[1, P]`.
    pub prompt: Tensor,
    /// Completion tokens 0..C−1 as inputs `[G, C − 1]` (their states
    /// predict tokens 1..C) and which positions are real `[G, P + C − 1]`;
    /// `None` when the longest completion has one token.
    pub completions: Option<(Tensor, Tensor)>,
    /// Prompt length P.
    pub prompt_len: usize,
    /// Completions G.
    pub group: usize,
}

impl GroupInputs {
    /// The inputs for `completions` of `prompt`.
    pub fn new(prompt: &[u32], completions: &[&[u32]], device: &Device) -> candle_core::Result<Self> {
        let g = completions.len();
        let c = completions.iter().map(|t| t.len()).max().unwrap_or(0);
        if prompt.is_empty() || g == 0 || c == 0 {
            candle_core::bail!("a group needs a prompt and at least one non-empty completion");
        }
        let p = prompt.len();
        let prompt_ids = Tensor::new(prompt, device)?.unsqueeze(0)?;
        if c == 1 {
            return Ok(Self { prompt: prompt_ids, completions: None, prompt_len: p, group: g });
        }
        let inputs = c - 1;
        let mut ids = vec![0u32; g * inputs];
        let mut valid = vec![1u32; g * (p + inputs)];
        for (row, tokens) in completions.iter().enumerate() {
            for k in 0..inputs {
                match tokens.get(k) {
                    Some(&t) if k + 1 < tokens.len() => ids[row * inputs + k] = t,
                    _ => valid[row * (p + inputs) + p + k] = 0,
                }
            }
        }
        let ids = Tensor::from_vec(ids, (g, inputs), device)?;
        let valid = Tensor::from_vec(valid, (g, p + inputs), device)?;
        Ok(Self { prompt: prompt_ids, completions: Some((ids, valid)), prompt_len: p, group: g })
    }
}

/// A group's inputs with what every layer of its two passes shares: the
/// prompt's pass, and the completions' after it. Both the plain forward
/// pass ([`Decoder::group_hidden`]) and the checkpointed one
/// (`checkpointing`) run a group layer by layer through it.
pub(super) struct GroupPass {
    /// The token inputs.
    pub inputs: GroupInputs,
    prompt: Pass,
    completions: Option<Pass>,
}

impl GroupPass {
    /// The passes of `model` over `completions` of `prompt`.
    pub fn new(model: &Decoder, prompt: &[u32], completions: &[&[u32]]) -> candle_core::Result<Self> {
        let inputs = GroupInputs::new(prompt, completions, model.device())?;
        let prompt = model.pass(inputs.prompt_len, 0, None)?;
        let completions = match &inputs.completions {
            Some((ids, valid)) => Some(model.pass(ids.dim(1)?, inputs.prompt_len, Some(valid))?),
            None => None,
        };
        Ok(Self { inputs, prompt, completions })
    }

    /// Token embeddings of the prompt and the completions.
    pub fn embed(&self, model: &Decoder) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let completions = match &self.inputs.completions {
            Some((ids, _)) => Some(model.embed_ids(ids)?),
            None => None,
        };
        Ok((model.embed_ids(&self.inputs.prompt)?, completions))
    }

    /// Layer `index` on the prompt (into a fresh key/value slot), then on
    /// the completions after the prompt's keys and values repeated G times.
    pub fn layer(
        &self,
        model: &Decoder,
        index: usize,
        prompt: &Tensor,
        completions: Option<&Tensor>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let mut slot = None;
        let prompt_out = model.layer_forward(index, prompt, &self.prompt, Some(&mut slot))?;
        let (Some(x), Some(pass)) = (completions, &self.completions) else { return Ok((prompt_out, None)) };
        let Some(LayerKv::Grown { k, v }) = &slot else {
            candle_core::bail!("layer {index}: the prompt left no keys and values")
        };
        let mut repeated = Some(LayerKv::grown_repeated(k, v, self.inputs.group)?);
        let completion_out = model.layer_forward(index, x, pass, Some(&mut repeated))?;
        Ok((prompt_out, Some(completion_out)))
    }

    /// Hidden states `[G, C, hidden]` (see [`Decoder::group_hidden`]) from
    /// the last layer's outputs.
    pub fn hidden(
        &self,
        model: &Decoder,
        prompt: &Tensor,
        completions: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (p, g) = (self.inputs.prompt_len, self.inputs.group);
        let last = model.final_norm(prompt)?.narrow(1, p - 1, 1)?.repeat((g, 1, 1))?;
        match completions {
            Some(completions) => Tensor::cat(&[&last, &model.final_norm(completions)?], 1),
            None => Ok(last),
        }
    }
}

impl Decoder {
    /// Hidden states `[G, C, hidden]` for `completions` of `prompt`, where
    /// row `g`, position `k` is the state that predicts completion token `k`
    /// (position 0 is the prompt's last state). `C` is the longest
    /// completion; positions past a completion's end are padding.
    pub fn group_hidden(&self, prompt: &[u32], completions: &[&[u32]]) -> candle_core::Result<Tensor> {
        let pass = GroupPass::new(self, prompt, completions)?;
        let (mut prompt_x, mut completion_x) = pass.embed(self)?;
        for index in 0..self.config.layers {
            (prompt_x, completion_x) = pass.layer(self, index, &prompt_x, completion_x.as_ref())?;
        }
        pass.hidden(self, &prompt_x, completion_x.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};
    use crate::train::decoder::Decoder;

    /// Sum of completion log-probs through the shared prompt, and through a
    /// separate forward pass per sequence.
    fn both_ways(model: &Decoder, prompt: &[u32], completions: &[&[u32]]) -> (Tensor, Tensor) {
        let hidden = model.group_hidden(prompt, completions).unwrap();
        let c = hidden.dim(1).unwrap();
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (row, tokens) in completions.iter().enumerate() {
            for (k, &t) in tokens.iter().enumerate() {
                positions.push((row * c + k) as u32);
                targets.push(t);
            }
        }
        let shared = model.token_logprobs(&hidden, &positions, &targets, 1.0).unwrap().0.sum_all().unwrap();
        let mut separate = Vec::new();
        for tokens in completions {
            let all: Vec<u32> = prompt.iter().chain(tokens.iter()).copied().collect();
            let ids = Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let hidden = model.hidden_states(&ids, None).unwrap();
            let positions: Vec<u32> = (0..tokens.len()).map(|k| (prompt.len() - 1 + k) as u32).collect();
            separate.push(model.token_logprobs(&hidden, &positions, tokens, 1.0).unwrap().0.sum_all().unwrap());
        }
        (shared, Tensor::stack(&separate, 0).unwrap().sum_all().unwrap())
    }

    #[test]
    fn a_shared_prompt_gives_the_same_logprobs_and_gradients_as_separate_sequences() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_text(dir.path(), TinyTextArch::Qwen2, 4).unwrap();
        let model = Decoder::load(dir.path(), DType::F64).unwrap();
        let prompt = [257u32, 40, 41, 42, 258, 10];
        let completions: [&[u32]; 3] = [&[50, 51, 52, 259], &[60], &[70, 71]];
        let (shared, separate) = both_ways(&model, &prompt, &completions);
        let (a, b) = (shared.to_scalar::<f64>().unwrap(), separate.to_scalar::<f64>().unwrap());
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        let (ga, gb) = (shared.backward().unwrap(), separate.backward().unwrap());
        for (name, var) in model.vars() {
            let x = ga.get(var.as_tensor()).unwrap();
            let y = gb.get(var.as_tensor()).unwrap();
            let diff = (x - y).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff < 1e-9, "{name}: gradients differ by {diff}");
        }
    }
}
