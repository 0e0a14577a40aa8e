//! The search space of `explore.search`: which faults may be injected
//! (kinds, targets, start times, durations and intensities within bounds)
//! and which policy parameters may vary (any numeric field of the scenario,
//! by JSON path, within a range), its checks, and the candidates drawn from
//! it: random ones, mutations of earlier ones, and how a candidate becomes a
//! scenario file.
//!
//! A parameter's allowed range is the scenario format's own: the space
//! checks a range by setting the field to each bound and validating the
//! scenario, so a bound outside what the field allows is refused with the
//! field's own message, and a field added to the format later needs no
//! change here.
//!
//! A candidate is plain numbers (faults as [`FaultPlan`]s, parameter
//! values), rendered into the file's JSON only to run: so the shrunk result
//! is a scenario file like any other, the very text that was checked and run.

use crate::engine::SimRng;
use crate::scenario::error::Invalid;
use crate::scenario::fault_plan::FaultPlan;
use crate::scenario::{OutageMode, Scenario};
use crate::sweep::grid::set_path;
use crate::sweep::spec::number;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `explore.search` as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    /// Faults to inject; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<RawFaultSpace>,
    /// Numeric fields to vary; default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<RawParameter>,
    /// Whether the file's own `faults` stay in every candidate; default true.
    #[serde(default = "yes")]
    pub keep_faults: bool,
}

fn yes() -> bool {
    true
}

/// A kind of fault the search may inject.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// An outage that refuses calls at once (`mode: fail_fast`).
    Outage,
    /// An outage that holds calls unanswered (`mode: hang`).
    Hang,
    /// An error burst: each request fails with a chance in `error_percent`.
    ErrorRate,
    /// Added service time, `added_ms`, for every request.
    Latency,
    /// One instance crashes and restarts after the drawn duration.
    Crash,
}

/// `explore.search.faults` as written. Bounds are `[low, high]`, both included.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawFaultSpace {
    /// How many faults a candidate injects, in `[0, 20]`; default `[1, 1]`.
    #[serde(default = "count_default")]
    pub count: [u32; 2],
    /// The kinds to draw from; default all.
    #[serde(default = "kinds_default")]
    pub kinds: Vec<FaultKind>,
    /// The services to hit; default every service.
    #[serde(default)]
    pub targets: Vec<String>,
    /// When a fault starts, in ms; the high bound below `duration_ms`.
    pub start_ms: [u64; 2],
    /// How long it lasts (a crash: how long the instance is down), in ms, `>= 1`.
    pub duration_ms: [u64; 2],
    /// An error burst's chance, in percent, in `[0, 100]`; default `[1, 100]`.
    #[serde(default = "percent_default")]
    pub error_percent: [u32; 2],
    /// A latency fault's added service time, in ms, in `[0, 3600000]`;
    /// default `[1, 2000]`.
    #[serde(default = "added_default")]
    pub added_ms: [u64; 2],
}

fn count_default() -> [u32; 2] {
    [1, 1]
}

fn kinds_default() -> Vec<FaultKind> {
    vec![
        FaultKind::Outage,
        FaultKind::Hang,
        FaultKind::ErrorRate,
        FaultKind::Latency,
        FaultKind::Crash,
    ]
}

fn percent_default() -> [u32; 2] {
    [1, 100]
}

fn added_default() -> [u64; 2] {
    [1, 2_000]
}

/// One entry of `explore.search.parameters`: a numeric field of the
/// scenario, by JSON path, and its range.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawParameter {
    /// The field, as `clients[0].policies[1].timeout_ms` (the paths error
    /// messages use).
    pub path: String,
    /// The low bound, included.
    pub min: f64,
    /// The high bound, included.
    pub max: f64,
    /// Whether values are whole numbers; default: when both bounds are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<bool>,
}

/// The most faults a candidate may inject.
pub const FAULTS_MAX: u32 = 20;

/// The most added latency a latency fault may draw, in ms (one hour).
pub const ADDED_MS_MAX: u64 = 3_600_000;

/// A checked fault space.
#[derive(Clone, Debug)]
pub struct FaultSpace {
    /// Fewest and most faults.
    pub count: (usize, usize),
    /// Kinds to draw.
    pub kinds: Vec<FaultKind>,
    /// Target services: name and instance count.
    pub targets: Vec<(String, u32)>,
    /// Start bounds, ms.
    pub start_ms: (u64, u64),
    /// Duration bounds, ms.
    pub duration_ms: (u64, u64),
    /// Error burst bounds, percent.
    pub error_percent: (u64, u64),
    /// Added latency bounds, ms.
    pub added_ms: (u64, u64),
}

