//! Feature flags for graceful degradation (the chapter's section 8.7): a
//! periodic health check of a dependency switches a feature off, and the
//! service stops calling that dependency (and may do less work) until the
//! flag is on again.
//!
//! The `chapter` variant is the chapter's `FeatureFlags.checkHealth` as
//! written: it only ever switches flags off, so a feature lost to a brief
//! outage stays off for the rest of the run. The `recovering` variant
//! switches it back on after `healthy_after` passing checks in a row.

use super::distribution::Distribution;
use super::health::Hysteresis;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// One feature flag of a service.
///
/// JSON: `{"name": "recommendations", "dependency": "recs", "variant":
/// "recovering", "check_interval_ms": 30000, "healthy_after": 2,
/// "service_time_off_ms": {"kind": "constant", "value_ms": 5}}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureFlagConfig {
    /// The feature's name, for reports.
    pub name: String,
    /// The dependency (a service this service calls) whose health decides
    /// the flag; while the flag is off, calls to it are skipped.
    pub dependency: String,
    /// `chapter` (default: off only) or `recovering` (off and on again).
    #[serde(default)]
    pub variant: FlagVariant,
    /// Time between health checks, in `[1, 3600000]` ms; default 30000 (the chapter's).
    #[serde(default = "interval_default")]
    pub check_interval_ms: u64,
    /// Failed checks in a row that switch the feature off, in `[1, 1000]`; default 1 (the chapter's).
    #[serde(default = "one")]
    pub unhealthy_after: u32,
    /// Passed checks in a row that switch it on again (`recovering` only), in `[1, 1000]`; default 1.
    #[serde(default = "one")]
    pub healthy_after: u32,
    /// The handler's service time while the feature is off; default the
    /// service's own.
    #[serde(default)]
    pub service_time_off_ms: Option<Distribution>,
}

/// How a flag reacts to health checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagVariant {
    /// Switched off on failure, never on again.
    #[default]
    Chapter,
    /// Switched off on failure and on again on recovery.
    Recovering,
}

fn interval_default() -> u64 {
    30_000
}

fn one() -> u32 {
    1
}

impl FeatureFlagConfig {
    /// Checks the ranges; `path` names this flag in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::name(&join(path, "name"), &self.name)?;
        check::within(
            &join(path, "check_interval_ms"),
            self.check_interval_ms,
            1,
            3_600_000,
        )?;
        check::within(
            &join(path, "unhealthy_after"),
            self.unhealthy_after,
            1,
            1_000,
        )?;
        check::within(&join(path, "healthy_after"), self.healthy_after, 1, 1_000)?;
        if let Some(distribution) = &self.service_time_off_ms {
            distribution.validate(&join(path, "service_time_off_ms"))?;
        }
        Ok(())
    }
}

/// A flag's state: on or off, with the current run of check results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(Hysteresis);

impl Flag {
    /// Whether the feature is on (the chapter's `isEnabled` defaults to true).
    pub fn enabled(&self) -> bool {
        self.0.is_up()
    }

    /// Takes one health-check result; returns the new setting if it changed.
    pub fn check(&mut self, healthy: bool, config: &FeatureFlagConfig) -> Option<bool> {
        let recovers = (config.variant == FlagVariant::Recovering).then_some(config.healthy_after);
        self.0.observe(healthy, config.unhealthy_after, recovers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(variant: FlagVariant) -> FeatureFlagConfig {
        FeatureFlagConfig {
            name: "search".into(),
            dependency: "db".into(),
            variant,
            check_interval_ms: 1_000,
            unhealthy_after: 1,
            healthy_after: 2,
            service_time_off_ms: None,
        }
    }

    // The chapter's checkHealth only disables: a flag never comes back on.
    #[test]
    fn chapter_flags_stay_off_after_the_dependency_recovers() {
        let config = config(FlagVariant::Chapter);
        let mut flag = Flag::default();
        assert_eq!(flag.check(false, &config), Some(false));
        for _ in 0..100 {
            assert_eq!(flag.check(true, &config), None);
        }
        assert!(!flag.enabled());
    }

    // The recovering variant switches back on after `healthy_after` passes.
    #[test]
    fn recovering_flags_come_back_on() {
        let config = config(FlagVariant::Recovering);
        let mut flag = Flag::default();
        assert_eq!(flag.check(false, &config), Some(false));
        assert_eq!(flag.check(true, &config), None);
        assert_eq!(flag.check(true, &config), Some(true));
        assert!(flag.enabled());
    }
}
