//! `sim policy health_check` and `sim policy feature_flag`: the service-side
//! state machines (readiness and liveness hysteresis, feature flags) driven
//! by hand through timed probe results, as `policy::driver` drives a policy
//! layer. The configs are the objects of a service's `health_check` and
//! `feature_flags[]` in scenario files.

use super::flags::{FeatureFlagConfig, Flag};
use super::health::{HealthCheckConfig, Liveness, Readiness, RotationChange};
use crate::scenario::check::item;
use crate::scenario::{parse_json_strict, Invalid, ScenarioError};
use serde::{Deserialize, Serialize};

/// One probe result: `{"at_ms": 1000, "event": "not_ready"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CheckEvent {
    at_ms: u64,
    event: CheckEventKind,
}

/// What a probe saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum CheckEventKind {
    /// A readiness probe passed (`health_check`).
    Ready,
    /// A readiness probe failed (`health_check`).
    NotReady,
    /// A liveness probe passed (`health_check`).
    Alive,
    /// A liveness probe failed (`health_check`).
    Hung,
    /// A flag's check found the dependency healthy (`feature_flag`).
    Healthy,
    /// It found the dependency unhealthy (`feature_flag`).
    Unhealthy,
}

#[derive(Serialize)]
struct Line {
    at_ms: u64,
    event: CheckEventKind,
    decision: &'static str,
    state: serde_json::Value,
}

/// Whether `name` is one of the service-side machines this module drives.
pub fn drives(name: &str) -> bool {
    matches!(name, "health_check" | "feature_flag")
}