/// A checked parameter.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// Its JSON path.
    pub path: String,
    /// Low bound.
    pub min: f64,
    /// High bound.
    pub max: f64,
    /// Whole numbers only.
    pub integer: bool,
}

/// A checked search space.
#[derive(Clone, Debug)]
pub struct Space {
    /// Faults to inject, if any.
    pub faults: Option<FaultSpace>,
    /// Parameters to vary.
    pub parameters: Vec<Parameter>,
    /// Whether the file's faults stay.
    pub keep_faults: bool,
}

/// A fault of a candidate: one of the file's own (by index), or one
/// injected on a target of the space.
#[derive(Clone, Debug, PartialEq)]
pub enum CandidateFault {
    /// The file's `faults[i]`, as written.
    Original(usize),
    /// An injected fault on `targets[target]`.
    Injected {
        /// Index into the fault space's targets.
        target: usize,
        /// The fault.
        plan: FaultPlan,
    },
}

/// One point of the search space, plus what shrinking changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The faults, in the order written.
    pub faults: Vec<CandidateFault>,
    /// One value per parameter; `None` keeps the file's value.
    pub parameters: Vec<Option<f64>>,
    /// Fields set by shrinking (client rates, users), by JSON path.
    pub overrides: Vec<(String, Value)>,
    /// Clients removed by shrinking (indices into the file's clients).
    pub clients_removed: Vec<usize>,
}

impl Candidate {
    /// Faults injected (not the file's own).
    pub fn injected(&self) -> usize {
        self.faults
            .iter()
            .filter(|fault| matches!(fault, CandidateFault::Injected { .. }))
            .count()
    }
}

/// A numeric field of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultField {
    /// `start_ms` (a crash's `at_ms`).
    Start,
    /// The duration (a crash's `restart_after_ms`).
    Duration,
    /// An error burst's percent.
    Percent,
    /// A latency fault's added ms.
    Added,
}

/// The numeric fields of `plan`, with their values.
pub fn fields(plan: &FaultPlan) -> Vec<(FaultField, u64)> {
    match *plan {
        FaultPlan::Outage {
            start_ms,
            duration_ms,
            ..
        } => vec![
            (FaultField::Duration, duration_ms),
            (FaultField::Start, start_ms),
        ],
        FaultPlan::ErrorBurst {
            start_ms,
            duration_ms,
            percent,
        } => vec![
            (FaultField::Duration, duration_ms),
            (FaultField::Start, start_ms),
            (FaultField::Percent, u64::from(percent)),
        ],
        FaultPlan::Latency {
            start_ms,
            duration_ms,
            added_ms,
        } => vec![
            (FaultField::Duration, duration_ms),
            (FaultField::Start, start_ms),
            (FaultField::Added, added_ms),
        ],
        FaultPlan::Crash {
            at_ms,
            restart_after_ms,
            ..
        } => vec![
            (FaultField::Duration, restart_after_ms),
            (FaultField::Start, at_ms),
        ],
    }
}

/// `plan` with `field` set to `value`.
pub fn with_field(plan: &FaultPlan, field: FaultField, value: u64) -> FaultPlan {
    let mut plan = plan.clone();
    match (&mut plan, field) {
        (
            FaultPlan::Outage { start_ms, .. }
            | FaultPlan::ErrorBurst { start_ms, .. }
            | FaultPlan::Latency { start_ms, .. }
            | FaultPlan::Crash {
                at_ms: start_ms, ..
            },
            FaultField::Start,
        ) => *start_ms = value,
        (
            FaultPlan::Outage { duration_ms, .. }
            | FaultPlan::ErrorBurst { duration_ms, .. }
            | FaultPlan::Latency { duration_ms, .. }
            | FaultPlan::Crash {
                restart_after_ms: duration_ms,
                ..
            },
            FaultField::Duration,
        ) => *duration_ms = value,
        (FaultPlan::ErrorBurst { percent, .. }, FaultField::Percent) => {
            *percent = u32::try_from(value).unwrap_or(100).min(100)
        }
        (FaultPlan::Latency { added_ms, .. }, FaultField::Added) => *added_ms = value,
        _ => {}
    }
    plan
}

