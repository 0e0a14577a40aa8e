//! Splitting on real scenarios: a `sim` run as a `Splittable` process.
//!
//! **The rare event** is "the run fails one of the scenario's
//! `explore.assertions`", judged on the finished run exactly as `sim run`
//! and `sim explore --estimate` judge it.
//!
//! **The score** (importance function) is read after every event from the
//! run so far, and never decreases, so a run restarted at a level crossing
//! starts at or above that level:
//!
//! - `failed_requests` (the default): requests that ended other than in
//!   success so far (errors, timeouts, rejections, fallbacks). Every
//!   availability assertion, `requests.error`/`requests.timeout` bounds and
//!   a failure to recover are made of such requests, so a failing run climbs
//!   through every level below its final count.
//! - `queue_depth`: the largest number of calls waiting in all queues seen
//!   so far: the sign of a retry storm building up, for latency and
//!   amplification assertions.
//!
//! A failure that does not climb the score is still counted (the estimator
//! adds, at every stage, the runs that failed without reaching the next
//! level; see `splitting`), so a poor score costs precision, not bias.
//!
//! **Restarting from a crossing** is replay and reseed: a point is the
//! run's seed and the list of `(events, salt)` at which its ancestors were
//! reseeded, plus the event count of its own crossing. A run from a point
//! replays the seed to that event count (reseeding where its ancestors
//! did), which rebuilds the state exactly, then reseeds every named random
//! stream with a salt drawn from the particle's seed
//! (`engine::RngFactory::reseed`) and goes on with a fresh future. Nothing
//! is cloned; a restart costs its prefix again, so each run costs at most
//! one full run's events.

use super::splitting::{Reached, Splittable, Target};
use crate::explore::assert::{self, Assertion, RunView, Verdict};
use crate::metrics::summary::Summary;
use crate::model::{run_observed, Control, Observer, Probe, RunError};
use crate::scenario::Scenario;
use serde::Serialize;

/// The importance function of a scenario run (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Requests that ended other than in success so far.
    FailedRequests,
    /// The largest queue depth (all services) so far.
    QueueDepth,
}

impl Score {
    /// The snake_case name used on the command line and in `estimate.json`.
    pub fn name(self) -> &'static str {
        match self {
            Score::FailedRequests => "failed_requests",
            Score::QueueDepth => "queue_depth",
        }
    }

    /// The score called `name`, if any.
    pub fn from_name(name: &str) -> Option<Score> {
        [Score::FailedRequests, Score::QueueDepth]
            .into_iter()
            .find(|score| score.name() == name)
    }
}

/// Where a split run can be restarted: a run's seed, where its ancestors
/// were reseeded, and the event count of its crossing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPoint {
    /// The simulation seed of the run's start.
    pub seed: u64,
    /// `(events, salt)`: after that many events every stream was reseeded
    /// with that salt, in order.
    pub reseeds: Vec<(u64, u64)>,
    /// Events handled when the score crossed the level.
    pub events: u64,
}

/// A scenario with its assertions, as a splittable process.
pub struct ScenarioProcess<'a> {
    /// The scenario, run as written.
    pub scenario: &'a Scenario,
    /// What a run must satisfy; failing one is the rare event.
    pub assertions: &'a [Assertion],
    /// The importance function.
    pub score: Score,
}

/// Watches one split run: replays the reseeds of its start point, reseeds
/// at the start point's crossing, then tracks the score.
struct Watch<'p> {
    score: Score,
    reseeds: &'p [(u64, u64)],
    /// The event count of the start point (0 from the start).
    start_events: u64,
    /// The salt for the reseed at the start point, if any.
    salt: Option<u64>,
    level: f64,
    value: f64,
    /// Highest score after the start point.
    peak: f64,
    crossed: Option<u64>,
}

impl Observer for Watch<'_> {
    fn after_event(&mut self, probe: &Probe) -> Control {
        let current = match self.score {
            Score::FailedRequests => probe.requests_failed() as f64,
            Score::QueueDepth => self.value.max(probe.queued_calls() as f64),
        };
        self.value = current;
        if probe.events < self.start_events {
            return match self.reseeds.iter().find(|(at, _)| *at == probe.events) {
                Some((_, salt)) => Control::Reseed(*salt),
                None => Control::Continue,
            };
        }
        self.peak = self.peak.max(current);
        if current >= self.level {
            self.crossed = Some(probe.events);
            return Control::Stop;
        }
        if probe.events == self.start_events {
            if let Some(salt) = self.salt {
                return Control::Reseed(salt);
            }
        }
        Control::Continue
    }
}

/// A non-zero salt from a particle's seed (0 means "not reseeded").
fn salt(seed: u64) -> u64 {
    super::seed(seed, 0x5A17).max(1)
}

impl ScenarioProcess<'_> {
    /// Whether the finished run fails an assertion.
    fn fails(&self, output: &crate::model::RunOutput, seed: u64) -> bool {
        let summary = Summary::new(self.scenario, seed, output);
        let view = RunView::new(self.scenario, output, &summary);
        assert::evaluate(self.assertions, &view)
            .iter()
            .any(|evaluation| evaluation.verdict == Verdict::Fail)
    }
}

impl Splittable for ScenarioProcess<'_> {
    type Point = RunPoint;
    type Error = (u64, RunError);

    fn run(
        &self,
        from: Option<&RunPoint>,
        seed: u64,
        target: Target,
    ) -> Result<Reached<RunPoint>, (u64, RunError)> {
        let (run_seed, reseeds, start_events, salt) = match from {
            None => (seed, &[][..], 0, None),
            Some(point) => (
                point.seed,
                &point.reseeds[..],
                point.events,
                Some(salt(seed)),
            ),
        };
        let level = match target {
            Target::Level(level) => level,
            Target::Event => f64::INFINITY,
        };
        let mut watch = Watch {
            score: self.score,
            reseeds,
            start_events,
            salt,
            level,
            value: 0.0,
            peak: f64::NEG_INFINITY,
            crossed: None,
        };
        let output =
            run_observed(self.scenario, run_seed, &mut watch).map_err(|error| (run_seed, error))?;
        match (output, watch.crossed) {
            (None, Some(events)) => {
                if events == start_events {
                    // Already above the level at the start point.
                    if let Some(point) = from {
                        return Ok(Reached::Level(point.clone()));
                    }
                }
                let mut reseeds = reseeds.to_vec();
                if let Some(salt) = salt {
                    reseeds.push((start_events, salt));
                }
                Ok(Reached::Level(RunPoint {
                    seed: run_seed,
                    reseeds,
                    events,
                }))
            }
            (Some(output), _) => Ok(Reached::End {
                event: self.fails(&output, run_seed),
                peak: watch.peak,
            }),
            (None, None) => unreachable!("the watch stops a run only at a crossing"),
        }
    }
}
