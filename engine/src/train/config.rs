//! `enf train CONFIG.toml`: the training configuration, checked like a
//! graph file — every problem is reported at once with its file and line.
//! Paths are relative to the configuration file. See `docs/training.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::TrainError;
use super::lora::{LORA_MODULES, LoraSettings};
use super::rewards::{RewardScheme, RewardWeights};
use crate::problems::{Problems, describe_toml_error};

/// Which stage to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Cross-entropy on chain-of-thought targets (the cold start).
    Sft,
    /// GRPO with one flat reward (attitude only): the ablation.
    Grpo,
    /// GRPO with the stepwise reward ladder (the paper's S-GRPO).
    Sgrpo,
}

impl Stage {
    /// The reward scheme of a reinforcement stage (`None` for SFT).
    pub fn scheme(self) -> Option<RewardScheme> {
        match self {
            Stage::Sft => None,
            Stage::Grpo => Some(RewardScheme::Flat),
            Stage::Sgrpo => Some(RewardScheme::Stepwise),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    train: RawTrain,
    model: RawModel,
    #[serde(default)]
    optim: Optim,
    #[serde(default)]
    grpo: Grpo,
    #[serde(default)]
    rewards: RewardWeights,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrain {
    graph: Spanned<String>,
    node: Spanned<String>,
    data: Spanned<String>,
    stage: Stage,
    out: Spanned<String>,
    #[serde(default)]
    seed: u64,
    steps: Option<Spanned<usize>>,
    epochs: Option<Spanned<usize>>,
    #[serde(default = "one")]
    batch: usize,
    #[serde(default = "one")]
    grad_accum: usize,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default = "default_sft_targets")]
    sft_targets: String,
    #[serde(default)]
    checkpoint_every: Option<usize>,
    #[serde(default)]
    gradient_checkpointing: bool,
    #[serde(default)]
    device: Option<Spanned<String>>,
}

fn one() -> usize {
    1
}

fn default_sft_targets() -> String {
    "sft.jsonl".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    dir: Spanned<String>,
    #[serde(default)]
    fine_tuning: Option<Spanned<String>>,
    #[serde(default = "default_rank")]
    lora_rank: usize,
    #[serde(default)]
    lora_alpha: Option<f64>,
    #[serde(default)]
    lora_targets: Option<Spanned<Vec<String>>>,
}

fn default_rank() -> usize {
    16
}

/// Optimizer and schedule.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optim {
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up optimizer steps.
    pub warmup: usize,
    /// Final learning rate as a share of the peak (1: constant after warm-up).
    pub min_lr_ratio: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm (0: no clipping).
    pub max_grad_norm: f64,
}

impl Default for Optim {
    fn default() -> Self {
        Self { lr: 1e-5, warmup: 0, min_lr_ratio: 0.1, weight_decay: 0.0, max_grad_norm: 1.0 }
    }
}

/// Rollouts and the policy loss.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grpo {
    /// Completions per item (G).
    pub group: usize,
    /// Sampling temperature of the rollouts.
    pub temperature: f32,
    /// Nucleus mass of the rollouts.
    pub top_p: f32,
    /// Longest completion in tokens (longer ones are cut and marked truncated).
    pub max_completion: usize,
    /// Lower clip ε.
    pub clip_low: f64,
    /// Upper clip ε.
    pub clip_high: f64,
    /// KL coefficient; 0 loads no reference model.
    pub beta: f64,
    /// Dynamic sampling (DAPO): a step may draw up to this many times its
    /// share of items, setting aside groups whose rewards are all equal
    /// until it has its share of groups with spread; 1 turns it off.
    pub dynamic_sampling: usize,
    /// Leave completions cut at `max_completion` out of the loss (TRL's
    /// option of the same name): a cut completion has no answer, so its
    /// reward says little about its tokens. They still count in their
    /// group's advantages.
    pub mask_truncated_completions: bool,
}

impl Default for Grpo {
    fn default() -> Self {
        Self {
            group: 8,
            temperature: 1.0,
            top_p: 1.0,
            max_completion: 256,
            clip_low: 0.2,
            clip_high: 0.28,
            beta: 0.0,
            dynamic_sampling: 1,
            mask_truncated_completions: false,
        }
    }
}

/// Where training runs (`[train] device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainDevice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA GPU number N (`"cuda"` is `"cuda:0"`).
    Cuda(usize),
}