impl FaultSpace {
    /// The bounds of `field`.
    pub fn bounds(&self, field: FaultField) -> (u64, u64) {
        match field {
            FaultField::Start => self.start_ms,
            FaultField::Duration => self.duration_ms,
            FaultField::Percent => self.error_percent,
            FaultField::Added => self.added_ms,
        }
    }

    /// A fault drawn uniformly: kind, target, then each bound.
    pub fn draw(&self, rng: &mut SimRng) -> CandidateFault {
        let kind = self.kinds[rng.index(self.kinds.len())];
        let target = rng.index(self.targets.len());
        let start_ms = rng.between(self.start_ms.0, self.start_ms.1);
        let duration_ms = rng.between(self.duration_ms.0, self.duration_ms.1);
        let plan = match kind {
            FaultKind::Outage | FaultKind::Hang => FaultPlan::Outage {
                start_ms,
                duration_ms,
                mode: if kind == FaultKind::Hang {
                    OutageMode::Hang
                } else {
                    OutageMode::FailFast
                },
            },
            FaultKind::ErrorRate => FaultPlan::ErrorBurst {
                start_ms,
                duration_ms,
                percent: rng.between(self.error_percent.0, self.error_percent.1) as u32,
            },
            FaultKind::Latency => FaultPlan::Latency {
                start_ms,
                duration_ms,
                added_ms: rng.between(self.added_ms.0, self.added_ms.1),
            },
            FaultKind::Crash => FaultPlan::Crash {
                instance: rng.between(0, u64::from(self.targets[target].1.max(1) - 1)) as u32,
                at_ms: start_ms,
                restart_after_ms: duration_ms,
            },
        };
        CandidateFault::Injected { target, plan }
    }
}

impl Parameter {
    /// A value drawn uniformly within the bounds.
    pub fn draw(&self, rng: &mut SimRng) -> f64 {
        if self.integer {
            rng.between(self.min as u64, self.max as u64) as f64
        } else {
            self.min + (self.max - self.min) * rng.unit()
        }
    }

    /// `value` as the JSON number written into the scenario.
    pub fn json(&self, value: f64) -> Value {
        number(value, self.integer)
    }
}

impl Space {
    /// A candidate drawn uniformly from the space.
    pub fn random(&self, original_faults: usize, rng: &mut SimRng) -> Candidate {
        let mut faults: Vec<CandidateFault> = if self.keep_faults {
            (0..original_faults).map(CandidateFault::Original).collect()
        } else {
            Vec::new()
        };
        if let Some(space) = &self.faults {
            let count = rng.between(space.count.0 as u64, space.count.1 as u64);
            faults.extend((0..count).map(|_| space.draw(rng)));
        }
        Candidate {
            faults,
            parameters: self
                .parameters
                .iter()
                .map(|parameter| Some(parameter.draw(rng)))
                .collect(),
            overrides: Vec::new(),
            clients_removed: Vec::new(),
        }
    }

    /// `parent` changed in one random way: one fault field nudged or
    /// redrawn, a fault added, removed or replaced, or one parameter redrawn.
    pub fn mutate(&self, parent: &Candidate, rng: &mut SimRng) -> Candidate {
        let mut child = parent.clone();
        // Each attempt picks an operation; one that does not apply (no
        // parameter to redraw, no room for a fault) is skipped.
        for _ in 0..8 {
            let operation = rng.index(5);
            let injected: Vec<usize> = child
                .faults
                .iter()
                .enumerate()
                .filter(|(_, fault)| matches!(fault, CandidateFault::Injected { .. }))
                .map(|(index, _)| index)
                .collect();
            match (operation, &self.faults) {
                (0 | 1, Some(space)) if !injected.is_empty() => {
                    let index = injected[rng.index(injected.len())];
                    if let CandidateFault::Injected { plan, .. } = &mut child.faults[index] {
                        let fields = fields(plan);
                        let (field, value) = fields[rng.index(fields.len())];
                        let (low, high) = space.bounds(field);
                        let new = if operation == 0 {
                            // A nudge of up to half the value, either way.
                            let step = (value / 2).max(1);
                            let delta = rng.between(0, step);
                            if rng.chance(0.5) {
                                value.saturating_add(delta)
                            } else {
                                value.saturating_sub(delta)
                            }
                        } else {
                            rng.between(low, high)
                        };
                        *plan = with_field(plan, field, new.clamp(low, high));
                        return child;
                    }
                }
                (2, Some(space)) if injected.len() < space.count.1 => {
                    child.faults.push(space.draw(rng));
                    return child;
                }
                (3, Some(space)) if !injected.is_empty() => {
                    let index = injected[rng.index(injected.len())];
                    if injected.len() > space.count.0 {
                        child.faults.remove(index);
                    } else {
                        child.faults[index] = space.draw(rng);
                    }
                    return child;
                }
                (4, _) if !self.parameters.is_empty() => {
                    let index = rng.index(self.parameters.len());
                    child.parameters[index] = Some(self.parameters[index].draw(rng));
                    return child;
                }
                _ => {}
            }
        }
        child
    }
}

