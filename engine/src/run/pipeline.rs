//! A graph made ready to run: the validated [`Graph`], one backend per
//! model alias (from a [`BackendRegistry`], so models are loaded once and
//! can be swapped for another backend) and one loaded plugin per node.
//! [`CheckedGraph`] is the same without models: what `enf graph check`
//! reports on, without loading weights. Loading makes the checks
//! that need the files themselves and reports them as [`GraphProblem`]s:
//! unusable manifests, components that are not agents or target another
//! contract version, and `NODE.FIELD` inputs naming a field the source
//! node's output schema does not declare.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::graph::{Graph, GraphError, GraphProblem, InputRef};
use crate::inference::{Backend, BackendRegistry, CacheStats, CachedBackend, InFlightBackend};
use crate::plugin::{CacheOutcome, HostConfig, LoadedPlugin, PluginHost};

/// Deepest chain of on-demand calls (A calls B calls C …).
pub const MAX_CALL_DEPTH: u32 = 4;

/// Options for loading a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Compiled-component cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Items that will be in flight at once (sizes the instance pool).
    pub concurrency: usize,
    /// Directory of the inference cache; `None` disables it.
    pub inference_cache: Option<PathBuf>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self { cache_dir: HostConfig::default().cache_dir, concurrency: 4, inference_cache: None }
    }
}

/// A loaded, runnable graph.
pub struct Pipeline {
    /// The validated graph.
    pub graph: Graph,
    /// The plugin host all nodes share.
    pub host: PluginHost,
    /// One loaded plugin per node, by node index.
    pub plugins: Vec<LoadedPlugin>,
    /// Backends by model alias.
    pub backends: HashMap<String, Arc<dyn Backend>>,
    /// Calls in flight to each model alias (a cancelled call stops counting at once).
    pub calls_in_flight: HashMap<String, Arc<std::sync::atomic::AtomicUsize>>,
    /// Inference-cache counters, when the cache is on.
    pub cache_stats: Option<Arc<CacheStats>>,
}

/// A graph whose plugins are loaded and checked, but whose models are not
/// (what `enf graph check` reports on without loading weights).
pub struct CheckedGraph {
    /// The validated graph.
    pub graph: Graph,
    /// The plugin host the plugins were loaded into.
    pub host: PluginHost,
    /// One loaded plugin per node, by node index.
    pub plugins: Vec<LoadedPlugin>,
}

impl CheckedGraph {
    /// Validates the graph file, checks each model manifest as far as it can
    /// be without loading weights, loads the plugins and checks the inputs
    /// they declare; reports every problem found.
    pub async fn check(path: &Path, options: &PipelineOptions) -> Result<CheckedGraph, GraphError> {
        let graph = Graph::load(path)?;
        let mut problems = Vec::new();
        for model in &graph.models {
            if let Err(e) = crate::inference::preflight(&model.manifest) {
                problems.push(problem(&graph, Some(model.line), None, format!("model `{}`: {e}", model.alias)));
            }
        }
        Self::with_plugins(graph, options, problems).await
    }

    /// Loads the plugins of `graph`; `problems` found so far are reported
    /// with any found here.
    async fn with_plugins(
        graph: Graph,
        options: &PipelineOptions,
        mut problems: Vec<GraphProblem>,
    ) -> Result<CheckedGraph, GraphError> {
        let scheduled = graph.nodes.len().max(1);
        let slots = options.concurrency.max(1) * scheduled * (MAX_CALL_DEPTH as usize + 1) + 2;
        let max_memory = graph.nodes.iter().map(|n| n.limits.memory).max().unwrap_or(64 << 20);
        let config = HostConfig {
            cache_dir: options.cache_dir.clone(),
            instance_slots: u32::try_from(slots.min(4_000)).unwrap_or(4_000),
            max_memory: max_memory.next_multiple_of(64 << 10),
        };
        let host = PluginHost::new(&config)
            .map_err(|e| GraphError { problems: vec![problem(&graph, None, None, e.to_string())] })?;

        let mut plugins = Vec::with_capacity(graph.nodes.len());
        let mut loaded: HashMap<PathBuf, LoadedPlugin> = HashMap::new();
        for node in &graph.nodes {
            if let Some(plugin) = loaded.get(&node.plugin) {
                plugins.push(Some(plugin.clone()));
                continue;
            }
            match host.load(&node.plugin).await {
                Ok(plugin) => {
                    if plugin.cache == CacheOutcome::Compiled {
                        tracing::info!(node = %node.name, plugin = %node.plugin.display(), "compiled plugin");
                    }
                    loaded.insert(node.plugin.clone(), plugin.clone());
                    plugins.push(Some(plugin));
                }
                Err(e) => {
                    problems.push(problem(&graph, Some(node.line), Some(&node.name), e.to_string()));
                    plugins.push(None);
                }
            }
        }
        check_declared_inputs(&graph, &plugins, &mut problems);
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(GraphError { problems });
        }
        let plugins = plugins.into_iter().flatten().collect();
        Ok(CheckedGraph { graph, host, plugins })
    }
}

