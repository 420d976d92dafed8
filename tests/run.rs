//! `enf run` end to end: outputs per node, concurrency, on-demand calls,
//! retries and deadlines around host calls, frames, resuming after
//! `kill -9`, swapping a plugin without rebuilding, the compile cache,
//! clear errors for bad data, and sharded runs merged into the one-machine
//! result.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Workspace, fixture, read_records, text};

fn graph(ws: &Workspace, body: &str) -> PathBuf {
    let body = body
        .replace("{echo}", &fixture("echo_agent").display().to_string())
        .replace("{caller}", &fixture("caller_agent").display().to_string());
    ws.write("graph.toml", &format!("[graph]\nname = \"test\"\n{body}"))
}

fn node<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record["nodes"][name]
}

#[test]
fn every_item_gets_one_line_with_each_nodes_output_error_and_timing() {
    let ws = Workspace::new();
    ws.echo_model("m", "[echo]\nreply = \"{images} frames: {prompt}\"");
    let data = ws.data(3, 4);
    let g = graph(
        &ws,
        "[models.m]\nmanifest = \"models/m.toml\"\n[nodes.ask]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\", frames = \"$item.candidate.frames\" }\n[nodes.summary]\nplugin = \"{echo}\"\ninputs = { answer = \"ask.answer\", history = \"$item.history\" }\n",
    );
    let out = ws.path("out.jsonl");
    // Node memoisation off: users share candidates, and every node is to run.
    let (output, records) = ws.run(&g, &data, &out, &["--concurrency", "5", "--no-node-cache"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(records.len(), 12);
    let mut ids: Vec<&str> = records.iter().map(|r| r["item_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "each item exactly once");
    for record in &records {
        assert_eq!(record["ok"], true, "{record}");
        let ask = node(record, "ask");
        let title = format!("Video number {}", record["video_id"].as_str().unwrap().trim_start_matches('v'));
        assert_eq!(ask["output"]["answer"], format!("2 frames: {title}"), "frames reach the model: {record}");
        assert_eq!(ask["usage"]["requests"], 1);
        assert!(ask["ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(
            node(record, "summary")["output"]["echo"]["answer"],
            ask["output"]["answer"],
            "data flows along edges"
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("12 item(s) run"), "{stdout}");
}

#[test]
fn independent_nodes_run_concurrently() {
    let ws = Workspace::new();
    ws.echo_model("slow", "[echo]\ndelay = \"400ms\"");
    let data = ws.data(1, 1);
    let g = graph(
        &ws,
        "[models.slow]\nmanifest = \"models/slow.toml\"\n[nodes.left]\nplugin = \"{echo}\"\nmodel = \"slow\"\ninputs = { prompt = \"$item.candidate.title\" }\n[nodes.right]\nplugin = \"{echo}\"\nmodel = \"slow\"\ninputs = { prompt = \"$item.candidate.title\" }\n[nodes.join]\nplugin = \"{echo}\"\ninputs = { l = \"left.answer\", r = \"right.answer\" }\n",
    );
    let (output, records) = ws.run(&g, &data, &ws.path("out.jsonl"), &[]);
    assert!(output.status.success(), "{}", text(&output));
    let record = &records[0];
    let (left, right, join) = (node(record, "left"), node(record, "right"), node(record, "join"));
    let left_end = left["start_ms"].as_f64().unwrap() + left["ms"].as_f64().unwrap();
    let right_end = right["start_ms"].as_f64().unwrap() + right["ms"].as_f64().unwrap();
    assert!(right["start_ms"].as_f64().unwrap() < left_end, "right started before left ended: {record}");
    assert!(left["start_ms"].as_f64().unwrap() < right_end, "left started before right ended: {record}");
    assert!(join["start_ms"].as_f64().unwrap() >= left_end.max(right_end) - 1.0, "join waits for both: {record}");
}

#[test]
fn a_node_calls_a_declared_node_on_demand() {
    let ws = Workspace::new();
    let data = ws.data(1, 2);
    let g = graph(
        &ws,
        "[nodes.caller]\nplugin = \"{caller}\"\ninputs = { payload = \"$item.candidate.title\" }\ncalls = [\"helper\"]\nconfig = { target = \"helper\" }\n[nodes.helper]\nplugin = \"{echo}\"\non_demand = true\n",
    );
    let (output, records) = ws.run(&g, &data, &ws.path("out.jsonl"), &[]);
    assert!(output.status.success(), "{}", text(&output));
    for record in &records {
        let caller = node(record, "caller");
        assert_eq!(caller["ok"], true, "{record}");
        assert_eq!(caller["output"]["called"]["echo"]["from"], "caller");
        assert_eq!(caller["calls"][0]["node"], "helper");
        assert_eq!(caller["calls"][0]["ok"], true);
        assert!(record["nodes"].get("helper").is_none(), "an on_demand node is not scheduled on its own");
    }
}

#[test]
fn a_deadline_also_covers_time_spent_waiting_on_the_host_and_retries_are_counted() {
    let ws = Workspace::new();
    ws.echo_model("stuck", "[echo]\ndelay = \"30s\"");
    let data = ws.data(1, 2);
    let g = graph(
        &ws,
        "[models.stuck]\nmanifest = \"models/stuck.toml\"\n[nodes.wait]\nplugin = \"{echo}\"\nmodel = \"stuck\"\ninputs = { prompt = \"$item.candidate.title\" }\ntimeout = \"300ms\"\nretries = 2\n[nodes.after]\nplugin = \"{echo}\"\ninputs = { x = \"wait.answer\" }\n",
    );
    let started = Instant::now();
    let (output, records) = ws.run(&g, &data, &ws.path("out.jsonl"), &[]);
    support::assert_finished_with_failures(&output);
    assert!(started.elapsed() < Duration::from_secs(20), "the 30 s inference was not waited for");
    for record in &records {
        let wait = node(record, "wait");
        assert_eq!(wait["attempts"], 3, "{record}");
        let error = wait["error"].as_str().unwrap();
        assert!(error.contains("timed out after 300ms") && error.contains("after 3 attempts"), "{error}");
        let after = node(record, "after");
        assert_eq!(after["attempts"], 0);
        assert!(after["error"].as_str().unwrap().contains("upstream node `wait` failed"), "{record}");
    }
}

#[test]
fn missing_frames_and_ungranted_models_fail_only_that_node() {
    let ws = Workspace::new();
    ws.echo_model("m", "");
    ws.echo_model("other", "");
    let data = ws.data(1, 2);
    let g = graph(
        &ws,
        "[models.m]\nmanifest = \"models/m.toml\"\n[models.other]\nmanifest = \"models/other.toml\"\n\
         [nodes.too_many_frames]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\" }\nconfig = { frames = 5 }\n\
         [nodes.ungranted]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\" }\nconfig = { model = \"other\" }\n\
         [nodes.no_model]\nplugin = \"{echo}\"\ninputs = { prompt = \"$item.candidate.title\" }\n\
         [nodes.fine]\nplugin = \"{echo}\"\nmodel = \"m\"\nmodels = [\"other\"]\ninputs = { prompt = \"$item.candidate.title\" }\nconfig = { model = \"other\" }\n",
    );
    let (output, records) = ws.run(&g, &data, &ws.path("out.jsonl"), &[]);
    support::assert_finished_with_failures(&output);
    assert_eq!(records.len(), 2);
    for record in &records {
        let error = |name: &str| node(record, name)["error"].as_str().unwrap_or_default().to_string();
        assert!(error("too_many_frames").contains("has 2 frame(s); frame 2 does not exist"), "{record}");
        assert!(error("ungranted").contains("model `other` is not granted to node `ungranted`"), "{record}");
        assert!(error("no_model").contains("declares no model"), "{record}");
        assert_eq!(node(record, "fine")["ok"], true, "{record}");
    }
}

#[test]
fn a_run_killed_with_sigkill_resumes_with_every_item_exactly_once() {
    let ws = Workspace::new();
    ws.echo_model("slow", "[echo]\ndelay = \"60ms\"");
    let data = ws.data(6, 5);
    let g = graph(
        &ws,
        "[models.slow]\nmanifest = \"models/slow.toml\"\n[nodes.a]\nplugin = \"{echo}\"\nmodel = \"slow\"\ninputs = { prompt = \"$item.candidate.title\" }\n",
    );
    let out = ws.path("out.jsonl");
    let mut child = ws
        .run_command(&g, &data, &out, &["--concurrency", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_records(&out).len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = read_records(&out).len();
    assert!((6..30).contains(&before), "killed mid-run after {before} items");
    // Simulate the worst case: the process died halfway through a line.
    let mut bytes = std::fs::read(&out).unwrap();
    bytes.extend_from_slice(b"{\"item_id\":\"u9/v9\",\"ok\":tr");
    std::fs::write(&out, bytes).unwrap();

    let (output, records) = ws.run(&g, &data, &out, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let mut ids: Vec<String> = records.iter().map(|r| r["item_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 30, "30 items in all");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "no item twice");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("{} already in", before)), "{}", text(&output));
}

fn agent_name(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["nodes"]["a"]["output"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn replacing_a_plugin_file_changes_the_logic_without_rebuilding_the_host() {
    let ws = Workspace::new();
    let data = ws.data(1, 2);
    let plugin = ws.path("plugins/agent.wasm");
    std::fs::create_dir_all(plugin.parent().unwrap()).unwrap();
    std::fs::copy(fixture("echo_agent"), &plugin).unwrap();
    let g = ws.write(
        "graph.toml",
        "[graph]\nname = \"swap\"\n[nodes.a]\nplugin = \"plugins/agent.wasm\"\ninputs = { user = \"$item.user\" }\n",
    );
    let (_, first) = ws.run(&g, &data, &ws.path("first.jsonl"), &[]);
    assert!(agent_name(&first).iter().all(|keys| keys == "echo"), "{first:?}");

    std::fs::copy(fixture("escape_agent"), &plugin).unwrap();
    let (output, second) = ws.run(&g, &data, &ws.path("second.jsonl"), &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        agent_name(&second).iter().all(|keys| keys.contains("tcp_connect")),
        "the new agent's logic ran: {second:?}"
    );
}

fn cache_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("components")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_second_run_starts_from_the_compile_cache() {
    let ws = Workspace::new();
    let data = ws.data(1, 1);
    let g = graph(
        &ws,
        "[nodes.a]\nplugin = \"{echo}\"\n[nodes.b]\nplugin = \"{caller}\"\ncalls = [\"a\"]\nconfig = { target = \"a\" }\n",
    );
    let (first, _) = ws.run(&g, &data, &ws.path("1.jsonl"), &[]);
    assert!(text(&first).contains("compiled plugin"), "{}", text(&first));
    assert_eq!(cache_entries(&ws.path("cache")), 2, "one entry per distinct component");
    let (second, records) = ws.run(&g, &data, &ws.path("2.jsonl"), &[]);
    assert!(!text(&second).contains("compiled plugin"), "nothing recompiled: {}", text(&second));
    assert_eq!(records[0]["ok"], true);
    assert_eq!(cache_entries(&ws.path("cache")), 2);
}

#[test]
fn bad_data_is_reported_with_file_and_line() {
    let ws = Workspace::new();
    let data = ws.data(2, 2);
    let mut interactions = std::fs::read_to_string(data.join("interactions.jsonl")).unwrap();
    interactions
        .push_str("{\"user_id\":\"u0\",\"video_id\":\"nope\",\"ts\":9,\"watch_s\":1,\"play_rate\":0.1}\n{broken\n");
    std::fs::write(data.join("interactions.jsonl"), interactions).unwrap();
    let g = graph(&ws, "[nodes.a]\nplugin = \"{echo}\"\n");
    let (output, records) = ws.run(&g, &data, &ws.path("out.jsonl"), &[]);
    let message = text(&output);
    assert!(!output.status.success());
    assert!(records.is_empty());
    assert!(message.contains("interactions.jsonl:5: unknown video_id `nope`"), "{message}");
    assert!(message.contains("interactions.jsonl:6:"), "{message}");
}

#[test]
fn failed_items_are_summarised_and_retry_failed_reruns_exactly_those() {
    let ws = Workspace::new();
    ws.echo_model("m", "");
    let data = ws.data(2, 3);
    // Video v0 lists one frame of the two the node shows: items of v0 fail.
    let videos = std::fs::read_to_string(data.join("videos.jsonl")).unwrap();
    let broken = videos.replace("\"frames/v0_0.png\",\"frames/v0_1.png\"", "\"frames/v0_0.png\"");
    assert_ne!(broken, videos);
    std::fs::write(data.join("videos.jsonl"), &broken).unwrap();
    let g = graph(
        &ws,
        "[models.m]\nmanifest = \"models/m.toml\"\n[nodes.ask]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\", video_id = \"$item.candidate.video_id\" }\nconfig = { frames = 2 }\n",
    );
    let out = ws.path("out.jsonl");
    let (output, first) = ws.run(&g, &data, &out, &[]);
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(2), "exit code 2: the run finished with failed items: {printed}");
    assert_eq!(first.len(), 6);
    let failed: Vec<&str> = first.iter().filter(|r| r["ok"] == false).map(|r| r["item_id"].as_str().unwrap()).collect();
    assert_eq!(failed.len(), 2, "the two items of v0: {first:?}");
    assert!(printed.contains("node `ask` failed on 2 item(s)"), "{printed}");
    assert!(
        printed.contains("2 × `ask`:") && printed.contains("frame 1 does not exist"),
        "grouped by reason: {printed}"
    );
    assert!(printed.contains("--retry-failed"), "the summary says how to rerun them: {printed}");

    // Rerunning without the flag runs nothing and still exits 2.
    let (output, again) = ws.run(&g, &data, &out, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(again, first, "nothing was rerun");

    // Fixed data, with --retry-failed: exactly the failed items run again,
    // each line replaced in place.
    std::fs::write(data.join("videos.jsonl"), &videos).unwrap();
    let (output, retried) = ws.run(&g, &data, &out, &["--retry-failed"]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("2 item(s) run") && printed.contains("2 of them retried"), "{printed}");
    let ids =
        |records: &[Value]| records.iter().map(|r| r["item_id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&retried), ids(&first), "one line per item, in the same places");
    assert!(retried.iter().all(|r| r["ok"] == true), "{retried:?}");
    for (before, after) in first.iter().zip(&retried) {
        if before["ok"] == true {
            assert_eq!(before, after, "an item that had succeeded is untouched");
        }
    }
}

/// A record without its timings, which differ from run to run.
fn without_timings(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.retain(|key, _| !key.ends_with("ms"));
            for entry in map.values_mut() {
                *entry = without_timings(entry.take());
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|entry| *entry = without_timings(entry.take())),
        _ => {}
    }
    value
}

#[test]
fn shards_cover_the_data_set_once_and_merge_into_the_one_machine_result() {
    let ws = Workspace::new();
    ws.echo_model("m", "");
    let data = ws.data(4, 5);
    let g = graph(
        &ws,
        "[models.m]\nmanifest = \"models/m.toml\"\n[nodes.ask]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\", user = \"$item.user\" }\n",
    );
    // One machine, one item at a time: the predictions file is in data set order.
    let whole = ws.path("whole.jsonl");
    // Node memoisation off throughout: each shard runs its items as another machine would.
    let (output, whole_records) = ws.run(&g, &data, &whole, &["--concurrency", "1", "--no-node-cache"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(whole_records.len(), 20);

    let mut shard_files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for index in 0..3 {
        let out = ws.path(&format!("shard-{index}.jsonl"));
        let (output, records) = ws.run(&g, &data, &out, &["--shard", &format!("{index}/3"), "--no-node-cache"]);
        assert!(output.status.success(), "{}", text(&output));
        assert!(!records.is_empty(), "shard {index} of 3 got no item of 20");
        for record in &records {
            assert!(seen.insert(record["item_id"].as_str().unwrap().to_string()), "{record} is in two shards");
        }
        shard_files.push(out);
    }
    assert_eq!(seen.len(), 20, "the shards together hold every item");

    let merged = ws.path("merged.jsonl");
    let merge_args = |files: &[PathBuf]| {
        let mut args = vec!["run", "--data", data.to_str().unwrap(), "--out", merged.to_str().unwrap(), "--merge"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = merge_args(&shard_files);
    let output = ws.enf(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("20 of 20 item(s)"), "{}", text(&output));
    let merged_records: Vec<Value> = read_records(&merged).into_iter().map(without_timings).collect();
    let expected: Vec<Value> = whole_records.into_iter().map(without_timings).collect();
    assert_eq!(merged_records, expected, "the merge is the one-machine result, in data set order");

    // A lost shard: the merge says what is missing (exit 2); `enf run` into
    // the merged file runs just those items.
    let args = merge_args(&shard_files[..2]);
    let output = ws.enf(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(2), "{printed}");
    assert!(printed.contains("are in no shard"), "{printed}");
    let (output, completed) = ws.run(&g, &data, &merged, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let mut ids: Vec<&str> = completed.iter().map(|r| r["item_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected_ids: Vec<&str> = expected.iter().map(|r| r["item_id"].as_str().unwrap()).collect();
    expected_ids.sort_unstable();
    assert_eq!(ids, expected_ids, "every item once after completing the merge");

    // Shards of one split only: the same file twice is refused by name.
    let args = merge_args(&[shard_files[0].clone(), shard_files[0].clone()]);
    let output = ws.enf(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("shard-0.jsonl"), "{}", text(&output));
}

/// A command line that cannot be parsed exits 64 (EX_USAGE), never 2 —
/// which says "the run finished, some items failed" — nor 0 for help.
#[test]
fn a_mistyped_flag_exits_64_not_the_code_of_failed_items() {
    let ws = Workspace::new();
    let output = ws.enf(&["run", "graph.toml", "--data", "d", "--out", "o.jsonl", "--concurency", "4"]);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(text(&output).contains("--concurency"), "{}", text(&output));
    let output = ws.enf(&["run", "--help"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}