/// The scenario file a candidate is rendered into: the file's JSON with
/// its `explore.search` removed, and its own faults.
#[derive(Clone, Debug)]
pub struct Base {
    /// The file's JSON, `explore` reduced to its assertions.
    pub value: Value,
    /// The file's `faults` entries.
    pub faults: Vec<Value>,
}

impl Base {
    /// The base of the file's JSON `value`.
    pub fn new(mut value: Value) -> Base {
        let faults = value
            .get("faults")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(explore) = value.get_mut("explore").and_then(Value::as_object_mut) {
            explore.remove("search");
        }
        Base { value, faults }
    }

    /// The scenario JSON of `candidate` in `space`.
    pub fn render(&self, space: &Space, candidate: &Candidate) -> Result<Value, String> {
        let mut value = self.value.clone();
        let faults: Vec<Value> = candidate
            .faults
            .iter()
            .map(|fault| match fault {
                CandidateFault::Original(index) => self.faults[*index].clone(),
                CandidateFault::Injected { target, plan } => {
                    let name = space
                        .faults
                        .as_ref()
                        .map_or("", |faults| faults.targets[*target].0.as_str());
                    plan.to_builder(name).to_value().clone()
                }
            })
            .collect();
        if let Value::Object(map) = &mut value {
            map.insert("faults".into(), Value::Array(faults));
        }
        for (parameter, chosen) in space.parameters.iter().zip(&candidate.parameters) {
            if let Some(chosen) = chosen {
                set_path(&mut value, &parameter.path, parameter.json(*chosen))?;
            }
        }
        for (path, chosen) in &candidate.overrides {
            set_path(&mut value, path, chosen.clone())?;
        }
        if let Some(Value::Array(clients)) = value.get_mut("clients") {
            for index in candidate.clients_removed.iter().rev() {
                if *index < clients.len() {
                    clients.remove(*index);
                }
            }
        }
        Ok(value)
    }
}

/// The text of a scenario JSON value, as written to a file.
pub fn text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// `[low, high]` at `path` must not be reversed.
fn ordered<T: PartialOrd + std::fmt::Display>(path: &str, bounds: [T; 2]) -> Result<(), Invalid> {
    if bounds[0] > bounds[1] {
        return Err(Invalid::new(
            path,
            format!(
                "bounds are reversed ([{}, {}]); write [low, high]",
                bounds[0], bounds[1]
            ),
        ));
    }
    Ok(())
}

/// `[low, high]` at `path` must lie in `[min, max]`.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    path: &str,
    bounds: [T; 2],
    min: T,
    max: T,
) -> Result<(), Invalid> {
    ordered(path, bounds)?;
    if bounds[0] < min || bounds[1] > max {
        return Err(Invalid::new(
            path,
            format!(
                "must be within [{min}, {max}] (got [{}, {}])",
                bounds[0], bounds[1]
            ),
        ));
    }
    Ok(())
}

