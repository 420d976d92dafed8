//! One optimizer step's update from scored rollouts: group advantages,
//! forward/backward over micro-batches of `batch` groups with gradient
//! accumulation (each group's prompt computed once: `shared_prompt`; the
//! loss normalised by the step's completion tokens), one AdamW step, and the
//! [`StepLog`] line with everything a user needs to see whether it learns.

use std::time::Instant;

use candle_core::Tensor;

use serde::Serialize;

use super::TrainError;
use super::config::{Grpo, Stage, TrainConfig};
use super::decoder::Decoder;
use super::objective::{PolicyLoss, TokenTargets, group_advantages, policy_loss, sft_loss};
use super::optimizer::{Accumulated, AdamW};
use super::rewards::RewardParts;
use super::rollout::Rollout;

/// A rollout with its reward.
#[derive(Debug, Clone)]
pub struct ScoredRollout {
    /// What the agent got.
    pub rollout: Rollout,
    /// Its reward, part by part (zero in the SFT stage).
    pub parts: RewardParts,
}

/// One line of `train-log.jsonl`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepLog {
    /// Optimizer steps done (1-based).
    pub step: usize,
    /// Stage.
    pub stage: String,
    /// Loss per completion token.
    pub loss: f64,
    /// Mean reward of the step's completions.
    pub reward_mean: f64,
    /// Mean over the step's groups of the standard deviation of the
    /// group's rewards (n − 1): how much the G answers to one item differ —
    /// TRL's `reward_std`.
    pub reward_std: f64,
    /// Standard deviation of all the step's rewards together (items differ too).
    pub reward_std_overall: f64,
    /// Mean format reward.
    pub reward_format: f64,
    /// Mean attitude reward.
    pub reward_judge: f64,
    /// Mean class reward.
    pub reward_class: f64,
    /// Mean reason reward.
    pub reward_reason: f64,
    /// Share of the drawn groups whose rewards were all equal (no signal).
    pub frac_reward_zero_std: f64,
    /// Mean k3 KL to the reference per token (0 without one).
    pub kl: f64,
    /// Share of tokens clipped below.
    pub clip_low: f64,
    /// Share of tokens clipped above.
    pub clip_high: f64,
    /// Mean completion length in tokens.
    pub completion_len_mean: f64,
    /// Longest completion.
    pub completion_len_max: usize,
    /// Share of completions cut at the length limit.
    pub truncated_frac: f64,
    /// Completions cut at the length limit and left out of the loss
    /// (`mask_truncated_completions`); they still count in their group's advantages.
    pub truncated_masked: usize,
    /// Mean entropy of the policy at the trained completion tokens (nats),
    /// from the forward pass of the update (0 when nothing was trained).
    pub entropy: f64,
    /// Mean entropy of the policy where each rolled-out token was sampled
    /// (nats per token, all drawn completions): how much the policy still
    /// explores, also on steps that train nothing. 0 in the SFT stage.
    pub rollout_entropy: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Completion tokens trained on.
    pub tokens: usize,
    /// Completion tokens trained on per second of the whole step.
    pub tokens_per_s: f64,
    /// Groups (items) trained on in the step.
    pub groups: usize,
    /// Groups rolled out in the step: more than `groups` when dynamic
    /// sampling set groups without reward spread aside and drew others.
    pub groups_drawn: usize,
    /// Completions in the backward pass (groups without spread are left out when β = 0).
    pub sequences_trained: usize,
    /// Seconds of rollouts.
    pub time_generation_s: f64,
    /// Seconds of forward and backward passes.
    pub time_forward_backward_s: f64,
    /// Seconds of the optimizer step.
    pub time_optimizer_s: f64,
    /// Seconds of the whole step.
    pub time_total_s: f64,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Sample standard deviation (n − 1; 0 for fewer than two values).
fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

/// Whether a group's rewards differ (else its advantages are all zero and,
/// without a KL term, it teaches nothing).
pub fn has_spread(group: &[ScoredRollout]) -> bool {
    let rewards: Vec<f64> = group.iter().map(|s| s.parts.total()).collect();
    group_advantages(&rewards, 1e-4).iter().any(|a| *a != 0.0)
}

