//! `enf graph check` and `enf graph dot`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use enf::graph::Graph;
use enf::run::{CheckedGraph, PipelineOptions};

/// Checks a graph file with its plugins and model manifests (without
/// loading weights); prints every problem.
pub async fn check(file: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let options = PipelineOptions { cache_dir, concurrency: 1, inference_cache: None };
    match CheckedGraph::check(file, &options).await {
        Ok(pipeline) => {
            let graph = &pipeline.graph;
            println!(
                "{}: ok — graph `{}`, {} node(s), {} model(s)",
                file.display(),
                graph.name,
                graph.nodes.len(),
                graph.models.len()
            );
            for (node, plugin) in graph.nodes.iter().zip(&pipeline.plugins) {
                let d = &plugin.descriptor;
                println!("  {:<12} {} {} — {}", node.name, d.name, d.version, d.description);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            for problem in &error.problems {
                eprintln!("{problem}");
            }
            eprintln!("{} problem(s) found", error.problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints the graph in Graphviz DOT.
pub fn dot(file: &Path) -> anyhow::Result<ExitCode> {
    let graph = Graph::load(file).with_context(|| format!("cannot draw {}", file.display()))?;
    print!("{}", enf::graph::to_dot(&graph));
    Ok(ExitCode::SUCCESS)
}
