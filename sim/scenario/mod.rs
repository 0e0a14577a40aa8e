//! Scenario files: read (`raw`), checked (`validate`) and resolved into a
//! `Scenario`, the only form the engine sees. Names are resolved to indices,
//! milliseconds to `SimDuration`s, and every range has been checked, so the
//! model can `debug_assert!` instead of re-checking.

pub mod builder;
pub mod check;
pub mod error;
pub mod fault_plan;
pub mod input;
pub mod memory;
pub mod raw;
pub mod raw_database;
pub mod raw_topology;
pub mod strict;
mod validate;
pub mod validate_database;
pub mod validate_topology;

use crate::engine::{SimDuration, SimTime};
use crate::model::distribution::Distribution;
use crate::model::flags::FeatureFlagConfig;
use crate::model::health::{HealthCheckConfig, LoadSheddingConfig};
use crate::policy::PolicySpec;
pub use error::{Invalid, ScenarioError};
pub use raw::{ArrivalKind, DependencyMode, LoadBalancerKind, OutageMode, RateSchedule};
use sha2::{Digest, Sha256};
use std::path::Path;
pub use validate::RPS_MAX;

/// A checked scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file's stem (`thundering-herd`), used for report folders.
    pub name: String,
    /// What it demonstrates.
    pub description: String,
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    /// How long clients issue requests.
    pub duration: SimDuration,
    /// Time-series window width.
    pub window: SimDuration,
    /// One-way network latency.
    pub network_latency: Distribution,
    /// Services; indices are service ids.
    pub services: Vec<Service>,
    /// Clients; indices are client ids.
    pub clients: Vec<Client>,
    /// Faults, in file order.
    pub faults: Vec<Fault>,
    /// Database clusters, run by `model::world::database`.
    pub databases: Vec<crate::database::ClusterConfig>,
    /// Run limits.
    pub limits: Limits,
    /// Regions, network and global routing; `None` for a single-region scenario.
    pub topology: Option<crate::topology::Topology>,
}

/// A checked service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Unique name.
    pub name: String,
    /// Instances, `>= 1`.
    pub instances: u32,
    /// Workers per instance, `>= 1`.
    pub workers: u32,
    /// Queue slots per instance.
    pub queue_capacity: u32,
    /// Instance choice.
    pub load_balancer: LoadBalancerKind,
    /// Per-request work.
    pub service_time: Distribution,
    /// Chance of a server error (retryable) after the work.
    pub error_probability: f64,
    /// Chance of a client error (not retryable) after the work.
    pub client_error_probability: f64,
    /// How dependencies are called.
    pub dependency_mode: DependencyMode,
    /// Dependency calls, each with its policies.
    pub dependencies: Vec<DependencyCall>,
    /// Health checking, if any.
    pub health_check: Option<HealthCheckConfig>,
    /// Load shedding, if any.
    pub load_shedding: Option<LoadSheddingConfig>,
    /// Feature flags, each with the index of the service it watches.
    pub feature_flags: Vec<(FeatureFlagConfig, usize)>,
}

/// What a dependency call reaches: a service or a database cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A service, by index in `Scenario::services`.
    Service(usize),
    /// A database cluster, by index in `Scenario::databases`.
    Database(usize),
}

/// A checked dependency call.
#[derive(Clone, Debug)]
pub struct DependencyCall {
    /// The called service or database.
    pub target: Target,
    /// The fraction of requests that make this call.
    pub probability: f64,
    /// Caller-side policies, outermost first.
    pub policies: Vec<PolicySpec>,
}

impl DependencyCall {
    /// The called service's index, if the call reaches a service.
    pub fn service(&self) -> Option<usize> {
        match self.target {
            Target::Service(service) => Some(service),
            Target::Database(_) => None,
        }
    }

    /// The called service's or database's name.
    pub fn target_name<'a>(&self, scenario: &'a Scenario) -> &'a str {
        match self.target {
            Target::Service(service) => &scenario.services[service].name,
            Target::Database(cluster) => &scenario.databases[cluster].name,
        }
    }
}

/// A checked client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Unique name.
    pub name: String,
    /// The called service's index.
    pub target: usize,
    /// How requests are generated.
    pub load: Load,
    /// Client-side policies, outermost first.
    pub policies: Vec<PolicySpec>,
}

