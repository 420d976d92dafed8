//! Benchmark: host overhead per agent call, and `enf run` cold start.
//!
//! Prints figures and ratios; asserts nothing. Run with
//! `cargo bench --bench host_overhead`.
//!
//! 1. Per call: the same agent logic (`tests/fixtures/bench-agent/src/logic.rs`:
//!    parse a 50-entry watch history, summarise it, build a prompt) called
//!    natively, and as a component through `PluginHost::run` — a fresh store
//!    from the pooling allocator, instantiation, the call, output checks —
//!    which is what every node call of `enf run` costs.
//! 2. Cold start: wall time of a whole `enf run` process over one item with
//!    one node, with an empty compile cache and with a warm one.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/fixtures/bench-agent/src/logic.rs"]
mod logic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use enf::graph::NodeLimits;
use enf::plugin::{HostConfig, NoServices, PluginHost};
use serde_json::json;

fn history_input(entries: usize) -> String {
    let history: Vec<_> = (0..entries)
        .map(|i| {
            let category = ["food", "news", "sports", "music"][i % 4];
            json!({
                "title": format!("Video {i}: a title of ordinary length about something"),
                "play_rate": (i % 10) as f64 / 10.0,
                "category": category,
            })
        })
        .collect();
    json!({ "user_id": "u42", "history": history }).to_string()
}

/// Runs `f` for at least `budget`, returning mean seconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < budget {
        for _ in 0..20 {
            f();
        }
        calls += 20;
    }
    started.elapsed().as_secs_f64() / calls as f64
}

async fn per_call(input: &str) {
    let native = time_per_call(Duration::from_secs(2), || {
        std::hint::black_box(logic::summarise(std::hint::black_box(input)).expect("native logic"));
    });

    let host = PluginHost::new(&HostConfig { cache_dir: None, instance_slots: 16, max_memory: 64 << 20 })
        .expect("plugin host");
    let plugin = host.load(&support::fixture("bench_agent")).await.expect("bench agent loads");
    let limits = NodeLimits { memory: 64 << 20, ..NodeLimits::default() };
    let services: Arc<dyn enf::plugin::HostServices> = Arc::new(NoServices);
    let expected = logic::summarise(input).expect("native logic");
    let output = host.run(&plugin, services.clone(), &limits, input).await.expect("component call");
    assert_eq!(output, expected, "the component computes what the native code computes");

    let rounds = 4_000;
    for _ in 0..200 {
        host.run(&plugin, services.clone(), &limits, input).await.expect("warm-up call");
    }
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(host.run(&plugin, services.clone(), &limits, input).await.expect("component call"));
    }
    let wasm = started.elapsed().as_secs_f64() / f64::from(rounds);

    let echo = host.load(&support::fixture("echo_agent")).await.expect("echo agent loads");
    for _ in 0..200 {
        host.run(&echo, services.clone(), &limits, "{}").await.expect("warm-up call");
    }
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(host.run(&echo, services.clone(), &limits, "{}").await.expect("echo call"));
    }
    let floor = started.elapsed().as_secs_f64() / f64::from(rounds);

    println!("per agent call ({} bytes of input JSON):", input.len());
    println!("  host floor: echo agent on `{{}}`      {:>9.1} µs", floor * 1e6);
    println!("  native logic                         {:>9.1} µs", native * 1e6);
    println!(
        "  component via PluginHost::run        {:>9.1} µs   (fresh pooled store + instantiate + call)",
        wasm * 1e6
    );
    println!("  host overhead                        {:>9.1} µs", (wasm - native) * 1e6);
    println!("  ratio component / native             {:>9.2}×     (target: < 2×, < 1 ms)", wasm / native);
}

fn cold_start() {
    let ws = support::Workspace::new();
    let data = ws.data(1, 1);
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"cold\"\n[nodes.a]\nplugin = \"{}\"\ninputs = {{ user = \"$item.user\" }}\n",
            support::fixture("echo_agent").display()
        ),
    );
    let run = |out: &str| {
        let started = Instant::now();
        let output = ws.run(&graph, &data, &ws.path(out), &[]).0;
        assert!(output.status.success(), "{}", support::text(&output));
        started.elapsed()
    };
    let cold = run("cold.jsonl");
    let warm: Vec<Duration> = (0..10).map(|i| run(&format!("warm{i}.jsonl"))).collect();
    let warm = warm.iter().min().copied().unwrap_or_default();
    println!("`enf run`, 1 item × 1 node, whole process:");
    println!("  empty compile cache                  {:>9.1} ms", cold.as_secs_f64() * 1e3);
    println!("  warm compile cache (best of 10)      {:>9.1} ms", warm.as_secs_f64() * 1e3);
    println!("  ratio cold / warm                    {:>9.2}×", cold.as_secs_f64() / warm.as_secs_f64());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let input = history_input(50);
    runtime.block_on(per_call(&input));
    cold_start();
}
