//! The training loop of `enf train`: per optimizer step, rollouts through
//! the pipeline (the node's own plugin, the policy behind its model), then
//! rewards and group advantages, then forward/backward over micro-batches
//! with gradient accumulation, one AdamW step, a line in the step log, and
//! a checkpoint every so often; at the end the export `enf run` serves.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;
use enf_kit::verdict::Verdict;
use tracing_indicatif::span_ext::IndicatifSpanExt;

use super::TrainError;
use super::chat::ChatTokenizer;
use super::checkpoint::{self, CheckpointState};
use super::config::{Stage, TrainConfig};
use super::decoder::Decoder;
use super::draws::step_candidates;
use super::export::{Exported, export};
use super::fingerprint::Fingerprint;
use super::generate::SampleSettings;
use super::optimizer::{AdamW, AdamWSettings, Schedule};
use super::rollout::{Answering, PolicyBackend, Rollout};
use super::step::{ScoredRollout, has_spread, update};
use crate::data::{Dataset, Item};
use crate::eval::rouge::ReasonScorer;
use crate::eval::score;
use crate::graph::Graph;
use crate::inference::{BackendRegistry, CachedBackend, start_backend};
use crate::run::{ItemRecord, Pipeline, PipelineOptions, RunContext, run_item};

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the latest checkpoint in the output directory.
    pub resume: bool,
    /// Output directory overriding the configuration's.
    pub out: Option<PathBuf>,
    /// Compiled-plugin cache.
    pub cache_dir: Option<PathBuf>,
    /// Inference cache for the nodes not under training (their answers do not change).
    pub inference_cache: Option<PathBuf>,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Optimizer steps done in all (resumed ones included).
    pub steps: usize,
    /// Steps done by this invocation.
    pub steps_run: usize,
    /// The export.
    pub exported: Exported,
    /// The step log.
    pub log: PathBuf,
    /// Mean reward (or SFT loss) of the first and last step run.
    pub first_and_last: Option<(f64, f64)>,
}

/// Reads the SFT targets file: one `{"item_id", "target"}` per line.
fn read_targets(path: &Path) -> Result<HashMap<String, String>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
    let mut targets = HashMap::new();
    for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        #[derive(serde::Deserialize)]
        struct Target {
            item_id: String,
            target: String,
        }
        let target: Target = serde_json::from_str(line)
            .map_err(|e| TrainError::Config(format!("{}:{}: not an SFT target: {e}", path.display(), index + 1)))?;
        targets.insert(target.item_id, target.target);
    }
    Ok(targets)
}

/// Refuses to resume from a checkpoint of another data set or starting
/// model; warns when only the configuration changed.
fn check_resumable(dir: &Path, state: &CheckpointState, now: &Fingerprint) -> Result<(), TrainError> {
    for (what, then, now) in
        [("data set", &state.data_hash, &now.data), ("starting model", &state.model_hash, &now.model)]
    {
        match then {
            Some(then) if then != now => {
                return Err(TrainError::Config(format!(
                    "--resume refused: the {what} changed since {} was written (hash {then}, now {now}); \
                     train into another --out, or restore the {what}",
                    dir.display()
                )));
            }
            Some(_) => {}
            None => tracing::warn!("{} does not record the {what}'s hash; resuming without checking it", dir.display()),
        }
    }
    if state.config_fingerprint != now.config {
        tracing::warn!("the configuration or the seed changed since {} was written; resuming anyway", dir.display());
    }
    Ok(())
}