impl TrainDevice {
    /// Reads `"cpu"`, `"cuda"` or `"cuda:N"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cpu" => Some(Self::Cpu),
            "cuda" => Some(Self::Cuda(0)),
            other => other.strip_prefix("cuda:")?.parse().ok().map(Self::Cuda),
        }
    }

    /// The candle device; a CUDA device on a build without CUDA is refused
    /// with how to get one.
    pub fn open(self) -> Result<candle_core::Device, TrainError> {
        match self {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            Self::Cuda(n) => candle_core::Device::new_cuda(n).map_err(|e| {
                TrainError::Config(format!(
                    "[train] device = \"cuda:{n}\": {e} (CUDA training needs a build made with `ENF_FEATURES=cuda .ci/setup` and a GPU)"
                ))
            }),
        }
    }
}

impl std::fmt::Display for TrainDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A checked training configuration.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The configuration file.
    pub path: PathBuf,
    /// The graph whose node is trained.
    pub graph: PathBuf,
    /// The node under training.
    pub node: String,
    /// The data set directory.
    pub data: PathBuf,
    /// SFT targets file (JSONL of `{item_id, target}`), for the SFT stage.
    pub sft_targets: PathBuf,
    /// Stage.
    pub stage: Stage,
    /// Output directory.
    pub out: PathBuf,
    /// Seed of data order and sampling.
    pub seed: u64,
    /// Optimizer steps (from `steps`, or `epochs` × items / batch).
    pub steps: Option<usize>,
    /// Epochs, when given instead of steps.
    pub epochs: Option<usize>,
    /// Items per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Use only the first N items of the data set.
    pub limit: Option<usize>,
    /// Write a checkpoint every N steps (default: 10, and always at the end).
    pub checkpoint_every: usize,
    /// Recompute each decoder layer in the backward pass instead of keeping
    /// its activations: less memory, a second forward pass of compute.
    pub gradient_checkpointing: bool,
    /// Where the trained model, its rollouts and its update run.
    pub device: TrainDevice,
    /// The Hugging Face model directory training starts from.
    pub model_dir: PathBuf,
    /// Low-rank adapters instead of full fine-tuning.
    pub lora: Option<LoraSettings>,
    /// Optimizer settings.
    pub optim: Optim,
    /// Rollout and loss settings.
    pub grpo: Grpo,
    /// Reward weights.
    pub rewards: RewardWeights,
}

