//! The losses: group-relative advantages, the clipped-ratio policy loss
//! with an optional k3 KL penalty to a frozen reference (GRPO / S-GRPO), and
//! cross-entropy on target completions (SFT).
//!
//! Aggregation: every function returns the **sum** of its per-token losses;
//! the trainer divides by the number of completion tokens in the whole
//! optimizer step (all micro-batches of its gradient accumulation), so every
//! token of the step weighs the same whatever its sequence's length — the
//! "DAPO" aggregation TRL uses by default.

use candle_core::{DType, Tensor};

/// Advantages of one group's rewards: `(r − mean) / (std + eps)`, with the
/// sample standard deviation (n − 1), as TRL computes it. A group whose
/// rewards are all equal gets zeros (it carries no signal).
pub fn group_advantages(rewards: &[f64], eps: f64) -> Vec<f64> {
    let n = rewards.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    rewards.iter().map(|r| (r - mean) / (var.sqrt() + eps)).collect()
}

/// Settings of the policy loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLoss {
    /// Lower clip: the ratio is clipped at `1 − clip_low`.
    pub clip_low: f64,
    /// Upper clip: the ratio is clipped at `1 + clip_high`.
    pub clip_high: f64,
    /// KL coefficient (0: no reference model).
    pub beta: f64,
}

/// Per-token inputs of the policy loss that are constants of the step.
pub struct TokenTargets<'a> {
    /// Log-probabilities under the policy that sampled (π_old).
    pub old_logprobs: &'a [f32],
    /// Log-probabilities under the reference model (when β > 0).
    pub ref_logprobs: Option<&'a [f32]>,
    /// The advantage of each token's completion.
    pub advantages: &'a [f32],
}

/// What the policy loss saw, for the step log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Tokens whose ratio fell under `1 − clip_low` with a negative advantage.
    pub clipped_low: usize,
    /// Tokens whose ratio rose over `1 + clip_high` with a positive advantage.
    pub clipped_high: usize,
    /// Sum of the k3 KL estimates (0 without a reference).
    pub kl_sum: f64,
    /// The loss value (sum over tokens).
    pub loss_sum: f64,
}

/// The clipped-ratio loss summed over tokens (see the module docs): per
/// token `−min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β·k3`, with
/// `ρ = exp(logp − old)` and `k3 = exp(ref − logp) − (ref − logp) − 1`.
/// Where the clipped term is the minimum it is a constant, so its token is
/// left out of the gradient — exactly the derivative of the `min`.
pub fn policy_loss(
    logprobs: &Tensor,
    targets: &TokenTargets<'_>,
    settings: &PolicyLoss,
) -> candle_core::Result<(Tensor, LossStats)> {
    let dtype = logprobs.dtype();
    let device = logprobs.device();
    let values: Vec<f64> = logprobs.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mut stats = LossStats::default();
    let mut weights = Vec::with_capacity(values.len());
    // The clipped terms: constants of the loss, kept so that its value is reported right.
    let mut constant = 0.0;
    for (i, &logp) in values.iter().enumerate() {
        let advantage = f64::from(targets.advantages[i]);
        let ratio = (logp - f64::from(targets.old_logprobs[i])).exp();
        let clipped = ratio.clamp(1.0 - settings.clip_low, 1.0 + settings.clip_high);
        let unclipped_term = ratio * advantage;
        let clipped_term = clipped * advantage;
        if ratio < 1.0 - settings.clip_low && advantage < 0.0 {
            stats.clipped_low += 1;
        }
        if ratio > 1.0 + settings.clip_high && advantage > 0.0 {
            stats.clipped_high += 1;
        }
        let active = unclipped_term <= clipped_term;
        stats.loss_sum -= unclipped_term.min(clipped_term);
        if !active {
            constant -= clipped_term;
        }
        weights.push(if active { advantage } else { 0.0 });
    }
    let old = Tensor::new(targets.old_logprobs, device)?.to_dtype(dtype)?;
    let ratio = (logprobs - &old)?.exp()?;
    let weights = Tensor::new(weights.as_slice(), device)?.to_dtype(dtype)?;
    let mut loss = ((ratio * weights)?.sum_all()?.neg()? + constant)?;
    if settings.beta > 0.0
        && let Some(reference) = targets.ref_logprobs
    {
        let reference = Tensor::new(reference, device)?.to_dtype(dtype)?;
        let delta = (reference - logprobs)?;
        let k3 = ((delta.exp()? - &delta)? - 1.0)?;
        let kl_sum = k3.sum_all()?;
        stats.kl_sum = kl_sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        stats.loss_sum += settings.beta * stats.kl_sum;
        loss = (loss + (kl_sum * settings.beta)?)?;
    }
    Ok((loss, stats))
}