impl StepLog {
    /// Sets the rollout figures — rewards part by part, the share of groups
    /// without spread, completion lengths, truncation, sampling entropy and
    /// `groups_drawn` — from `groups`: the update's own groups, or every
    /// group drawn in the step when dynamic sampling set some aside.
    pub fn describe_rollouts(&mut self, groups: &[Vec<ScoredRollout>], sft: bool) {
        let all: Vec<&ScoredRollout> = groups.iter().flatten().collect();
        let rewards: Vec<f64> = all.iter().map(|s| s.parts.total()).collect();
        self.groups_drawn = groups.len();
        self.reward_mean = mean(rewards.iter().copied());
        self.reward_std_overall = mean(rewards.iter().map(|r| (r - self.reward_mean).powi(2))).sqrt();
        self.reward_std =
            mean(groups.iter().map(|g| sample_std(&g.iter().map(|s| s.parts.total()).collect::<Vec<_>>())));
        self.reward_format = mean(all.iter().map(|s| s.parts.format));
        self.reward_judge = mean(all.iter().map(|s| s.parts.judge));
        self.reward_class = mean(all.iter().map(|s| s.parts.class));
        self.reward_reason = mean(all.iter().map(|s| s.parts.reason));
        self.completion_len_mean = mean(all.iter().map(|s| s.rollout.completion.len() as f64));
        self.completion_len_max = all.iter().map(|s| s.rollout.completion.len()).max().unwrap_or(0);
        self.truncated_frac = mean(all.iter().map(|s| f64::from(u8::from(s.rollout.truncated))));
        let sampled_tokens: usize = all.iter().map(|s| s.rollout.logprobs.len()).sum();
        let entropy: f64 = all.iter().map(|s| f64::from(s.rollout.sampling_entropy)).sum();
        self.rollout_entropy = if sampled_tokens == 0 { 0.0 } else { entropy / sampled_tokens as f64 };
        let zero_spread = groups.iter().filter(|g| !has_spread(g)).count();
        self.frac_reward_zero_std =
            if sft || groups.is_empty() { 0.0 } else { zero_spread as f64 / groups.len() as f64 };
    }
}

/// What an update needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateSettings {
    /// SFT or a reinforcement stage.
    pub stage: Stage,
    /// Groups per micro-batch.
    pub batch: usize,
    /// Loss settings.
    pub grpo: Grpo,
    /// Recompute each decoder layer in the backward pass instead of keeping
    /// its activations (`checkpointing`).
    pub gradient_checkpointing: bool,
}

impl From<&TrainConfig> for UpdateSettings {
    fn from(config: &TrainConfig) -> Self {
        Self {
            stage: config.stage,
            batch: config.batch,
            grpo: config.grpo,
            gradient_checkpointing: config.gradient_checkpointing,
        }
    }
}

/// Updates `model` from `groups` (see the module docs); `step` is 0-based.
pub fn update(
    model: &Decoder,
    reference: Option<&Decoder>,
    optimizer: &mut AdamW,
    groups: &[Vec<ScoredRollout>],
    config: &UpdateSettings,
    step: usize,
) -> Result<StepLog, TrainError> {
    let mut log = StepLog {
        step: step + 1,
        stage: format!("{:?}", config.stage).to_lowercase(),
        groups: groups.len(),
        ..Default::default()
    };
    let sft = config.stage == Stage::Sft;
    log.describe_rollouts(groups, sft);

    // Groups to train on (one prompt each), with each completion's advantage.
    let mut trained: Vec<Vec<(&Rollout, f32)>> = Vec::new();
    for group in groups {
        if sft {
            trained.extend(group.iter().map(|s| vec![(&s.rollout, 0.0)]));
            continue;
        }
        let advantages = group_advantages(&group.iter().map(|s| s.parts.total()).collect::<Vec<_>>(), 1e-4);
        if advantages.iter().all(|a| *a == 0.0) && config.grpo.beta == 0.0 {
            continue; // no signal and no KL term: nothing to learn from
        }
        let mask = config.grpo.mask_truncated_completions;
        let (kept, masked): (Vec<_>, Vec<_>) =
            group.iter().zip(&advantages).partition(|(s, _)| !(mask && s.rollout.truncated));
        log.truncated_masked += masked.len();
        if !kept.is_empty() {
            trained.push(kept.into_iter().map(|(s, a)| (&s.rollout, *a as f32)).collect());
        }
    }
    log.sequences_trained = trained.iter().map(Vec::len).sum();
    let total_tokens: usize = trained.iter().flatten().map(|(r, _)| r.completion.len()).sum();
    log.tokens = total_tokens;

    let started = Instant::now();
    let mut grads = Accumulated::default();
    let settings =
        PolicyLoss { clip_low: config.grpo.clip_low, clip_high: config.grpo.clip_high, beta: config.grpo.beta };
    // Log-probabilities of the distribution the rollouts were drawn from.
    let temperature = if sft { 1.0 } else { f64::from(config.grpo.temperature) };
    let mut totals = Totals::default();
    let losses = GroupLoss { reference, sft, temperature, settings: &settings };
    for micro_batch in trained.chunks(config.batch.max(1)) {
        let mut micro_loss: Option<Tensor> = None;
        for group in micro_batch {
            let Some((prompt, completions)) = group_sequences(group)? else { continue };
            let sequences = (prompt, completions.as_slice());
            if config.gradient_checkpointing {
                // One group at a time, its backward pass layer by layer (`checkpointing`).
                let tape = model.checkpointed_group(prompt, &completions)?;
                let loss = losses.of(model, group, sequences, &tape.hidden()?, &mut totals)?;
                tape.backward(&(loss / total_tokens.max(1) as f64)?, model.vars(), &mut grads)?;
                continue;
            }
            let hidden = model.group_hidden(prompt, &completions)?;
            let loss = losses.of(model, group, sequences, &hidden, &mut totals)?;
            micro_loss = Some(match micro_loss {
                Some(sum) => (sum + loss)?,
                None => loss,
            });
        }
        if let Some(loss) = micro_loss {
            let loss = (loss / total_tokens.max(1) as f64)?;
            grads.add(model.vars(), loss.backward()?)?;
        }
    }
    let (loss_sum, kl_sum, clipped_low, clipped_high, entropy_sum) =
        (totals.loss, totals.kl, totals.clipped_low, totals.clipped_high, totals.entropy);
    log.time_forward_backward_s = started.elapsed().as_secs_f64();
    let tokens = total_tokens.max(1) as f64;
    log.loss = loss_sum / tokens;
    log.kl = kl_sum / tokens;
    log.clip_low = clipped_low as f64 / tokens;
    log.clip_high = clipped_high as f64 / tokens;
    log.entropy = entropy_sum / tokens;
    let started = Instant::now();
    let report = optimizer.apply(model.vars(), &grads)?;
    drop(grads);
    log.time_optimizer_s = started.elapsed().as_secs_f64();
    log.grad_norm = report.grad_norm;
    log.lr = report.lr;
    Ok(log)
}