impl TrainConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {}", path.display(), describe_toml_error(&text, &e))))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Problems::new(path, &text);
        let resolve = |s: &Spanned<String>| tidy(&base.join(s.get_ref()));
        let t = &raw.train;
        let graph = resolve(&t.graph);
        if !graph.is_file() {
            problems.at(Some(t.graph.span().start), None, format!("graph file {} does not exist", graph.display()));
        }
        let data = resolve(&t.data);
        if !data.is_dir() {
            problems.at(
                Some(t.data.span().start),
                None,
                format!("data set directory {} does not exist", data.display()),
            );
        }
        let model_dir = resolve(&raw.model.dir);
        if !model_dir.join("config.json").is_file() {
            problems.at(
                Some(raw.model.dir.span().start),
                None,
                format!("{} is not a Hugging Face model directory (no config.json)", model_dir.display()),
            );
        }
        let lora = match raw.model.fine_tuning.as_ref().map(|f| (f.get_ref().as_str(), f.span().start)) {
            None | Some(("full", _)) => None,
            Some(("lora", _)) => {
                let targets = raw
                    .model
                    .lora_targets
                    .as_ref()
                    .map_or_else(|| vec!["q_proj".to_string(), "v_proj".to_string()], |t| t.get_ref().clone());
                if let Some(spanned) = &raw.model.lora_targets {
                    for target in spanned.get_ref() {
                        if !LORA_MODULES.iter().any(|(m, _)| m == target) {
                            let known: Vec<&str> = LORA_MODULES.iter().map(|(m, _)| *m).collect();
                            problems.at(
                                Some(spanned.span().start),
                                None,
                                format!("unknown LoRA target `{target}` (known: {})", known.join(", ")),
                            );
                        }
                    }
                }
                if raw.model.lora_rank == 0 {
                    problems.at(text.find("lora_rank"), None, "`lora_rank` must be at least 1");
                }
                let rank = raw.model.lora_rank.max(1);
                Some(LoraSettings { rank, alpha: raw.model.lora_alpha.unwrap_or(2.0 * rank as f64), targets })
            }
            Some((other, at)) => {
                problems.at(Some(at), None, format!("fine_tuning `{other}` is not known (\"full\" or \"lora\")"));
                None
            }
        };
        match (&t.steps, &t.epochs) {
            (None, None) => problems.at(None, None, "[train] needs `steps` or `epochs`"),
            (Some(s), Some(_)) => problems.at(Some(s.span().start), None, "give `steps` or `epochs`, not both"),
            (Some(s), None) if *s.get_ref() == 0 => problems.at(Some(s.span().start), None, "steps must be at least 1"),
            (None, Some(e)) if *e.get_ref() == 0 => {
                problems.at(Some(e.span().start), None, "epochs must be at least 1")
            }
            _ => {}
        }
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                let offset = text.find(&format!("{key} ")).or_else(|| text.find(&format!("{key}=")));
                problems.at(offset, None, format!("`{key}` {message}"));
            }
        };
        check(t.batch >= 1, "batch", "must be at least 1");
        check(t.grad_accum >= 1, "grad_accum", "must be at least 1");
        check(raw.optim.lr > 0.0 && raw.optim.lr.is_finite(), "lr", "must be a positive number");
        check((0.0..=1.0).contains(&raw.optim.min_lr_ratio), "min_lr_ratio", "must be within 0..=1");
        check(
            raw.grpo.group >= 2 || t.stage == Stage::Sft,
            "group",
            "must be at least 2 (advantages compare completions)",
        );
        check(raw.grpo.temperature > 0.0, "temperature", "must be above 0 (rollouts sample)");
        check(raw.grpo.top_p > 0.0 && raw.grpo.top_p <= 1.0, "top_p", "must be within (0, 1]");
        check(raw.grpo.max_completion >= 1, "max_completion", "must be at least 1");
        check(raw.grpo.clip_low > 0.0 && raw.grpo.clip_low < 1.0, "clip_low", "must be within (0, 1)");
        check(raw.grpo.clip_high > 0.0, "clip_high", "must be above 0");
        check(raw.grpo.beta >= 0.0, "beta", "must be 0 or more");
        check(raw.grpo.dynamic_sampling >= 1, "dynamic_sampling", "must be at least 1 (1: off)");
        check(t.checkpoint_every != Some(0), "checkpoint_every", "must be at least 1");
        let device = match &t.device {
            None => TrainDevice::Cpu,
            Some(spanned) => TrainDevice::parse(spanned.get_ref()).unwrap_or_else(|| {
                problems.at(
                    Some(spanned.span().start),
                    None,
                    format!("device `{}` is not known (\"cpu\", \"cuda\" or \"cuda:N\")", spanned.get_ref()),
                );
                TrainDevice::Cpu
            }),
        };
        let sft_targets = data.join(&t.sft_targets);
        if t.stage == Stage::Sft && data.is_dir() && !sft_targets.is_file() {
            problems.at(
                Some(t.stage_offset(&text)),
                None,
                format!(
                    "stage `sft` needs targets: {} does not exist (`enf data synth` writes them)",
                    sft_targets.display()
                ),
            );
        }
        problems.finish().map_err(|e| {
            let lines: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
            TrainError::Config(format!("{} problem(s) in training config:\n  {}", lines.len(), lines.join("\n  ")))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            graph,
            node: t.node.get_ref().clone(),
            data,
            sft_targets,
            stage: t.stage,
            out: resolve(&t.out),
            seed: t.seed,
            steps: t.steps.as_ref().map(|s| *s.get_ref()),
            epochs: t.epochs.as_ref().map(|e| *e.get_ref()),
            batch: t.batch,
            grad_accum: t.grad_accum,
            limit: t.limit,
            checkpoint_every: t.checkpoint_every.unwrap_or(10),
            gradient_checkpointing: t.gradient_checkpointing,
            device,
            model_dir,
            lora,
            optim: raw.optim,
            grpo: raw.grpo,
            rewards: raw.rewards,
        })
    }

    /// Items per optimizer step.
    pub fn items_per_step(&self) -> usize {
        self.batch * self.grad_accum
    }

    /// Optimizer steps for a data set of `items` items.
    pub fn total_steps(&self, items: usize) -> usize {
        match (self.steps, self.epochs) {
            (Some(steps), _) => steps,
            (None, Some(epochs)) => (epochs * items).div_ceil(self.items_per_step()).max(1),
            (None, None) => 1,
        }
    }
}

impl RawTrain {
    fn stage_offset(&self, text: &str) -> usize {
        text.find("stage").unwrap_or(0)
    }
}

/// `path` with `.` dropped and each `..` folded into the component before it
/// (`examples/train/../../target/x` → `target/x`), so the paths the trainer
/// prints and writes read as a user would write them. Leading `..` stay.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() { PathBuf::from(".") } else { out.iter().collect() }
}

#[cfg(test)]
mod tidy_tests {
    use super::*;

    #[test]
    fn parent_components_fold_into_the_ones_before() {
        assert_eq!(tidy(Path::new("examples/train/../../target/x")), PathBuf::from("target/x"));
        assert_eq!(tidy(Path::new("./a/./b")), PathBuf::from("a/b"));
        assert_eq!(tidy(Path::new("../../m")), PathBuf::from("../../m"));
        assert_eq!(tidy(Path::new("/w/a/../b")), PathBuf::from("/w/b"));
        assert_eq!(tidy(Path::new("a/..")), PathBuf::from("."));
    }
}