/// Drives the machine `name` configured by `config` through `events` and
/// returns one JSON line per event. Errors name the file and JSON path.
pub fn drive(
    name: &str,
    (config_file, config): (&str, &[u8]),
    (events_file, events): (&str, &[u8]),
) -> Result<Vec<String>, ScenarioError> {
    let events: Vec<CheckEvent> =
        crate::policy::driver::read_events(events_file, events, |event: &CheckEvent| {
            event.at_ms as f64
        })?;
    let invalid = |file: &str, invalid: Invalid| ScenarioError::Invalid {
        file: file.to_string(),
        invalid,
    };
    let allowed: &[CheckEventKind] = match name {
        "health_check" => &[
            CheckEventKind::Ready,
            CheckEventKind::NotReady,
            CheckEventKind::Alive,
            CheckEventKind::Hung,
        ],
        _ => &[CheckEventKind::Healthy, CheckEventKind::Unhealthy],
    };
    if let Some(index) = events
        .iter()
        .position(|event| !allowed.contains(&event.event))
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|kind| serde_json::to_string(kind).unwrap_or_default())
            .collect();
        return Err(invalid(
            events_file,
            Invalid::new(
                format!("{}.event", item("", index)),
                format!("must be one of {} for {name}", names.join(", ")),
            ),
        ));
    }
    let mut lines = Vec::with_capacity(events.len());
    let mut push = |event: &CheckEvent, decision: &'static str, state: serde_json::Value| {
        let line = Line {
            at_ms: event.at_ms,
            event: event.event,
            decision,
            state,
        };
        lines.push(serde_json::to_string(&line).unwrap_or_default());
    };
    if name == "health_check" {
        let config: HealthCheckConfig = parse_json_strict(config_file, config)?;
        config
            .validate("")
            .map_err(|error| invalid(config_file, error))?;
        let (mut readiness, mut liveness) = (Readiness::default(), Liveness::default());
        for event in &events {
            let decision = match event.event {
                CheckEventKind::Ready | CheckEventKind::NotReady => {
                    match readiness.probe(event.event == CheckEventKind::Ready, &config) {
                        Some(RotationChange::Remove) => "remove_from_rotation",
                        Some(RotationChange::Add) => "add_to_rotation",
                        None => "none",
                    }
                }
                _ => match &config.liveness {
                    Some(settings)
                        if liveness.probe(event.event == CheckEventKind::Alive, settings) =>
                    {
                        "restart"
                    }
                    _ => "none",
                },
            };
            push(
                event,
                decision,
                serde_json::json!({ "in_rotation": readiness.in_rotation() }),
            );
        }
    } else {
        let config: FeatureFlagConfig = parse_json_strict(config_file, config)?;
        config
            .validate("")
            .map_err(|error| invalid(config_file, error))?;
        let mut flag = Flag::default();
        for event in &events {
            let decision = match flag.check(event.event == CheckEventKind::Healthy, &config) {
                Some(true) => "switch_on",
                Some(false) => "switch_off",
                None => "none",
            };
            push(
                event,
                decision,
                serde_json::json!({ "enabled": flag.enabled() }),
            );
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, config: &str, events: &str) -> Result<Vec<String>, String> {
        drive(
            name,
            ("c.json", config.as_bytes()),
            ("e.json", events.as_bytes()),
        )
        .map_err(|error| error.to_string())
    }

    // Two failed readiness probes remove the instance; two passes add it back.
    #[test]
    fn readiness_lines_show_rotation_changes() {
        let lines = run(
            "health_check",
            r#"{"unhealthy_after": 2, "healthy_after": 2}"#,
            r#"[{"at_ms": 0, "event": "not_ready"}, {"at_ms": 1000, "event": "not_ready"},
                {"at_ms": 2000, "event": "ready"}, {"at_ms": 3000, "event": "ready"}]"#,
        )
        .unwrap();
        assert_eq!(
            lines,
            vec![
                r#"{"at_ms":0,"event":"not_ready","decision":"none","state":{"in_rotation":true}}"#,
                r#"{"at_ms":1000,"event":"not_ready","decision":"remove_from_rotation","state":{"in_rotation":false}}"#,
                r#"{"at_ms":2000,"event":"ready","decision":"none","state":{"in_rotation":false}}"#,
                r#"{"at_ms":3000,"event":"ready","decision":"add_to_rotation","state":{"in_rotation":true}}"#,
            ]
        );
    }

    // The chapter's flag switches off and stays off; liveness restarts after its threshold.
    #[test]
    fn flags_and_liveness_decide_as_in_runs() {
        let lines = run(
            "feature_flag",
            r#"{"name": "search", "dependency": "db"}"#,
            r#"[{"at_ms": 0, "event": "unhealthy"}, {"at_ms": 30000, "event": "healthy"}]"#,
        )
        .unwrap();
        assert!(lines[0].contains(r#""decision":"switch_off""#));
        assert!(lines[1].contains(r#""decision":"none","state":{"enabled":false}"#));
        let lines = run(
            "health_check",
            r#"{"liveness": {"restart_after_failures": 2}}"#,
            r#"[{"at_ms": 0, "event": "hung"}, {"at_ms": 1, "event": "hung"}]"#,
        )
        .unwrap();
        assert!(lines[1].contains(r#""decision":"restart""#));
    }

    // Events of the other machine, decreasing times and bad configs name their path.
    #[test]
    fn bad_input_names_the_file_and_path() {
        assert_eq!(
            run(
                "health_check",
                "{}",
                r#"[{"at_ms": 0, "event": "healthy"}]"#
            )
            .unwrap_err(),
            r#"e.json: [0].event: must be one of "ready", "not_ready", "alive", "hung" for health_check"#
        );
        assert_eq!(
            run(
                "feature_flag",
                "{}",
                r#"[{"at_ms": 5, "event": "healthy"}, {"at_ms": 4, "event": "healthy"}]"#
            )
            .unwrap_err(),
            "e.json: [1].at_ms: must not be before the previous event's at_ms 5 (got 4)"
        );
        assert_eq!(
            run("health_check", r#"{"interval_ms": 0}"#, "[]").unwrap_err(),
            "c.json: interval_ms: must be in [1, 3600000] (got 0)"
        );
    }
}
