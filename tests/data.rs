//! Data sets: `enf data check` names every problem by file and line,
//! `enf data synth` writes a valid, reproducible set with planted causes,
//! and the task configuration (implicit-negative rule, classes) is data.

mod support;

use std::path::Path;

use support::{Workspace, text};

fn check(dir: &Path, ws: &Workspace) -> (bool, String) {
    let output = ws.enf(&["data", "check", dir.to_str().unwrap()]);
    (output.status.success(), text(&output))
}

#[test]
fn a_synthetic_set_is_valid_reproducible_and_has_planted_negatives() {
    let ws = Workspace::new();
    let a = ws.path("a");
    let b = ws.path("b");
    for dir in [&a, &b] {
        let output = ws.enf(&["data", "synth", dir.to_str().unwrap(), "--users", "6", "--seed", "11"]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let (ok, message) = check(&a, &ws);
    assert!(ok, "{message}");
    assert!(message.contains("6 users"), "{message}");
    for file in [
        "users.jsonl",
        "videos.jsonl",
        "interactions.jsonl",
        "items.jsonl",
        "dataset.toml",
        "sft.jsonl",
        "oracle.jsonl",
    ] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file} differs for the same seed"
        );
    }
    let interactions = std::fs::read_to_string(a.join("interactions.jsonl")).unwrap();
    let skips: Vec<serde_json::Value> = interactions
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|i| i["play_rate"].as_f64().unwrap() < 0.3)
        .collect();
    assert!(!skips.is_empty());
    assert!(skips.iter().all(|s| s["reason_class"].is_u64()), "every planted skip carries its class");
    assert!(skips.iter().any(|s| s["reason_text"].is_string()), "some skips are explicit dislikes with reasons");

    // SFT targets: one well-formed answer per item, the truth's attitude in it.
    let items = std::fs::read_to_string(a.join("items.jsonl")).unwrap().lines().count();
    let targets: Vec<serde_json::Value> = std::fs::read_to_string(a.join("sft.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(targets.len(), items);
    for target in &targets {
        let text = target["target"].as_str().unwrap();
        assert!(enf::train::rewards::well_formed(text), "{text}");
    }
    // The oracle (planted causes and traits known, random draws not) is a
    // predictions file `enf eval` scores: the ceiling for a model.
    let report = ws.path("oracle-eval.json");
    let output = ws.enf(&[
        "eval",
        a.join("oracle.jsonl").to_str().unwrap(),
        "--data",
        a.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let accuracy =
        figures["evaluation"]["binary"]["acc"].as_f64().unwrap_or_else(|| panic!("no accuracy in {figures}"));
    assert!(accuracy >= 0.6, "the oracle should be right most of the time: {figures}");
}

/// The trivial baselines are predictions files `enf eval` scores like a run:
/// always-negative recalls every negative; the coin guesses.
#[test]
fn the_trivial_baselines_are_scored_by_eval() {
    let ws = Workspace::new();
    let dir = ws.path("d");
    assert!(ws.enf(&["data", "synth", dir.to_str().unwrap(), "--users", "6", "--seed", "5"]).status.success());
    let figures = |kind: &str| {
        let predictions = ws.path(&format!("{kind}.jsonl"));
        let output = ws.enf(&[
            "data",
            "baseline",
            dir.to_str().unwrap(),
            "--kind",
            kind,
            "--out",
            predictions.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let report = ws.path(&format!("{kind}.json"));
        let output = ws.enf(&[
            "eval",
            predictions.to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        json["evaluation"].clone()
    };
    let always = figures("always-negative");
    assert_eq!(always["scored"], 18);
    assert_eq!(always["binary"]["recall"], 1.0, "{always}");
    assert_eq!(always["guessed"], 0);
    let coin = figures("coin");
    assert_eq!(coin["scored"], 18);
    assert!(coin["binary"]["recall"].as_f64().unwrap() < 1.0, "{coin}");
}

#[test]
fn every_broken_line_is_reported_with_file_and_line() {
    let ws = Workspace::new();
    let dir = ws.data(2, 2);
    let append = |file: &str, text: &str| {
        let path = dir.join(file);
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str(text);
        std::fs::write(path, content).unwrap();
    };
    append("users.jsonl", "{\"user_id\":\"u0\"}\n{\"age\": 3}\n");
    append("videos.jsonl", "{\"video_id\":\"vx\",\"title\":\"\",\"duration_s\":10,\"frames\":[\"frames/gone.png\"]}\n");
    append(
        "interactions.jsonl",
        "{\"user_id\":\"ghost\",\"video_id\":\"v0\",\"ts\":1,\"watch_s\":1,\"play_rate\":0.5}\n{\"user_id\":\"u0\",\"video_id\":\"v0\",\"ts\":2,\"watch_s\":1,\"play_rate\":0.1,\"reason_class\":9}\nnot json\n{\"user_id\":\"u0\",\"video_id\":\"v0\",\"ts\":3,\"watch_s\":-4,\"play_rate\":-0.2}\n",
    );
    let (ok, message) = check(&dir, &ws);
    assert!(!ok, "{message}");
    for expected in [
        "users.jsonl:3: duplicate user_id `u0`",
        "users.jsonl:4: missing field `user_id`",
        "interactions.jsonl:5: unknown user_id `ghost`",
        "interactions.jsonl:7:",
        "interactions.jsonl:8: play_rate must be a number ≥ 0, got -0.2",
        "interactions.jsonl:8: watch_s must be a number ≥ 0, got -4",
    ] {
        assert!(message.contains(expected), "expected `{expected}` in:\n{message}");
    }
}

#[test]
fn content_problems_are_reported_once_the_files_parse() {
    let ws = Workspace::new();
    let dir = ws.data(1, 2);
    let mut videos = std::fs::read_to_string(dir.join("videos.jsonl")).unwrap();
    videos.push_str("{\"video_id\":\"vx\",\"title\":\" \",\"duration_s\":10,\"frames\":[\"frames/gone.png\"]}\n");
    std::fs::write(dir.join("videos.jsonl"), videos).unwrap();
    let mut interactions = std::fs::read_to_string(dir.join("interactions.jsonl")).unwrap();
    interactions.push_str(
        "{\"user_id\":\"u0\",\"video_id\":\"v0\",\"ts\":5,\"watch_s\":1,\"play_rate\":0.1,\"reason_class\":9}\n",
    );
    std::fs::write(dir.join("interactions.jsonl"), interactions).unwrap();
    ws.write(
        "data/items.jsonl",
        "{\"user_id\":\"u0\",\"video_id\":\"v1\"}\n{\"user_id\":\"u0\",\"video_id\":\"vx\"}\n",
    );
    let (ok, message) = check(&dir, &ws);
    assert!(!ok, "{message}");
    for expected in [
        "videos.jsonl:3: video `vx` has an empty title",
        "videos.jsonl:3: video `vx`: frame file frames/gone.png does not exist",
        "interactions.jsonl:3: reason_class 9 is not a class of the task",
        "items.jsonl:2: no interaction of user `u0` with video `vx`",
    ] {
        assert!(message.contains(expected), "expected `{expected}` in:\n{message}");
    }
}

#[test]
fn the_task_rule_and_classes_come_from_dataset_toml() {
    let ws = Workspace::new();
    let dir = ws.data(1, 3);
    // ws.data gives play rates 0.1 / 0.8; a threshold of 0.9 makes every interaction negative.
    ws.write(
        "data/dataset.toml",
        "negative_play_rate = 0.9\n[[classes]]\nid = 1\nname = \"off-topic\"\ndescription = \"not what the user follows\"\n",
    );
    let (ok, message) = check(&dir, &ws);
    assert!(ok, "{message}");
    assert!(message.contains("3 items: 3 negative"), "{message}");
    ws.write("data/dataset.toml", "negative_play_rate = \"high\"\n");
    let (ok, message) = check(&dir, &ws);
    assert!(!ok && message.contains("dataset.toml:1:"), "{message}");
}

/// `enf data items DIR | head -1` (how docs/serving.md sends one request)
/// prints the first item and exits 0, not "Broken pipe".
#[test]
fn data_items_stops_quietly_when_its_reader_stops_early() {
    let ws = Workspace::new();
    // 200 items: far more than a pipe holds, so the writer meets the closed end.
    let data = ws.data(20, 10);
    let script =
        format!("set -o pipefail; '{}' data items '{}' | head -n 1", env!("CARGO_BIN_EXE_enf"), data.display());
    let output = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let first: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert!(first["candidate"]["video_id"].is_string(), "{first}");
    assert!(!text(&output).contains("Broken pipe"), "{}", text(&output));
}
