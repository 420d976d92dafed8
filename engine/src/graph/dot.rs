//! Graphviz rendering of a graph: data-flow edges solid and labelled with
//! the input field, on-demand `calls` dashed, item inputs from a `$item` box.

use petgraph::dot::{Config, Dot};
use petgraph::graph::DiGraph;

use super::{Graph, InputRef};

/// An edge of the drawing.
#[derive(Debug)]
enum Edge {
    Input(String),
    Call,
}

/// Renders `graph` in Graphviz DOT.
pub fn to_dot(graph: &Graph) -> String {
    let mut drawing = DiGraph::<String, Edge>::new();
    let item = drawing.add_node("$item".to_string());
    let ids: Vec<_> = graph.nodes.iter().map(|n| drawing.add_node(n.name.clone())).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            let from = match &input.source {
                InputRef::Item(_) => Some(item),
                InputRef::Node { node, .. } => graph.node_index(node).map(|j| ids[j]),
            };
            if let Some(from) = from {
                drawing.add_edge(from, ids[i], Edge::Input(input.field.clone()));
            }
        }
        for call in &node.calls {
            if let Some(j) = graph.node_index(call) {
                drawing.add_edge(ids[i], ids[j], Edge::Call);
            }
        }
    }
    let edge_attributes =
        |_: &DiGraph<String, Edge>, edge: petgraph::graph::EdgeReference<'_, Edge>| match edge.weight() {
            Edge::Input(field) => format!("label = {field:?}"),
            Edge::Call => "style = dashed, label = \"calls\"".to_string(),
        };
    let node_attributes = |_: &DiGraph<String, Edge>, (index, name): (petgraph::graph::NodeIndex, &String)| {
        if index == item {
            format!("label = {name:?}, shape = box, style = dashed")
        } else {
            let on_demand = graph.node(name).is_some_and(|n| n.on_demand);
            format!("label = {name:?}, shape = ellipse{}", if on_demand { ", style = dotted" } else { "" })
        }
    };
    let dot = Dot::with_attr_getters(
        &drawing,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &edge_attributes,
        &node_attributes,
    );
    format!("// graph {:?}\n{dot:?}", graph.name)
}
