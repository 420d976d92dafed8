//! The trainable decoder's contract, on the tiny generated models: every
//! weight receives a gradient (no fused op silently drops it), autograd
//! agrees with finite differences in f64, padding changes nothing, and the
//! KV-cache generation path computes the same log-probabilities as the
//! training forward.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;

use super::decoder::Decoder;
use super::generate::{SampleSettings, sample_group};
use super::optimizer::Accumulated;
use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};

fn tiny(arch: TinyTextArch, dtype: DType) -> (tempfile::TempDir, Decoder) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_text(dir.path(), arch, 7).unwrap();
    let model = Decoder::load(dir.path(), dtype).unwrap();
    (dir, model)
}

/// Sum of the log-probs of every next token of two right-padded sequences.
fn batch_logprob(model: &Decoder) -> Tensor {
    let rows: [&[u32]; 2] = [&[257, 10, 20, 30, 40, 50], &[257, 60, 70, 258]];
    let l = rows[0].len();
    let mut ids = Vec::new();
    let mut valid = Vec::new();
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (b, row) in rows.iter().enumerate() {
        for t in 0..l {
            ids.push(row.get(t).copied().unwrap_or(0));
            valid.push(if t < row.len() { 1u32 } else { 0 });
        }
        for t in 1..row.len() {
            positions.push((b * l + t - 1) as u32);
            targets.push(row[t]);
        }
    }
    let ids = Tensor::from_vec(ids, (2, l), &Device::Cpu).unwrap();
    let valid = Tensor::from_vec(valid, (2, l), &Device::Cpu).unwrap();
    let hidden = model.hidden_states(&ids, Some(&valid)).unwrap();
    model.token_logprobs(&hidden, &positions, &targets, 1.0).unwrap().0.sum_all().unwrap()
}

#[test]
fn every_weight_receives_a_gradient() {
    for arch in [TinyTextArch::Llama, TinyTextArch::Qwen2] {
        let (_dir, model) = tiny(arch, DType::F32);
        let loss = batch_logprob(&model).neg().unwrap();
        let mut grads = Accumulated::default();
        grads.add(model.vars(), loss.backward().unwrap()).unwrap();
        let missing = grads.without_gradient(model.vars()).unwrap();
        assert!(missing.is_empty(), "{arch:?}: no gradient for {missing:?}");
        assert!(model.vars().len() >= 20);
    }
}

