//! Gradient checkpointing of a group's forward pass (`[train]
//! gradient_checkpointing = true`). candle keeps every intermediate of the
//! autograd graph alive until the backward pass, so activation memory grows
//! with layers × positions × (hidden + MLP width + attention scores). Here
//! the forward pass runs layer by layer, keeping only each layer's input
//! (detached); the loss is taken on the last layer's output as a leaf, and
//! the backward pass then walks the layers in reverse: it recomputes one
//! layer from its saved input with the graph on and back-propagates the
//! output gradient through it (the surrogate `Σ y·∂L/∂y`), which yields that
//! layer's weight gradients and the gradient of its input for the layer
//! below. Only one layer's graph is alive at a time, for a second forward
//! pass of compute — the trade Hugging Face's `gradient_checkpointing`
//! makes. The group's shape is that of [`Decoder::group_hidden`]: the
//! prompt once, its keys and values repeated for the G completions, layer
//! by layer.

use candle_core::{Tensor, Var};

use super::TrainError;
use super::decoder::Decoder;
use super::optimizer::Accumulated;
use super::shared_prompt::GroupPass;

/// One group's checkpointed forward pass, waiting for its loss.
pub struct CheckpointedGroup<'m> {
    model: &'m Decoder,
    pass: GroupPass,
    /// Each layer's input (prompt, completions), detached.
    saved: Vec<(Tensor, Option<Tensor>)>,
    /// The last layer's outputs, leaves of the loss's graph.
    top: (Var, Option<Var>),
}

impl Decoder {
    /// Runs the group's forward pass keeping only layer inputs (see the
    /// module docs); [`CheckpointedGroup::hidden`] gives what
    /// [`Decoder::group_hidden`] gives.
    pub fn checkpointed_group(
        &self,
        prompt: &[u32],
        completions: &[&[u32]],
    ) -> Result<CheckpointedGroup<'_>, TrainError> {
        let pass = GroupPass::new(self, prompt, completions)?;
        let (prompt_x, completion_x) = pass.embed(self)?;
        let (mut prompt_x, mut completion_x) = (prompt_x.detach(), completion_x.map(|c| c.detach()));
        let mut saved = Vec::with_capacity(self.config.layers);
        for index in 0..self.config.layers {
            let (p, c) = pass.layer(self, index, &prompt_x, completion_x.as_ref())?;
            saved.push((prompt_x, completion_x));
            (prompt_x, completion_x) = (p.detach(), c.map(|c| c.detach()));
        }
        let top = (Var::from_tensor(&prompt_x)?, completion_x.as_ref().map(Var::from_tensor).transpose()?);
        Ok(CheckpointedGroup { model: self, pass, saved, top })
    }
}

