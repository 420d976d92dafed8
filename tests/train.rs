//! `enf train` end to end on a tiny generated text model (real mistral.rs
//! for the frozen nodes and for serving the result, real agents, real
//! synthetic data): the SFT stage lowers its loss on the agent's own
//! prompts and targets; S-GRPO steps run rollouts through the Reason agent
//! and log every part of the reward; the export is served by `enf run`
//! unchanged; a bad configuration is refused with file:line problems; and
//! a run killed with SIGKILL (while writing a checkpoint where the timing
//! allows) resumes to the same step count with a loadable checkpoint.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Workspace, shipped_graph, text};

/// A tiny llama model, its manifest and the ENF graph on it.
fn setup(ws: &Workspace) -> (PathBuf, PathBuf) {
    let manifest = ws.tiny_text_model();
    let graph = shipped_graph(ws, "enf", &manifest);
    let data = ws.path("data");
    let output = ws.enf(&["data", "synth", data.to_str().unwrap(), "--users", "2", "--seed", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    (graph, data)
}

fn config(ws: &Workspace, name: &str, graph: &Path, data: &Path, body: &str) -> PathBuf {
    config_with_model(ws, name, graph, data, body, "")
}

fn config_with_model(ws: &Workspace, name: &str, graph: &Path, data: &Path, body: &str, model_extra: &str) -> PathBuf {
    let model = ws.path("models/tiny-text");
    ws.write(
        &format!("{name}.toml"),
        &format!(
            "[train]\ngraph = \"{}\"\nnode = \"reason\"\ndata = \"{}\"\nout = \"out-{name}\"\n{body}\n[model]\ndir = \"{}\"\n{model_extra}\n",
            graph.display(),
            data.display(),
            model.display()
        ),
    )
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn sft_lowers_its_loss_and_the_export_is_served_by_enf_run() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let cfg = config(
        &ws,
        "sft",
        &graph,
        &data,
        "stage = \"sft\"\nsteps = 6\nbatch = 3\nseed = 1\n[optim]\nlr = 0.01\nmin_lr_ratio = 1.0\n",
    );
    let cache = ws.path("inference-cache");
    let output = ws.enf(&["train", cfg.to_str().unwrap(), "--inference-cache", cache.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let out = ws.path("out-sft");
    let log = log_lines(&out.join("train-log.jsonl"));
    assert_eq!(log.len(), 6, "one line per step");
    // Six items, three per step: every item is seen twice (two epochs).
    let (first, last) = (log[0]["loss"].as_f64().unwrap(), log[5]["loss"].as_f64().unwrap());
    assert!(last < first * 0.8, "SFT loss per token {first} → {last}");
    for key in ["lr", "grad_norm", "tokens", "time_forward_backward_s", "time_optimizer_s"] {
        assert!(log[5][key].is_number(), "step log lacks `{key}`: {}", log[5]);
    }
    for file in ["model/model.safetensors", "model/config.json", "model/tokenizer.json", "model.toml", "graph.toml"] {
        assert!(out.join(file).is_file(), "export lacks {file}");
    }
    // The exported graph runs with the trained model behind the Reason node.
    let predictions = ws.path("pred.jsonl");
    let graph_out = out.join("graph.toml");
    let (output, records) =
        ws.run(&graph_out, &data, &predictions, &["--limit", "2", "--inference-cache", cache.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    // The frozen Profile and Video agents' answers come from the training run's cache.
    let summary = text(&output);
    assert!(summary.contains("inference cache: ") && !summary.contains("inference cache: 0 hit"), "{summary}");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["nodes"]["reason"]["output"]["verdict"].is_object()), "{records:?}");
    let check = ws.enf(&["graph", "check", graph_out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn a_qwen2_5_vl_model_trains_on_the_reason_prompts_and_its_export_keeps_the_vision_tower() {
    let ws = Workspace::new();
    let manifest = ws.tiny_vl_model("prefix_cache = 0", "temperature = 0.0\nmax_tokens = 8");
    let dir = ws.path("models/tiny-vl");
    // The whole ENF graph: the Video agent's frames go to the frozen model,
    // the Reason agent's text prompts to the policy.
    let graph = shipped_graph(&ws, "enf", &manifest);
    let data = ws.path("data");
    let output = ws.enf(&["data", "synth", data.to_str().unwrap(), "--users", "1", "--seed", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    let cfg = ws.write(
        "vl.toml",
        &format!(
            "[train]\ngraph = \"{}\"\nnode = \"reason\"\ndata = \"{}\"\nout = \"out-vl\"\nstage = \"sft\"\nsteps = 2\nbatch = 1\n[optim]\nlr = 0.01\n[model]\ndir = \"{}\"\n",
            graph.display(),
            data.display(),
            dir.display()
        ),
    );
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let out = ws.path("out-vl");
    let read = |path: &Path| candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let (base, trained) = (read(&dir.join("model.safetensors")), read(&out.join("model/model.safetensors")));
    let vision: Vec<&String> = base.keys().filter(|k| k.starts_with("visual.")).collect();
    assert!(!vision.is_empty());
    for name in vision {
        let (a, b) = (&base[name], &trained[name]);
        let same =
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap() == b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(same, "the frozen vision weight `{name}` changed");
    }
    let changed = |name: &str| {
        base[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
            != trained[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert!(changed("model.layers.0.self_attn.q_proj.weight"), "the language model was trained");
    // mistral.rs serves the export as the vision model it was: frames included.
    let frame = data.join("frames/v0000/00.png");
    let manifest_out = out.join("model.toml");
    let ask = |image: Option<&Path>| {
        let mut args =
            vec!["model", "ask", manifest_out.to_str().unwrap(), "Describe it.", "--max-tokens", "4", "--json"];
        if let Some(image) = image {
            args.extend(["--image", image.to_str().unwrap()]);
        }
        let output = ws.enf(&args);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()["prompt_tokens"].as_u64().unwrap()
    };
    let (with_frame, without) = (ask(Some(&frame)), ask(None));
    assert!(with_frame > without, "the frame's tokens are in the prompt: {with_frame} vs {without}");
    let (output, records) = ws.run(&out.join("graph.toml"), &data, &ws.path("pred.jsonl"), &["--limit", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(records[0]["nodes"]["video"]["ok"].as_bool().unwrap(), "{}", records[0]);
    assert!(records[0]["nodes"]["reason"]["output"]["verdict"].is_object(), "{}", records[0]);
}

#[test]
fn sgrpo_steps_roll_out_through_the_agent_and_log_every_reward_part() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let cfg = config(
        &ws,
        "sgrpo",
        &graph,
        &data,
        "stage = \"sgrpo\"\nsteps = 2\nbatch = 1\ngrad_accum = 2\nseed = 2\n[grpo]\ngroup = 4\nmax_completion = 12\nbeta = 0.04\n",
    );
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let log = log_lines(&ws.path("out-sgrpo/train-log.jsonl"));
    assert_eq!(log.len(), 2);
    for key in [
        "reward_mean",
        "reward_std",
        "reward_format",
        "reward_judge",
        "reward_class",
        "reward_reason",
        "frac_reward_zero_std",
        "kl",
        "clip_low",
        "clip_high",
        "completion_len_mean",
        "completion_len_max",
        "truncated_frac",
        "entropy",
        "rollout_entropy",
        "groups_drawn",
        "grad_norm",
        "lr",
        "tokens_per_s",
        "time_generation_s",
    ] {
        assert!(log[1][key].is_number(), "step log lacks `{key}`: {}", log[1]);
    }
    assert_eq!(log[0]["groups"], 2, "two items per step (batch 1 × grad_accum 2)");
    assert!(log[0]["completion_len_max"].as_u64().unwrap() <= 12);
    // A random model writes no `<answer>`: every verdict is the parser's guess, and a
    // guess earns nothing on the ladder (it used to earn the judge reward on liked items).
    for line in &log {
        for part in ["reward_judge", "reward_class", "reward_reason"] {
            assert_eq!(line[part], 0.0, "{part}: {line}");
        }
    }
}

#[test]
fn dynamic_sampling_draws_more_items_when_groups_score_alike_and_logs_them_all() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    // Every reward weighted 0: every group scores alike, so the step draws all
    // the items it may (3 × its one) and still trains one group.
    let cfg = config(
        &ws,
        "dapo",
        &graph,
        &data,
        "stage = \"sgrpo\"\nsteps = 1\nseed = 4\n[grpo]\ngroup = 3\nmax_completion = 6\nbeta = 0.04\ndynamic_sampling = 3\n\
         [rewards]\nformat = 0.0\njudge = 0.0\nclass = 0.0\nreason = 0.0\n",
    );
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let log = log_lines(&ws.path("out-dapo/train-log.jsonl"));
    assert_eq!(log[0]["groups_drawn"], 3, "{}", log[0]);
    assert_eq!(log[0]["groups"], 1, "a step trains its share, filled from the set-aside groups: {}", log[0]);
    assert_eq!(log[0]["frac_reward_zero_std"], 1.0, "{}", log[0]);
    assert!(log[0]["rollout_entropy"].as_f64().unwrap() > 0.0, "a random model samples with entropy: {}", log[0]);

    let bad = config(&ws, "dapo-bad", &graph, &data, "stage = \"sgrpo\"\nsteps = 1\n[grpo]\ndynamic_sampling = 0\n");
    let output = ws.enf(&["train", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(text(&output).contains("dynamic_sampling"), "{}", text(&output));
}

#[test]
fn a_rollout_that_fails_stops_training_with_the_item_and_the_reason() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let shipped = std::fs::read_to_string(&graph).unwrap();
    let body = "stage = \"sgrpo\"\nsteps = 1\nseed = 2\n[grpo]\ngroup = 2\nmax_completion = 6\n";
    // The Reason agent's outputs are refused (8-byte cap): each run fails on the answer it got.
    let capped = ws.write(
        "capped-graph.toml",
        &shipped.replace("[nodes.reason]\n", "[nodes.reason]\nmax_output = \"8B\"\nretries = 0\n"),
    );
    let cfg = config(&ws, "capped", &capped, &data, body);
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    let said = text(&output);
    assert!(!output.status.success(), "a failed rollout must not be scored 0: {said}");
    assert!(said.contains("item `") && said.contains("node `reason`: run 1 of 2 failed on its answer"), "{said}");
    assert!(!ws.path("out-capped/model").exists(), "nothing is exported");
    // An upstream node that cannot run: the trained node never builds its prompt.
    let starved = ws.write(
        "starved-graph.toml",
        &shipped.replace("[nodes.video]\n", "[nodes.video]\nmemory = \"64KiB\"\nretries = 0\n"),
    );
    let cfg = config(&ws, "starved", &starved, &data, body);
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("node `reason`: no prompt to sample for: skipped: upstream node `video` failed (node `video`: "),
        "{said}"
    );
}

#[test]
fn resume_refuses_another_data_set_or_starting_model() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let body = |steps: usize| format!("stage = \"sft\"\nsteps = {steps}\nbatch = 1\ncheckpoint_every = 1\n");
    let cfg = config(&ws, "moved", &graph, &data, &body(1));
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let longer = config(&ws, "moved", &graph, &data, &body(2));
    let append = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let original = bytes.clone();
        bytes.extend_from_slice(b"\n"); // still valid: blank lines are skipped
        std::fs::write(path, bytes).unwrap();
        original
    };
    let users = data.join("users.jsonl");
    let original = append(&users);
    let output = ws.enf(&["train", longer.to_str().unwrap(), "--resume"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("--resume refused: the data set changed"), "{}", text(&output));
    std::fs::write(&users, original).unwrap();
    let model_config = ws.path("models/tiny-text/config.json");
    let original = append(&model_config);
    let output = ws.enf(&["train", longer.to_str().unwrap(), "--resume"]);
    assert!(text(&output).contains("--resume refused: the starting model changed"), "{}", text(&output));
    std::fs::write(&model_config, original).unwrap();
    // Only the configuration changed (a longer schedule): it resumes.
    let output = ws.enf(&["train", longer.to_str().unwrap(), "--resume"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(log_lines(&ws.path("out-moved/train-log.jsonl")).len(), 2);
}

#[test]
fn gradient_checkpointing_trains_the_same_steps() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let body = |on: bool| {
        format!("stage = \"sft\"\nsteps = 2\nbatch = 2\nseed = 3\ngradient_checkpointing = {on}\n[optim]\nlr = 0.01\n")
    };
    for (name, on) in [("plain", false), ("recomputed", true)] {
        let cfg = config(&ws, name, &graph, &data, &body(on));
        let output = ws.enf(&["train", cfg.to_str().unwrap()]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let plain = log_lines(&ws.path("out-plain/train-log.jsonl"));
    let recomputed = log_lines(&ws.path("out-recomputed/train-log.jsonl"));
    for (a, b) in plain.iter().zip(&recomputed) {
        for key in ["loss", "grad_norm", "entropy"] {
            let (a, b) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!(a > 0.0 && (a - b).abs() <= 1e-4 * a, "{key}: {a} without checkpointing, {b} with");
        }
    }
}

#[test]
fn a_cuda_device_trains_on_a_cuda_build_and_is_refused_with_the_way_to_one_elsewhere() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let cfg = config(&ws, "gpu", &graph, &data, "stage = \"sft\"\nsteps = 1\ndevice = \"cuda\"\n");
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    let said = text(&output);
    if output.status.success() {
        assert_eq!(log_lines(&ws.path("out-gpu/train-log.jsonl")).len(), 1, "{said}");
    } else {
        assert!(said.contains("device = \"cuda:0\"") && said.contains("ENF_FEATURES=cuda .ci/setup"), "{said}");
    }
}

#[test]
fn a_bad_config_is_refused_with_its_lines() {
    let ws = Workspace::new();
    let cfg = ws.write(
        "bad.toml",
        "[train]\ngraph = \"nope.toml\"\nnode = \"reason\"\ndata = \"no-data\"\nout = \"out\"\nstage = \"sgrpo\"\nsteps = 0\n[grpo]\ngroup = 1\n[model]\ndir = \"no-model\"\nfine_tuning = \"qlora\"\n",
    );
    let output = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = text(&output);
    for expected in [
        "bad.toml:2: graph file",
        "bad.toml:4: data set directory",
        "bad.toml:7: steps must be at least 1",
        "bad.toml:9: `group` must be at least 2",
        "bad.toml:11:",
        "bad.toml:12: fine_tuning `qlora` is not known",
    ] {
        assert!(message.contains(expected), "missing `{expected}` in:\n{message}");
    }
    let tpu = ws.write("tpu.toml", "[train]\ngraph = \"g\"\nnode = \"n\"\ndata = \"d\"\nout = \"o\"\nstage = \"sft\"\nsteps = 1\ndevice = \"tpu\"\n[model]\ndir = \"m\"\n");
    let message = text(&ws.enf(&["train", tpu.to_str().unwrap()]));
    assert!(message.contains("tpu.toml:8: device `tpu` is not known"), "{message}");
    let unknown = ws.write("typo.toml", "[train]\ngraph = \"g\"\nnode = \"n\"\ndata = \"d\"\nout = \"o\"\nstage = \"sft\"\nstep = 3\n[model]\ndir = \"m\"\n");
    let message = text(&ws.enf(&["train", unknown.to_str().unwrap()]));
    assert!(message.contains("typo.toml: line 7") && message.contains("step"), "{message}");
}

#[test]
fn a_run_killed_mid_checkpoint_resumes_to_the_same_step_count() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    let steps = 8;
    // With LoRA adapters: the checkpoint holds the adapters, the export merges them.
    let cfg = config_with_model(
        &ws,
        "resume",
        &graph,
        &data,
        &format!("stage = \"sft\"\nsteps = {steps}\nbatch = 1\ncheckpoint_every = 1\n[optim]\nlr = 0.001\n"),
        "fine_tuning = \"lora\"\nlora_rank = 4\nlora_targets = [\"q_proj\", \"v_proj\", \"up_proj\"]",
    );
    let checkpoints = ws.path("out-resume/checkpoints");
    let mut child = ws.enf_command(&["train", cfg.to_str().unwrap()]).spawn().unwrap();
    // Kill it while a checkpoint is being written if that moment is caught,
    // else once two checkpoints exist.
    let started = Instant::now();
    let mut caught_writing = false;
    loop {
        let entries: Vec<String> = std::fs::read_dir(&checkpoints)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        let done = entries.iter().filter(|e| e.starts_with("step-")).count();
        if done >= 1 && entries.iter().any(|e| e.starts_with(".tmp-")) {
            caught_writing = true;
            break;
        }
        if done >= 2 || started.elapsed() > Duration::from_secs(240) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    eprintln!("killed {} a checkpoint write", if caught_writing { "during" } else { "between" });
    let output = ws.enf(&["train", cfg.to_str().unwrap(), "--resume"]);
    assert!(output.status.success(), "{}", text(&output));
    let log = log_lines(&ws.path("out-resume/train-log.jsonl"));
    let steps_logged: Vec<u64> = log.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps_logged, (1..=steps as u64).collect::<Vec<_>>(), "each step logged once, in order");
    let latest = std::fs::read_to_string(checkpoints.join("LATEST")).unwrap();
    assert_eq!(latest.trim(), format!("step-{steps:06}"));
    assert!(ws.path("out-resume/model/model.safetensors").is_file());
    // Starting again without --resume is refused rather than overwriting.
    let again = ws.enf(&["train", cfg.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again).contains("--resume"), "{}", text(&again));
}

/// The trainer's tokenization and log-probabilities against the serving
/// backend's, on the same weights: prompt ids through the chat template,
/// the greedy completion, and each token's log-probability (mistral.rs
/// reports log10; the backend converts).
async fn trainer_agrees_with_mistralrs(dir: &Path, architecture: &str, ws: &Workspace) {
    use enf::inference::{ChatMessage, MistralRsBackend, ModelManifest, Role};
    use enf::train::chat::ChatTokenizer;
    use enf::train::generate::{SampleSettings, sample_group};
    use rand::SeedableRng;

    let manifest = ws.write(
        &format!("{architecture}-{}.toml", dir.file_name().unwrap().to_string_lossy()),
        &format!(
            "name = \"m\"\nbackend = \"mistralrs\"\n[mistralrs]\nsource = {{ dir = \"{}\" }}\narchitecture = \"{architecture}\"\ndtype = \"f32\"\ndevice = \"cpu\"\nprefix_cache = 0\n",
            dir.display()
        ),
    );
    let backend = MistralRsBackend::load(&ModelManifest::load(&manifest).unwrap()).await.unwrap();
    let decoder = enf::train::Decoder::load(dir, candle_core::DType::F32).unwrap();
    let tokenizer = ChatTokenizer::load(dir).unwrap();
    let conversations = [
        vec![ChatMessage { role: Role::User, text: "What is the capital of France?".into(), images: vec![] }],
        vec![
            ChatMessage { role: Role::System, text: "You judge videos.".into(), images: vec![] },
            ChatMessage {
                role: Role::User,
                text: "Think inside <think></think>, answer in <answer></answer>.".into(),
                images: vec![],
            },
        ],
    ];
    for messages in &conversations {
        let ours = tokenizer.prompt_ids(messages).unwrap();
        let theirs = backend.chat_prompt_tokens(messages).await.unwrap();
        assert_eq!(ours, theirs, "{}: prompt tokens differ", dir.display());
        let (text, logprobs) = backend.greedy_with_logprobs(messages, 12).await.unwrap();
        let settings = SampleSettings { temperature: 0.0, top_p: 1.0, max_tokens: 12, ignore_eos: false };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let sample = sample_group(&decoder.detached(), &ours, 1, &settings, &mut rng).unwrap().remove(0);
        // Random weights emit invalid UTF-8, which the two replace with U+FFFD
        // at different granularity (per byte vs per sequence); real text is valid.
        let valid = |s: &str| s.replace('\u{FFFD}', "");
        let ours_text = tokenizer.completion_text(&sample.tokens).unwrap();
        assert_eq!(valid(&ours_text), valid(&text), "{}: greedy completions differ", dir.display());
        assert!(!logprobs.is_empty());
        let n = logprobs.len().min(sample.logprobs.len());
        assert!(n + 1 >= sample.logprobs.len().max(logprobs.len()), "{logprobs:?} vs {:?}", sample.logprobs);
        for (a, b) in logprobs.iter().zip(&sample.logprobs).take(n) {
            assert!(
                (a - b).abs() < 2e-3 + 1e-3 * b.abs(),
                "{}: log-probs differ: mistral.rs {logprobs:?} vs trainer {:?}",
                dir.display(),
                sample.logprobs
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trainer_tokenizes_and_scores_like_the_serving_backend() {
    let ws = Workspace::new();
    for (arch, name) in [("llama", "tiny-llama"), ("qwen2", "tiny-qwen2")] {
        let dir = ws.path(name);
        let output = ws.enf(&["model", "tiny-text", dir.to_str().unwrap(), "--arch", arch]);
        assert!(output.status.success(), "{}", text(&output));
        trainer_agrees_with_mistralrs(&dir, arch, &ws).await;
    }
    // Qwen2.5-VL's language model on a text prompt (its vision tower loaded,
    // frozen and unused): multimodal RoPE with equal axes is the plain one.
    let dir = ws.path("tiny-vl");
    let output = ws.enf(&["model", "tiny-vl", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    trainer_agrees_with_mistralrs(&dir, "qwen2.5-vl", &ws).await;
    // The default model: its real chat template and 30 layers.
    trainer_agrees_with_mistralrs(&support::prepared_model("smollm2-135m-instruct"), "llama", &ws).await;
}

#[test]
fn a_resumed_run_repeats_what_an_uninterrupted_run_does() {
    let ws = Workspace::new();
    let (graph, data) = setup(&ws);
    // Constant learning rate, so that a shorter first leg has the same schedule.
    let body = |steps: usize| {
        format!(
            "stage = \"sgrpo\"\nsteps = {steps}\nbatch = 1\nseed = 5\ncheckpoint_every = 1\n[optim]\nlr = 0.01\nmin_lr_ratio = 1.0\n[grpo]\ngroup = 4\nmax_completion = 10\nbeta = 0.04\n"
        )
    };
    let whole = config(&ws, "whole", &graph, &data, &body(4));
    let output = ws.enf(&["train", whole.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let first_leg = config(&ws, "legs", &graph, &data, &body(2));
    let output = ws.enf(&["train", first_leg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let second_leg = config(&ws, "legs", &graph, &data, &body(4));
    let output = ws.enf(&["train", second_leg.to_str().unwrap(), "--resume"]);
    assert!(output.status.success(), "{}", text(&output));
    let strip = |lines: Vec<Value>| -> Vec<Value> {
        lines
            .into_iter()
            .map(|mut l| {
                let object = l.as_object_mut().unwrap();
                object.retain(|k, _| !k.starts_with("time_") && k != "tokens_per_s");
                l
            })
            .collect()
    };
    let whole_log = strip(log_lines(&ws.path("out-whole/train-log.jsonl")));
    let legs_log = strip(log_lines(&ws.path("out-legs/train-log.jsonl")));
    assert_eq!(whole_log, legs_log, "same data order, samples, rewards and updates");
    assert_eq!(
        std::fs::read(ws.path("out-whole/model/model.safetensors")).unwrap(),
        std::fs::read(ws.path("out-legs/model/model.safetensors")).unwrap(),
        "the same weights"
    );
}
