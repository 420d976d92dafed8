//! The counters behind `GET /metrics`, rendered in the Prometheus text
//! format: requests and latency per route and status, latency per node,
//! model calls and their time per node, the queue's depth, and the
//! inference cache's hits and misses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::run::ItemRecord;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A cumulative latency histogram.
#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(String, u16), u64>,
    route_latency: BTreeMap<String, Histogram>,
    node_latency: BTreeMap<String, Histogram>,
    node_failures: BTreeMap<String, u64>,
    model_requests: BTreeMap<String, u64>,
    model_seconds: BTreeMap<String, f64>,
    reloads: BTreeMap<&'static str, u64>,
}

/// The server's metrics (see the module docs).
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

/// Gauges read when `/metrics` is asked for.
pub struct Gauges {
    /// Requests admitted now.
    pub queue_depth: usize,
    /// Places in the queue.
    pub queue_capacity: usize,
    /// Inference-cache hits and misses, when the cache is on.
    pub cache: Option<(u64, u64)>,
    /// The serving version of the pipeline (1 at start, one more per reload).
    pub version: u64,
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One answered request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let mut counters = self.lock();
        *counters.requests.entry((route.to_string(), status)).or_default() += 1;
        counters.route_latency.entry(route.to_string()).or_default().observe(seconds);
    }

    /// One item's record: each node's time and outcome, its model calls.
    pub fn item(&self, record: &ItemRecord) {
        let mut counters = self.lock();
        for (node, outcome) in &record.nodes {
            counters.node_latency.entry(node.clone()).or_default().observe(outcome.ms / 1000.0);
            if !outcome.ok {
                *counters.node_failures.entry(node.clone()).or_default() += 1;
            }
            *counters.model_requests.entry(node.clone()).or_default() += u64::from(outcome.usage.requests);
            *counters.model_seconds.entry(node.clone()).or_default() += outcome.usage.ms / 1000.0;
        }
    }

    /// One reload, swapped in (`true`) or refused.
    pub fn reload(&self, swapped: bool) {
        *self.lock().reloads.entry(if swapped { "ok" } else { "refused" }).or_default() += 1;
    }

    /// The Prometheus text exposition of everything counted, and `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counters = self.lock();
        let mut out = String::new();
        out.push_str("# HELP enf_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE enf_requests_total counter\n");
        for ((route, status), count) in &counters.requests {
            let _ = writeln!(out, "enf_requests_total{{route=\"{}\",status=\"{status}\"}} {count}", escape(route));
        }
        out.push_str("# HELP enf_request_duration_seconds Time to answer a request, by route.\n");
        out.push_str("# TYPE enf_request_duration_seconds histogram\n");
        for (route, histogram) in &counters.route_latency {
            histogram.render(&mut out, "enf_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
        }
        out.push_str("# HELP enf_node_duration_seconds Time of a node on one item, all attempts.\n");
        out.push_str("# TYPE enf_node_duration_seconds histogram\n");
        for (node, histogram) in &counters.node_latency {
            histogram.render(&mut out, "enf_node_duration_seconds", &format!("node=\"{}\"", escape(node)));
        }
        out.push_str("# HELP enf_node_failures_total Items on which a node failed or was skipped.\n");
        out.push_str("# TYPE enf_node_failures_total counter\n");
        for (node, count) in &counters.node_failures {
            let _ = writeln!(out, "enf_node_failures_total{{node=\"{}\"}} {count}", escape(node));
        }
        out.push_str("# HELP enf_model_requests_total Model calls, by the node that made them.\n");
        out.push_str("# TYPE enf_model_requests_total counter\n");
        for (node, count) in &counters.model_requests {
            let _ = writeln!(out, "enf_model_requests_total{{node=\"{}\"}} {count}", escape(node));
        }
        out.push_str("# HELP enf_model_seconds_total Time in model calls, by the node that made them.\n");
        out.push_str("# TYPE enf_model_seconds_total counter\n");
        for (node, seconds) in &counters.model_seconds {
            let _ = writeln!(out, "enf_model_seconds_total{{node=\"{}\"}} {seconds}", escape(node));
        }
        out.push_str("# HELP enf_queue_depth Requests admitted now (running or waiting for a model).\n");
        out.push_str("# TYPE enf_queue_depth gauge\n");
        let _ = writeln!(out, "enf_queue_depth {}", gauges.queue_depth);
        out.push_str("# HELP enf_queue_capacity Requests that may be admitted at once.\n");
        out.push_str("# TYPE enf_queue_capacity gauge\n");
        let _ = writeln!(out, "enf_queue_capacity {}", gauges.queue_capacity);
        out.push_str(
            "# HELP enf_reloads_total Hot reloads, by outcome (ok: swapped in; refused: the old version kept).\n",
        );
        out.push_str("# TYPE enf_reloads_total counter\n");
        for outcome in ["ok", "refused"] {
            let count = counters.reloads.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "enf_reloads_total{{outcome=\"{outcome}\"}} {count}");
        }
        out.push_str("# HELP enf_pipeline_version The serving version of the pipeline.\n");
        out.push_str("# TYPE enf_pipeline_version gauge\n");
        let _ = writeln!(out, "enf_pipeline_version {}", gauges.version);
        if let Some((hits, misses)) = gauges.cache {
            out.push_str("# HELP enf_inference_cache_total Inference-cache lookups, by outcome.\n");
            out.push_str("# TYPE enf_inference_cache_total counter\n");
            let _ = writeln!(out, "enf_inference_cache_total{{outcome=\"hit\"}} {hits}");
            let _ = writeln!(out, "enf_inference_cache_total{{outcome=\"miss\"}} {misses}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        metrics.request("/v1/predict", 200, 0.02);
        metrics.request("/v1/predict", 200, 3.0);
        metrics.request("/v1/predict", 400, 0.001);
        let text = metrics.render(&Gauges { queue_depth: 2, queue_capacity: 64, cache: Some((5, 1)), version: 3 });
        assert!(text.contains("enf_requests_total{route=\"/v1/predict\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("enf_requests_total{route=\"/v1/predict\",status=\"400\"} 1"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.005\"} 1"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.025\"} 2"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"} 3"));
        assert!(text.contains("enf_request_duration_seconds_count{route=\"/v1/predict\"} 3"));
        assert!(text.contains("enf_queue_depth 2") && text.contains("enf_queue_capacity 64"));
        assert!(text.contains("enf_inference_cache_total{outcome=\"hit\"} 5"));
        assert!(text.contains("enf_pipeline_version 3") && text.contains("enf_reloads_total{outcome=\"refused\"} 0"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
