//! The three ENF agents and the shipped graphs end to end on the tiny
//! generated Qwen2.5-VL (real mistral.rs, real frames): every item gets a
//! verdict, the Profile agent activates the Video agent for vague titles,
//! the Video agent sends frames to a model that takes images, and `enf eval`
//! scores the predictions and writes a report.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{Workspace, repo_root, shipped_graph, text, with_built_agents};

fn tiny_vl(ws: &Workspace) -> PathBuf {
    tiny_vl_answering(ws, 16)
}

/// The tiny Qwen2.5-VL with answers of up to `max_tokens` (its random
/// weights rarely stop early, so answers are that long).
fn tiny_vl_answering(ws: &Workspace, max_tokens: u32) -> PathBuf {
    ws.tiny_vl_model("", &format!("temperature = 0.0\nmax_tokens = {max_tokens}"))
}

fn synth(ws: &Workspace, users: &str) -> PathBuf {
    let dir = ws.path("data");
    let output = ws.enf(&["data", "synth", dir.to_str().unwrap(), "--users", users, "--seed", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    dir
}

fn verdict(record: &Value, node: &str) -> Value {
    let n = &record["nodes"][node];
    assert_eq!(n["ok"], true, "{record}");
    n["output"]["verdict"].clone()
}

#[test]
fn the_enf_graph_gives_every_item_a_verdict_and_eval_scores_them() {
    let ws = Workspace::new();
    let model = tiny_vl(&ws);
    let data = synth(&ws, "2");
    let graph = shipped_graph(&ws, "enf", &model);
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &["--concurrency", "3"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 6, "3 items per user");
    let mut video_calls = 0;
    for record in &records {
        let v = verdict(record, "reason");
        assert!(v["attitude"] == "like" || v["attitude"] == "negative", "{v}");
        assert!(v["guessed"].is_boolean());
        let profile = &record["nodes"]["profile"]["output"];
        assert!(profile["profile"].is_object(), "{record}");
        video_calls += profile["video_calls"].as_u64().unwrap();
        assert!(record["nodes"]["video"]["output"]["frames_used"].as_u64().unwrap() > 0, "frames reach an image model");
    }
    assert!(video_calls > 0, "some skipped video has a vague title, so the Video agent is activated");

    let report = ws.path("report.md");
    let json = ws.path("eval.json");
    let eval = ws.enf(&[
        "eval",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(eval.status.success(), "{}", text(&eval));
    let printed = String::from_utf8_lossy(&eval.stdout);
    for column in ["Acc", "Precision", "Recall", "F1_Score", "Class_Acc", "Reasoning", "Paper, ENF 7b (Table 3)"] {
        assert!(printed.contains(column), "{printed}");
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(json["evaluation"]["scored"], 6);
    let report = std::fs::read_to_string(report).unwrap();
    assert!(report.contains("## User u000") && report.contains("| Video | Truth | Predicted |"), "{report}");
}

/// Soak: the main job's graph at `--concurrency 8` with long answers and
/// prompts of many lengths (profiles of users with different histories,
/// video analyses with frames, reasons) — sequences cross 512 and 1024
/// positions while others are short, and mistral.rs batches them as they
/// come. No node may fail.
#[test]
fn the_enf_graph_soaks_at_concurrency_8_with_long_answers_and_no_failed_node() {
    let ws = Workspace::new();
    let model = tiny_vl_answering(&ws, 360);
    let data = synth(&ws, "5");
    let graph = shipped_graph(&ws, "enf", &model);
    let out = ws.path("out.jsonl");
    // Every node runs (no memoised outputs), so the model sees the whole load.
    let (output, records) = ws.run(&graph, &data, &out, &["--concurrency", "8", "--no-node-cache"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 15, "3 items per user");
    let mut longest = 0;
    for record in &records {
        assert_eq!(record["ok"], true, "{record}");
        for (name, node) in record["nodes"].as_object().unwrap() {
            assert_eq!(node["ok"], true, "node {name}: {record}");
            assert_eq!(node["attempts"], 1, "no retry was needed: node {name}: {record}");
            let usage = &node["usage"];
            let requests = usage["requests"].as_u64().unwrap().max(1);
            let tokens =
                (usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()) / requests;
            longest = longest.max(tokens);
        }
    }
    assert!(longest > 1024, "some sequence crossed 1024 positions: longest mean per request {longest}");
}

/// The training demonstration's graph: the history digest (no model) gives
/// the Reason agent a profile counted from the history.
#[test]
fn the_demo_graph_profiles_from_the_history_without_a_model() {
    let ws = Workspace::new();
    let model = tiny_vl(&ws);
    let data = synth(&ws, "2");
    let template = std::fs::read_to_string(repo_root().join("examples/train/demo-graph.toml")).unwrap();
    let graph = ws.write("demo-graph.toml", &with_built_agents(&template, "../../", &model));
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 6, "3 items per user");
    for record in &records {
        let profile = &record["nodes"]["profile"];
        assert_eq!(profile["ok"], true, "{record}");
        assert_eq!(profile["usage"]["requests"], 0, "the digest asks no model: {record}");
        for field in ["negativity_tolerance", "sensory_tolerance", "bored_by"] {
            let value = profile["output"]["profile"][field].as_str().unwrap();
            assert!(value.contains("such video"), "{field}: {value}");
        }
        let v = verdict(record, "reason");
        assert!(v["attitude"] == "like" || v["attitude"] == "negative", "{v}");
    }
}

#[test]
fn the_explicit_graph_runs_the_video_agent_alone_with_verdicts() {
    let ws = Workspace::new();
    let model = tiny_vl(&ws);
    let data = synth(&ws, "2");
    let graph = shipped_graph(&ws, "explicit", &model);
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &[]);
    assert!(output.status.success(), "{}", text(&output));
    for record in &records {
        let v = verdict(record, "video");
        assert!(v["attitude"].is_string(), "{v}");
    }
    let eval = ws.enf(&["eval", out.to_str().unwrap(), "--data", data.to_str().unwrap(), "--task", "explicit"]);
    assert!(eval.status.success(), "{}", text(&eval));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("Video Agent 7b (Table 2)"));
}

/// A few lines in recbole's ml-100k format: 3 users, 12 movies.
fn tiny_movielens(ws: &Workspace) -> PathBuf {
    let mut inter = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    for user in 1..=3 {
        for item in 1..=11 {
            let rating = if (user + item) % 3 == 0 { 2 } else { 5 };
            inter.push_str(&format!("{user}\t{item}\t{rating}\t{}\n", 880000000 + user * 100 + item));
        }
    }
    let mut items = String::from("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n");
    for item in 1..=14 {
        items.push_str(&format!("{item}\tMovie {item}\t199{}\tComedy Drama\n", item % 10));
    }
    let users = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n3\t23\tM\twriter\t32067\n";
    ws.write("ml-100k/ml-100k.inter", &inter);
    ws.write("ml-100k/ml-100k.item", &items);
    ws.write("ml-100k/ml-100k.user", users);
    ws.path("ml-100k")
}

#[test]
fn the_agent4rec_graph_runs_on_converted_movielens_and_scores_per_user() {
    let ws = Workspace::new();
    let model = tiny_vl(&ws);
    let source = tiny_movielens(&ws);
    let data = ws.path("movielens");
    let convert = ws.enf(&[
        "data",
        "movielens",
        data.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--users",
        "3",
        "--positives",
        "1",
        "--ratio",
        "1",
    ]);
    assert!(convert.status.success(), "{}", text(&convert));
    let check = ws.enf(&["data", "check", data.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    let graph = shipped_graph(&ws, "agent4rec", &model);
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 6, "1 liked + 1 unseen movie for each of 3 users");
    let eval = ws.enf(&["eval", out.to_str().unwrap(), "--data", data.to_str().unwrap(), "--task", "agent4rec"]);
    assert!(eval.status.success(), "{}", text(&eval));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("per-user averages over 3 user(s)"), "{}", text(&eval));
}
