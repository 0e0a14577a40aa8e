//! Shrinking a failing candidate to a minimal one that fails the same
//! assertion with the same seed.
//!
//! The method, repeated until a whole round changes nothing (or the run
//! budget is spent):
//!
//! 1. **Fewer faults**: delta debugging (Zeller's ddmin) over the fault
//!    list, the file's own faults included: first no fault at all, then the
//!    list cut in `n` chunks, trying each chunk alone and each complement,
//!    doubling `n` until single faults are tried.
//! 2. **Smaller numbers**: for each injected fault, each field towards the
//!    low bound of its search range: shorter, earlier, smaller intensity.
//!    One step tries the low bound and the points halfway, a quarter, ...
//!    of the way down from the current value, and keeps the smallest that
//!    still fails.
//! 3. **The file's values**: each searched parameter back to the value the
//!    file has.
//! 4. **Less load**: each client removed (while one remains), then each
//!    client's constant rate and closed-loop users lowered towards half the
//!    file's value, as in step 2.
//!
//! A step tries a fixed list of variants, runs them all in parallel and
//! keeps the first (in list order) that still fails the assertion: the
//! result does not depend on the thread count.

use super::search::{Explorer, Outcome};
use super::space::{fields, with_field, Candidate, CandidateFault};
use crate::sweep::spec::number;
use rayon::prelude::*;
use serde_json::Value;

/// A shrunk failing candidate.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal candidate found.
    pub candidate: Candidate,
    /// The assertion it fails.
    pub assertion: usize,
    /// Its outcome (the assertion fails).
    pub outcome: Outcome,
    /// Runs spent shrinking.
    pub runs: u64,
    /// What each accepted step changed, in order.
    pub steps: Vec<String>,
}

/// The values tried below `current`, towards `low`: `low` itself, then
/// `current - d/2^k` for `d = current - low`, ascending, without repeats.
fn towards(low: u64, current: u64) -> Vec<u64> {
    if current <= low {
        return Vec::new();
    }
    let distance = current - low;
    let mut values = vec![low];
    for shift in 1..=8 {
        let value = current - (distance >> shift);
        if value > *values.last().unwrap_or(&low) && value < current {
            values.push(value);
        }
    }
    values
}

struct Shrinker<'a> {
    explorer: &'a Explorer,
    assertion: usize,
    runs: u64,
    runs_max: u64,
    best: Candidate,
    outcome: Outcome,
    steps: Vec<String>,
}

