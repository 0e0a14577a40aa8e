//! One fault as plain numbers, to be placed on a service: what
//! `testing::faults` generates and what `sim explore` searches over and
//! shrinks. `FaultPlan::to_builder` turns it into a scenario file's
//! `faults` entry.

use crate::model::distribution::Distribution;
use crate::scenario::builder::FaultBuilder;
use crate::scenario::OutageMode;

/// One fault, on a service named when it is placed (`to_builder`).
#[derive(Clone, Debug, PartialEq)]
pub enum FaultPlan {
    /// The service is down from `start_ms` for `duration_ms`.
    Outage {
        /// Start, in ms.
        start_ms: u64,
        /// Length, in ms.
        duration_ms: u64,
        /// Refusing calls or holding them.
        mode: OutageMode,
    },
    /// Each request fails with `percent` percent chance.
    ErrorBurst {
        /// Start, in ms.
        start_ms: u64,
        /// Length, in ms.
        duration_ms: u64,
        /// The chance, in percent.
        percent: u32,
    },
    /// Every request's service time grows by `added_ms`.
    Latency {
        /// Start, in ms.
        start_ms: u64,
        /// Length, in ms.
        duration_ms: u64,
        /// The added service time, in ms.
        added_ms: u64,
    },
    /// One instance crashes and restarts.
    Crash {
        /// Which instance.
        instance: u32,
        /// When, in ms.
        at_ms: u64,
        /// Down time, in ms.
        restart_after_ms: u64,
    },
}

impl FaultPlan {
    /// When the fault ends, in ms.
    pub fn end_ms(&self) -> u64 {
        match *self {
            FaultPlan::Outage {
                start_ms,
                duration_ms,
                ..
            }
            | FaultPlan::ErrorBurst {
                start_ms,
                duration_ms,
                ..
            }
            | FaultPlan::Latency {
                start_ms,
                duration_ms,
                ..
            } => start_ms + duration_ms,
            FaultPlan::Crash {
                at_ms,
                restart_after_ms,
                ..
            } => at_ms + restart_after_ms,
        }
    }

    /// The `faults` entry for this fault on `service`.
    pub fn to_builder(&self, service: &str) -> FaultBuilder {
        match *self {
            FaultPlan::Outage {
                start_ms,
                duration_ms,
                mode,
            } => FaultBuilder::outage(service, start_ms, start_ms + duration_ms, mode),
            FaultPlan::ErrorBurst {
                start_ms,
                duration_ms,
                percent,
            } => FaultBuilder::error_rate(
                service,
                start_ms,
                start_ms + duration_ms,
                f64::from(percent) / 100.0,
            ),
            FaultPlan::Latency {
                start_ms,
                duration_ms,
                added_ms,
            } => FaultBuilder::latency(
                service,
                start_ms,
                start_ms + duration_ms,
                1.0,
                Distribution::Constant {
                    value_ms: added_ms as f64,
                },
            ),
            FaultPlan::Crash {
                instance,
                at_ms,
                restart_after_ms,
            } => FaultBuilder::crash(service, instance, at_ms, restart_after_ms),
        }
    }
}