/// Cross-entropy of target tokens, summed: `−Σ log p`.
pub fn sft_loss(logprobs: &Tensor) -> candle_core::Result<Tensor> {
    logprobs.sum_all()?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn advantages_are_centred_and_scaled_per_group() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], 1e-4);
        assert!((a.iter().sum::<f64>()).abs() < 1e-12);
        let std = (1.0f64 / 3.0).sqrt();
        assert!((a[0] - 0.5 / (std + 1e-4)).abs() < 1e-9);
        assert_eq!(group_advantages(&[0.5, 0.5, 0.5], 1e-4), vec![0.0; 3]);
        assert!(group_advantages(&[], 1e-4).is_empty());
    }

    fn loss_and_grad(
        logp: &[f64],
        old: &[f32],
        adv: &[f32],
        reference: Option<&[f32]>,
        beta: f64,
    ) -> (LossStats, Vec<f64>) {
        let var = Var::new(logp, &Device::Cpu).unwrap();
        let targets = TokenTargets { old_logprobs: old, ref_logprobs: reference, advantages: adv };
        let settings = PolicyLoss { clip_low: 0.2, clip_high: 0.28, beta };
        let (loss, stats) = policy_loss(var.as_tensor(), &targets, &settings).unwrap();
        let value = loss.to_scalar::<f64>().unwrap();
        assert!((value - stats.loss_sum).abs() < 1e-9, "the reported loss is the loss");
        let grads = loss.backward().unwrap();
        (stats, grads.get(var.as_tensor()).unwrap().to_vec1::<f64>().unwrap())
    }

    #[test]
    fn on_policy_the_gradient_is_minus_the_advantage() {
        // ρ = 1: d(−ρA)/d logp = −A, for every token.
        let (stats, grad) = loss_and_grad(&[-1.0, -2.0], &[-1.0, -2.0], &[0.5, -1.5], None, 0.0);
        assert!((grad[0] + 0.5).abs() < 1e-6 && (grad[1] - 1.5).abs() < 1e-6, "{grad:?}");
        assert_eq!((stats.clipped_low, stats.clipped_high), (0, 0));
        assert!((stats.loss_sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn clipped_tokens_carry_no_gradient() {
        // ρ = e^0.5 ≈ 1.65 > 1.28 with A > 0: clipped high, no gradient.
        // ρ = e^-0.5 ≈ 0.61 < 0.8 with A < 0: clipped low, no gradient.
        // ρ = e^0.5 with A < 0: the unclipped term is the minimum, gradient flows.
        let (stats, grad) = loss_and_grad(&[-0.5, -1.5, -0.5], &[-1.0, -1.0, -1.0], &[1.0, -1.0, -1.0], None, 0.0);
        assert_eq!((stats.clipped_low, stats.clipped_high), (1, 1));
        assert_eq!(grad[0], 0.0);
        assert_eq!(grad[1], 0.0);
        assert!((grad[2] - 0.5f64.exp()).abs() < 1e-6, "{grad:?}");
    }

    #[test]
    fn k3_is_zero_at_the_reference_and_pulls_towards_it() {
        let (stats, grad) = loss_and_grad(&[-1.0], &[-1.0], &[0.0], Some(&[-1.0]), 0.1);
        assert!(stats.kl_sum.abs() < 1e-9 && grad[0].abs() < 1e-9);
        // Policy more likely than the reference: k3 > 0 and the gradient pushes logp down.
        let (stats, grad) = loss_and_grad(&[-0.5], &[-0.5], &[0.0], Some(&[-1.0]), 0.1);
        let d = -0.5f64;
        assert!((stats.kl_sum - (d.exp() - d - 1.0)).abs() < 1e-6);
        assert!(grad[0] > 0.0, "{grad:?}");
    }
}
