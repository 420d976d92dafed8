//! `enf data …`: check a data set, synthesize one, convert MovieLens.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use enf::data::movielens::Agent4RecOptions;

/// `enf data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check a TVNF data set; report every problem with file and line.
    Check {
        /// The data set directory.
        dir: PathBuf,
    },
    /// Write a synthetic TVNF data set with planted causes of negative feedback.
    Synth {
        /// Output directory.
        dir: PathBuf,
        /// Users to create.
        #[arg(long, default_value_t = 8)]
        users: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Print each item's request document for `enf serve` (one JSON per line):
    /// the `$item` document `enf run` builds, frames listed by path relative to DIR
    /// (serve them with `enf serve --frames-root DIR`).
    Items {
        /// The data set directory.
        dir: PathBuf,
    },
    /// Write a trivial baseline's predictions for a data set (always negative, or a coin), for `enf eval`.
    Baseline {
        /// The data set directory.
        dir: PathBuf,
        /// Which baseline.
        #[arg(long, value_enum)]
        kind: enf::data::baseline::BaselineKind,
        /// Random seed (the coin).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Predictions file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Convert MovieLens-100k (recbole's copy) to a TVNF set in the Agent4Rec protocol.
    Movielens {
        /// Output directory.
        out: PathBuf,
        /// The ml-100k folder (from the recbole package; .ci/setup puts it in examples/ml-100k).
        #[arg(long, default_value = "examples/ml-100k")]
        source: PathBuf,
        /// Users to sample.
        #[arg(long, default_value_t = 50)]
        users: usize,
        /// Liked movies held out per user.
        #[arg(long, default_value_t = 2)]
        positives: usize,
        /// Unseen movies per liked one (1:m).
        #[arg(long, default_value_t = 1)]
        ratio: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn print_summary(what: &str, s: &enf::data::synth::SynthSummary) {
    println!(
        "{what}: {} users, {} videos, {} interactions, {} items ({} negative)",
        s.users, s.videos, s.interactions, s.items, s.negative_items
    );
}

/// Runs an `enf data` subcommand.
pub fn run(command: DataCommand) -> anyhow::Result<ExitCode> {
    match command {
        DataCommand::Check { dir } => match enf::data::check::check(&dir) {
            Ok(s) => {
                println!("{}: ok", dir.display());
                println!(
                    "  {} users, {} videos ({} with frames, {} with a video file), {} interactions",
                    s.users, s.videos, s.videos_with_frames, s.videos_with_files, s.interactions
                );
                println!(
                    "  {} items: {} negative ({} explicit), {} with a reason class, {} with the user's reason",
                    s.items, s.negative_items, s.explicit_items, s.labelled_classes, s.reason_texts
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                for problem in &e.problems {
                    eprintln!("{problem}");
                }
                eprintln!("{} problem(s) found", e.problems.len());
                Ok(ExitCode::FAILURE)
            }
        },
        DataCommand::Synth { dir, users, seed } => {
            let summary = enf::data::synth::synthesize(&dir, users, seed).map_err(|p| anyhow::anyhow!("{p}"))?;
            print_summary(&format!("wrote {}", dir.display()), &summary);
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Items { dir } => {
            use std::io::Write;
            let dataset =
                enf::data::Dataset::load(&dir).with_context(|| format!("cannot use data set {}", dir.display()))?;
            let items = dataset.items().with_context(|| format!("cannot build items from {}", dir.display()))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = items.iter().try_for_each(|item| {
                let document = enf::data::request_document(&dataset, item);
                writeln!(out, "{}", serde_json::to_string(&document).map_err(std::io::Error::other)?)
            });
            match written.and_then(|()| out.flush()) {
                // A reader that stops early (`| head -1`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
                other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
            }
        }
        DataCommand::Baseline { dir, kind, seed, out } => {
            let dataset =
                enf::data::Dataset::load(&dir).with_context(|| format!("cannot use data set {}", dir.display()))?;
            let records = enf::data::baseline::predictions(&dataset, kind, seed)
                .with_context(|| format!("cannot build items from {}", dir.display()))?;
            enf::data::baseline::write(&out, &records).map_err(|p| anyhow::anyhow!("{p}"))?;
            println!("wrote {}: {} predictions", out.display(), records.len());
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Movielens { out, source, users, positives, ratio, seed } => {
            let options = Agent4RecOptions { users, positives, ratio, seed };
            let summary = enf::data::movielens::convert(&source, &out, &options).map_err(|p| anyhow::anyhow!("{p}"))?;
            print_summary(&format!("wrote {} (1:{ratio})", out.display()), &summary);
            Ok(ExitCode::SUCCESS)
        }
    }
}
