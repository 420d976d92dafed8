//! `enf serve --graph G [--listen ADDR]`: the graph as an HTTP service
//! (docs/serving.md). Prints `listening on http://ADDR` once it accepts
//! requests; SIGTERM or Ctrl-C drains the requests in flight, then exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use enf::run::PipelineOptions;
use enf::serve::{Limits, ServeOptions};

use super::CacheArgs;

/// Arguments of `enf serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The graph file.
    #[arg(long, required_unless_present = "print_openapi")]
    graph: Option<PathBuf>,
    /// Print the OpenAPI description of the API (with these limits) and exit;
    /// docs/openapi.json is this with the default limits.
    #[arg(long)]
    print_openapi: bool,
    /// Address to listen on; beyond loopback a token is required.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token the API routes and /metrics require (not the probes /healthz and /readyz) [default: $ENF_SERVE_TOKEN].
    #[arg(long)]
    token: Option<String>,
    /// Bearer token /admin/* requires; without one, admin routes are off unless the server has no token and listens on loopback [default: $ENF_SERVE_ADMIN_TOKEN].
    #[arg(long)]
    admin_token: Option<String>,
    /// Let /metrics answer without a token (for a Prometheus scraper that holds no secret).
    #[arg(long)]
    public_metrics: bool,
    /// Directory that frame paths in requests are read from (nothing outside it).
    #[arg(long, value_name = "DIR")]
    frames_root: Option<PathBuf>,
    /// Items admitted at once, running or waiting their turn (a /v1/filter request takes one per candidate); beyond: 503 with Retry-After.
    #[arg(long, default_value_t = 128)]
    queue: usize,
    /// Longest a request may take, waiting included, before it is answered 504 (e.g. 30s, 2m).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// Longest a client may take to send a request's headers; also how long an idle keep-alive connection is kept.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Longest a client may take to send a request's body.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// Time between two rounds of readiness probes (one token from each model).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    probe_interval: Duration,
    /// Longest a model may take to answer a readiness probe.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    probe_timeout: Duration,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most history entries per request.
    #[arg(long, default_value_t = Limits::default().max_history)]
    max_history: usize,
    /// Most frames per video in a request.
    #[arg(long, default_value_t = Limits::default().max_frames)]
    max_frames: usize,
    /// Largest inline frame in bytes (decoded).
    #[arg(long, default_value_t = Limits::default().max_frame_bytes)]
    max_frame_bytes: usize,
    /// Most candidates in one /v1/filter request (each takes a queue place: at most --queue).
    #[arg(long, default_value_t = Limits::default().max_candidates)]
    max_candidates: usize,
    /// The node whose output holds the verdict [default: `reason`, else the graph's only sink].
    #[arg(long, value_name = "NODE")]
    verdict_node: Option<String>,
    /// Items in flight in the pipeline at once (as `enf run --concurrency`).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Do not watch the graph's files; reload only on POST /admin/reload.
    #[arg(long)]
    no_watch: bool,
    /// Cache model answers in this directory and replay identical requests.
    #[arg(long, value_name = "DIR")]
    inference_cache: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Resolves when the process is asked to stop (SIGTERM, or Ctrl-C).
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("stopping: finishing the requests in flight");
}

/// Runs `enf serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_history: args.max_history,
        max_frames: args.max_frames,
        max_frame_bytes: args.max_frame_bytes,
        max_candidates: args.max_candidates,
    };
    if args.print_openapi {
        println!("{}", serde_json::to_string_pretty(&enf::serve::openapi::document(&limits))?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(graph) = args.graph.clone() else { anyhow::bail!("--graph is required") };
    // A variable that is set but empty is a secret gone missing: refused
    // at start-up (ServeOptions::check), never read as "no token".
    let token = args.token.clone().or_else(|| std::env::var("ENF_SERVE_TOKEN").ok());
    let admin_token = args.admin_token.clone().or_else(|| std::env::var("ENF_SERVE_ADMIN_TOKEN").ok());
    let options = ServeOptions {
        listen: args.listen,
        token,
        admin_token,
        public_metrics: args.public_metrics,
        frames_root: args.frames_root.clone(),
        limits,
        queue: args.queue,
        deadline: args.deadline,
        verdict_node: args.verdict_node.clone(),
        watch: (!args.no_watch).then_some(Duration::from_secs(1)),
        pipeline: PipelineOptions {
            cache_dir: args.cache.dir(),
            concurrency: args.concurrency.max(1),
            inference_cache: args.inference_cache.clone(),
        },
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        probe_interval: args.probe_interval,
        probe_timeout: args.probe_timeout,
        ..ServeOptions::new(graph)
    };
    enf::serve::serve(
        options,
        |address| {
            use std::io::Write;
            println!("listening on http://{address}");
            let _ = std::io::stdout().flush();
        },
        stop_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
