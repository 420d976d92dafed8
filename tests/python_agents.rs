//! Agents written in Python (plugins/python, built with componentize-py by
//! the test set-up): their shared logic passes its unit tests, and the Python
//! Reason agent is a drop-in replacement for the Rust one — same prompt to the
//! model, same verdicts, classes and reasons item for item, on the echo
//! backend and on the tiny generated Qwen2.5-VL.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Workspace, repo_root, shipped_graph, text};

#[test]
fn the_python_logic_passes_its_unit_tests_natively() {
    let output = Command::new("python3")
        .current_dir(repo_root())
        .args(["-m", "unittest", "discover", "-s", "plugins/python/tests", "-v"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3");
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    for shared in [
        "test_every_verdict_case_parses_as_the_rust_parser_does",
        "test_every_prompt_case_is_built_as_the_rust_agent_builds_it",
    ] {
        assert!(
            report.lines().any(|l| l.starts_with(shared) && l.ends_with("... ok")),
            "{shared} ran and passed: {report}"
        );
    }
}

/// The shipped ENF graph with its Reason node's plugin swapped for the
/// Python agent — the one line a user edits.
fn with_python_reason(ws: &Workspace, rust_graph: &Path) -> std::path::PathBuf {
    let rust = std::fs::read_to_string(rust_graph).unwrap();
    let built = support::agents().join("reason_agent.wasm").display().to_string();
    assert!(rust.contains(&built), "{rust}");
    let python = rust.replace(&built, &support::python_agent("reason-agent").display().to_string());
    ws.write("enf-python.toml", &python)
}

/// Runs both graphs over `data` and returns the records of each, by item.
fn run_both(ws: &Workspace, rust_graph: &Path, data: &Path) -> Vec<(Value, Value)> {
    let python_graph = with_python_reason(ws, rust_graph);
    let mut runs = Vec::new();
    for (graph, out) in [(rust_graph, "rust.jsonl"), (python_graph.as_path(), "python.jsonl")] {
        let (output, mut records) = ws.run(graph, data, &ws.path(out), &["--no-node-cache", "--concurrency", "3"]);
        assert!(output.status.success(), "{}", text(&output));
        records.sort_by(|a, b| a["item_id"].as_str().cmp(&b["item_id"].as_str()));
        runs.push(records);
    }
    let python = runs.pop().unwrap();
    let rust = runs.pop().unwrap();
    assert_eq!(rust.len(), python.len());
    assert!(!rust.is_empty());
    rust.into_iter().zip(python).collect()
}

fn reason_output(record: &Value) -> &Value {
    let node = &record["nodes"]["reason"];
    assert_eq!(node["ok"], true, "{record}");
    &node["output"]
}

#[test]
fn the_python_reason_agent_sends_the_rust_agents_prompt() {
    let ws = Workspace::new();
    // The echo backend answers with the prompt itself: equal raw answers are equal prompts.
    let model = ws.echo_model("echo", "[echo]\nreply = \"{prompt}\"");
    let graph = shipped_graph(&ws, "enf", &model);
    let data = ws.data(2, 3);
    for (rust, python) in run_both(&ws, &graph, &data) {
        let (rust, python) = (reason_output(&rust), reason_output(&python));
        assert!(rust["raw"].as_str().unwrap().starts_with("You predict how one user reacts"), "{rust}");
        assert_eq!(rust["raw"], python["raw"], "the same prompt");
        assert_eq!(rust["verdict"], python["verdict"], "the same reading of it");
    }
}

#[test]
fn the_python_reason_agent_predicts_what_the_rust_one_predicts_on_tiny_vl() {
    let ws = Workspace::new();
    let model = ws.tiny_vl_model("", "temperature = 0.0\nmax_tokens = 40");
    let graph = shipped_graph(&ws, "enf", &model);
    let data = ws.path("data");
    let synth = ws.enf(&["data", "synth", data.to_str().unwrap(), "--users", "3", "--seed", "5"]);
    assert!(synth.status.success(), "{}", text(&synth));
    for (rust, python) in run_both(&ws, &graph, &data) {
        assert_eq!(rust["item_id"], python["item_id"]);
        let (rust, python) = (reason_output(&rust), reason_output(&python));
        assert_eq!(rust["raw"], python["raw"], "greedy decoding of the same prompt");
        for field in ["attitude", "reason_class", "reason", "guessed", "notes"] {
            assert_eq!(rust["verdict"][field], python["verdict"][field], "{field}: {rust} vs {python}");
        }
    }
}

#[test]
fn every_python_sdk_helper_reaches_the_host() {
    let ws = Workspace::new();
    let model = ws.echo_model("echo", "[echo]\nreply = \"sample {sample} saw {images} frame(s)\"");
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"tour\"\n[models.default]\nmanifest = \"{model}\"\n[nodes.tour]\nplugin = \"{tour}\"\nmodel = \"default\"\ninputs = {{ user = \"$item.user\", candidate = \"$item.candidate\" }}\ncalls = [\"echo\"]\n[nodes.echo]\nplugin = \"{echo}\"\n",
            model = model.display(),
            tour = support::python_fixture("sdk-tour").display(),
            echo = support::fixture("echo_agent").display(),
        ),
    );
    let data = ws.data(1, 2);
    let (output, records) = ws.run(&graph, &data, &ws.path("out.jsonl"), &["--no-node-cache"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("touring the SDK for u0"), "the log line reached the host's log: {}", text(&output));
    assert_eq!(records.len(), 2);
    for record in &records {
        let tour = &record["nodes"]["tour"];
        assert_eq!(tour["ok"], true, "{record}");
        let report = &tour["output"];
        assert_eq!(report["model"]["name"], "echo", "{report}");
        assert_eq!(report["model"]["images"], true, "{report}");
        assert_eq!(report["samples"], serde_json::json!(["sample 0 saw 1 frame(s)", "sample 1 saw 1 frame(s)"]));
        assert_eq!(report["finish"], serde_json::json!(["STOP", "STOP"]), "{report}");
        assert_eq!(
            report["called"]["echo"]["hello"], "from python",
            "the echo node's output came back parsed: {report}"
        );
        let refused = report["refused"].as_str().unwrap_or_default();
        assert!(refused.starts_with("call to `not-listed` refused:"), "{report}");
        assert_eq!(tour["calls"][1]["node"], "echo", "{record}");
        assert_eq!(tour["usage"]["requests"], 1, "{record}");
    }
}
