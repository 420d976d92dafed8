//! From a parsed [`GraphFile`] to a [`Graph`], collecting every problem.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use toml::Spanned;

use crate::inference::ModelManifest;

use super::spec::{GraphFile, LimitsRef, NodeSpec};
use super::{Graph, GraphError, ITEM_FIELDS, InputRef, ModelRef, Node, NodeInput, NodeLimits, Problems};
use crate::problems::describe_toml_error;

impl Graph {
    /// Reads, parses and validates a graph file. Every problem found is
    /// returned at once, each naming the file, line and node.
    pub fn load(path: &Path) -> Result<Graph, GraphError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut problems = Problems::new(path, "");
            problems.at(None, None, format!("cannot read graph file: {e}"));
            problems.finish().unwrap_err()
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates graph text; relative paths resolve against the
    /// directory of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Graph, GraphError> {
        let mut problems = Problems::new(path, text);
        let file: GraphFile = match toml::from_str(text) {
            Ok(file) => file,
            Err(e) => {
                problems.at_line(None, None, format!("invalid graph file: {}", describe_toml_error(text, &e)));
                return Err(problems.finish().unwrap_err());
            }
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let graph = Validator { problems: &mut problems, base, file: &file }.run(path);
        problems.finish()?;
        Ok(graph)
    }
}

struct Validator<'a> {
    problems: &'a mut Problems,
    base: PathBuf,
    file: &'a GraphFile,
}

fn start<T>(spanned: &Spanned<T>) -> Option<usize> {
    Some(spanned.span().start)
}

