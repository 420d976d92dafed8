//! Benchmark: what a Python agent costs the host next to the same agent in
//! Rust — the Reason agent of plugins/reason-agent and its port in
//! plugins/python/reason-agent, on the same input, with the model answered by
//! a canned completion (so only host and guest time is measured).
//!
//! Prints, for each: the component's size, a cold load (compile with an empty
//! cache, link, describe), a cached load (the compiled component read back
//! from the cache), and one node call through `PluginHost::run` (fresh pooled
//! store, instantiation, the call, output checks) — with the Python − Rust
//! difference per call against the 5 ms target. Asserts nothing but that
//! both agents give the same output.
//! Run with `cargo bench --bench python_agents` (after `.ci/setup`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enf::graph::NodeLimits;
use enf::inference::{Completion, FinishReason, GenerateResponse};
use enf::plugin::services::{
    AgentCallError, AgentInferenceError, AgentRequest, AgentResponse, HostServices, LogLevel, ModelInfo,
};
use enf::plugin::{HostConfig, PluginHost};
use serde_json::json;

/// Answers every request with the same completion, at once.
struct CannedModel;

#[async_trait::async_trait]
impl HostServices for CannedModel {
    async fn generate(&self, _request: AgentRequest) -> Result<AgentResponse, AgentInferenceError> {
        let completion = Completion {
            text: "<think>The user skips slow cooking videos; this one is slow.</think><answer>negative: 2</answer>"
                .into(),
            finish_reason: FinishReason::Stop,
            completion_tokens: 20,
        };
        Ok(AgentResponse {
            model: "canned".into(),
            response: GenerateResponse { completions: vec![completion], prompt_tokens: 300, compute_ms: None },
        })
    }

    fn model_info(&self, _model: Option<&str>) -> Result<ModelInfo, AgentInferenceError> {
        Ok(ModelInfo { name: "canned".into(), images: false, context: None })
    }

    async fn call_agent(&self, node: String, _input: String) -> Result<String, AgentCallError> {
        Err(AgentCallError::NotAllowed(node))
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

fn reason_input() -> String {
    json!({
        "user": {"age": 34, "gender": "female", "occupation": "nurse", "interests": ["food", "travel"]},
        "profile": {"values": "care and craft", "negativity_tolerance": "low", "sensory_tolerance": "low", "bored_by": "slow videos"},
        "video": {"content": "a chef slowly braises beef", "controversial": "none", "values": "patience"},
        "candidate": {"video_id": "v7", "title": "Four hours of braising", "category": "food"},
    })
    .to_string()
}

struct Figures {
    size_mb: f64,
    cold_load: Duration,
    cached_load: Duration,
    call: Duration,
    output: String,
}

async fn measure(path: &Path, input: &str) -> Figures {
    let size_mb = std::fs::metadata(path).expect("component").len() as f64 / 1e6;
    let cache = tempfile::tempdir().expect("cache directory");
    let config = HostConfig { cache_dir: Some(cache.path().to_path_buf()), instance_slots: 16, max_memory: 4 << 30 };
    let host = PluginHost::new(&config).expect("plugin host");
    let started = Instant::now();
    host.load(path).await.expect("cold load");
    let cold_load = started.elapsed();
    let mut cached = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        host.load(path).await.expect("cached load");
        cached.push(started.elapsed());
    }
    let cached_load = cached.into_iter().min().unwrap_or_default();

    let plugin = host.load(path).await.expect("load");
    let limits = NodeLimits::default();
    let services: Arc<dyn HostServices> = Arc::new(CannedModel);
    let output = host.run(&plugin, services.clone(), &limits, input).await.expect("a call");
    for _ in 0..20 {
        host.run(&plugin, services.clone(), &limits, input).await.expect("warm-up call");
    }
    let (mut calls, started) = (0u32, Instant::now());
    while started.elapsed() < Duration::from_secs(3) || calls < 50 {
        std::hint::black_box(host.run(&plugin, services.clone(), &limits, input).await.expect("call"));
        calls += 1;
    }
    let call = started.elapsed() / calls;
    Figures { size_mb, cold_load, cached_load, call, output }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let rust = support::agents().join("reason_agent.wasm");
    let python = support::python_agent("reason-agent");
    let input = reason_input();
    let rust = runtime.block_on(measure(&rust, &input));
    let python = runtime.block_on(measure(&python, &input));
    let as_json = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("JSON output");
    assert_eq!(as_json(&rust.output), as_json(&python.output), "both agents give the same output");

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("Reason agent, {} bytes of input, canned model answer:", input.len());
    println!("                                     Rust       Python     Python − Rust   Python / Rust");
    println!("  component size (MB)           {:>9.2}  {:>9.2}", rust.size_mb, python.size_mb);
    for (label, r, p) in [
        ("cold load: compile+link (ms)", rust.cold_load, python.cold_load),
        ("cached load (ms)", rust.cached_load, python.cached_load),
        ("one node call (ms)", rust.call, python.call),
    ] {
        println!("  {label:<29} {:>9.3}  {:>9.3}  {:>12.3}  {:>12.1}×", ms(r), ms(p), ms(p) - ms(r), ms(p) / ms(r));
    }
    println!(
        "  target: a cached Python agent call adds under 5 ms to a node: {:.3} ms",
        ms(python.call) - ms(rust.call)
    );
}
