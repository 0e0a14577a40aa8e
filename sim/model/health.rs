//! Server-side health: the readiness, startup and liveness checks that take
//! instances out of and back into their load balancer's rotation (the
//! chapter's section 8.6), and load shedding. Each check is a small pure
//! state machine fed one probe result at a time; the model decides what a
//! probe sees and acts on the transitions.

use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Health checking of a service's instances. Without it every instance is
/// always in rotation, as with a load balancer that does not check.
///
/// JSON: `{"interval_ms": 1000, "unhealthy_after": 2, "healthy_after": 2,
/// "startup_ms": 5000, "readiness_queue_max": 50, "liveness": {...}}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between probes of every instance, in `[1, 3600000]` ms; default 1000.
    #[serde(default = "interval_default")]
    pub interval_ms: u64,
    /// Consecutive failed readiness probes that take an instance out of
    /// rotation, in `[1, 1000]`; default 2.
    #[serde(default = "threshold_default")]
    pub unhealthy_after: u32,
    /// Consecutive passed readiness probes that put it back, in `[1, 1000]`; default 2.
    #[serde(default = "threshold_default")]
    pub healthy_after: u32,
    /// Startup check: after an instance (re)starts it is not ready for this
    /// long, in `[0, 3600000]` ms; default 0.
    #[serde(default)]
    pub startup_ms: u64,
    /// Readiness fails while the instance's queue holds at least this many
    /// calls (overload), in `[1, 10000000]`; default none (never for load).
    #[serde(default)]
    pub readiness_queue_max: Option<u32>,
    /// Liveness checking; default none (hung instances are never restarted).
    #[serde(default)]
    pub liveness: Option<LivenessConfig>,
}

/// Liveness: an instance that fails this many probes in a row is restarted.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LivenessConfig {
    /// Consecutive failed liveness probes before a restart, in `[1, 1000]`; default 3.
    #[serde(default = "liveness_threshold_default")]
    pub restart_after_failures: u32,
    /// How long a restart takes before the startup period begins, in
    /// `[1, 3600000]` ms; default 5000.
    #[serde(default = "restart_default")]
    pub restart_ms: u64,
}

fn interval_default() -> u64 {
    1_000
}

fn threshold_default() -> u32 {
    2
}

fn liveness_threshold_default() -> u32 {
    3
}

fn restart_default() -> u64 {
    5_000
}

impl HealthCheckConfig {
    /// Checks the ranges; `path` names this object in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(&join(path, "interval_ms"), self.interval_ms, 1, 3_600_000)?;
        check::within(
            &join(path, "unhealthy_after"),
            self.unhealthy_after,
            1,
            1_000,
        )?;
        check::within(&join(path, "healthy_after"), self.healthy_after, 1, 1_000)?;
        check::within(&join(path, "startup_ms"), self.startup_ms, 0, 3_600_000)?;
        if let Some(queue_max) = self.readiness_queue_max {
            check::within(&join(path, "readiness_queue_max"), queue_max, 1, 10_000_000)?;
        }
        if let Some(liveness) = &self.liveness {
            let path = join(path, "liveness");
            check::within(
                &join(&path, "restart_after_failures"),
                liveness.restart_after_failures,
                1,
                1_000,
            )?;
            check::within(
                &join(&path, "restart_ms"),
                liveness.restart_ms,
                1,
                3_600_000,
            )?;
        }
        Ok(())
    }
}

/// What a run of probe results means for rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationChange {
    /// Take the instance out of rotation.
    Remove,
    /// Put it back.
    Add,
}

/// Hysteresis over pass/fail results: `down_after` failures in a row switch
/// it down, `up_after` passes in a row switch it up again (never, if `None`).
/// Used for readiness (in or out of rotation) and feature flags (on or off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    up: bool,
    failures_consecutive: u32,
    passes_consecutive: u32,
}

impl Default for Hysteresis {
    /// Up: instances start in rotation, features start on.
    fn default() -> Self {
        Hysteresis {
            up: true,
            failures_consecutive: 0,
            passes_consecutive: 0,
        }
    }
}

