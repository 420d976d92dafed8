//! `enf graph check` reports every problem of a graph file with the file,
//! line and node named, and exits non-zero; `enf graph dot` draws a valid one.

mod support;

use support::{Workspace, fixture, text};

/// Writes `graph.toml` (with `{echo}` replaced by the echo fixture's path),
/// runs `enf graph check` on it and returns (success, output).
fn check(ws: &Workspace, graph: &str) -> (bool, String) {
    let graph = graph.replace("{echo}", &fixture("echo_agent").display().to_string());
    let path = ws.write("graph.toml", &graph);
    let output = ws.enf(&["graph", "check", path.to_str().unwrap()]);
    (output.status.success(), text(&output))
}

fn assert_problem(ws: &Workspace, graph: &str, expected: &[&str]) {
    let (ok, message) = check(ws, graph);
    assert!(!ok, "check must fail:\n{message}");
    for part in expected {
        assert!(message.contains(part), "expected `{part}` in:\n{message}");
    }
}

#[test]
fn a_valid_graph_passes_and_lists_its_agents() {
    let ws = Workspace::new();
    ws.echo_model("m", "");
    let (ok, message) = check(
        &ws,
        "[graph]\nname = \"ok\"\n[models.m]\nmanifest = \"models/m.toml\"\n[nodes.a]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { user = \"$item.user\" }\n[nodes.b]\nplugin = \"{echo}\"\ninputs = { first = \"a.echo\" }\n",
    );
    assert!(ok, "{message}");
    assert!(message.contains("echo-agent 0.1.0"), "{message}");
}

#[test]
fn a_cycle_is_reported_with_its_path() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"c\"\n[nodes.a]\nplugin = \"{echo}\"\ninputs = { x = \"c\" }\n[nodes.b]\nplugin = \"{echo}\"\ninputs = { x = \"a\" }\n[nodes.c]\nplugin = \"{echo}\"\ninputs = { x = \"b\" }\n",
        &["graph.toml:", "inputs form a cycle: a → b → c → a"],
    );
}

#[test]
fn a_node_taking_its_own_output_is_a_cycle() {
    let ws = Workspace::new();
    assert_problem(&ws, "[graph]\nname = \"c\"\n[nodes.a]\nplugin = \"{echo}\"\ninputs = { x = \"a\" }\n", &["a → a"]);
}

#[test]
fn an_unknown_node_is_named_with_its_line() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"u\"\n[nodes.a]\nplugin = \"{echo}\"\ninputs = { x = \"ghost.field\" }\n",
        &["graph.toml:5:", "node `a`", "unknown node `ghost`"],
    );
}

#[test]
fn a_missing_plugin_file_is_named() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"m\"\n[nodes.a]\nplugin = \"plugins/nowhere.wasm\"\n",
        &["graph.toml:4:", "node `a`", "nowhere.wasm does not exist"],
    );
}

#[test]
fn a_component_that_is_not_an_agent_is_refused() {
    let ws = Workspace::new();
    let command = fixture("not-an-agent");
    assert_problem(
        &ws,
        &format!("[graph]\nname = \"n\"\n[nodes.a]\nplugin = \"{}\"\n", command.display()),
        &["node `a`", "does not implement the agent world", "wasi:cli/run"],
    );
}

#[test]
fn files_that_are_not_components_are_refused() {
    let ws = Workspace::new();
    ws.write("core.wasm", "\0asm\x01\0\0\0");
    ws.write("text.wasm", "definitely not wasm");
    assert_problem(
        &ws,
        "[graph]\nname = \"n\"\n[nodes.core]\nplugin = \"core.wasm\"\n[nodes.text]\nplugin = \"text.wasm\"\n",
        &["node `core`", "core WebAssembly module, not a component", "node `text`", "not a WebAssembly file"],
    );
}

#[test]
fn an_unknown_model_is_named() {
    let ws = Workspace::new();
    ws.echo_model("m", "");
    assert_problem(
        &ws,
        "[graph]\nname = \"m\"\n[models.m]\nmanifest = \"models/m.toml\"\n[nodes.a]\nplugin = \"{echo}\"\nmodel = \"gpt5\"\n",
        &["graph.toml:7:", "node `a`", "unknown model `gpt5`", "`m`"],
    );
}

#[test]
fn a_missing_or_broken_model_manifest_is_named() {
    let ws = Workspace::new();
    ws.write("models/bad.toml", "name = \"bad\"\nbackend = \"echo\"\nflavour = \"x\"\n");
    assert_problem(
        &ws,
        "[graph]\nname = \"m\"\n[models.gone]\nmanifest = \"models/gone.toml\"\n[models.bad]\nmanifest = \"models/bad.toml\"\n[nodes.a]\nplugin = \"{echo}\"\nmodel = \"bad\"\n",
        &["model `gone`: manifest", "gone.toml does not exist", "model `bad`", "bad.toml", "line 3", "flavour"],
    );
}

#[test]
fn calls_to_an_undeclared_node_are_refused() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"c\"\n[nodes.a]\nplugin = \"{echo}\"\ncalls = [\"oracle\"]\n",
        &["graph.toml:5:", "node `a`", "`calls` names `oracle`, which is not a declared node"],
    );
}

