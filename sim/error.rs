//! The errors a command can end with, and their exit codes.

use crate::model::RunError;
use crate::report::ReportError;
use crate::scenario::ScenarioError;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario file is missing, malformed or invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// An input file (of `sim policy`) could not be read.
    #[error("{file}: cannot read file: {source}")]
    Read {
        /// The file as given on the command line.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The run hit a limit.
    #[error("{file}: {source}\nreproduce: sim run {file} --seed {seed}{}", events_max_flag(.events_max))]
    Run {
        /// The scenario file.
        file: String,
        /// The seed.
        seed: u64,
        /// The `--events-max` given, repeated in the reproduce line.
        events_max: Option<u64>,
        /// What stopped it.
        #[source]
        source: RunError,
    },
    /// The report could not be rendered or written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A sweep, comparison or merge could not be done.
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
    /// A scenario's assertion failed (`sim run`), or `sim explore` found
    /// a run that fails one: exit 1. The message names the file, the
    /// assertion and how to reproduce it.
    #[error("{0}")]
    Check(String),
    /// Stdout could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    /// Stdout could not be written after the report folder was.
    #[error("cannot write to standard output: {source}; the report was written to {}", dir.display())]
    StdoutAfterReport {
        /// The report folder, complete.
        dir: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// ` --events-max N` when the flag was given, else nothing.
fn events_max_flag(events_max: &Option<u64>) -> String {
    events_max.map_or_else(String::new, |events_max| {
        format!(" --events-max {events_max}")
    })
}

impl Error {
    /// The process exit code: 2 for bad input or an unusable output folder,
    /// as ripgrep does; 1 is kept for scenario checks that fail.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Check(_) => 1,
            _ => 2,
        }
    }

    /// Whether stdout was closed by its reader (`sim run ... | head`): the
    /// program then stops quietly with status 0, as ripgrep does, since the
    /// reader asked for no more.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Stdout(source) | Error::StdoutAfterReport { source, .. } => {
                source.kind() == std::io::ErrorKind::BrokenPipe
            }
            _ => false,
        }
    }
}