impl Pipeline {
    /// Validates the graph file, loads its models (each once, into a
    /// registry of its own) and plugins, and reports every problem found.
    pub async fn load(path: &Path, options: &PipelineOptions) -> Result<Pipeline, GraphError> {
        Self::build(Graph::load(path)?, &BackendRegistry::new(), options).await
    }

    /// Makes `graph` runnable with the backends of `registry`: a model the
    /// registry already serves (loaded earlier, or a backend put there — a
    /// trainer's policy) is not loaded again; others are started into it.
    pub async fn build(
        graph: Graph,
        registry: &BackendRegistry,
        options: &PipelineOptions,
    ) -> Result<Pipeline, GraphError> {
        let mut problems: Vec<GraphProblem> = Vec::new();
        let cache_stats = options.inference_cache.as_ref().map(|_| Arc::new(CacheStats::default()));
        let mut backends = HashMap::new();
        let mut calls_in_flight = HashMap::new();
        for model in &graph.models {
            match registry.get_or_start(&model.manifest).await {
                Ok(backend) => {
                    let backend = match (&options.inference_cache, &cache_stats) {
                        (Some(dir), Some(stats)) => {
                            Arc::new(CachedBackend::for_manifest(backend, dir, &model.manifest, stats.clone()))
                                as Arc<dyn Backend>
                        }
                        _ => backend,
                    };
                    let counted = InFlightBackend::new(backend);
                    calls_in_flight.insert(model.alias.clone(), counted.counter());
                    backends.insert(model.alias.clone(), Arc::new(counted) as Arc<dyn Backend>);
                }
                Err(e) => {
                    problems.push(problem(&graph, Some(model.line), None, format!("model `{}`: {e}", model.alias)));
                }
            }
        }
        let CheckedGraph { graph, host, plugins } = CheckedGraph::with_plugins(graph, options, problems).await?;
        Ok(Pipeline { graph, host, plugins, backends, calls_in_flight, cache_stats })
    }
}

fn problem(graph: &Graph, line: Option<usize>, node: Option<&str>, message: String) -> GraphProblem {
    GraphProblem { file: graph.path.clone(), line, node: node.map(str::to_string), message }
}

/// `NODE.FIELD` inputs naming a field the source node's output schema does
/// not declare.
fn check_declared_inputs(graph: &Graph, plugins: &[Option<LoadedPlugin>], problems: &mut Vec<GraphProblem>) {
    for node in &graph.nodes {
        for input in &node.inputs {
            let InputRef::Node { node: source, path } = &input.source else {
                continue;
            };
            let Some(field) = path.first() else { continue };
            let Some(index) = graph.node_index(source) else {
                continue;
            };
            let Some(plugin) = &plugins[index] else {
                continue;
            };
            if let Some(declared) = declared_fields(&plugin.descriptor.output_schema)
                && !declared.iter().any(|d| d == field)
            {
                problems.push(problem(
                    graph,
                    Some(input.line),
                    Some(&node.name),
                    format!(
                        "input `{}` = `{}`: `{source}`'s output has no field `{field}` (its schema declares: {})",
                        input.field,
                        input.source,
                        declared.join(", ")
                    ),
                ));
            }
        }
    }
}

/// Top-level `properties` of a JSON Schema, when it declares any.
fn declared_fields(schema: &str) -> Option<Vec<String>> {
    let schema: serde_json::Value = serde_json::from_str(schema).ok()?;
    let properties = schema.get("properties")?.as_object()?;
    let mut fields: Vec<String> = properties.keys().cloned().collect();
    fields.sort();
    Some(fields)
}