/// A checked load model.
#[derive(Clone, Debug)]
pub enum Load {
    /// Arrivals on a schedule plus bursts.
    OpenLoop {
        /// Gap distribution.
        arrival: ArrivalKind,
        /// Rate over time.
        rate: RateSchedule,
        /// `(when, how many)`, sorted by time.
        bursts: Vec<(SimTime, u32)>,
    },
    /// Users that wait and think.
    ClosedLoop {
        /// Population.
        users: u32,
        /// Pause between requests.
        think_time: Distribution,
    },
}

/// A checked fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The service is down in `[start, end)`.
    Outage {
        /// Service index.
        service: usize,
        /// Start.
        start: SimTime,
        /// End.
        end: SimTime,
        /// Refuse or hang.
        mode: OutageMode,
    },
    /// Extra errors in `[start, end)`.
    ErrorRate {
        /// Service index.
        service: usize,
        /// Start.
        start: SimTime,
        /// End.
        end: SimTime,
        /// Chance per request.
        probability: f64,
    },
    /// Extra latency in `[start, end)`.
    Latency {
        /// Service index.
        service: usize,
        /// Start.
        start: SimTime,
        /// End.
        end: SimTime,
        /// Chance per request.
        probability: f64,
        /// Added service time.
        added: Distribution,
    },
    /// One instance crashes and later restarts.
    Crash {
        /// Service index.
        service: usize,
        /// Instance index.
        instance: u32,
        /// Crash time.
        at: SimTime,
        /// Down time.
        restart_after: SimDuration,
    },
    /// Graceful shutdown of one instance.
    Shutdown {
        /// Service index.
        service: usize,
        /// Instance index.
        instance: u32,
        /// When draining begins.
        at: SimTime,
        /// Drain deadline after `at`.
        drain_timeout: SimDuration,
        /// Down time after the deadline, if it restarts.
        restart_after: Option<SimDuration>,
    },
    /// Random failures and latency in front of the handler.
    ChaosMonkey {
        /// Service index.
        service: usize,
        /// Start.
        start: SimTime,
        /// End.
        end: SimTime,
        /// Chance of failure.
        failure_rate: f64,
        /// Chance of latency.
        latency_rate: f64,
        /// Most latency, ms.
        latency_ms: f64,
    },
    /// Random instance kills on a schedule.
    KillInstances {
        /// Service index.
        service: usize,
        /// Start.
        start: SimTime,
        /// End.
        end: SimTime,
        /// Time between draws.
        interval: SimDuration,
        /// Chance per draw.
        probability: f64,
        /// Down time.
        restart_after: SimDuration,
    },
}

impl Fault {
    /// The service the fault hits.
    pub fn service(&self) -> usize {
        match self {
            Fault::Outage { service, .. }
            | Fault::ErrorRate { service, .. }
            | Fault::Latency { service, .. }
            | Fault::Crash { service, .. }
            | Fault::Shutdown { service, .. }
            | Fault::ChaosMonkey { service, .. }
            | Fault::KillInstances { service, .. } => *service,
        }
    }

    /// The interval the fault is active, for charts.
    pub fn window(&self) -> (SimTime, SimTime) {
        match self {
            Fault::Outage { start, end, .. }
            | Fault::ErrorRate { start, end, .. }
            | Fault::Latency { start, end, .. }
            | Fault::ChaosMonkey { start, end, .. }
            | Fault::KillInstances { start, end, .. } => (*start, *end),
            Fault::Shutdown {
                at,
                drain_timeout,
                restart_after,
                ..
            } => (
                *at,
                *at + *drain_timeout + restart_after.unwrap_or(SimDuration::ZERO),
            ),
            Fault::Crash {
                at, restart_after, ..
            } => (*at, *at + *restart_after),
        }
    }

    /// A short label: `outage(hang) api`.
    pub fn label(&self, services: &[Service]) -> String {
        let service = &services[self.service()].name;
        match self {
            Fault::Outage { mode, .. } => {
                let mode = match mode {
                    OutageMode::FailFast => "fail-fast",
                    OutageMode::Hang => "hang",
                };
                format!("outage ({mode}) {service}")
            }
            Fault::ErrorRate { probability, .. } => {
                format!("errors {:.0}% {service}", probability * 100.0)
            }
            Fault::Latency { .. } => format!("latency {service}"),
            Fault::Crash { instance, .. } => format!("crash {service}[{instance}]"),
            Fault::Shutdown { instance, .. } => format!("shutdown {service}[{instance}]"),
            Fault::ChaosMonkey { .. } => format!("chaos monkey {service}"),
            Fault::KillInstances { .. } => format!("instance kills {service}"),
        }
    }
}

