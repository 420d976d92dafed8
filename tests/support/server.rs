//! A running `enf serve` for the HTTP tests, and small request helpers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;

use super::Workspace;

/// A running `enf serve`, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `enf serve --listen 127.0.0.1:0 ARGS`, its log on this test's stderr.
    pub fn start(ws: &Workspace, args: &[&str]) -> Self {
        Self::start_with_log(ws, args, Stdio::inherit())
    }

    /// Starts `enf serve --listen 127.0.0.1:0 ARGS` with its log sent to `stderr`.
    pub fn start_with_log(ws: &Workspace, args: &[&str], stderr: impl Into<Stdio>) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = ws.enf_command(&all).stdout(Stdio::piped()).stderr(stderr).spawn().expect("starting enf serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("enf serve printed nothing before exiting").unwrap();
        let base = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line: {line}"));
        Self { base: base.to_string(), child }
    }

    /// The URL of `route` on this server.
    pub fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    /// `host:port` of this server.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// The `/metrics` text (with `token`, when given).
    pub async fn metrics(&self, token: Option<&str>) -> String {
        let mut request = reqwest::Client::new().get(self.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().text().await.unwrap()
    }
}

/// Sends SIGTERM to `child`.
pub fn terminate(child: &Child) {
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs `body` as JSON (with a bearer `token`, when given): status, headers, JSON answer.
pub async fn post(url: &str, body: &Value, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().await.expect("a JSON answer"))
}

/// GETs `url`: status and JSON answer.
pub async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request");
    (response.status().as_u16(), response.json().await.expect("a JSON answer"))
}

/// The value of the Prometheus sample `name` (with its labels, e.g.
/// `enf_queue_depth` or `enf_model_ready{model="m"}`) in `metrics`.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Resident memory of process `pid` in KiB: now (`VmRSS`) and at its peak (`VmHWM`).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The request documents of a data set (`enf data items DIR`).
pub fn items(ws: &Workspace, data: &std::path::Path) -> Vec<Value> {
    let output = ws.enf(&["data", "items", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", super::text(&output));
    String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `document` with every video's frames left out (for a server without a frames root).
pub fn without_frames(document: &Value) -> Value {
    let mut body = document.clone();
    body["candidate"]["frames"] = serde_json::json!([]);
    for entry in body["history"].as_array_mut().unwrap() {
        entry["frames"] = serde_json::json!([]);
    }
    body
}