impl Shrinker<'_> {
    /// Runs `variants` (with labels) in parallel and adopts the first that
    /// still fails; whether one did.
    fn try_variants(&mut self, variants: Vec<(String, Candidate)>) -> bool {
        if variants.is_empty() || self.runs >= self.runs_max {
            return false;
        }
        let room = (self.runs_max - self.runs) as usize;
        let variants: Vec<(String, Candidate)> = variants.into_iter().take(room).collect();
        self.runs += variants.len() as u64;
        let outcomes: Vec<Outcome> = variants
            .par_iter()
            .map(|(_, candidate)| self.explorer.trial(candidate))
            .collect();
        for ((label, candidate), outcome) in variants.into_iter().zip(outcomes) {
            if outcome.fails(self.assertion) {
                self.best = candidate;
                self.outcome = outcome;
                self.steps.push(label);
                return true;
            }
        }
        false
    }

    /// Delta debugging over the fault list.
    fn faults(&mut self) -> bool {
        let mut changed = false;
        if !self.best.faults.is_empty() {
            let mut none = self.best.clone();
            none.faults.clear();
            if self.try_variants(vec![("no faults at all".into(), none)]) {
                return true;
            }
        }
        let mut chunks = 2;
        while self.best.faults.len() >= 2 && self.runs < self.runs_max {
            let faults = self.best.faults.clone();
            let length = faults.len();
            let chunks_now = chunks.min(length);
            let bounds: Vec<(usize, usize)> = (0..chunks_now)
                .map(|i| (i * length / chunks_now, (i + 1) * length / chunks_now))
                .collect();
            let mut variants = Vec::new();
            for &(start, end) in &bounds {
                let mut subset = self.best.clone();
                subset.faults = faults[start..end].to_vec();
                variants.push((format!("kept faults {start}..{end} of {length}"), subset));
            }
            for &(start, end) in &bounds {
                let mut complement = self.best.clone();
                complement.faults.drain(start..end);
                variants.push((
                    format!("removed faults {start}..{end} of {length}"),
                    complement,
                ));
            }
            if self.try_variants(variants) {
                changed = true;
                chunks = 2;
            } else if chunks_now >= length {
                break;
            } else {
                chunks = (chunks * 2).min(length);
            }
        }
        changed
    }

    /// Each injected fault's fields towards their low bounds.
    fn numbers(&mut self) -> bool {
        let Some(space) = self.explorer.space.faults.clone() else {
            return false;
        };
        let mut changed = false;
        for index in 0..self.best.faults.len() {
            let CandidateFault::Injected { plan, .. } = &self.best.faults[index] else {
                continue;
            };
            for (field, _) in fields(plan) {
                while let CandidateFault::Injected { plan, target } = &self.best.faults[index] {
                    let current = fields(plan)
                        .into_iter()
                        .find(|(f, _)| *f == field)
                        .map_or(0, |(_, value)| value);
                    let (low, _) = space.bounds(field);
                    let variants: Vec<(String, Candidate)> = towards(low, current)
                        .into_iter()
                        .map(|value| {
                            let mut variant = self.best.clone();
                            variant.faults[index] = CandidateFault::Injected {
                                target: *target,
                                plan: with_field(plan, field, value),
                            };
                            (
                                format!("faults[{index}] {field:?} {current} -> {value}")
                                    .to_lowercase(),
                                variant,
                            )
                        })
                        .collect();
                    if !self.try_variants(variants) {
                        break;
                    }
                    changed = true;
                }
            }
        }
        changed
    }

    /// Each searched parameter back to the file's value.
    fn parameters(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.best.parameters.len() {
            if self.best.parameters[index].is_none() {
                continue;
            }
            let mut variant = self.best.clone();
            variant.parameters[index] = None;
            let label = format!(
                "{} back to the file's value",
                self.explorer.space.parameters[index].path
            );
            changed |= self.try_variants(vec![(label, variant)]);
        }
        changed
    }

    /// Fewer clients, lower rates, fewer users.
    fn load(&mut self) -> bool {
        let clients: Vec<Value> = self
            .explorer
            .base
            .value
            .get("clients")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut changed = false;
        let remaining = |c: &Candidate| clients.len() - c.clients_removed.len();
        if remaining(&self.best) > 1 {
            let variants = (0..clients.len())
                .filter(|index| !self.best.clients_removed.contains(index))
                .map(|index| {
                    let mut variant = self.best.clone();
                    variant.clients_removed.push(index);
                    variant.clients_removed.sort_unstable();
                    (format!("removed clients[{index}]"), variant)
                })
                .collect();
            changed |= self.try_variants(variants);
        }
        for (index, client) in clients.iter().enumerate() {
            let load = &client["load"];
            let (path, integer) = match (load["kind"].as_str(), load["rate"]["kind"].as_str()) {
                (Some("open_loop"), Some("constant")) => {
                    (format!("clients[{index}].load.rate.rps"), false)
                }
                (Some("closed_loop"), _) => (format!("clients[{index}].load.users"), true),
                _ => continue,
            };
            loop {
                if self.best.clients_removed.contains(&index) {
                    break;
                }
                let written = self
                    .best
                    .overrides
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, value)| value.clone());
                let current = written
                    .as_ref()
                    .and_then(Value::as_f64)
                    .or_else(|| {
                        if integer {
                            load["users"].as_f64()
                        } else {
                            load["rate"]["rps"].as_f64()
                        }
                    })
                    .unwrap_or(1.0);
                // Rates shrink in thousandths, users in ones, down to half
                // the file's value: far lower, a metric can fail for want of
                // traffic (windows with no finished request never count as
                // recovered) rather than for the fault.
                let scale = if integer { 1.0 } else { 1_000.0 };
                let current_units = (current * scale).round() as u64;
                let file_units = if integer {
                    load["users"].as_f64()
                } else {
                    load["rate"]["rps"].as_f64()
                }
                .map_or(1, |value| (value * scale).round() as u64);
                let low = file_units.div_ceil(2).max(1);
                let variants: Vec<(String, Candidate)> = towards(low, current_units)
                    .into_iter()
                    .map(|units| {
                        let value = units as f64 / scale;
                        let mut variant = self.best.clone();
                        variant.overrides.retain(|(p, _)| *p != path);
                        variant
                            .overrides
                            .push((path.clone(), number(value, integer)));
                        (format!("{path} {current} -> {value}"), variant)
                    })
                    .collect();
                if !self.try_variants(variants) {
                    break;
                }
                changed = true;
            }
        }
        changed
    }
}

/// Shrinks `start`, which fails assertion `assertion` of `explorer`, within
/// `runs_max` runs.
pub fn shrink(explorer: &Explorer, start: &Candidate, assertion: usize, runs_max: u64) -> Shrunk {
    let outcome = explorer.trial(start);
    debug_assert!(outcome.fails(assertion));
    let mut shrinker = Shrinker {
        explorer,
        assertion,
        runs: 1,
        runs_max,
        best: start.clone(),
        outcome,
        steps: Vec::new(),
    };
    loop {
        let mut changed = shrinker.faults();
        changed |= shrinker.numbers();
        changed |= shrinker.parameters();
        changed |= shrinker.load();
        if !changed || shrinker.runs >= shrinker.runs_max {
            break;
        }
    }
    Shrunk {
        candidate: shrinker.best,
        assertion,
        outcome: shrinker.outcome,
        runs: shrinker.runs,
        steps: shrinker.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The values tried go from the low bound up, each below the current one.
    #[test]
    fn towards_goes_from_the_bound_up() {
        assert_eq!(
            towards(0, 256),
            vec![0, 128, 192, 224, 240, 248, 252, 254, 255]
        );
        assert_eq!(towards(10, 12), vec![10, 11]);
        assert_eq!(towards(10, 10), Vec::<u64>::new());
        assert_eq!(towards(10, 3), Vec::<u64>::new());
    }
}
