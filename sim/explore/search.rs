//! The search: candidates drawn from the space, run in parallel, ranked by
//! their assertions' margins.
//!
//! Runs go in batches of [`BATCH`]. Candidate `i` is made from its own
//! random stream, `explore/candidate/<i>` of the seed: half the time a
//! fresh random point of the space, otherwise a mutation of one of the
//! [`POOL`] worst candidates found in the batches before (worst = smallest
//! relative margin over the assertions, ties to the earlier run). A batch
//! is run on rayon and its results are folded in index order, so which
//! candidates run, and everything reported, depends only on the seed and
//! the number of runs, never on the thread count or the speed. A wall-clock
//! budget (`--minutes`) only stops the search between batches; the report
//! says how many runs were made, and `--runs` with that number replays it.

use super::assert::{self, Assertion, Evaluation, Verdict};
use super::space::{self, Base, Candidate, Space};
use crate::engine::RngFactory;
use crate::metrics::summary::Summary;
use crate::scenario::error::Invalid;
use crate::scenario::{Scenario, ScenarioError};
use rayon::prelude::*;
use serde_json::Value;

/// Candidates per batch (fixed, so results do not depend on the thread count).
pub const BATCH: u64 = 16;

/// How many of the worst candidates so far mutations start from.
pub const POOL: usize = 4;

/// How many of the worst candidates the report keeps.
pub const WORST_KEPT: usize = 5;

/// A checked `explore` scenario, ready to search.
#[derive(Clone, Debug)]
pub struct Explorer {
    /// The file as given, for messages.
    pub file: String,
    /// The scenario's name (the file's stem).
    pub name: String,
    /// The file's JSON, without `explore.search`.
    pub base: Base,
    /// The search space.
    pub space: Space,
    /// The assertions.
    pub assertions: Vec<Assertion>,
    /// The seed of every run and of the candidates.
    pub seed: u64,
    /// `--events-max`, in place of the scenario's `limits.events_max`.
    pub events_max: Option<u64>,
}

/// What running one candidate gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The candidate's scenario was refused by validation (a combination
    /// of values the format does not allow); the message says why.
    Invalid(String),
    /// The run stopped at a limit.
    RunError(String),
    /// The run finished; each assertion evaluated, in order.
    Ran(Vec<Evaluation>),
}

impl Outcome {
    /// The smallest relative margin, if the run finished with a defined one.
    pub fn score(&self) -> Option<f64> {
        match self {
            Outcome::Ran(evaluations) => assert::score(evaluations),
            _ => None,
        }
    }

    /// Whether assertion `index` failed.
    pub fn fails(&self, index: usize) -> bool {
        matches!(self, Outcome::Ran(evaluations)
            if evaluations.get(index).is_some_and(|e| e.verdict == Verdict::Fail))
    }

    /// The failing assertion with the smallest relative margin, if any.
    pub fn worst_failure(&self) -> Option<usize> {
        let Outcome::Ran(evaluations) = self else {
            return None;
        };
        evaluations
            .iter()
            .enumerate()
            .filter(|(_, e)| e.verdict == Verdict::Fail)
            .min_by(|a, b| a.1.margin_relative.total_cmp(&b.1.margin_relative))
            .map(|(index, _)| index)
    }
}

/// One candidate and its outcome.
#[derive(Clone, Debug)]
pub struct Trial {
    /// The run's index in the search (0-based).
    pub index: u64,
    /// The candidate.
    pub candidate: Candidate,
    /// What it gave.
    pub outcome: Outcome,
}

/// What a search tried and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Candidates run (or refused).
    pub runs: u64,
    /// Candidates refused by validation.
    pub invalid: u64,
    /// Runs that stopped at a limit.
    pub run_errors: u64,
    /// The first of them: run index and message.
    pub first_run_error: Option<(u64, String)>,
    /// Runs in which some assertion failed.
    pub runs_failing: u64,
    /// Per assertion: runs in which it failed.
    pub failed: Vec<u64>,
    /// Per assertion: runs in which it was undefined.
    pub undefined: Vec<u64>,
    /// The worst candidates (lowest score first, ties to the earlier run),
    /// at most [`WORST_KEPT`].
    pub worst: Vec<Trial>,
}

impl Explorer {
    /// Reads and checks the `explore` scenario at `path`.
    pub fn load(
        path: &std::path::Path,
        seed: u64,
        events_max: Option<u64>,
    ) -> Result<Explorer, ScenarioError> {
        let read = crate::scenario::ScenarioFile::read(path)?;
        Explorer::from_bytes(&read.file, &read.name, &read.bytes, seed, events_max)
    }

