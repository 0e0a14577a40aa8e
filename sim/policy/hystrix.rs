//! The chapter's `HystrixCommand` (section 8.2) as one policy entry: a
//! timeout around a circuit breaker, with a fallback around both.
//!
//! The chapter runs `withTimeout(circuitBreaker.execute(fn), timeout)` inside
//! a `try` whose `catch` calls the fallback, so the command is the stack
//! `[fallback, timeout, circuit_breaker]`, and `hystrix` expands to exactly
//! that (`PolicySpec::parts`). Because the timeout is outside the breaker and
//! abandons rather than cancels (`Promise.race`), a call that timed out still
//! runs, and its late result still reaches the breaker. `on_timeout: "cancel"`
//! is the variant that cancels it instead: the breaker's invocation is
//! cancelled (a probe slot given back, nothing recorded) and a queued attempt
//! is withdrawn from the service.
//!
//! The chapter's usage example passes `timeout: 2000` and `timeout: 30000` in
//! one object literal; JavaScript keeps the last, so its command timeout and
//! its breaker's open time are both 30 s. Here they are separate fields.

use super::breaker::BreakerConfig;
use super::fallback::FallbackConfig;
use super::timeout::{OnTimeout, TimeoutConfig};
use super::PolicySpec;
use crate::scenario::check::join;
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// A Hystrix-style command. Defaults: the chapter's command timeout of 1000
/// ms, abandoning; the chapter's breaker; a fallback on every failure.
///
/// JSON: `{"kind": "hystrix", "timeout_ms": 1000, "on_timeout": "abandon",
/// "breaker": {"failure_threshold": 5}, "fallback": {"default": true}}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HystrixConfig {
    /// The command's deadline, in `(0, 86400000]` ms; default 1000.
    #[serde(default = "timeout_default")]
    pub timeout_ms: f64,
    /// `abandon` (default, the chapter's) or `cancel`.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// The breaker, as a `circuit_breaker` entry without its `kind`; default
    /// the chapter's.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// The fallback, as a `fallback` entry without its `kind`; default a
    /// default answer on every failure.
    #[serde(default = "fallback_default")]
    pub fallback: FallbackConfig,
}

fn timeout_default() -> f64 {
    1_000.0
}

fn fallback_default() -> FallbackConfig {
    serde_json::from_str("{}").expect("the fallback's defaults parse")
}

impl HystrixConfig {
    /// The three policies the command stands for, outermost first.
    pub fn parts(&self) -> Vec<PolicySpec> {
        vec![
            PolicySpec::Fallback(self.fallback.clone()),
            PolicySpec::Timeout(TimeoutConfig {
                timeout_ms: self.timeout_ms,
                on_timeout: self.on_timeout,
            }),
            PolicySpec::CircuitBreaker(self.breaker.clone()),
        ]
    }

    /// Checks every part; paths name the part's field (`...timeout_ms`,
    /// `...breaker.failure_threshold`, `...fallback.on`).
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        let [fallback, timeout, breaker] =
            <[PolicySpec; 3]>::try_from(self.parts()).expect("three parts");
        timeout.validate(path)?;
        breaker.validate(&join(path, "breaker"))?;
        fallback.validate(&join(path, "fallback"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `{"kind": "hystrix"}` is the chapter's command: fallback, 1 s timeout, chapter breaker.
    #[test]
    fn defaults_expand_to_the_chapters_command() {
        let spec: PolicySpec = serde_json::from_str(r#"{"kind": "hystrix"}"#).unwrap();
        let parts = spec.parts();
        let kinds: Vec<&str> = parts.iter().map(PolicySpec::kind).collect();
        assert_eq!(kinds, vec!["fallback", "timeout", "circuit_breaker"]);
        assert_eq!(
            parts[1],
            PolicySpec::Timeout(TimeoutConfig {
                timeout_ms: 1_000.0,
                on_timeout: OnTimeout::Abandon
            })
        );
        assert_eq!(
            parts[2],
            PolicySpec::CircuitBreaker(BreakerConfig::default())
        );
        assert_eq!(spec.build().len(), 3);
    }

    // Errors inside a part name the part's path.
    #[test]
    fn part_errors_name_their_path() {
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind": "hystrix", "breaker": {"failure_threshold": 0}}"#)
                .unwrap();
        assert_eq!(
            spec.validate("clients[0].policies[0]")
                .unwrap_err()
                .to_string(),
            "clients[0].policies[0].breaker.failure_threshold: must be in [1, 1000000] (got 0)"
        );
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind": "hystrix", "timeout_ms": -1}"#).unwrap();
        assert_eq!(
            spec.validate("p").unwrap_err().to_string(),
            "p.timeout_ms: must be a finite number > 0 (got -1)"
        );
    }
}
