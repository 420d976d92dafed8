//! The update rule learns: a tiny random model, trained for a few dozen
//! seeded GRPO steps on a toy reward (the share of ASCII bytes among its
//! completion tokens) through the same [`update`] the trainer runs, raises
//! its mean reward well beyond the untrained level.

use candle_core::DType;
use rand::SeedableRng;

use super::config::{Grpo, Optim, Stage, TrainConfig};
use super::decoder::Decoder;
use super::generate::{SampleSettings, sample_group};
use super::optimizer::{AdamW, AdamWSettings, Schedule};
use super::rewards::{RewardParts, RewardWeights};
use super::rollout::Rollout;
use super::step::{ScoredRollout, update};
use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};

fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        path: "toy.toml".into(),
        graph: "toy-graph.toml".into(),
        node: "toy".into(),
        data: "toy-data".into(),
        sft_targets: "sft.jsonl".into(),
        stage: Stage::Sgrpo,
        out: "toy-out".into(),
        seed: 1,
        steps: Some(steps),
        epochs: None,
        batch: 2,
        grad_accum: 1,
        limit: None,
        checkpoint_every: 10,
        gradient_checkpointing: false,
        device: super::config::TrainDevice::Cpu,
        model_dir: "toy-model".into(),
        lora: None,
        optim: Optim { lr: 2e-2, warmup: 2, min_lr_ratio: 1.0, weight_decay: 0.0, max_grad_norm: 1.0 },
        grpo: Grpo { group: 8, max_completion: 8, ..Grpo::default() },
        rewards: RewardWeights::default(),
    }
}

fn ascii_share(tokens: &[u32]) -> f64 {
    tokens.iter().filter(|&&t| t < 128).count() as f64 / tokens.len().max(1) as f64
}

#[test]
fn grpo_steps_raise_the_mean_reward_of_a_toy_task() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_text(dir.path(), TinyTextArch::Llama, 11).unwrap();
    let model = Decoder::load(dir.path(), DType::F32).unwrap();
    let generator = model.detached();
    let steps = 40;
    let config = config(steps);
    let settings = AdamWSettings { lr: config.optim.lr, ..AdamWSettings::default() };
    let mut optimizer = AdamW::new(settings, Schedule { warmup: 2, total: steps, min_ratio: 1.0 }, model.vars().len());
    let sampling =
        SampleSettings { temperature: 1.0, top_p: 1.0, max_tokens: config.grpo.max_completion, ignore_eos: false };
    let prompts: [&[u32]; 2] = [&[257, 72, 105, 258, 10], &[257, 79, 107, 63, 258, 10]];
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut means = Vec::new();
    for step in 0..steps {
        let mut groups = Vec::new();
        for prompt in prompts {
            let samples = sample_group(&generator, prompt, config.grpo.group, &sampling, &mut rng).unwrap();
            groups.push(
                samples
                    .into_iter()
                    .map(|s| ScoredRollout {
                        parts: RewardParts { judge: ascii_share(&s.tokens), ..Default::default() },
                        rollout: Rollout {
                            item_id: "toy".into(),
                            prompt: prompt.to_vec(),
                            truncated: !s.finished,
                            completion: s.tokens,
                            logprobs: s.logprobs,
                            sampling_entropy: s.entropy_sum,
                            text: String::new(),
                        },
                    })
                    .collect::<Vec<_>>(),
            );
        }
        let log = update(&model, None, &mut optimizer, &groups, &(&config).into(), step).unwrap();
        assert!(log.loss.is_finite() && log.grad_norm.is_finite(), "{log:?}");
        means.push(log.reward_mean);
    }
    let first: f64 = means[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = means[steps - 5..].iter().sum::<f64>() / 5.0;
    assert!(last > first + 0.25 && last > 0.8, "mean reward {first:.3} → {last:.3}: {means:?}");
}