impl Hysteresis {
    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Takes one result; returns the new setting if it changed.
    pub fn observe(
        &mut self,
        passed: bool,
        down_after: u32,
        up_after: Option<u32>,
    ) -> Option<bool> {
        if passed {
            self.failures_consecutive = 0;
            self.passes_consecutive = self.passes_consecutive.saturating_add(1);
            if !self.up && up_after.is_some_and(|needed| self.passes_consecutive >= needed) {
                self.up = true;
                return Some(true);
            }
        } else {
            self.passes_consecutive = 0;
            self.failures_consecutive = self.failures_consecutive.saturating_add(1);
            if self.up && self.failures_consecutive >= down_after {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

/// Readiness of one instance: in rotation or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness(Hysteresis);

impl Readiness {
    /// Whether the load balancer may send this instance calls.
    pub fn in_rotation(&self) -> bool {
        self.0.is_up()
    }

    /// Takes one probe result.
    pub fn probe(&mut self, passed: bool, config: &HealthCheckConfig) -> Option<RotationChange> {
        self.0
            .observe(passed, config.unhealthy_after, Some(config.healthy_after))
            .map(|up| {
                if up {
                    RotationChange::Add
                } else {
                    RotationChange::Remove
                }
            })
    }
}

/// Liveness for one instance: counts failed probes in a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    failures_consecutive: u32,
}

impl Liveness {
    /// Takes one probe result; `true` means restart the instance now.
    pub fn probe(&mut self, passed: bool, config: &LivenessConfig) -> bool {
        if passed {
            self.failures_consecutive = 0;
            false
        } else {
            self.failures_consecutive = self.failures_consecutive.saturating_add(1);
            if self.failures_consecutive >= config.restart_after_failures {
                self.failures_consecutive = 0;
                true
            } else {
                false
            }
        }
    }
}

/// Load shedding at a service: refuse work that cannot be useful.
///
/// JSON: `{"mode": "drop_stale", "max_queue_wait_ms": 500}` drops a queued
/// call when a worker would take it after it waited longer than the limit
/// (its caller has most likely given up); `{"mode": "reject_predicted",
/// "max_queue_wait_ms": 500}` refuses a call on arrival when the queue ahead
/// of it would, at the mean service time, make it wait longer than that.
/// Shed calls are answered at once with 503 (`queue_full`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSheddingConfig {
    /// When to shed.
    pub mode: SheddingMode,
    /// The longest useful queue wait, in `[1, 3600000]` ms.
    pub max_queue_wait_ms: u64,
}

/// How load is shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SheddingMode {
    /// At dequeue, drop calls that already waited too long.
    DropStale,
    /// On arrival, refuse calls predicted to wait too long.
    RejectPredicted,
}

impl LoadSheddingConfig {
    /// Checks the range; `path` names this object in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(
            &join(path, "max_queue_wait_ms"),
            self.max_queue_wait_ms,
            1,
            3_600_000,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HealthCheckConfig {
        HealthCheckConfig {
            interval_ms: 1_000,
            unhealthy_after: 2,
            healthy_after: 3,
            startup_ms: 0,
            readiness_queue_max: None,
            liveness: None,
        }
    }

    // Removal needs `unhealthy_after` failures in a row; one pass resets the count.
    #[test]
    fn readiness_removes_after_consecutive_failures_only() {
        let config = config();
        let mut readiness = Readiness::default();
        assert_eq!(readiness.probe(false, &config), None);
        assert_eq!(readiness.probe(true, &config), None);
        assert_eq!(readiness.probe(false, &config), None);
        assert_eq!(
            readiness.probe(false, &config),
            Some(RotationChange::Remove)
        );
        assert!(!readiness.in_rotation());
        assert_eq!(readiness.probe(false, &config), None);
    }

    // Re-adding needs `healthy_after` passes in a row.
    #[test]
    fn readiness_adds_back_after_consecutive_passes() {
        let config = config();
        let mut readiness = Readiness::default();
        readiness.probe(false, &config);
        readiness.probe(false, &config);
        assert_eq!(readiness.probe(true, &config), None);
        assert_eq!(readiness.probe(true, &config), None);
        assert_eq!(readiness.probe(true, &config), Some(RotationChange::Add));
        assert!(readiness.in_rotation());
    }

    // Liveness restarts after the threshold and starts counting afresh.
    #[test]
    fn liveness_restarts_after_threshold_failures() {
        let config = LivenessConfig {
            restart_after_failures: 2,
            restart_ms: 1,
        };
        let mut liveness = Liveness::default();
        assert!(!liveness.probe(false, &config));
        assert!(liveness.probe(false, &config));
        assert!(!liveness.probe(false, &config));
        assert!(!liveness.probe(true, &config));
        assert!(!liveness.probe(false, &config));
    }
}