/// Checks `raw` (at `path`, `explore.search`) against the scenario it
/// searches (`scenario`, checked, and its file text `base`).
pub fn check(
    raw: &RawSearch,
    scenario: &Scenario,
    base: &Value,
    path: &str,
) -> Result<Space, Invalid> {
    let faults = match &raw.faults {
        None => None,
        Some(faults) => Some(check_faults(faults, scenario, &format!("{path}.faults"))?),
    };
    let parameters = raw
        .parameters
        .iter()
        .enumerate()
        .map(|(index, parameter)| {
            check_parameter(parameter, base, &format!("{path}.parameters[{index}]"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Space {
        faults,
        parameters,
        keep_faults: raw.keep_faults,
    })
}

fn check_faults(
    raw: &RawFaultSpace,
    scenario: &Scenario,
    path: &str,
) -> Result<FaultSpace, Invalid> {
    within(&format!("{path}.count"), raw.count, 0, FAULTS_MAX)?;
    if raw.kinds.is_empty() {
        return Err(Invalid::new(
            format!("{path}.kinds"),
            "must name at least one of outage, hang, error_rate, latency, crash",
        ));
    }
    let mut kinds = raw.kinds.clone();
    kinds.sort();
    kinds.dedup();
    let targets = if raw.targets.is_empty() {
        scenario
            .services
            .iter()
            .map(|service| (service.name.clone(), service.instances))
            .collect()
    } else {
        let mut targets = Vec::new();
        for (index, name) in raw.targets.iter().enumerate() {
            let service = scenario
                .services
                .iter()
                .find(|service| &service.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        scenario.services.iter().map(|s| s.name.as_str()).collect();
                    Invalid::new(
                        format!("{path}.targets[{index}]"),
                        format!(
                            "names no service \"{}\" (services: {})",
                            crate::scenario::error::escape_control(name),
                            names.join(", ")
                        ),
                    )
                })?;
            targets.push((service.name.clone(), service.instances));
        }
        targets
    };
    let duration_ms = scenario.duration.as_micros() / 1_000;
    within(
        &format!("{path}.start_ms"),
        raw.start_ms,
        0,
        duration_ms.saturating_sub(1),
    )?;
    within(
        &format!("{path}.duration_ms"),
        raw.duration_ms,
        1,
        u64::MAX / 4,
    )?;
    within(&format!("{path}.error_percent"), raw.error_percent, 0, 100)?;
    within(&format!("{path}.added_ms"), raw.added_ms, 0, ADDED_MS_MAX)?;
    Ok(FaultSpace {
        count: (raw.count[0] as usize, raw.count[1] as usize),
        kinds,
        targets,
        start_ms: (raw.start_ms[0], raw.start_ms[1]),
        duration_ms: (raw.duration_ms[0], raw.duration_ms[1]),
        error_percent: (
            u64::from(raw.error_percent[0]),
            u64::from(raw.error_percent[1]),
        ),
        added_ms: (raw.added_ms[0], raw.added_ms[1]),
    })
}

fn check_parameter(raw: &RawParameter, base: &Value, path: &str) -> Result<Parameter, Invalid> {
    for (name, bound) in [("min", raw.min), ("max", raw.max)] {
        if !bound.is_finite() {
            return Err(Invalid::new(
                format!("{path}.{name}"),
                "must be a finite number",
            ));
        }
    }
    if raw.min > raw.max {
        return Err(Invalid::new(
            path,
            format!(
                "bounds are reversed (min {} > max {}); min must be at most max",
                raw.min, raw.max
            ),
        ));
    }
    let whole = |value: f64| value.fract() == 0.0 && value.abs() < 9e15;
    let integer = raw.integer.unwrap_or(whole(raw.min) && whole(raw.max));
    if integer && (!whole(raw.min) || !whole(raw.max) || raw.min < 0.0) {
        return Err(Invalid::new(
            path,
            format!(
                "an integer parameter needs whole, non-negative bounds (got [{}, {}])",
                raw.min, raw.max
            ),
        ));
    }
    let parameter = Parameter {
        path: raw.path.clone(),
        min: raw.min,
        max: raw.max,
        integer,
    };
    // Each bound must be a value the field allows: set it and validate the
    // scenario, whose message names the field's own range.
    for (name, bound) in [("min", raw.min), ("max", raw.max)] {
        let mut value = base.clone();
        set_path(&mut value, &raw.path, parameter.json(bound))
            .map_err(|message| Invalid::new(format!("{path}.path"), message))?;
        if let Some(object) = value.as_object_mut() {
            object.remove("explore");
        }
        let bytes = text(&value);
        if let Err(error) = Scenario::from_bytes("", "check", bytes.as_bytes()) {
            let message = match error {
                crate::scenario::ScenarioError::Invalid { invalid, .. } => invalid.to_string(),
                crate::scenario::ScenarioError::Parse { path, message, .. } => {
                    format!("{path}{message}")
                }
                other => other.to_string(),
            };
            return Err(Invalid::new(
                format!("{path}.{name}"),
                format!("{bound} is outside what the field allows: {message}"),
            ));
        }
    }
    Ok(parameter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "description": "d",
            "duration_ms": 10000,
            "services": [{"name": "api", "instances": 2,
                          "service_time_ms": {"kind": "constant", "value_ms": 5}}],
            "clients": [{"name": "users", "target": "api",
                         "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 10}},
                         "policies": [{"kind": "retry", "attempts_max": 3}]}]
        })
    }

    fn scenario() -> Scenario {
        Scenario::from_bytes("f", "f", text(&base()).as_bytes()).expect("valid")
    }

    fn search(value: Value) -> RawSearch {
        serde_json::from_value(value).expect("a search section")
    }

    fn error(value: Value) -> String {
        check(&search(value), &scenario(), &base(), "explore.search")
            .unwrap_err()
            .to_string()
    }

    // Reversed bounds and bounds outside a field's range are one error each, with the path.
    #[test]
    fn bad_bounds_name_their_path() {
        assert_eq!(
            error(json!({"faults": {"start_ms": [5000, 100], "duration_ms": [1, 2]}})),
            "explore.search.faults.start_ms: bounds are reversed ([5000, 100]); write [low, high]"
        );
        assert_eq!(
            error(json!({"faults": {"start_ms": [0, 10000], "duration_ms": [1, 2]}})),
            "explore.search.faults.start_ms: must be within [0, 9999] (got [0, 10000])"
        );
        assert_eq!(
            error(json!({"faults": {"start_ms": [0, 1], "duration_ms": [0, 2]}})),
            "explore.search.faults.duration_ms: must be within [1, 4611686018427387903] (got [0, 2])"
        );
        assert_eq!(
            error(
                json!({"faults": {"start_ms": [0, 1], "duration_ms": [1, 2], "error_percent": [5, 101]}})
            ),
            "explore.search.faults.error_percent: must be within [0, 100] (got [5, 101])"
        );
        assert_eq!(
            error(
                json!({"faults": {"start_ms": [0, 1], "duration_ms": [1, 2], "targets": ["db"]}})
            ),
            "explore.search.faults.targets[0]: names no service \"db\" (services: api)"
        );
        assert_eq!(
            error(json!({"parameters": [{"path": "clients[0].policies[0].attempts_max", "min": 5, "max": 2}]})),
            "explore.search.parameters[0]: bounds are reversed (min 5 > max 2); min must be at most max"
        );
        let message = error(json!({"parameters": [
            {"path": "clients[0].policies[0].attempts_max", "min": 1, "max": 100000}]}));
        assert!(
            message.starts_with("explore.search.parameters[0].max: 100000 is outside what the field allows: clients[0].policies[0].attempts_max: "),
            "{message}"
        );
        let message =
            error(json!({"parameters": [{"path": "clients[3].load", "min": 1, "max": 2}]}));
        assert!(
            message.starts_with("explore.search.parameters[0].path: "),
            "{message}"
        );
    }

    // Random candidates stay within the bounds, and mutations too.
    #[test]
    fn candidates_stay_within_bounds() {
        let space = check(
            &search(json!({
                "faults": {"count": [1, 3], "start_ms": [100, 900], "duration_ms": [10, 50],
                           "error_percent": [20, 30], "added_ms": [5, 6]},
                "parameters": [{"path": "clients[0].policies[0].attempts_max", "min": 1, "max": 4}]
            })),
            &scenario(),
            &base(),
            "s",
        )
        .expect("valid");
        let faults = space.faults.as_ref().unwrap();
        let mut rng = RngFactory::new(3).stream("t");
        let mut candidate = space.random(0, &mut rng);
        for _ in 0..500 {
            assert!((1..=3).contains(&candidate.injected()));
            for fault in &candidate.faults {
                let CandidateFault::Injected { plan, target } = fault else {
                    panic!("no original faults");
                };
                assert_eq!(*target, 0);
                for (field, value) in fields(plan) {
                    let (low, high) = faults.bounds(field);
                    assert!(low <= value && value <= high, "{field:?} {value}");
                }
                if let FaultPlan::Crash { instance, .. } = plan {
                    assert!(*instance < 2);
                }
            }
            let attempts = candidate.parameters[0].unwrap();
            assert!((1.0..=4.0).contains(&attempts) && attempts.fract() == 0.0);
            let rendered = space.rendered_ok(&candidate);
            assert!(rendered, "{candidate:?}");
            candidate = space.mutate(&candidate, &mut rng);
        }
    }

    impl Space {
        fn rendered_ok(&self, candidate: &Candidate) -> bool {
            let value = Base::new(base()).render(self, candidate).expect("renders");
            Scenario::from_bytes("f", "f", text(&value).as_bytes()).is_ok()
        }
    }
}
