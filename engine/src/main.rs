//! `enf`: the command-line edge of the ENF engine (argument parsing, logging,
//! human-readable reports). The work is done by the `enf` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
