//! The `sim` binary: parse arguments, run, map errors to exit codes.
//!
//! Every error is one line on stderr (two for a bad command line: the
//! problem, then the usage), with control characters escaped, so that a
//! name or an argument cannot break it into lines or drive the terminal.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;
use sim::scenario::error::escape_control;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match sim::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    match sim::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away: it wants no more, so stop quietly.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            // A message has one line per intended line (a run error adds
            // its `reproduce:` line); each is escaped on its own. If stderr
            // is gone too, the exit code is all that is left to say.
            let message = error.to_string();
            let lines: Vec<String> = message.split('\n').map(escape_control).collect();
            let _ = writeln!(std::io::stderr(), "error: {}", lines.join("\n"));
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

/// Reports a bad command line in two lines and exits 2, instead of clap's
/// multi-line block; `--help` and `--version` print as clap does:
///
/// ```text
/// error: unexpected argument '--sed' found; try '--seed'
/// usage: sim run [OPTIONS] --seed <SEED> <FILE>; see sim run --help
/// ```
fn usage_error(error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Help goes to stdout with exit 0 (clap's own rules).
        let _ = error.print();
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    }
    let rendered = error.render().to_string();
    let usage = rendered
        .lines()
        .find_map(|line| line.trim().strip_prefix("Usage: "))
        .map(str::to_string)
        .or_else(subcommand_usage)
        .unwrap_or_else(|| "sim <COMMAND>".to_string());
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        short_usage_error(&rendered, suggestion(error).as_deref(), &usage)
    );
    ExitCode::from(2)
}

/// The usage of the subcommand named first on the command line, for the
/// errors clap renders without one (a bad value).
fn subcommand_usage() -> Option<String> {
    use clap::CommandFactory;
    let name = std::env::args().nth(1)?;
    let mut command = sim::cli::Cli::command();
    command.build();
    let subcommand = command.find_subcommand_mut(&name)?;
    let usage = subcommand.render_usage().to_string();
    usage.trim().strip_prefix("Usage: ").map(str::to_string)
}

/// What clap suggests instead (`--seed` for `--sed`), if anything.
fn suggestion(error: &clap::Error) -> Option<String> {
    [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|kind| match error.get(kind)? {
        ContextValue::String(value) => Some(value.clone()),
        ContextValue::Strings(values) => values.first().cloned(),
        _ => None,
    })
}

/// clap's rendered error as two lines: the problem (its lines joined, tips
/// dropped) with the suggestion, then the usage and where to find help.
fn short_usage_error(rendered: &str, suggestion: Option<&str>, usage: &str) -> String {
    let problem: Vec<&str> = rendered
        .split("\n\n")
        .next()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let problem = problem.join(" ");
    let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
    let mut first = format!("error: {}", escape_control(problem));
    if let Some(suggestion) = suggestion {
        first.push_str(&format!("; try '{}'", escape_control(suggestion)));
    }
    let command: Vec<&str> = usage
        .split_whitespace()
        .take_while(|word| !word.starts_with(['[', '<', '-']))
        .collect();
    format!(
        "{first}\nusage: {}; see {} --help",
        escape_control(usage),
        command.join(" ")
    )
}
