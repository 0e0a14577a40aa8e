//! The `sim` binary: parse arguments, run, map errors to exit codes.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sim::cli::Cli::parse();
    match sim::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away: it wants no more, so stop quietly.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            // If stderr is gone too, the exit code is all that is left to say.
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
