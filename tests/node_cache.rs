//! Node-output memoisation in `enf run`: within a run a node's output is
//! computed once per distinct input (a user's profile once for all of the
//! user's candidates, even with them all in flight); across runs, swapping
//! one agent's `.wasm` re-executes that node and only what its change
//! reaches; a changed model manifest, plugin or frame file invalidates; and
//! sampled outputs, failures and `--no-node-cache` are never served from it.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Workspace, fixture, text};

/// Profile (per user, slow model) → Reason ← Video (per candidate); Reason
/// asks no model. Plugins are copies in the workspace, so tests can swap them.
fn graph(ws: &Workspace) -> PathBuf {
    std::fs::create_dir_all(ws.path("plugins")).unwrap();
    for name in ["profile", "video", "reason"] {
        std::fs::copy(fixture("echo_agent"), ws.path(&format!("plugins/{name}.wasm"))).unwrap();
    }
    ws.echo_model("m", "[echo]\nreply = \"seen: {prompt}\"\ndelay = \"150ms\"");
    ws.write(
        "graph.toml",
        "[graph]\nname = \"memo\"\n[models.m]\nmanifest = \"models/m.toml\"\n\
         [nodes.profile]\nplugin = \"plugins/profile.wasm\"\nmodel = \"m\"\ninputs = { prompt = \"$item.user.user_id\" }\n\
         [nodes.video]\nplugin = \"plugins/video.wasm\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\" }\n\
         [nodes.reason]\nplugin = \"plugins/reason.wasm\"\ninputs = { p = \"profile.answer\", v = \"video.answer\" }\n",
    )
}

/// The same component with a custom section appended: another plugin file
/// (another content hash) with the same logic, like a rebuilt agent.
fn rebuild(plugin: &Path, note: &str) {
    let mut bytes = std::fs::read(plugin).unwrap();
    let name = b"enf-test-note";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    bytes.push(0); // custom section
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    std::fs::write(plugin, bytes).unwrap();
}

/// How many records have node `name` served from the cache, and how many ran it.
fn cached_and_ran(records: &[Value], name: &str) -> (usize, usize) {
    let cached = records.iter().filter(|r| r["nodes"][name]["cached"] == true).count();
    (cached, records.len() - cached)
}

fn run(ws: &Workspace, g: &Path, data: &Path, out: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--concurrency", "6"];
    args.extend_from_slice(extra);
    let (output, records) = ws.run(g, data, &ws.path(out), &args);
    assert!(output.status.success(), "{}", text(&output));
    assert!(records.iter().all(|r| r["ok"] == true), "{records:?}");
    records
}

