//! One forward/backward unit: sequences (prompt + completion) packed into a
//! right-padded batch, with the flat positions whose next token is a
//! completion token — the only positions whose logits are computed.

use candle_core::{Device, Tensor};

use super::rollout::Rollout;

/// A packed micro-batch.
pub struct PackedBatch {
    /// Token ids `[B, L]`.
    pub ids: Tensor,
    /// 1 at real tokens, 0 at padding `[B, L]`.
    pub valid: Tensor,
    /// Flat indices `b·L + t` of the positions predicting completion tokens.
    pub positions: Vec<u32>,
    /// The completion tokens predicted there.
    pub targets: Vec<u32>,
    /// For each target, the index of its sequence in the input slice.
    pub sequence_of: Vec<usize>,
}

/// Packs `rollouts` (see the module docs).
pub fn pack(rollouts: &[&Rollout]) -> candle_core::Result<PackedBatch> {
    let l = rollouts.iter().map(|r| r.prompt.len() + r.completion.len()).max().unwrap_or(1).max(1);
    let b = rollouts.len();
    let mut ids = vec![0u32; b * l];
    let mut valid = vec![0u32; b * l];
    let (mut positions, mut targets, mut sequence_of) = (Vec::new(), Vec::new(), Vec::new());
    for (row, rollout) in rollouts.iter().enumerate() {
        let tokens = rollout.prompt.iter().chain(&rollout.completion);
        for (t, &token) in tokens.enumerate() {
            ids[row * l + t] = token;
            valid[row * l + t] = 1;
        }
        for (k, &token) in rollout.completion.iter().enumerate() {
            if rollout.prompt.len() + k == 0 {
                continue; // nothing before it to predict it from
            }
            positions.push((row * l + rollout.prompt.len() + k - 1) as u32);
            targets.push(token);
            sequence_of.push(row);
        }
    }
    Ok(PackedBatch {
        ids: Tensor::from_vec(ids, (b, l), &Device::Cpu)?,
        valid: Tensor::from_vec(valid, (b, l), &Device::Cpu)?,
        positions,
        targets,
        sequence_of,
    })
}