impl Validator<'_> {
    fn run(mut self, path: &Path) -> Graph {
        let defaults = self.limits(self.file.defaults.as_ref(), None, NodeLimits::default());
        let models = self.models();
        if self.file.nodes.is_empty() {
            self.problems.at_line(None, None, "the graph declares no nodes ([nodes.NAME] tables)");
        }
        let mut nodes: Vec<Node> =
            self.file.nodes.iter().map(|(name, spec)| self.node(name, spec, &defaults)).collect();
        self.check_calls(&nodes);
        let dag = self.order(&mut nodes);
        Graph {
            path: path.to_path_buf(),
            name: self.file.graph.name.clone(),
            description: self.file.graph.description.clone(),
            models: models.into_values().collect(),
            nodes,
            dag,
        }
    }

    fn resolve(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }

    /// Parses every declared manifest; broken ones are reported and left out.
    fn models(&mut self) -> BTreeMap<String, ModelRef> {
        let mut models = BTreeMap::new();
        for (alias, spec) in &self.file.models {
            let path = self.resolve(spec.get_ref().manifest.get_ref());
            let line = self.problems.line_of(spec.span().start);
            if !path.is_file() {
                self.problems.at(
                    start(&spec.get_ref().manifest),
                    None,
                    format!("model `{alias}`: manifest {} does not exist", path.display()),
                );
                continue;
            }
            match ModelManifest::load(&path) {
                Ok(manifest) => {
                    models.insert(alias.clone(), ModelRef { alias: alias.clone(), path, line, manifest });
                }
                Err(e) => self.problems.at(start(&spec.get_ref().manifest), None, format!("model `{alias}`: {e}")),
            }
        }
        models
    }

    fn limits(&mut self, spec: LimitsRef<'_>, node: Option<&str>, inherited: NodeLimits) -> NodeLimits {
        let mut limits = inherited;
        if let Some(timeout) = spec.timeout {
            match humantime::parse_duration(timeout.get_ref()) {
                Ok(d) if d > Duration::ZERO => limits.timeout = d,
                Ok(_) => self.problems.at(start(timeout), node, "timeout must be longer than zero"),
                Err(e) => self.problems.at(start(timeout), node, format!("timeout `{}`: {e}", timeout.get_ref())),
            }
        }
        if let Some(retries) = spec.retries {
            limits.retries = retries;
        }
        for (field, spanned, slot) in
            [("memory", spec.memory, &mut limits.memory), ("max_output", spec.max_output, &mut limits.max_output)]
        {
            if let Some(text) = spanned {
                match text.get_ref().parse::<bytesize::ByteSize>() {
                    Ok(size) if size.as_u64() > 0 => *slot = size.as_u64(),
                    Ok(_) => self.problems.at(start(text), node, format!("{field} must be larger than zero")),
                    Err(e) => self.problems.at(start(text), node, format!("{field} `{}`: {e}", text.get_ref())),
                }
            }
        }
        if limits.memory > u64::from(u32::MAX) {
            self.problems.at_line(None, node, "memory may be at most 4GiB (32-bit linear memory)");
        }
        limits
    }

    fn node(&mut self, name: &str, spanned: &Spanned<NodeSpec>, defaults: &NodeLimits) -> Node {
        let spec = spanned.get_ref();
        let at = Some(name);
        let line = self.problems.line_of(spanned.span().start);
        let plugin = self.resolve(spec.plugin.get_ref());
        if !plugin.is_file() {
            self.problems.at(start(&spec.plugin), at, format!("plugin file {} does not exist", plugin.display()));
        }
        let mut grants = Vec::new();
        for alias in spec.model.iter().chain(&spec.models) {
            if !self.file.models.contains_key(alias.get_ref()) {
                let known = self.file.models.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                let known =
                    if known.is_empty() { "none are declared".to_string() } else { format!("declared: {known}") };
                self.problems.at(start(alias), at, format!("unknown model `{}` ({known})", alias.get_ref()));
            }
            if !grants.contains(alias.get_ref()) {
                grants.push(alias.get_ref().clone());
            }
        }
        let mut inputs = Vec::new();
        for (field, reference) in &spec.inputs {
            match InputRef::parse(reference.get_ref()) {
                Ok(source) => {
                    self.check_reference(name, &source, reference);
                    let line = self.problems.line_of(reference.span().start);
                    inputs.push(NodeInput { field: field.clone(), source, line });
                }
                Err(message) => self.problems.at(start(reference), at, format!("input `{field}`: {message}")),
            }
        }
        if field_clash(&inputs, spec.config.is_some()) {
            self.problems.at(
                Some(spanned.span().start),
                at,
                "an input may not be named `config` when the node has a config table",
            );
        }
        if spec.on_demand && !spec.inputs.is_empty() {
            self.problems.at(
                Some(spanned.span().start),
                at,
                "an on_demand node takes its input from its caller and may not declare inputs",
            );
        }
        let config = spec.config.as_ref().map(|table| match serde_json::to_value(table) {
            Ok(value) => value,
            Err(e) => {
                self.problems.at(Some(spanned.span().start), at, format!("config cannot be expressed as JSON: {e}"));
                serde_json::Value::Null
            }
        });
        let limits = self.limits(spec.limits(), at, defaults.clone());
        Node {
            name: name.to_string(),
            line,
            plugin,
            model: spec.model.as_ref().map(|m| m.get_ref().clone()),
            grants,
            inputs,
            calls: spec.calls.iter().map(|c| c.get_ref().clone()).collect(),
            on_demand: spec.on_demand,
            config,
            limits,
        }
    }

    fn check_reference(&mut self, node: &str, source: &InputRef, reference: &Spanned<String>) {
        let at = Some(node);
        match source {
            InputRef::Item(path) => {
                if let Some(field) = path.first().filter(|f| !ITEM_FIELDS.contains(&f.as_str())) {
                    self.problems.at(
                        start(reference),
                        at,
                        format!(
                            "input `{}` names item field `{field}`, which does not exist (items have: {})",
                            reference.get_ref(),
                            ITEM_FIELDS.join(", ")
                        ),
                    );
                }
            }
            InputRef::Node { node: target, .. } => match self.file.nodes.get(target) {
                None => self.problems.at(
                    start(reference),
                    at,
                    format!("input `{}` names unknown node `{target}`", reference.get_ref()),
                ),
                Some(spec) if spec.get_ref().on_demand => self.problems.at(
                    start(reference),
                    at,
                    format!(
                        "input `{}` names `{target}`, an on_demand node that produces no output of its own",
                        reference.get_ref()
                    ),
                ),
                Some(_) => {}
            },
        }
    }

    fn check_calls(&mut self, nodes: &[Node]) {
        let mut callers: HashMap<&str, usize> = HashMap::new();
        for (name, spec) in &self.file.nodes {
            for call in &spec.get_ref().calls {
                let target = call.get_ref();
                if target == name {
                    self.problems.at(start(call), Some(name), "a node may not call itself");
                } else if !self.file.nodes.contains_key(target) {
                    self.problems.at(
                        start(call),
                        Some(name),
                        format!("`calls` names `{target}`, which is not a declared node"),
                    );
                } else {
                    *callers.entry(target.as_str()).or_default() += 1;
                }
            }
        }
        for node in nodes.iter().filter(|n| n.on_demand && !callers.contains_key(n.name.as_str())) {
            self.problems.at_line(
                Some(node.line),
                Some(&node.name),
                "on_demand node is never called (no node lists it in `calls`), so it would never run",
            );
        }
        let mut call_graph = DiGraph::<&str, ()>::new();
        let ids: HashMap<&str, NodeIndex> =
            nodes.iter().map(|n| (n.name.as_str(), call_graph.add_node(n.name.as_str()))).collect();
        for node in nodes {
            for target in &node.calls {
                if let (Some(&a), Some(&b)) = (ids.get(node.name.as_str()), ids.get(target.as_str()))
                    && a != b
                {
                    call_graph.add_edge(a, b, ());
                }
            }
        }
        for cycle in cycles(&call_graph) {
            let first = cycle[0].to_string();
            let line = nodes.iter().find(|n| n.name == first).map(|n| n.line);
            self.problems.at_line(line, Some(&first), format!("`calls` form a cycle: {}", cycle.join(" → ")));
        }
    }

    /// Builds the data-flow DAG, reports cycles and sorts `nodes`
    /// topologically (on_demand nodes last).
    fn order(&mut self, nodes: &mut Vec<Node>) -> DiGraph<usize, String> {
        let mut dag = DiGraph::<String, String>::new();
        let ids: HashMap<String, NodeIndex> =
            nodes.iter().map(|n| (n.name.clone(), dag.add_node(n.name.clone()))).collect();
        for node in nodes.iter() {
            for input in &node.inputs {
                if let InputRef::Node { node: source, .. } = &input.source
                    && let Some(&from) = ids.get(source)
                {
                    dag.add_edge(from, ids[&node.name], input.field.clone());
                }
            }
        }
        let order = match toposort(&dag, None) {
            Ok(order) => order,
            Err(_) => {
                let names = dag.map(|_, name| name.as_str(), |_, _| ());
                for cycle in cycles(&names) {
                    let first = cycle[0].to_string();
                    let line = nodes.iter().find(|n| n.name == first).map(|n| n.line);
                    self.problems.at_line(line, Some(&first), format!("inputs form a cycle: {}", cycle.join(" → ")));
                }
                dag.node_indices().collect()
            }
        };
        let mut names: Vec<String> = order.iter().map(|&i| dag[i].clone()).collect();
        names.sort_by_key(|name| nodes.iter().any(|n| &n.name == name && n.on_demand));
        let mut by_name: HashMap<String, Node> = nodes.drain(..).map(|n| (n.name.clone(), n)).collect();
        nodes.extend(names.iter().filter_map(|name| by_name.remove(name)));
        let position: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
        let mut ordered = DiGraph::<usize, String>::new();
        let indices: Vec<NodeIndex> = (0..nodes.len()).map(|i| ordered.add_node(i)).collect();
        for edge in dag.edge_indices() {
            if let Some((a, b)) = dag.edge_endpoints(edge) {
                ordered.add_edge(
                    indices[position[dag[a].as_str()]],
                    indices[position[dag[b].as_str()]],
                    dag[edge].clone(),
                );
            }
        }
        ordered
    }
}

