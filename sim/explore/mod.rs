//! `sim explore`: search a scenario's declared space of faults and policy
//! parameters for a run that breaks one of its assertions, then shrink that
//! run to a minimal scenario file `sim run` replays.
//!
//! The scenario file's optional top-level `explore` section holds both:
//!
//! ```json
//! "explore": {
//!   "assertions": [{"metric": "availability_after_faults", "at_least": 0.99}],
//!   "search": {
//!     "faults": {"count": [1, 2], "kinds": ["outage", "latency"],
//!                "start_ms": [5000, 20000], "duration_ms": [100, 5000]},
//!     "parameters": [{"path": "clients[0].policies[0].attempts_max", "min": 1, "max": 6}]
//!   }
//! }
//! ```
//!
//! - `assert`: the assertion language, its metric registry, and evaluation
//!   against one run with signed margins.
//! - `space`: the search space, its checks, candidates (random and
//!   mutated) and how a candidate becomes a scenario file.
//! - `search`: the seeded, thread-count-independent search on rayon.
//! - `shrink`: delta debugging over the faults, then numeric shrinking.
//!
//! Like sweeps, explore sits above `model::run`: it calls the same pure
//! `run(&Scenario, seed)` and owns its parallelism; a result never depends
//! on which thread ran it.

pub mod assert;
pub mod search;
pub mod shrink;
pub mod space;

use crate::scenario::error::Invalid;
use crate::scenario::{Scenario, ScenarioError};
use serde::{Deserialize, Serialize};

/// The `explore` section as written. Absent in ordinary scenarios.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawExplore {
    /// What every run must satisfy; `sim run` checks them too.
    #[serde(default)]
    pub assertions: Vec<assert::RawAssertion>,
    /// What `sim explore` may vary; default none (only `sim run` checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<space::RawSearch>,
}

/// Only the `explore` section of a scenario file, ignoring the rest (which
/// `Scenario::from_bytes` has already checked).
#[derive(Deserialize)]
struct ExploreOnly {
    #[serde(default)]
    explore: Option<RawExplore>,
}

/// The `explore` section of the scenario text `bytes` (already checked by
/// `Scenario::from_bytes`), if it has one.
pub fn section(file: &str, bytes: &[u8]) -> Result<Option<RawExplore>, ScenarioError> {
    let only: ExploreOnly = crate::scenario::parse_json(file, bytes)?;
    Ok(only.explore)
}

/// The checked assertions of the scenario text `bytes`, empty when it has
/// no `explore` section.
pub fn assertions(
    file: &str,
    bytes: &[u8],
    scenario: &Scenario,
) -> Result<Vec<assert::Assertion>, ScenarioError> {
    let Some(raw) = section(file, bytes)? else {
        return Ok(Vec::new());
    };
    assert::check(&raw.assertions, scenario, "explore.assertions").map_err(|invalid: Invalid| {
        ScenarioError::Invalid {
            file: file.to_string(),
            invalid,
        }
    })
}

/// Checks the `explore` section of the scenario file at `path` (already
/// loaded as `scenario`), if it has one: its assertions and its search
/// space, as `sim explore` would. For `sim validate`.
pub fn check_file(path: &std::path::Path, scenario: &Scenario) -> Result<(), ScenarioError> {
    let crate::scenario::ScenarioFile { file, bytes, .. } =
        crate::scenario::ScenarioFile::read(path)?;
    let Some(raw) = section(&file, &bytes)? else {
        return Ok(());
    };
    let invalid = |invalid: Invalid| ScenarioError::Invalid {
        file: file.clone(),
        invalid,
    };
    assert::check(&raw.assertions, scenario, "explore.assertions").map_err(invalid)?;
    if let Some(search) = &raw.search {
        let value: serde_json::Value = crate::scenario::parse_json(&file, &bytes)?;
        space::check(search, scenario, &value, "explore.search").map_err(invalid)?;
    }
    Ok(())
}
