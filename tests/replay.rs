//! `enf replay` end to end on `enf data synth` data, where the causes of
//! negative feedback are planted: filtering with the oracle's verdicts
//! lowers the fast-skip rate of the kept lists well below the unfiltered
//! top K; keeping everything changes nothing; items missing from the
//! predictions file run through a real graph (the shipped ENF graph on the
//! tiny generated model), once.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{Workspace, read_records, shipped_graph, text};

fn synth(ws: &Workspace, users: &str) -> std::path::PathBuf {
    let data = ws.path("data");
    let output = ws.enf(&["data", "synth", data.to_str().unwrap(), "--users", users, "--seed", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    data
}

/// Runs `enf replay` with a JSON report; returns the exit status text and the report.
fn replay(ws: &Workspace, data: &Path, out: &Path, extra: &[&str]) -> (std::process::Output, Value) {
    let json = ws.path("replay.json");
    let _ = std::fs::remove_file(&json);
    let mut args = vec![
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--ranking",
        "popularity",
        "--top",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--bootstrap",
        "300",
    ];
    args.extend_from_slice(extra);
    let output = ws.enf(&args);
    let report = std::fs::read_to_string(&json).ok().map_or(Value::Null, |t| serde_json::from_str(&t).unwrap());
    (output, report)
}

fn rate(report: &Value, set: &str, measure: &str) -> f64 {
    report["report"][set][measure]["value"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn filtering_with_the_oracle_cuts_fast_skips_and_keeping_all_changes_nothing() {
    let ws = Workspace::new();
    let data = synth(&ws, "24");
    // The oracle knows the planted causes: what it drops was skipped.
    let oracle = ws.path("oracle.jsonl");
    std::fs::copy(data.join("oracle.jsonl"), &oracle).unwrap();
    let (output, report) = replay(&ws, &data, &oracle, &[]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("fast-skip rate") && printed.contains("kept by ENF"), "{printed}");
    assert_eq!(report["report"]["users"], 24);
    let (base, kept) = (rate(&report, "base", "fast_skip"), rate(&report, "kept", "fast_skip"));
    assert!(kept < base - 0.1, "kept {kept} vs top K {base}: {printed}");
    assert_eq!(rate(&report, "dropped", "fast_skip"), 1.0, "every dropped candidate was skipped: {printed}");
    assert!(rate(&report, "kept", "mean_play_rate") > rate(&report, "base", "mean_play_rate"));
    let change = &report["report"]["change"]["fast_skip"];
    assert!(change["high"].as_f64().unwrap() < 0.0, "the interval excludes no change: {change}");

    // Always negative, but keep at least 3 of 3: the kept lists are the top K.
    let negative = ws.path("negative.jsonl");
    let output = ws.enf(&[
        "data",
        "baseline",
        data.to_str().unwrap(),
        "--kind",
        "always-negative",
        "--out",
        negative.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let (output, report) = replay(&ws, &data, &negative, &["--keep-at-least", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(report["report"]["kept"]["candidates"], report["report"]["base"]["candidates"]);
    assert_eq!(report["report"]["restored"], report["report"]["base"]["candidates"]);
    assert_eq!(rate(&report, "change", "fast_skip"), 0.0);
}

#[test]
fn missing_predictions_run_through_the_graph_once() {
    let ws = Workspace::new();
    let data = synth(&ws, "1");
    let out = ws.path("replay.jsonl");
    let (output, _) = replay(&ws, &data, &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("give --graph"), "{}", text(&output));

    let graph = shipped_graph(&ws, "enf", &ws.tiny_text_model());
    let (output, report) = replay(&ws, &data, &out, &["--graph", graph.to_str().unwrap()]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("3 candidate(s) run"), "{printed}");
    assert_eq!(read_records(&out).len(), 3, "the user's three logged candidates");
    assert_eq!(report["report"]["base"]["candidates"], 3);
    // Again: everything is in the predictions file, nothing runs.
    let (output, again) = replay(&ws, &data, &out, &["--graph", graph.to_str().unwrap()]);
    assert!(output.status.success() && !text(&output).contains("candidate(s) run"), "{}", text(&output));
    assert_eq!(again["report"], report["report"]);
}
