//! Command-line interface: clap definitions and dispatch.

mod bench_cmd;
mod bench_pipeline;
mod bench_train;
mod data_cmd;
mod eval_cmd;
mod graph_cmd;
mod judge;
mod logging;
mod model_cmd;
mod replay_cmd;
mod run_cmd;
mod serve_cmd;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// ENF engine: agent pipelines of sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "enf", version, about, long_about = None)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a graph over every item of a data set.
    Run(run_cmd::RunArgs),
    /// Inspect graph files.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Check, synthesize or convert data sets.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Score a predictions file like the paper (Acc, Precision, Recall, F1, Class_Acc, Reasoning).
    Eval(eval_cmd::EvalArgs),
    /// Measure model throughput (prefill and decode tok/s) and training step time.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Train a graph node's model: SFT, GRPO or S-GRPO on the agent's own prompts.
    Train(train_cmd::TrainArgs),
    /// Serve a graph over HTTP: predict, explain, filter ranked candidates.
    Serve(serve_cmd::ServeArgs),
    /// Replay the deployment test offline: filter each user's top K, compare logged outcomes.
    Replay(replay_cmd::ReplayArgs),
    /// Write model directories (tiny test model, GGUF import) and try models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
}

#[derive(Debug, Subcommand)]
enum GraphCommand {
    /// Check a graph file (and its plugins and models); report every problem.
    Check {
        /// The graph file.
        file: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the graph in Graphviz DOT.
    Dot {
        /// The graph file.
        file: PathBuf,
    },
}

/// Where compiled plugins are cached.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Cache directory for compiled plugins and frames sampled from video files [default: $ENF_CACHE_DIR or ~/.cache/enf].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of caching them (and keep no node outputs).
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache { None } else { self.cache_dir.clone().or_else(enf::plugin::CompileCache::default_dir) }
    }

    /// Where node outputs are memoised (`DIR/nodes` under the cache
    /// directory), unless `no_node_cache` or caching is off.
    fn node_cache_dir(&self, no_node_cache: bool) -> Option<PathBuf> {
        if no_node_cache { None } else { self.dir().map(|dir| dir.join("nodes")) }
    }

    /// Where frames sampled from video files go (the system's temporary
    /// directory when caching is off or there is no cache directory).
    fn frames_dir(&self) -> PathBuf {
        self.dir().unwrap_or_else(|| std::env::temp_dir().join("enf"))
    }
}

/// The exit code of a command line that cannot be parsed (a mistyped flag,
/// a missing argument): 64, `EX_USAGE` of sysexits(3) — not clap's 2, which
/// `enf run` uses for "the run finished, some items failed".
pub const USAGE_ERROR: u8 = 64;

/// Parses arguments, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; anything else is a usage error.
            let code = if e.use_stderr() { ExitCode::from(USAGE_ERROR) } else { ExitCode::SUCCESS };
            let _ = e.print();
            return code;
        }
    };
    logging::init(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_cmd::run(args).await,
            Command::Graph(GraphCommand::Check { file, cache }) => graph_cmd::check(&file, cache.dir()).await,
            Command::Graph(GraphCommand::Dot { file }) => graph_cmd::dot(&file),
            Command::Model(command) => model_cmd::run(command).await,
            Command::Data(command) => data_cmd::run(command),
            Command::Eval(args) => eval_cmd::run(args).await,
            Command::Bench(bench_cmd::BenchCommand::Inference(args)) => bench_cmd::inference(args).await,
            Command::Bench(bench_cmd::BenchCommand::Train(args)) => bench_train::run(args),
            Command::Bench(bench_cmd::BenchCommand::Pipeline(args)) => bench_pipeline::run(args).await,
            Command::Train(args) => train_cmd::run(args).await,
            Command::Serve(args) => serve_cmd::run(args).await,
            Command::Replay(args) => replay_cmd::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Peak resident memory of this process (Linux), in bytes.
pub(crate) fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
