//! Errors found while reading and checking a scenario file. Each names the
//! file, the JSON path of the offending value and what is allowed there.

use std::fmt;

/// `text` with every control character escaped as Rust writes it (`\n`,
/// `\t`, `\u{1b}`), so that user text (names, descriptions, unknown
/// values, file names) cannot break a message into lines or drive the
/// terminal. Everything else is kept.
pub fn escape_control(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Something wrong at one place in a scenario: the path and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The JSON path, in `services[2].retry.base_delay_ms` form.
    pub path: String,
    /// What is wrong and what is allowed, lowercase, no trailing period.
    pub message: String,
}

impl Invalid {
    /// An error at `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What went wrong with a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read scenario file: {source}")]
    Read {
        /// The scenario file as given on the command line.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed JSON, or a value has the wrong type or name.
    #[error("{file}: {path}{message}")]
    Parse {
        /// The scenario file.
        file: String,
        /// `path: ` (with the separator), or empty at the top level.
        path: String,
        /// The parser's message with its line and column.
        message: String,
    },
    /// The JSON is well-formed but a value is out of range or inconsistent.
    #[error("{file}: {}: {}", invalid.path, invalid.message)]
    Invalid {
        /// The scenario file.
        file: String,
        /// Where and what.
        invalid: Invalid,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