#[test]
fn gradients_match_finite_differences_in_f64() {
    let (_dir, model) = tiny(TinyTextArch::Qwen2, DType::F64);
    let loss = batch_logprob(&model);
    let grads = loss.backward().unwrap();
    let h = 1e-6;
    // One entry of each kind of weight: embedding, attention, bias, norms, MLP, head.
    for name in [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.bias",
        "model.layers.0.input_layernorm.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        let (_, var) = model.vars().iter().find(|(n, _)| n == name).unwrap();
        let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let original = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // The entry with the largest gradient, so the check is not of a near-zero.
        let index = (0..analytic.len()).max_by(|&a, &b| analytic[a].abs().total_cmp(&analytic[b].abs())).unwrap();
        let at = |delta: f64| {
            let mut values = original.clone();
            values[index] += delta;
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
            batch_logprob(&model.detached()).to_scalar::<f64>().unwrap()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        at(0.0);
        let error = (numeric - analytic[index]).abs() / analytic[index].abs().max(1e-8);
        assert!(error < 1e-5, "{name}[{index}]: autograd {} vs finite difference {numeric}", analytic[index]);
    }
}

#[test]
fn padding_does_not_change_a_sequence() {
    let (_dir, model) = tiny(TinyTextArch::Llama, DType::F32);
    let row = [257u32, 60, 70, 258];
    let alone = {
        let ids = Tensor::new(&row, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let hidden = model.hidden_states(&ids, None).unwrap();
        model.token_logprobs(&hidden, &[0, 1, 2], &row[1..], 1.0).unwrap().0.to_vec1::<f32>().unwrap()
    };
    let padded = {
        let ids = Tensor::new(&[[257u32, 60, 70, 258, 0, 0], [257, 1, 2, 3, 4, 5]], &Device::Cpu).unwrap();
        let valid = Tensor::new(&[[1u32, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
        let hidden = model.hidden_states(&ids, Some(&valid)).unwrap();
        model.token_logprobs(&hidden, &[0, 1, 2], &row[1..], 1.0).unwrap().0.to_vec1::<f32>().unwrap()
    };
    for (a, b) in alone.iter().zip(&padded) {
        assert!((a - b).abs() < 1e-5, "{alone:?} vs {padded:?}");
    }
}

#[test]
fn generation_logprobs_equal_the_training_forward() {
    for (arch, temperature) in [(TinyTextArch::Llama, 1.0), (TinyTextArch::Qwen2, 1.0), (TinyTextArch::Qwen2, 0.6)] {
        let (_dir, model) = tiny(arch, DType::F32);
        let prompt = [257u32, 72, 101, 108, 108, 111, 258, 10];
        let settings = SampleSettings { temperature, top_p: 1.0, max_tokens: 12, ignore_eos: false };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let samples = sample_group(&model.detached(), &prompt, 3, &settings, &mut rng).unwrap();
        assert_eq!(samples.len(), 3);
        for sample in &samples {
            assert!(!sample.tokens.is_empty());
            let all: Vec<u32> = prompt.iter().chain(&sample.tokens).copied().collect();
            let ids = Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let hidden = model.hidden_states(&ids, None).unwrap();
            let positions: Vec<u32> = (0..sample.tokens.len()).map(|i| (prompt.len() - 1 + i) as u32).collect();
            let full = model
                .token_logprobs(&hidden, &positions, &sample.tokens, f64::from(temperature))
                .unwrap()
                .0
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in full.iter().zip(&sample.logprobs) {
                assert!((a - b).abs() < 1e-4, "{arch:?}: forward {full:?} vs generation {:?}", sample.logprobs);
            }
            // Both are the log-softmax of logits / T, computed here by hand.
            let logits = model.logits(&hidden.squeeze(0).unwrap()).unwrap().to_vec2::<f32>().unwrap();
            for (k, (&token, &logprob)) in sample.tokens.iter().zip(&sample.logprobs).enumerate() {
                let row: Vec<f64> =
                    logits[prompt.len() - 1 + k].iter().map(|&l| f64::from(l) / f64::from(temperature)).collect();
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                let expected = row[token as usize] - lse;
                assert!((f64::from(logprob) - expected).abs() < 1e-4, "T = {temperature}: {logprob} vs {expected}");
            }
        }
        // Seeded: the same seed draws the same samples.
        let mut again = rand::rngs::StdRng::seed_from_u64(3);
        assert_eq!(samples, sample_group(&model.detached(), &prompt, 3, &settings, &mut again).unwrap());
    }
}

#[test]
fn lora_trains_only_its_adapters_and_merges_into_the_export() {
    use super::lora::LoraSettings;
    use super::optimizer::{AdamW, AdamWSettings, Schedule};
    let (dir, model) = tiny(TinyTextArch::Qwen2, DType::F32);
    let settings =
        LoraSettings { rank: 4, alpha: 8.0, targets: ["q_proj", "v_proj", "down_proj"].map(String::from).to_vec() };
    let model = model.with_lora(&settings, 1).unwrap();
    assert_eq!(model.vars().len(), 2 * 3 * 2, "A and B for 3 targets in 2 layers");
    assert!(model.vars().iter().all(|(n, _)| n.contains(".lora_A.") || n.contains(".lora_B.")));
    let before = batch_logprob(&model).to_scalar::<f32>().unwrap();
    let base_before = batch_logprob(&Decoder::load(dir.path(), DType::F32).unwrap()).to_scalar::<f32>().unwrap();
    assert!((before - base_before).abs() < 1e-5, "B = 0: the adapted model starts as the base model");
    // B starts at zero, so A's first gradient is zero (as in PEFT); after one
    // step every adapter matrix gets a gradient.
    let mut adam = AdamW::new(
        AdamWSettings { lr: 1e-2, ..AdamWSettings::default() },
        Schedule { warmup: 0, total: 10, min_ratio: 1.0 },
        model.vars().len(),
    );
    // Frozen weights never hold a gradient: nothing in the store is shaped
    // like a frozen weight (or its transpose, the product's input).
    let store = batch_logprob(&model).neg().unwrap().backward().unwrap();
    let frozen: Vec<Vec<usize>> = model
        .weights
        .iter()
        .filter(|(_, w)| w.rank() == 2)
        .flat_map(|(_, w)| [w.dims().to_vec(), w.t().unwrap().dims().to_vec()])
        .collect();
    for id in store.get_ids() {
        let grad = store.get_id(*id).unwrap();
        assert!(!frozen.contains(&grad.dims().to_vec()), "a gradient shaped {:?} like a frozen weight", grad.dims());
    }
    drop(store);
    for _ in 0..2 {
        let mut grads = Accumulated::default();
        grads.add(model.vars(), batch_logprob(&model).neg().unwrap().backward().unwrap()).unwrap();
        adam.apply(model.vars(), &grads).unwrap();
        let missing = grads.without_gradient(model.vars()).unwrap();
        if adam.step == 2 {
            assert!(missing.is_empty(), "no gradient for {missing:?}");
        }
    }
    let trained = batch_logprob(&model).to_scalar::<f32>().unwrap();
    assert!(trained > before, "two steps raise the log-likelihood: {before} → {trained}");
    // With the adapters off, the trained model is the base model again (the
    // KL reference): the same numbers as a fresh load.
    let reference = model.adapters_off().expect("a LoRA model has a base");
    assert!(reference.vars().is_empty(), "the reference trains nothing");
    let reference_value = batch_logprob(&reference).to_scalar::<f32>().unwrap();
    assert!((reference_value - base_before).abs() < 1e-5, "reference {reference_value} vs base {base_before}");
    assert!(Decoder::load(dir.path(), DType::F32).unwrap().adapters_off().is_none(), "no adapters, no base view");
    // The adapters alone, in PEFT's layout (benches/peft_adapter.sh loads them with PEFT).
    let adapter = tempfile::tempdir().unwrap();
    assert!(model.save_peft_adapter(adapter.path(), dir.path()).unwrap());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.path().join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["peft_type"].as_str(), config["r"].as_u64(), config["lora_alpha"].as_f64()),
        (Some("LORA"), Some(4), Some(8.0))
    );
    assert_eq!(config["target_modules"], serde_json::json!(["q_proj", "v_proj", "down_proj"]));
    let saved = candle_core::safetensors::load(adapter.path().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(saved.len(), model.vars().len());
    for (name, var) in model.vars() {
        let tensor = &saved[&format!("base_model.model.{name}")];
        let diff = (tensor - var.as_tensor()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
    // The export merges the adapters: loading it as a plain model gives the same numbers.
    let out = tempfile::tempdir().unwrap();
    for file in ["config.json", "generation_config.json"] {
        std::fs::copy(dir.path().join(file), out.path().join(file)).unwrap();
    }
    model.save(&out.path().join("model.safetensors")).unwrap();
    let merged = Decoder::load(out.path(), DType::F32).unwrap();
    let merged_value = batch_logprob(&merged).to_scalar::<f32>().unwrap();
    assert!((merged_value - trained).abs() < 1e-4, "merged {merged_value} vs adapted {trained}");
}
