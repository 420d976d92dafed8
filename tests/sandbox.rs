//! Hostile agents are contained: each fails (or is refused) with a clear
//! reason on its own node, for every item, while a well-behaved node next
//! to it succeeds on every item and the host's memory stays bounded.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{Workspace, fixture, text};

const ITEMS: usize = 6;

/// Runs `hostile` (a fixture) beside a well-behaved echo node over
/// [`ITEMS`] items and returns every item's record.
fn run_beside_echo(hostile: &str, node_settings: &str) -> Vec<Value> {
    run_beside_echo_component(&fixture(hostile), node_settings)
}

/// [`run_beside_echo`] for a component file.
fn run_beside_echo_component(hostile: &Path, node_settings: &str) -> Vec<Value> {
    let ws = Workspace::new();
    let data = ws.data(2, ITEMS / 2);
    let graph = ws.write(
        "graph.toml",
        &format!(
            r#"
[graph]
name = "hostile"
[nodes.hostile]
plugin = "{hostile}"
{node_settings}
[nodes.good]
plugin = "{echo}"
inputs = {{ user = "$item.user" }}
[nodes.secret]
plugin = "{echo}"
"#,
            hostile = hostile.display(),
            echo = fixture("echo_agent").display()
        ),
    );
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &["--concurrency", "3"]);
    // Exit code 0, or 2 when the hostile agent failed items (the escape agent reports instead).
    assert!(matches!(output.status.code(), Some(0 | 2)), "{}", text(&output));
    assert_eq!(records.len(), ITEMS, "every item is written: {}", text(&output));
    for record in &records {
        assert_eq!(record["nodes"]["good"]["ok"], true, "the well-behaved node succeeds: {record}");
        assert_eq!(record["nodes"]["secret"]["ok"], true, "{record}");
    }
    records
}

fn hostile_errors(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            assert_eq!(r["nodes"]["hostile"]["ok"], false, "{r}");
            assert_eq!(r["ok"], false, "{r}");
            r["nodes"]["hostile"]["error"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn an_infinite_loop_is_interrupted_at_the_node_deadline() {
    for error in hostile_errors(&run_beside_echo("spin_agent", "timeout = \"300ms\"")) {
        assert!(error.contains("timed out after 300ms"), "{error}");
    }
}

#[test]
fn allocating_past_the_memory_cap_fails_the_node() {
    for error in hostile_errors(&run_beside_echo("memory_hog", "memory = \"16MiB\"")) {
        assert!(error.contains("exceeded its memory limit of 16.0 MiB"), "{error}");
    }
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    for error in hostile_errors(&run_beside_echo("panic_agent", "")) {
        assert!(error.contains("trapped"), "{error}");
        assert!(error.contains("panic-agent gave up on an input of"), "the guest's panic message is kept: {error}");
    }
}

#[test]
fn a_50_mb_output_is_refused() {
    for error in hostile_errors(&run_beside_echo("huge_output", "max_output = \"1MiB\"")) {
        assert!(error.contains("over its max_output of 1.0 MiB"), "{error}");
    }
}

#[test]
fn calling_an_undeclared_node_is_refused() {
    let records = run_beside_echo("rogue_caller", "");
    for error in hostile_errors(&records) {
        assert!(error.contains("may not call `secret`"), "{error}");
    }
    let call = &records[0]["nodes"]["hostile"]["calls"][0];
    assert_eq!(call["node"], "secret");
    assert_eq!(call["ok"], false);
}

#[test]
fn files_sockets_and_environment_are_out_of_reach() {
    let marker = Path::new("/tmp/enf-escape-agent");
    let _ = std::fs::remove_file(marker);
    let records = run_beside_echo("escape_agent", "");
    for record in records {
        let report = &record["nodes"]["hostile"]["output"];
        for attempt in ["read_file", "read_relative", "write_file", "tcp_connect", "udp_bind"] {
            let outcome = report[attempt].as_str().unwrap_or_default();
            assert!(outcome.starts_with("denied"), "{attempt} must be denied: {report}");
        }
        assert_eq!(report["env_vars"], Value::Array(vec![]), "no environment variables: {report}");
        assert_eq!(report["args"], Value::Array(vec![]), "no arguments: {report}");
    }
    assert!(!marker.exists(), "the agent wrote a file on the host");
}

#[test]
fn a_component_built_against_another_contract_version_is_refused_by_name() {
    let ws = Workspace::new();
    let graph = ws.write(
        "graph.toml",
        &format!("[graph]\nname = \"v\"\n[nodes.future]\nplugin = \"{}\"\n", fixture("wrong_version").display()),
    );
    let data = ws.data(1, 1);
    for args in [
        vec!["graph", "check", graph.to_str().unwrap()],
        vec![
            "run",
            graph.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            ws.path("o.jsonl").to_str().unwrap(),
        ],
    ] {
        let output = ws.enf(&args);
        let message = text(&output);
        assert!(!output.status.success(), "{message}");
        assert!(message.contains("enf:agent@9.0.0"), "names the component's version: {message}");
        assert!(message.contains("enf:agent@0.1.x"), "names the supported versions: {message}");
        assert!(message.contains("node `future`"), "{message}");
    }
}

#[test]
fn host_memory_stays_bounded_under_repeated_abuse() {
    let ws = Workspace::new();
    let data = ws.data(8, 6);
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"abuse\"\n[defaults]\nmemory = \"64MiB\"\n[nodes.hog]\nplugin = \"{}\"\n[nodes.huge]\nplugin = \"{}\"\nmax_output = \"1MiB\"\n",
            fixture("memory_hog").display(),
            fixture("huge_output").display()
        ),
    );
    let summary_path = ws.path("summary.json");
    let (output, records) = ws.run(
        &graph,
        &data,
        &ws.path("out.jsonl"),
        &["--concurrency", "4", "--summary-json", summary_path.to_str().unwrap()],
    );
    support::assert_finished_with_failures(&output);
    assert_eq!(records.len(), 48);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["failed"], 48);
    let peak = summary["peak_memory_bytes"].as_u64().expect("peak memory is reported on Linux");
    // 48 items × (64 MiB + 50 MB) would be ~5 GiB if instances were not released.
    assert!(peak < 1 << 30, "peak memory {peak} bytes: instances are not released");
}