/// `Σ y·g` over the pairs that have a gradient: its gradient with respect
/// to `y` is `g`, so its backward pass carries `g` through `y`'s graph.
fn surrogate(pairs: [(Option<&Tensor>, Option<&Tensor>); 2]) -> candle_core::Result<Option<Tensor>> {
    let mut total: Option<Tensor> = None;
    for (y, g) in pairs {
        if let (Some(y), Some(g)) = (y, g) {
            let term = (y * g)?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
    }
    Ok(total)
}

impl CheckpointedGroup<'_> {
    /// Hidden states `[G, C, hidden]`, as [`Decoder::group_hidden`] returns
    /// them, computed from the last layer's leaves.
    pub fn hidden(&self) -> candle_core::Result<Tensor> {
        self.pass.hidden(self.model, self.top.0.as_tensor(), self.top.1.as_ref().map(Var::as_tensor))
    }

    /// Back-propagates `loss` (computed from [`Self::hidden`]) through the
    /// head, then layer by layer, then the embeddings, adding every
    /// gradient of `vars` to `grads`.
    pub fn backward(self, loss: &Tensor, vars: &[(String, Var)], grads: &mut Accumulated) -> Result<(), TrainError> {
        let store = loss.backward()?;
        let mut prompt_grad = store.get(self.top.0.as_tensor()).cloned();
        let mut completion_grad = self.top.1.as_ref().and_then(|v| store.get(v.as_tensor()).cloned());
        grads.add(vars, store)?;
        drop(self.top);
        for (index, (prompt_x, completion_x)) in self.saved.iter().enumerate().rev() {
            let prompt_leaf = Var::from_tensor(prompt_x)?;
            let completion_leaf = completion_x.as_ref().map(Var::from_tensor).transpose()?;
            let (prompt_y, completion_y) = self.pass.layer(
                self.model,
                index,
                prompt_leaf.as_tensor(),
                completion_leaf.as_ref().map(Var::as_tensor),
            )?;
            let Some(total) = surrogate([
                (Some(&prompt_y), prompt_grad.as_ref()),
                (completion_y.as_ref(), completion_grad.as_ref()),
            ])?
            else {
                return Ok(()); // nothing below receives a gradient
            };
            let store = total.backward()?;
            prompt_grad = store.get(prompt_leaf.as_tensor()).cloned();
            completion_grad = completion_leaf.as_ref().and_then(|v| store.get(v.as_tensor()).cloned());
            grads.add(vars, store)?;
        }
        let (prompt_embedded, completion_embedded) = self.pass.embed(self.model)?;
        if let Some(total) = surrogate([
            (Some(&prompt_embedded), prompt_grad.as_ref()),
            (completion_embedded.as_ref(), completion_grad.as_ref()),
        ])? {
            grads.add(vars, total.backward()?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::*;
    use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};
    use crate::train::lora::LoraSettings;

    /// The gradients of `Σ log p(completion)` over a group, with and without checkpointing.
    fn both_ways(model: &Decoder, prompt: &[u32], completions: &[&[u32]]) -> (Accumulated, Accumulated) {
        let width = completions.iter().map(|c| c.len()).max().unwrap();
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (row, tokens) in completions.iter().enumerate() {
            for (k, &t) in tokens.iter().enumerate() {
                positions.push((row * width + k) as u32);
                targets.push(t);
            }
        }
        let loss = |hidden: &Tensor| {
            model.token_logprobs(hidden, &positions, &targets, 0.8).unwrap().0.sum_all().unwrap().neg().unwrap()
        };
        let mut plain = Accumulated::default();
        let hidden = model.group_hidden(prompt, completions).unwrap();
        plain.add(model.vars(), loss(&hidden).backward().unwrap()).unwrap();
        let mut checkpointed = Accumulated::default();
        let group = model.checkpointed_group(prompt, completions).unwrap();
        let value = loss(&group.hidden().unwrap());
        let expected = loss(&hidden).to_scalar::<f64>().unwrap();
        assert!((value.to_scalar::<f64>().unwrap() - expected).abs() < 1e-9, "the same forward pass");
        group.backward(&value, model.vars(), &mut checkpointed).unwrap();
        (plain, checkpointed)
    }

    fn assert_same(model: &Decoder, plain: &Accumulated, checkpointed: &Accumulated) {
        assert!(checkpointed.without_gradient(model.vars()).unwrap() == plain.without_gradient(model.vars()).unwrap());
        for (index, (name, _)) in model.vars().iter().enumerate() {
            let (Some(a), Some(b)) = (plain.get(index), checkpointed.get(index)) else {
                assert!(plain.get(index).is_none() && checkpointed.get(index).is_none(), "{name}");
                continue;
            };
            let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1e-12);
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff <= 1e-9 * scale, "{name}: gradients differ by {diff} (scale {scale})");
        }
    }

    #[test]
    fn checkpointed_gradients_equal_the_plain_backward_pass() {
        for arch in [TinyTextArch::Llama, TinyTextArch::Qwen2] {
            let dir = tempfile::tempdir().unwrap();
            write_tiny_text(dir.path(), arch, 5).unwrap();
            let model = Decoder::load(dir.path(), DType::F64).unwrap();
            let prompt = [257u32, 72, 101, 108, 258, 10];
            let completions: [&[u32]; 3] = [&[40, 41, 42, 258], &[50], &[60, 61]];
            let (plain, checkpointed) = both_ways(&model, &prompt, &completions);
            assert!(plain.without_gradient(model.vars()).unwrap().is_empty(), "{arch:?}: every weight has a gradient");
            assert_same(&model, &plain, &checkpointed);
            // Completions of one token: the prompt's last state alone.
            let (plain, checkpointed) = both_ways(&model, &prompt, &[&[70], &[71]]);
            assert_same(&model, &plain, &checkpointed);
        }
    }

    #[test]
    fn checkpointed_gradients_reach_every_adapter() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_text(dir.path(), TinyTextArch::Qwen2, 5).unwrap();
        let settings =
            LoraSettings { rank: 2, alpha: 4.0, targets: ["q_proj", "v_proj", "up_proj"].map(String::from).to_vec() };
        let model = Decoder::load(dir.path(), DType::F64).unwrap().with_lora(&settings, 3).unwrap();
        // B starts at zero, so A's gradients are zero: move B off zero first.
        for (name, var) in model.vars() {
            if name.contains("lora_B") {
                var.set(&(var.as_tensor().ones_like().unwrap() * 0.01).unwrap()).unwrap();
            }
        }
        let (plain, checkpointed) = both_ways(&model, &[257, 72, 10], &[&[40, 41, 258], &[50, 51]]);
        assert!(checkpointed.without_gradient(model.vars()).unwrap().is_empty(), "every adapter has a gradient");
        assert_same(&model, &plain, &checkpointed);
    }
}