#[test]
fn a_swapped_agent_reruns_only_itself_and_what_its_change_reaches() {
    let ws = Workspace::new();
    let g = graph(&ws);
    let data = ws.data(2, 3);

    // Within a run: each user's profile runs once, though its three
    // candidates are in flight together; video and reason run per item.
    let (output, first) = ws.run(&g, &data, &ws.path("1.jsonl"), &["--concurrency", "6"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(cached_and_ran(&first, "profile"), (4, 2), "{first:?}");
    assert_eq!(cached_and_ran(&first, "video"), (3, 3), "3 videos, each shown to both users");
    assert_eq!(cached_and_ran(&first, "reason"), (0, 6));
    let reused = first.iter().find(|r| r["nodes"]["profile"]["cached"] == true).unwrap();
    assert_eq!(
        reused["nodes"]["profile"]["output"]["answer"],
        format!("seen: {}", reused["user_id"].as_str().unwrap())
    );
    assert_eq!(reused["nodes"]["profile"]["usage"]["requests"], 0, "nothing ran for a reused output");
    assert_eq!(reused["nodes"]["profile"]["attempts"], 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("node cache: 7 output(s) reused"), "{}", text(&output));

    // Across runs: nothing changed, nothing runs.
    let second = run(&ws, &g, &data, "2.jsonl", &[]);
    for name in ["profile", "video", "reason"] {
        assert_eq!(cached_and_ran(&second, name), (6, 0), "{name}: {second:?}");
    }
    let strip = |records: &[Value]| -> Vec<(String, Value)> {
        let mut outputs: Vec<(String, Value)> = records
            .iter()
            .map(|r| {
                let nodes = r["nodes"].as_object().unwrap().values().map(|n| n["output"].clone()).collect();
                (r["item_id"].as_str().unwrap().to_string(), nodes)
            })
            .collect();
        outputs.sort_by(|a, b| a.0.cmp(&b.0));
        outputs
    };
    assert_eq!(strip(&first), strip(&second), "the reused outputs are the computed ones");

    // Swap the Reason agent: only Reason runs again.
    rebuild(&ws.path("plugins/reason.wasm"), "v2");
    let third = run(&ws, &g, &data, "3.jsonl", &[]);
    assert_eq!(cached_and_ran(&third, "profile"), (6, 0));
    assert_eq!(cached_and_ran(&third, "video"), (6, 0));
    assert_eq!(cached_and_ran(&third, "reason"), (0, 6), "the swapped agent ran");

    // Swap the Profile agent: it runs; its output is the same, so Reason's
    // input is too and Reason is reused; Video is untouched.
    rebuild(&ws.path("plugins/profile.wasm"), "v2");
    let fourth = run(&ws, &g, &data, "4.jsonl", &[]);
    assert_eq!(cached_and_ran(&fourth, "profile"), (4, 2));
    assert_eq!(cached_and_ran(&fourth, "video"), (6, 0));
    assert_eq!(cached_and_ran(&fourth, "reason"), (6, 0), "same input, same plugin: {fourth:?}");

    // Another model manifest: both model users run again and, since the
    // answers change, so does Reason.
    ws.echo_model("m", "[echo]\nreply = \"now: {prompt}\"");
    let fifth = run(&ws, &g, &data, "5.jsonl", &[]);
    assert_eq!(cached_and_ran(&fifth, "profile"), (4, 2));
    assert_eq!(cached_and_ran(&fifth, "video"), (3, 3));
    assert_eq!(cached_and_ran(&fifth, "reason"), (0, 6));
    assert!(fifth.iter().all(|r| r["nodes"]["reason"]["output"]["echo"]["p"].as_str().unwrap().starts_with("now: ")));

    // Turned off: every node runs.
    let (output, off) = ws.run(&g, &data, &ws.path("6.jsonl"), &["--no-node-cache"]);
    assert!(output.status.success(), "{}", text(&output));
    for name in ["profile", "video", "reason"] {
        assert_eq!(cached_and_ran(&off, name), (0, 6), "{name}");
    }
    assert!(!String::from_utf8_lossy(&output.stdout).contains("node cache"), "{}", text(&output));
}

#[test]
fn sampled_outputs_failures_and_changed_frames_are_not_reused() {
    let ws = Workspace::new();
    ws.echo_model("greedy", "[echo]\nreply = \"{images} frames: {prompt}\"");
    ws.echo_model("sampled", "[sampling]\ntemperature = 0.7");
    let data = ws.data(1, 2);
    let g = ws.write(
        "graph.toml",
        &format!(
            "[graph]\nname = \"memo\"\n[models.greedy]\nmanifest = \"models/greedy.toml\"\n[models.sampled]\nmanifest = \"models/sampled.toml\"\n\
             [nodes.look]\nplugin = \"{echo}\"\nmodel = \"greedy\"\ninputs = {{ prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\", frames = \"$item.candidate.frames\" }}\n\
             [nodes.guess]\nplugin = \"{echo}\"\nmodel = \"sampled\"\ninputs = {{ prompt = \"$item.candidate.title\" }}\n\
             [nodes.broken]\nplugin = \"{echo}\"\nmodel = \"greedy\"\ninputs = {{ prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\" }}\nconfig = {{ frames = 9 }}\n",
            echo = fixture("echo_agent").display()
        ),
    );
    let (output, first) = ws.run(&g, &data, &ws.path("1.jsonl"), &[]);
    assert_eq!(output.status.code(), Some(2), "`broken` asks for frames that do not exist: {}", text(&output));
    assert!(first.iter().all(|r| r["nodes"]["look"]["output"]["answer"].as_str().unwrap().starts_with("2 frames")));

    // A frame of v1 changes: items showing v1 look again, v0's are reused.
    support::write_png(&data.join("frames/v1_0.png"), 64, 200);
    let (_, second) = ws.run(&g, &data, &ws.path("2.jsonl"), &[]);
    for record in &second {
        let look = &record["nodes"]["look"];
        match record["video_id"].as_str().unwrap() {
            "v0" => assert_eq!(look["cached"], true, "{record}"),
            _ => assert!(look.get("cached").is_none(), "a changed frame is another input: {record}"),
        }
        assert!(record["nodes"]["guess"].get("cached").is_none(), "sampled outputs are never reused: {record}");
        assert_eq!(record["nodes"]["broken"]["ok"], false, "failures are never stored: {record}");
        assert!(record["nodes"]["broken"]["error"].as_str().unwrap().contains("frame 2 does not exist"), "{record}");
    }
}