/// Runs `config` (see the module docs).
pub async fn train(config: &TrainConfig, options: &TrainOptions) -> Result<TrainReport, TrainError> {
    let out = options.out.clone().unwrap_or_else(|| config.out.clone());
    std::fs::create_dir_all(&out).map_err(|e| TrainError::file(&out, e))?;
    let checkpoints = out.join("checkpoints");
    let existing = checkpoint::latest(&checkpoints)?;
    if existing.is_some() && !options.resume {
        return Err(TrainError::Config(format!(
            "{} already holds checkpoints: pass --resume to continue, or choose another --out",
            out.display()
        )));
    }

    let dataset = Dataset::load(&config.data).map_err(|e| TrainError::Config(e.to_string()))?;
    let mut items = dataset.items().map_err(|e| TrainError::Config(e.to_string()))?;
    if let Some(limit) = config.limit {
        items.truncate(limit);
    }
    let targets = match config.stage {
        Stage::Sft => {
            let targets = read_targets(&config.sft_targets)?;
            let before = items.len();
            items.retain(|i| targets.contains_key(&i.item_id));
            if items.len() < before {
                tracing::warn!("{} item(s) have no SFT target and are left out", before - items.len());
            }
            Some(Arc::new(targets))
        }
        _ => None,
    };
    if items.is_empty() {
        return Err(TrainError::Config(format!("{}: no items to train on", config.data.display())));
    }

    let graph = Graph::load(&config.graph).map_err(|e| TrainError::Config(e.to_string()))?;
    let node = graph.node_index(&config.node).map(|i| graph.nodes[i].clone()).ok_or_else(|| {
        let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
        TrainError::Config(format!(
            "{}: node `{}` is not in {} (its nodes: {})",
            config.path.display(),
            config.node,
            config.graph.display(),
            names.join(", ")
        ))
    })?;
    let alias = node.model.clone().ok_or_else(|| {
        TrainError::Config(format!("{}: node `{}` declares no model to train", config.graph.display(), node.name))
    })?;
    let manifest = graph
        .models
        .iter()
        .find(|m| m.alias == alias)
        .map(|m| m.manifest.clone())
        .ok_or_else(|| TrainError::Config(format!("model alias `{alias}` is not declared")))?;

    let device = config.device.open()?;
    let mut model = Decoder::load_on(&config.model_dir, DType::F32, &device)?;
    if let Some(lora) = &config.lora {
        model = model.with_lora(lora, config.seed)?;
    }
    let tokenizer = Arc::new(ChatTokenizer::load(&config.model_dir)?);
    // The KL term's reference: under LoRA the base weights with the adapters
    // off (shared, no copy); in full fine-tuning a frozen copy of the start.
    let reference = match (config.grpo.beta > 0.0 && config.stage != Stage::Sft, model.adapters_off()) {
        (false, _) => None,
        (true, Some(base)) => Some(base),
        (true, None) => Some(Decoder::load_on(&config.model_dir, DType::F32, &device)?.detached()),
    };
    tracing::info!(
        trainable_parameters = model.parameter_count(),
        items = items.len(),
        device = %config.device,
        "training node `{}` of {} ({:?})",
        node.name,
        config.graph.display(),
        config.stage
    );

    let frozen = start_backend(&manifest).await.map_err(|e| TrainError::Config(format!("model `{alias}`: {e}")))?;
    // The other nodes' answers do not change, and each item runs G times: they
    // are computed once — in DIR, shared with `enf run --inference-cache DIR`
    // and later training runs, else in a directory that lives as long as this run.
    let scratch;
    let cache_dir: &Path = match &options.inference_cache {
        Some(dir) => dir,
        None => {
            scratch = tempfile::tempdir().map_err(|e| TrainError::file(&std::env::temp_dir(), e))?;
            scratch.path()
        }
    };
    let frozen: Arc<dyn crate::inference::Backend> =
        Arc::new(CachedBackend::for_manifest(frozen, cache_dir, &manifest, Arc::default()));
    let policy = Arc::new(PolicyBackend::new(&node.name, model.detached(), tokenizer.clone(), frozen));
    let registry = BackendRegistry::new();
    registry.put(&manifest, policy.clone()).await;
    let pipeline_options =
        PipelineOptions { cache_dir: options.cache_dir.clone(), concurrency: 1, inference_cache: None };
    let pipeline =
        Pipeline::build(graph, &registry, &pipeline_options).await.map_err(|e| TrainError::Config(e.to_string()))?;
    let context = RunContext::new(Arc::new(pipeline), Arc::new(dataset));

    let total = config.total_steps(items.len());
    let settings = AdamWSettings {
        lr: config.optim.lr,
        weight_decay: config.optim.weight_decay,
        max_grad_norm: config.optim.max_grad_norm,
        ..AdamWSettings::default()
    };
    let schedule = Schedule { warmup: config.optim.warmup, total, min_ratio: config.optim.min_lr_ratio };
    let mut optimizer = AdamW::new(settings, schedule, model.vars().len());
    let fingerprint = Fingerprint::of(config)?;
    let mut start = 0;
    if let Some(dir) = existing {
        let state = checkpoint::load(&dir, &model, &mut optimizer)?;
        check_resumable(&dir, &state, &fingerprint)?;
        start = state.step;
        tracing::info!(step = start, "resumed from {}", dir.display());
    }
    let log = out.join("train-log.jsonl");
    let mut log_file = open_log(&log, start)?;

    let span = tracing::info_span!("train", indicatif.pb_show = tracing::field::Empty);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps, {elapsed} elapsed, ETA {eta}")
    {
        span.pb_set_style(&style);
    }
    span.pb_set_length(total as u64);
    span.pb_set_position(start as u64);
    span.pb_set_message(&format!("{:?} {}", config.stage, node.name));
    let _entered = span.enter();

    let scorer = ReasonScorer::new();
    let mut first_and_last: Option<(f64, f64)> = None;
    for step in start..total {
        let started = Instant::now();
        let wanted = config.items_per_step();
        let draw_factor = if config.stage == Stage::Sft { 1 } else { config.grpo.dynamic_sampling };
        let candidates = step_candidates(items.len(), wanted, step, config.seed, draw_factor);
        let (answering, runs) = match &targets {
            Some(targets) => (Answering::Targets(targets.clone()), 1),
            None => (
                Answering::Sample {
                    group: config.grpo.group,
                    settings: SampleSettings {
                        temperature: config.grpo.temperature,
                        top_p: config.grpo.top_p,
                        max_tokens: config.grpo.max_completion,
                        ignore_eos: false,
                    },
                    seed: config.seed.wrapping_mul(1_000_003).wrapping_add(step as u64),
                },
                config.grpo.group,
            ),
        };
        policy.answer_with(answering);
        // With dynamic sampling, groups whose rewards are all alike are set
        // aside while other items remain to be drawn; they fill the step
        // only if too few groups with spread were found.
        let (mut groups, mut set_aside): (Vec<Vec<ScoredRollout>>, Vec<Vec<ScoredRollout>>) = (Vec::new(), Vec::new());
        for &index in &candidates {
            if groups.len() >= wanted {
                break;
            }
            let item = Arc::new(items[index].clone());
            let group = rollouts_for(&context, &policy, &item, runs, config, &scorer).await?;
            if draw_factor > 1 && !has_spread(&group) {
                set_aside.push(group);
            } else {
                groups.push(group);
            }
        }
        let mut all_drawn = None;
        if draw_factor > 1 {
            all_drawn = Some(groups.iter().chain(&set_aside).cloned().collect::<Vec<_>>());
            let missing = wanted.saturating_sub(groups.len());
            groups.extend(set_aside.drain(..missing.min(set_aside.len())));
        }
        let generation_s = started.elapsed().as_secs_f64();
        let mut line = update(&model, reference.as_ref(), &mut optimizer, &groups, &config.into(), step)?;
        if let Some(all) = &all_drawn {
            line.describe_rollouts(all, false); // the step's rollouts, not only those trained
        }
        line.time_generation_s = generation_s;
        line.time_total_s = started.elapsed().as_secs_f64();
        line.tokens_per_s = line.tokens as f64 / line.time_total_s.max(1e-9);
        let headline = if config.stage == Stage::Sft { line.loss } else { line.reward_mean };
        first_and_last = Some((first_and_last.map_or(headline, |(f, _)| f), headline));
        let text = serde_json::to_string(&line).map_err(|e| TrainError::file(&log, e))?;
        writeln!(log_file, "{text}").and_then(|()| log_file.flush()).map_err(|e| TrainError::file(&log, e))?;
        tracing::info!(step = step + 1, loss = line.loss, reward = line.reward_mean, "step done");
        span.pb_inc(1);
        let done = step + 1;
        if done % config.checkpoint_every == 0 || done == total {
            let state = CheckpointState {
                step: done,
                config_fingerprint: fingerprint.config.clone(),
                data_hash: Some(fingerprint.data.clone()),
                model_hash: Some(fingerprint.model.clone()),
            };
            checkpoint::save(&checkpoints, &model, &optimizer, &state)?;
        }
    }
    let suffix = format!("{:?}", config.stage).to_lowercase();
    let exported = export(&out, &model, &config.model_dir, &config.graph, &node.name, &manifest.path, &suffix)?;
    Ok(TrainReport { steps: total, steps_run: total - start, exported, log, first_and_last })
}

