//! Sampling a group of completions for one prompt with the trainer's own
//! decoder and a KV cache: the prompt is prefilled once, its cache repeated
//! for the G samples into preallocated buffers written in place, and the
//! samples then decode together as one batch. Each sample
//! records its tokens and their log-probabilities under the distribution it
//! was drawn from — softmax of logits / T, natural log: the π_old of the
//! GRPO ratio, which the update takes at the same temperature — and that
//! distribution's entropy where each was drawn, seeded per call. Top-p is
//! not in the log-probabilities (the nucleus is a sampling filter, as in
//! TRL): with top-p < 1 the samples come from the truncated distribution
//! while the ratio compares the full ones, a bias that grows with the mass
//! cut off.

use candle_core::{DType, Tensor};
use rand::Rng;
use rand::rngs::StdRng;

use super::decoder::{Decoder, KvCache};

/// How completions are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleSettings {
    /// Softmax temperature; 0 decodes greedily.
    pub temperature: f32,
    /// Nucleus mass; 1 disables.
    pub top_p: f32,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Keep decoding past end-of-sequence tokens (benchmarks: fixed lengths).
    pub ignore_eos: bool,
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Completion tokens, the end-of-sequence token included when reached.
    pub tokens: Vec<u32>,
    /// Log-probability of each token under the policy at the sampling
    /// temperature (softmax of logits / T; T = 1 when decoding greedily).
    pub logprobs: Vec<f32>,
    /// Sum over the tokens of the policy's entropy (nats, at the sampling temperature)
    /// where each was drawn: how sure the policy was of what it wrote.
    pub entropy_sum: f32,
    /// Whether it ended with an end-of-sequence token (else: truncated).
    pub finished: bool,
}

/// Draws one token index from `logits` (f32, one row).
fn draw(logits: &[f32], settings: &SampleSettings, rng: &mut StdRng) -> u32 {
    if settings.temperature <= 0.0 {
        return argmax(logits);
    }
    let scaled: Vec<f32> = logits.iter().map(|l| l / settings.temperature).collect();
    let max = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f32)> = scaled.iter().enumerate().map(|(i, l)| (i as u32, (l - max).exp())).collect();
    let total: f32 = probs.iter().map(|(_, p)| p).sum();
    probs.iter_mut().for_each(|(_, p)| *p /= total);
    if settings.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut mass = 0.0;
        let keep = probs
            .iter()
            .position(|(_, p)| {
                mass += p;
                mass >= settings.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
    }
    let total: f32 = probs.iter().map(|(_, p)| p).sum();
    let mut pick = rng.random::<f32>() * total;
    for &(id, p) in &probs {
        if pick < p {
            return id;
        }
        pick -= p;
    }
    probs.last().map_or(0, |(id, _)| *id)
}

fn argmax(values: &[f32]) -> u32 {
    values.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
        as u32
}

/// Natural-log softmax probability of `token` in `logits`, and the
/// entropy of that softmax (nats).
fn logprob_and_entropy(logits: &[f32], token: u32) -> (f32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut total, mut weighted) = (0.0f64, 0.0f64);
    for &l in logits {
        let p = f64::from(l - max).exp();
        total += p;
        weighted += p * f64::from(l - max);
    }
    let lse = total.ln();
    // H = lse − Σ p·(l − max) / Σ p, all shifted by the maximum.
    let entropy = (lse - weighted / total) as f32;
    (logits[token as usize] - max - lse as f32, entropy.max(0.0))
}