#[test]
fn an_input_naming_a_missing_item_field_is_refused() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"f\"\n[nodes.a]\nplugin = \"{echo}\"\ninputs = { x = \"$item.wallet\" }\n",
        &["graph.toml:5:", "node `a`", "item field `wallet`, which does not exist", "candidate"],
    );
}

#[test]
fn an_input_naming_a_field_the_source_does_not_output_is_refused() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"f\"\n[nodes.a]\nplugin = \"{echo}\"\n[nodes.b]\nplugin = \"{echo}\"\ninputs = { x = \"a.verdict\" }\n",
        &["graph.toml:7:", "node `b`", "`a`'s output has no field `verdict`", "answer, echo"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let ws = Workspace::new();
    let (ok, message) = check(
        &ws,
        "[graph]\nname = \"many\"\n[nodes.a]\nplugin = \"gone.wasm\"\nmodel = \"nope\"\ncalls = [\"ghost\"]\ninputs = { x = \"$item.nothing\", y = \"phantom\" }\ntimeout = \"soon\"\n",
    );
    assert!(!ok);
    for part in [
        "gone.wasm does not exist",
        "unknown model `nope`",
        "`calls` names `ghost`",
        "`nothing`",
        "unknown node `phantom`",
        "timeout `soon`",
        "6 problem(s) found",
    ] {
        assert!(message.contains(part), "expected `{part}` in:\n{message}");
    }
}

#[test]
fn toml_syntax_errors_name_line_and_column() {
    let ws = Workspace::new();
    assert_problem(&ws, "[graph]\nname = \"s\"\n[nodes.a\nplugin = 1\n", &["graph.toml", "line 3"]);
}

#[test]
fn unknown_keys_are_refused() {
    let ws = Workspace::new();
    assert_problem(&ws, "[graph]\nname = \"k\"\n[nodes.a]\nplugin = \"{echo}\"\nplugins = \"typo\"\n", &["plugins"]);
}

#[test]
fn an_on_demand_node_nobody_calls_is_reported() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"d\"\n[nodes.a]\nplugin = \"{echo}\"\non_demand = true\n",
        &["node `a`", "never called"],
    );
}

#[test]
fn calls_forming_a_cycle_are_reported() {
    let ws = Workspace::new();
    assert_problem(
        &ws,
        "[graph]\nname = \"d\"\n[nodes.a]\nplugin = \"{echo}\"\ncalls = [\"b\"]\n[nodes.b]\nplugin = \"{echo}\"\ncalls = [\"a\"]\n",
        &["`calls` form a cycle: a → b → a"],
    );
}

#[test]
fn dot_draws_data_edges_and_calls() {
    let ws = Workspace::new();
    let graph = ws.write(
        "graph.toml",
        &"[graph]\nname = \"d\"\n[nodes.a]\nplugin = \"{echo}\"\ninputs = { user = \"$item.user\" }\ncalls = [\"c\"]\n[nodes.b]\nplugin = \"{echo}\"\ninputs = { first = \"a\" }\n[nodes.c]\nplugin = \"{echo}\"\non_demand = true\n"
            .replace("{echo}", &fixture("echo_agent").display().to_string()),
    );
    let output = ws.enf(&["graph", "dot", graph.to_str().unwrap()]);
    let dot = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    assert!(dot.contains("digraph"), "{dot}");
    assert!(dot.contains("label = \"user\""), "{dot}");
    assert!(dot.contains("label = \"first\""), "{dot}");
    assert!(dot.contains("style = dashed, label = \"calls\""), "{dot}");
}

/// `graph check` checks a model's manifest and files but loads no weights:
/// a model directory whose weights cannot be loaded passes the check (and
/// fails `enf run`, naming the manifest), a missing directory does not.
#[test]
fn graph_check_checks_model_files_without_loading_weights() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("models/no-weights")).unwrap();
    ws.write("models/no-weights/config.json", "{ \"not\": \"a model config\" }");
    let manifest = |dir: &str| {
        format!(
            "name = \"broken\"\nbackend = \"mistralrs\"\n[mistralrs]\nsource = {{ dir = \"{dir}\" }}\narchitecture = \"llama\"\ndtype = \"f32\"\ndevice = \"cpu\"\n"
        )
    };
    ws.write("models/broken.toml", &manifest("no-weights"));
    let graph = "[graph]\nname = \"w\"\n[models.m]\nmanifest = \"models/broken.toml\"\n[nodes.a]\nplugin = \"{echo}\"\nmodel = \"m\"\ninputs = { prompt = \"$item.candidate.title\" }\n";
    let (ok, message) = check(&ws, graph);
    assert!(ok, "no weights are loaded by the check: {message}");

    let data = ws.data(1, 1);
    let path = ws.path("graph.toml");
    let (output, _) = ws.run(&path, &data, &ws.path("out.jsonl"), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("broken.toml"), "{}", text(&output));

    ws.write("models/broken.toml", &manifest("gone"));
    assert_problem(&ws, graph, &["model `m`", "broken.toml", "does not exist"]);
}