    /// Parses and checks `explore` scenario text.
    pub fn from_bytes(
        file: &str,
        name: &str,
        bytes: &[u8],
        seed: u64,
        events_max: Option<u64>,
    ) -> Result<Explorer, ScenarioError> {
        let scenario = Scenario::from_bytes_with(file, name, bytes, events_max)?;
        let invalid = |invalid: Invalid| ScenarioError::Invalid {
            file: file.to_string(),
            invalid,
        };
        let raw = super::section(file, bytes)?.ok_or_else(|| {
            invalid(Invalid::new(
                "explore",
                "sim explore needs an explore section with assertions and a search space (see docs/explore.md)",
            ))
        })?;
        if raw.assertions.is_empty() {
            return Err(invalid(Invalid::new(
                "explore.assertions",
                "needs at least one assertion",
            )));
        }
        let assertions =
            assert::check(&raw.assertions, &scenario, "explore.assertions").map_err(invalid)?;
        let search = raw.search.as_ref().ok_or_else(|| {
            invalid(Invalid::new(
                "explore.search",
                "sim explore needs a search space: faults, parameters or both",
            ))
        })?;
        let value: Value = crate::scenario::parse_json(file, bytes)?;
        let space = space::check(search, &scenario, &value, "explore.search").map_err(invalid)?;
        if space.faults.is_none() && space.parameters.is_empty() {
            return Err(invalid(Invalid::new(
                "explore.search",
                "searches nothing: give faults, parameters or both",
            )));
        }
        Ok(Explorer {
            file: file.to_string(),
            name: name.to_string(),
            base: Base::new(value),
            space,
            assertions,
            seed,
            events_max,
        })
    }

    /// The scenario file text of `candidate`.
    pub fn text(&self, candidate: &Candidate) -> Result<String, String> {
        self.base
            .render(&self.space, candidate)
            .map(|value| space::text(&value))
    }

    /// Builds and runs `candidate` with the seed, and evaluates the assertions.
    pub fn trial(&self, candidate: &Candidate) -> Outcome {
        let text = match self.text(candidate) {
            Ok(text) => text,
            Err(message) => return Outcome::Invalid(message),
        };
        let scenario = match Scenario::from_bytes_with(
            &self.file,
            &self.name,
            text.as_bytes(),
            self.events_max,
        ) {
            Ok(scenario) => scenario,
            Err(error) => return Outcome::Invalid(error.to_string()),
        };
        match crate::model::run(&scenario, self.seed) {
            Ok(output) => {
                let summary = Summary::new(&scenario, self.seed, &output);
                let view = assert::RunView::new(&scenario, &output, &summary);
                Outcome::Ran(assert::evaluate(&self.assertions, &view))
            }
            Err(error) => Outcome::RunError(error.to_string()),
        }
    }

    /// Candidate `index`: from its own stream, random or a mutation of one
    /// of `pool` (the worst so far).
    pub fn candidate(&self, index: u64, pool: &[Trial]) -> Candidate {
        let mut rng = RngFactory::new(self.seed).stream(&format!("explore/candidate/{index}"));
        let originals = self.base.faults.len();
        let parents = pool.len().min(POOL);
        if parents == 0 || rng.chance(0.5) {
            self.space.random(originals, &mut rng)
        } else {
            let parent = &pool[rng.index(parents)].candidate;
            self.space.mutate(parent, &mut rng)
        }
    }

    /// Searches `runs_max` candidates, in batches; `keep_going` is asked
    /// after each batch with the runs done so far (a progress bar, a
    /// wall-clock budget) and may stop the search there.
    pub fn search(&self, runs_max: u64, keep_going: &mut dyn FnMut(u64) -> bool) -> Report {
        let mut report = Report {
            failed: vec![0; self.assertions.len()],
            undefined: vec![0; self.assertions.len()],
            ..Report::default()
        };
        let mut next = 0;
        while next < runs_max {
            let end = (next + BATCH).min(runs_max);
            let candidates: Vec<(u64, Candidate)> = (next..end)
                .map(|index| (index, self.candidate(index, &report.worst)))
                .collect();
            let trials: Vec<Trial> = candidates
                .into_par_iter()
                .map(|(index, candidate)| {
                    let outcome = self.trial(&candidate);
                    Trial {
                        index,
                        candidate,
                        outcome,
                    }
                })
                .collect();
            for trial in trials {
                report.add(trial);
            }
            next = end;
            if !keep_going(next) {
                break;
            }
        }
        report
    }
}

impl Report {
    /// Folds one trial in (in index order).
    fn add(&mut self, trial: Trial) {
        self.runs += 1;
        match &trial.outcome {
            Outcome::Invalid(_) => {
                self.invalid += 1;
                return;
            }
            Outcome::RunError(message) => {
                self.run_errors += 1;
                self.first_run_error
                    .get_or_insert_with(|| (trial.index, message.clone()));
                return;
            }
            Outcome::Ran(evaluations) => {
                let mut any = false;
                for (index, evaluation) in evaluations.iter().enumerate() {
                    match evaluation.verdict {
                        Verdict::Fail => {
                            self.failed[index] += 1;
                            any = true;
                        }
                        Verdict::Undefined => self.undefined[index] += 1,
                        Verdict::Pass => {}
                    }
                }
                self.runs_failing += u64::from(any);
            }
        }
        if trial.outcome.score().is_none() {
            return;
        }
        self.worst.push(trial);
        // Stable: equal scores keep index order.
        self.worst.sort_by(|a, b| {
            let score = |t: &Trial| t.outcome.score().unwrap_or(f64::INFINITY);
            score(a).total_cmp(&score(b))
        });
        self.worst.truncate(WORST_KEPT);
    }

    /// The worst failing trial and its worst failing assertion, if any failed.
    pub fn worst_failure(&self) -> Option<(&Trial, usize)> {
        self.worst
            .iter()
            .find_map(|trial| trial.outcome.worst_failure().map(|index| (trial, index)))
    }
}