/// Sums over the step's groups, for the log.
#[derive(Default)]
struct Totals {
    loss: f64,
    kl: f64,
    clipped_low: usize,
    clipped_high: usize,
    entropy: f64,
}

/// A group's prompt and completions; `None` when it has no completion tokens.
fn group_sequences<'a>(group: &[(&'a Rollout, f32)]) -> Result<Option<(&'a [u32], Vec<&'a [u32]>)>, TrainError> {
    let Some((first, _)) = group.first() else { return Ok(None) };
    if group.iter().any(|(r, _)| r.prompt != first.prompt) {
        return Err(TrainError::Rollout(format!(
            "item `{}`: a group's completions have different prompts",
            first.item_id
        )));
    }
    let completions: Vec<&[u32]> = group.iter().map(|(r, _)| r.completion.as_slice()).collect();
    if completions.iter().all(|c| c.is_empty()) {
        return Ok(None);
    }
    Ok(Some((first.prompt.as_slice(), completions)))
}

/// What a group's loss needs besides the group and its hidden states.
struct GroupLoss<'a> {
    reference: Option<&'a Decoder>,
    sft: bool,
    temperature: f64,
    settings: &'a PolicyLoss,
}

impl GroupLoss<'_> {
    /// The summed token loss of one group (one prompt, its completions with
    /// their advantages) from the policy's hidden states `hidden` (as
    /// [`Decoder::group_hidden`] gives them); `sequences` are the group's
    /// prompt and completions ([`group_sequences`]), for the reference.
    fn of(
        &self,
        model: &Decoder,
        group: &[(&Rollout, f32)],
        (prompt, completions): (&[u32], &[&[u32]]),
        hidden: &Tensor,
        totals: &mut Totals,
    ) -> Result<Tensor, TrainError> {
        let width = hidden.dim(1)?;
        let (mut positions, mut targets, mut advantages, mut old) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (row, (rollout, advantage)) in group.iter().enumerate() {
            for (k, &token) in rollout.completion.iter().enumerate() {
                positions.push((row * width + k) as u32);
                targets.push(token);
                advantages.push(*advantage);
            }
            old.extend_from_slice(&rollout.logprobs);
        }
        let (logprobs, entropy) = model.token_logprobs(hidden, &positions, &targets, self.temperature)?;
        totals.entropy += entropy.iter().map(|&e| f64::from(e)).sum::<f64>();
        if self.sft {
            let loss = sft_loss(&logprobs)?;
            totals.loss += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            return Ok(loss);
        }
        let item = group.first().map(|(r, _)| r.item_id.as_str()).unwrap_or_default();
        if old.len() != targets.len() {
            return Err(TrainError::Rollout(format!("item `{item}`: completions without their sampling log-probs")));
        }
        let reference_logprobs = match self.reference {
            Some(reference) => {
                let hidden = reference.group_hidden(prompt, completions)?;
                Some(reference.token_logprobs(&hidden, &positions, &targets, self.temperature)?.0.to_vec1::<f32>()?)
            }
            None => None,
        };
        let targets =
            TokenTargets { old_logprobs: &old, ref_logprobs: reference_logprobs.as_deref(), advantages: &advantages };
        let (loss, stats) = policy_loss(&logprobs, &targets, self.settings)?;
        totals.loss += stats.loss_sum;
        totals.kl += stats.kl_sum;
        totals.clipped_low += stats.clipped_low;
        totals.clipped_high += stats.clipped_high;
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;
    use rand::SeedableRng;

    use super::*;
    use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};
    use crate::train::generate::{SampleSettings, sample_group};
    use crate::train::optimizer::{AdamWSettings, Schedule};

    /// One group of four sampled completions of one prompt, with `rewards`;
    /// the second and fourth are marked cut at the length limit.
    fn group(model: &Decoder, rewards: [f64; 4]) -> Vec<ScoredRollout> {
        let prompt = vec![257u32, 72, 105, 258, 10];
        let settings = SampleSettings { temperature: 1.0, top_p: 1.0, max_tokens: 5, ignore_eos: true };
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let samples = sample_group(&model.detached(), &prompt, 4, &settings, &mut rng).unwrap();
        samples
            .into_iter()
            .zip(rewards)
            .enumerate()
            .map(|(i, (sample, judge))| ScoredRollout {
                parts: RewardParts { judge, ..Default::default() },
                rollout: Rollout {
                    item_id: "item".into(),
                    prompt: prompt.clone(),
                    truncated: i % 2 == 1,
                    completion: sample.tokens,
                    logprobs: sample.logprobs,
                    sampling_entropy: sample.entropy_sum,
                    text: String::new(),
                },
            })
            .collect()
    }

    fn run(mask: bool, groups: &[Vec<ScoredRollout>], model: &Decoder) -> StepLog {
        let grpo = Grpo { group: 4, mask_truncated_completions: mask, ..Grpo::default() };
        let settings = UpdateSettings { stage: Stage::Sgrpo, batch: 1, grpo, gradient_checkpointing: false };
        let schedule = Schedule { warmup: 0, total: 1, min_ratio: 1.0 };
        let mut optimizer = AdamW::new(AdamWSettings::default(), schedule, model.vars().len());
        update(model, None, &mut optimizer, groups, &settings, 0).unwrap()
    }

    #[test]
    fn truncated_completions_leave_the_loss_when_masked_and_count_in_advantages() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_text(dir.path(), TinyTextArch::Qwen2, 3).unwrap();
        let model = Decoder::load(dir.path(), DType::F32).unwrap();
        // The truncated completions earned 1, the kept ones 0: masked, only the kept two
        // are trained, with the advantage they have in the whole group (0 vs its mean 0.5).
        let groups = vec![group(&model, [0.0, 1.0, 0.0, 1.0])];
        let open = run(false, &groups, &model);
        assert_eq!((open.sequences_trained, open.tokens, open.truncated_masked), (4, 20, 0));
        let masked = run(true, &groups, &model);
        assert_eq!((masked.sequences_trained, masked.tokens, masked.truncated_masked), (2, 10, 2));
        assert!(masked.grad_norm > 0.0, "the kept completions carry their group's advantages: {masked:?}");
        assert_eq!(masked.truncated_frac, 0.5, "the log still describes every rollout");
    }

    #[test]
    fn reward_std_is_the_spread_within_groups() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_text(dir.path(), TinyTextArch::Qwen2, 3).unwrap();
        let model = Decoder::load(dir.path(), DType::F32).unwrap();
        // Group one differs within (0, 0, 1, 1: sample std 0.577); group two is all 2.
        let groups = vec![group(&model, [0.0, 0.0, 1.0, 1.0]), group(&model, [2.0; 4])];
        let log = run(false, &groups, &model);
        let within = (1.0f64 / 3.0).sqrt() / 2.0;
        assert!((log.reward_std - within).abs() < 1e-9, "{} vs {within}", log.reward_std);
        // All eight together: mean 1.25, population std √0.6875.
        assert!((log.reward_std_overall - 0.6875f64.sqrt()).abs() < 1e-9, "{}", log.reward_std_overall);
    }
}