/// Samples `count` completions of `prompt` (see the module docs). `model`
/// should be [`Decoder::detached`] so that no autograd graph is built.
pub fn sample_group(
    model: &Decoder,
    prompt: &[u32],
    count: usize,
    settings: &SampleSettings,
    rng: &mut StdRng,
) -> candle_core::Result<Vec<Sample>> {
    let mut samples =
        vec![Sample { tokens: Vec::new(), logprobs: Vec::new(), entropy_sum: 0.0, finished: false }; count];
    if count == 0 || settings.max_tokens == 0 || prompt.is_empty() {
        return Ok(samples);
    }
    let eos = &model.config.eos_tokens;
    let temperature = if settings.temperature > 0.0 { settings.temperature } else { 1.0 };
    let mut cache = KvCache::default();
    let first = model.step(&Tensor::new(prompt, model.device())?.unsqueeze(0)?, &mut cache)?;
    let mut cache = cache.repeat_batch_preallocated(count, prompt.len() + settings.max_tokens)?;
    let mut logits: Vec<Vec<f32>> = vec![first.to_dtype(DType::F32)?.squeeze(0)?.to_vec1::<f32>()?; count];
    for _ in 0..settings.max_tokens {
        let mut next = Vec::with_capacity(count);
        for (sample, row) in samples.iter_mut().zip(&logits) {
            if sample.finished {
                next.push(eos.first().copied().unwrap_or(0));
                continue;
            }
            let token = draw(row, settings, rng);
            sample.tokens.push(token);
            let scaled: Vec<f32> = row.iter().map(|l| l / temperature).collect();
            let (logprob, entropy) = logprob_and_entropy(&scaled, token);
            sample.logprobs.push(logprob);
            sample.entropy_sum += entropy;
            sample.finished = !settings.ignore_eos && eos.contains(&token);
            next.push(token);
        }
        if samples.iter().all(|s| s.finished) || samples.iter().all(|s| s.tokens.len() >= settings.max_tokens) {
            break;
        }
        let step = model.step(&Tensor::new(next.as_slice(), model.device())?.unsqueeze(1)?, &mut cache)?;
        logits = step.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_takes_the_maximum_and_top_p_keeps_the_nucleus() {
        let mut rng = StdRng::seed_from_u64(0);
        let greedy = SampleSettings { temperature: 0.0, top_p: 1.0, max_tokens: 1, ignore_eos: false };
        assert_eq!(draw(&[0.1, 3.0, -1.0], &greedy, &mut rng), 1);
        // With top-p 0.5 only the dominant token survives.
        let nucleus = SampleSettings { temperature: 1.0, top_p: 0.5, max_tokens: 1, ignore_eos: false };
        for _ in 0..50 {
            assert_eq!(draw(&[0.0, 5.0, 0.0, 0.0], &nucleus, &mut rng), 1);
        }
        // Without it every token is drawn sometimes.
        let open = SampleSettings { temperature: 1.0, top_p: 1.0, max_tokens: 1, ignore_eos: false };
        let mut seen = [false; 3];
        for _ in 0..300 {
            seen[draw(&[0.0, 0.5, 0.2], &open, &mut rng) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn log_probability_and_entropy_are_those_of_the_softmax() {
        let (logprob, entropy) = logprob_and_entropy(&[0.0, 0.0], 1);
        assert!((logprob - 0.5f32.ln()).abs() < 1e-6);
        assert!((entropy - 2f32.ln()).abs() < 1e-6, "uniform over two: ln 2, got {entropy}");
        let logits = [1.0f32, -2.0, 0.5, 3.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let p: Vec<f64> = logits.iter().map(|&l| f64::from(l).exp() / z).collect();
        let expected: f64 = -p.iter().map(|q| q * q.ln()).sum::<f64>();
        let (logprob, entropy) = logprob_and_entropy(&logits, 2);
        assert!((f64::from(logprob) - p[2].ln()).abs() < 1e-5);
        assert!((f64::from(entropy) - expected).abs() < 1e-5, "{entropy} vs {expected}");
        // A near-certain policy has entropy near zero, never below.
        let (_, sure) = logprob_and_entropy(&[0.0, 60.0, 0.0], 1);
        assert!((0.0..1e-6).contains(&sure), "{sure}");
    }
}