/// Opens the step log for appending, keeping only lines of steps ≤ `start`
/// (a resumed run rewrites what came after its checkpoint).
fn open_log(path: &Path, start: usize) -> Result<std::fs::File, TrainError> {
    let kept: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| (s as usize) <= start)
        })
        .map(str::to_string)
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    super::checkpoint::write_atomically(path, text.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(path).map_err(|e| TrainError::file(path, e))
}

/// Why the trained node has no answer in `record`: its own error, with the
/// first other node's that ran and failed (the root cause of a skip: a
/// skipped node made no attempt).
fn failure(record: &ItemRecord, node: &str) -> String {
    let own = record.nodes.get(node).and_then(|n| n.error.clone());
    let root = record.nodes.iter().find_map(|(name, n)| {
        n.error.as_ref().filter(|_| name != node && n.attempts > 0).map(|e| format!("node `{name}`: {e}"))
    });
    match (own, root) {
        (Some(own), Some(root)) => format!("{own} ({root})"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => "it did not ask the model".into(),
    }
}

/// Runs `item` through the pipeline `runs` times and pairs each answer the
/// trained node got with the verdict its agent made of it. In a sampling
/// step a first run captures the node's prompt and the group is drawn
/// outside the pipeline (see [`super::rollout`]). A run whose trained node
/// got no answer, or failed on the one it got, stops the step with the
/// item and the reason: a reward of 0 for a failure would teach the policy
/// about the failure, not about its answer.
async fn rollouts_for(
    context: &RunContext,
    policy: &PolicyBackend,
    item: &Arc<Item>,
    runs: usize,
    config: &TrainConfig,
    scorer: &ReasonScorer,
) -> Result<Vec<ScoredRollout>, TrainError> {
    let failed = |why: String| TrainError::Rollout(format!("item `{}`: node `{}`: {why}", item.item_id, config.node));
    if config.stage != Stage::Sft {
        let record = run_item(context.clone(), item.clone()).await;
        policy.take_recorded();
        if !policy.sample_captured(&item.item_id)? {
            return Err(failed(format!("no prompt to sample for: {}", failure(&record, &config.node))));
        }
    }
    let truth = score::Truth {
        negative: item.truth.negative,
        reason_class: item.truth.reason_class,
        reason_text: item.truth.reason_text.as_deref(),
    };
    let mut group = Vec::with_capacity(runs);
    for run in 1..=runs {
        let record = run_item(context.clone(), item.clone()).await;
        let mut answers: Vec<Rollout> = policy.take_recorded();
        let Some(rollout) = answers.pop() else {
            return Err(failed(format!("run {run} of {runs} got no answer: {}", failure(&record, &config.node))));
        };
        if !answers.is_empty() {
            return Err(failed(format!(
                "asked the model {} times in one run; a trained agent must ask once per run",
                answers.len() + 1
            )));
        }
        if !record.nodes.get(&config.node).is_some_and(|n| n.ok) {
            return Err(failed(format!(
                "run {run} of {runs} failed on its answer: {}",
                failure(&record, &config.node)
            )));
        }
        let parts = match config.stage.scheme() {
            Some(scheme) => {
                let verdict = record
                    .verdict(&config.node)
                    .map_err(|_| {
                        failed("its output has no `verdict`: only agents that output a verdict can be trained with rewards".into())
                    })
                    .and_then(|v| {
                        serde_json::from_value::<Verdict>(v.clone())
                            .map_err(|e| failed(format!("its `verdict` is not a verdict: {e}")))
                    })?;
                super::rewards::reward(&rollout.text, &verdict, &truth, scheme, &config.rewards, scorer)
            }
            None => Default::default(),
        };
        group.push(ScoredRollout { rollout, parts });
    }
    Ok(group)
}
