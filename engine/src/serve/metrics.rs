//! The counters behind `GET /metrics`, rendered in the Prometheus text
//! format: requests and latency per route and status, latency and
//! failures per node, model calls and their time per node, calls in flight
//! and readiness per model, the queue's depth and the pipeline's load,
//! requests past their deadline, where `/v1/filter` put its candidates
//! (failed-open ones apart), and the inference cache's hits and misses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::feed_filter::Placement;
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
    deadlines_passed: u64,
    filtered: BTreeMap<&'static str, u64>,
    failed_open: u64,
}

/// The server's metrics (see the module docs).
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

/// Gauges read when `/metrics` is asked for.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Items admitted now (running or waiting for a pipeline slot).
    pub queue_depth: usize,
    /// Places in the queue.
    pub queue_capacity: usize,
    /// Items running in the pipeline now.
    pub pipeline_running: usize,
    /// The moving mean of an item's time in the pipeline, once measured.
    pub mean_item_seconds: Option<f64>,
    /// Each model alias and whether it answered its latest probe.
    pub models: Vec<(String, bool)>,
    /// Each model alias and its calls in flight.
    pub calls_in_flight: Vec<(String, usize)>,
    /// Inference-cache hits and misses, when the cache is on.
    pub cache: Option<(u64, u64)>,
    /// The serving version of the pipeline (1 at start, one more per reload).
    pub version: u64,
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
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

    /// One item answered 504: its request's deadline passed.
    pub fn deadline_passed(&self) {
        self.lock().deadlines_passed += 1;
    }

    /// One `/v1/filter` candidate placed; `failed_open`: kept because its
    /// item failed (no verdict), not because of its verdict.
    pub fn filtered(&self, placement: Placement, failed_open: bool) {
        let mut counters = self.lock();
        let name = match placement {
            Placement::Kept => "kept",
            Placement::Dropped => "dropped",
            Placement::Restored => "restored",
        };
        *counters.filtered.entry(name).or_default() += 1;
        counters.failed_open += u64::from(failed_open);
    }

    /// One reload, swapped in (`true`) or refused.
    pub fn reload(&self, swapped: bool) {
        *self.lock().reloads.entry(if swapped { "ok" } else { "refused" }).or_default() += 1;
    }

    /// The Prometheus text exposition of everything counted, and `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counters = self.lock();
        let mut out = String::new();
        family(&mut out, "enf_requests_total", "counter", "HTTP requests answered, by route and status.");
        for ((route, status), count) in &counters.requests {
            let _ = writeln!(out, "enf_requests_total{{route=\"{}\",status=\"{status}\"}} {count}", escape(route));
        }
        family(&mut out, "enf_request_duration_seconds", "histogram", "Time to answer a request, by route.");
        for (route, histogram) in &counters.route_latency {
            histogram.render(&mut out, "enf_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
        }
        family(&mut out, "enf_node_duration_seconds", "histogram", "Time of a node on one item, all attempts.");
        for (node, histogram) in &counters.node_latency {
            histogram.render(&mut out, "enf_node_duration_seconds", &format!("node=\"{}\"", escape(node)));
        }
        family(&mut out, "enf_node_failures_total", "counter", "Items on which a node failed or was skipped.");
        for (node, count) in &counters.node_failures {
            let _ = writeln!(out, "enf_node_failures_total{{node=\"{}\"}} {count}", escape(node));
        }
        family(&mut out, "enf_model_requests_total", "counter", "Model calls, by the node that made them.");
        for (node, count) in &counters.model_requests {
            let _ = writeln!(out, "enf_model_requests_total{{node=\"{}\"}} {count}", escape(node));
        }
        family(&mut out, "enf_model_seconds_total", "counter", "Time in model calls, by the node that made them.");
        for (node, seconds) in &counters.model_seconds {
            let _ = writeln!(out, "enf_model_seconds_total{{node=\"{}\"}} {seconds}", escape(node));
        }
        family(&mut out, "enf_queue_depth", "gauge", "Items admitted now (running or waiting for a pipeline slot).");
        let _ = writeln!(out, "enf_queue_depth {}", gauges.queue_depth);
        family(&mut out, "enf_queue_capacity", "gauge", "Items that may be admitted at once.");
        let _ = writeln!(out, "enf_queue_capacity {}", gauges.queue_capacity);
        family(&mut out, "enf_pipeline_running", "gauge", "Items running in the pipeline now (at most --concurrency).");
        let _ = writeln!(out, "enf_pipeline_running {}", gauges.pipeline_running);
        if let Some(seconds) = gauges.mean_item_seconds {
            family(
                &mut out,
                "enf_item_seconds_mean",
                "gauge",
                "Moving mean of an item's time in the pipeline (sets Retry-After).",
            );
            let _ = writeln!(out, "enf_item_seconds_mean {seconds}");
        }
        family(
            &mut out,
            "enf_deadline_exceeded_total",
            "counter",
            "Items whose request's deadline passed (504; 503 if still waiting for a slot).",
        );
        let _ = writeln!(out, "enf_deadline_exceeded_total {}", counters.deadlines_passed);
        family(&mut out, "enf_model_calls_in_flight", "gauge", "Model calls in flight, by model alias.");
        for (model, calls) in &gauges.calls_in_flight {
            let _ = writeln!(out, "enf_model_calls_in_flight{{model=\"{}\"}} {calls}", escape(model));
        }
        family(
            &mut out,
            "enf_model_ready",
            "gauge",
            "Whether a model answered its latest readiness probe (1) or not (0).",
        );
        for (model, ready) in &gauges.models {
            let _ = writeln!(out, "enf_model_ready{{model=\"{}\"}} {}", escape(model), u8::from(*ready));
        }
        family(&mut out, "enf_filter_candidates_total", "counter", "/v1/filter candidates, by placement.");
        for placement in ["kept", "dropped", "restored"] {
            let count = counters.filtered.get(placement).copied().unwrap_or(0);
            let _ = writeln!(out, "enf_filter_candidates_total{{placement=\"{placement}\"}} {count}");
        }
        family(
            &mut out,
            "enf_filter_failed_open_total",
            "counter",
            "/v1/filter candidates kept because their item failed (no verdict).",
        );
        let _ = writeln!(out, "enf_filter_failed_open_total {}", counters.failed_open);
        family(
            &mut out,
            "enf_reloads_total",
            "counter",
            "Hot reloads, by outcome (ok: swapped in; refused: the old version kept).",
        );
        for outcome in ["ok", "refused"] {
            let count = counters.reloads.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "enf_reloads_total{{outcome=\"{outcome}\"}} {count}");
        }
        family(&mut out, "enf_pipeline_version", "gauge", "The serving version of the pipeline.");
        let _ = writeln!(out, "enf_pipeline_version {}", gauges.version);
        if let Some((hits, misses)) = gauges.cache {
            family(&mut out, "enf_inference_cache_total", "counter", "Inference-cache lookups, by outcome.");
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
        metrics.filtered(Placement::Kept, true);
        metrics.filtered(Placement::Dropped, false);
        let text = metrics.render(&Gauges {
            queue_depth: 2,
            queue_capacity: 64,
            cache: Some((5, 1)),
            version: 3,
            models: vec![("m".into(), false)],
            calls_in_flight: vec![("m".into(), 1)],
            ..Gauges::default()
        });
        assert!(text.contains("enf_requests_total{route=\"/v1/predict\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("enf_requests_total{route=\"/v1/predict\",status=\"400\"} 1"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.005\"} 1"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.025\"} 2"));
        assert!(text.contains("enf_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"} 3"));
        assert!(text.contains("enf_request_duration_seconds_count{route=\"/v1/predict\"} 3"));
        assert!(text.contains("enf_queue_depth 2") && text.contains("enf_queue_capacity 64"));
        assert!(text.contains("enf_inference_cache_total{outcome=\"hit\"} 5"));
        assert!(text.contains("enf_pipeline_version 3") && text.contains("enf_reloads_total{outcome=\"refused\"} 0"));
        assert!(text.contains("enf_filter_candidates_total{placement=\"kept\"} 1"), "{text}");
        assert!(text.contains("enf_filter_failed_open_total 1") && text.contains("enf_model_ready{model=\"m\"} 0"));
        assert!(text.contains("enf_model_calls_in_flight{model=\"m\"} 1"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