// The same containment for agents written in Python (componentize-py
// components carry a whole CPython; tests/fixtures/python, built from source).

#[test]
fn a_python_busy_loop_is_interrupted_at_the_node_deadline() {
    for error in hostile_errors(&run_beside_echo_component(&support::python_fixture("spin"), "timeout = \"1s\"")) {
        assert!(error.contains("timed out after 1s"), "{error}");
    }
}

#[test]
fn a_python_memory_bomb_fails_its_node_at_the_cap() {
    for error in
        hostile_errors(&run_beside_echo_component(&support::python_fixture("memory-bomb"), "memory = \"96MiB\""))
    {
        assert!(error.contains("exceeded its memory limit of 96.0 MiB"), "{error}");
    }
}

#[test]
fn python_files_sockets_and_environment_are_out_of_reach() {
    let marker = Path::new("/tmp/enf-escape-agent-py");
    let _ = std::fs::remove_file(marker);
    let records = run_beside_echo_component(&support::python_fixture("escape"), "");
    for record in records {
        let report = &record["nodes"]["hostile"]["output"];
        for attempt in ["read_file", "read_relative", "write_file", "list_root", "tcp_connect", "udp_bind"] {
            let outcome = report[attempt].as_str().unwrap_or_default();
            assert!(outcome.starts_with("denied"), "{attempt} must be denied: {report}");
        }
        assert_eq!(report["env_vars"], Value::Array(vec![]), "no environment variables: {report}");
        assert_eq!(report["getenv_home"], Value::Null, "{report}");
    }
    assert!(!marker.exists(), "the agent wrote a file on the host");
}

#[test]
fn an_uncaught_python_exception_fails_its_item_with_the_traceback() {
    for error in hostile_errors(&run_beside_echo_component(&support::python_fixture("crash"), "")) {
        assert!(error.contains("Traceback"), "{error}");
        assert!(error.contains("parse_rating"), "the failing function is named: {error}");
        assert!(error.contains("ValueError: invalid literal for int()"), "{error}");
    }
}

#[test]
fn a_python_component_built_against_another_contract_version_is_refused_by_name() {
    let ws = Workspace::new();
    let wit = ws.write(
        "wit-9/agent.wit",
        &std::fs::read_to_string(support::repo_root().join("wit/agent.wit"))
            .unwrap()
            .replace("package enf:agent@0.1.0;", "package enf:agent@9.0.0;"),
    );
    let component =
        support::python_component(&support::repo_root().join("tests/fixtures/python/crash"), wit.parent().unwrap());
    let graph = ws
        .write("graph.toml", &format!("[graph]\nname = \"v\"\n[nodes.future]\nplugin = \"{}\"\n", component.display()));
    let output = ws.enf(&["graph", "check", graph.to_str().unwrap()]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(message.contains("enf:agent@9.0.0") && message.contains("enf:agent@0.1.x"), "{message}");
    assert!(message.contains("node `future`"), "{message}");
}

#[test]
fn a_python_agent_under_too_small_a_memory_setting_is_refused_with_what_to_change() {
    let ws = Workspace::new();
    let graph = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"small\"\n[nodes.tight]\nplugin = \"{}\"\nmemory = \"8MiB\"\n",
            support::python_fixture("escape").display()
        ),
    );
    let output = ws.enf(&["graph", "check", graph.to_str().unwrap()]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(message.contains("node `tight`") && message.contains("raise the node's `memory`"), "{message}");
}