/// Checked run limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most events processed.
    pub events_max: u64,
    /// Grace period after `duration`.
    pub drain: SimDuration,
    /// Most calls in flight at once: live policy invocations plus attempts.
    pub in_flight_max: usize,
    /// The memory budget in MiB; the scenario's estimate fits within it.
    pub memory_mb: u64,
}

/// A scenario file as read from disk, before parsing: every command that
/// reads one (run, validate, explore, estimate) goes through `read`.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    /// The path as error messages name it.
    pub file: String,
    /// The file's stem: the scenario's name in reports.
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl ScenarioFile {
    /// Reads the scenario file at `path` (a regular file of bounded size,
    /// see `input::read_input`).
    pub fn read(path: &Path) -> Result<ScenarioFile, ScenarioError> {
        let file = path.display().to_string();
        let bytes = input::read_input(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        Ok(ScenarioFile { file, name, bytes })
    }
}

impl Scenario {
    /// Reads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_with(path, None)
    }

    /// Reads and checks the scenario at `path`, with `limits.events_max`
    /// replaced by `events_max` if given (before the event-budget check).
    pub fn load_with(path: &Path, events_max: Option<u64>) -> Result<Scenario, ScenarioError> {
        let read = ScenarioFile::read(path)?;
        Scenario::from_bytes_with(&read.file, &read.name, &read.bytes, events_max)
    }

    /// Parses and checks scenario text; `file` is used in messages and
    /// `name` for report folders.
    pub fn from_bytes(file: &str, name: &str, bytes: &[u8]) -> Result<Scenario, ScenarioError> {
        Scenario::from_bytes_with(file, name, bytes, None)
    }

    /// `from_bytes`, with `limits.events_max` replaced by `events_max` if given.
    pub fn from_bytes_with(
        file: &str,
        name: &str,
        bytes: &[u8],
        events_max: Option<u64>,
    ) -> Result<Scenario, ScenarioError> {
        let raw: raw::RawScenario = parse_json_strict(file, bytes)?;
        let hash = hex(&Sha256::digest(bytes));
        validate::validate(raw, name, hash, events_max).map_err(|invalid| ScenarioError::Invalid {
            file: file.to_string(),
            invalid,
        })
    }

    /// The service called `name`, if any.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services
            .iter()
            .position(|service| service.name == name)
    }
}

/// Parses JSON input (a scenario, or `sim policy`'s config and events);
/// syntax and type errors become `ScenarioError::Parse` naming `file` and the
/// JSON path.
///
/// A byte order mark, UTF-16/32 text or a NUL byte is named as such; serde's
/// Rust type names become plain words; control characters in the path and
/// the message are escaped, so the error stays one line.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    file: &str,
    bytes: &[u8],
) -> Result<T, ScenarioError> {
    if let Some(message) = strict::check_encoding(bytes) {
        return Err(ScenarioError::Parse {
            file: file.to_string(),
            path: String::new(),
            message,
        });
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." {
            String::new()
        } else {
            format!("{}: ", error::escape_control(&path))
        };
        let mut message = strict::plain_expected(&error.into_inner().to_string());
        if message.starts_with("expected value") {
            // The usual cause is NaN, Infinity or a trailing comma, none of which JSON allows.
            message.push_str(" (JSON allows no NaN, Infinity or trailing commas)");
        }
        ScenarioError::Parse {
            file: file.to_string(),
            path,
            message: error::escape_control(&message),
        }
    })
}

/// `parse_json`, also refusing a JSON array where the parsed value has an
/// object (serde reads structs from arrays by position): see `strict`.
pub fn parse_json_strict<T: serde::de::DeserializeOwned + serde::Serialize>(
    file: &str,
    bytes: &[u8],
) -> Result<T, ScenarioError> {
    let parsed: T = parse_json(file, bytes)?;
    // It parsed as T, so it is well-formed JSON.
    let input: serde_json::Value = parse_json(file, bytes)?;
    strict::refuse_arrays_for_objects(&input, &parsed).map_err(|(path, message)| {
        ScenarioError::Parse {
            file: file.to_string(),
            path: if path.is_empty() {
                String::new()
            } else {
                format!("{}: ", error::escape_control(&path))
            },
            message,
        }
    })?;
    Ok(parsed)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
