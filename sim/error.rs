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
    #[error("{file}: {source}\nreproduce: sim run {file} --seed {seed}")]
    Run {
        /// The scenario file.
        file: String,
        /// The seed.
        seed: u64,
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
    /// Stdout could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    /// The process exit code: 2 for bad input or an unusable output folder,
    /// as ripgrep does; 1 is kept for scenario checks that fail.
    pub fn exit_code(&self) -> i32 {
        2
    }
}