fn field_clash(inputs: &[NodeInput], has_config: bool) -> bool {
    has_config && inputs.iter().any(|i| i.field == "config")
}

/// Every cycle of `graph` as a path of names that ends where it starts
/// (one per strongly connected component, plus self-loops).
fn cycles<'a, E>(graph: &DiGraph<&'a str, E>) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    for scc in tarjan_scc(graph) {
        // Start each cycle at its alphabetically first node, for stable messages.
        let Some(&first) = scc.iter().min_by_key(|&&i| graph[i]) else {
            continue;
        };
        let self_loop = graph.find_edge(first, first).is_some();
        if scc.len() == 1 && !self_loop {
            continue;
        }
        if self_loop {
            found.push(vec![graph[first], graph[first]]);
            continue;
        }
        // Breadth-first search inside the component from `first` back to it.
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([first]);
        let mut closing = None;
        while let Some(at) = queue.pop_front() {
            for next in graph.neighbors(at) {
                if next == first {
                    closing = Some(at);
                    break;
                }
                if scc.contains(&next) && !parent.contains_key(&next) {
                    parent.insert(next, at);
                    queue.push_back(next);
                }
            }
            if closing.is_some() {
                break;
            }
        }
        let mut path = vec![graph[first]];
        let mut at = closing.unwrap_or(first);
        let mut back = Vec::new();
        while at != first {
            back.push(graph[at]);
            at = parent[&at];
        }
        path.extend(back.into_iter().rev());
        path.push(graph[first]);
        found.push(path);
    }
    found
}
