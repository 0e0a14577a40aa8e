//! `sim policy router`: one global router driven alone through timed health
//! results and client lookups, one JSON line per event, as `sim policy`
//! drives a breaker. The config is a small topology: the regions, their
//! latency (needed by `nearest` and `geo` policies) and one router, written
//! as in a scenario's `topology` section:
//!
//! ```json
//! {"regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
//!  "latency": {"round_trips": [{"between": ["us-east-1", "eu-west-1"], "round_trip_ms": 81}]},
//!  "router": {"kind": "dns", "name": "global", "ttl_ms": 60000}}
//! ```
//!
//! Events, in non-decreasing `at_ms`:
//! - `{"at_ms": 0, "event": "probe", "checker": 0, "region": "us-east-1", "ok": false}`:
//!   a health checker's probe (`dns`: `checker` indexes its checkers;
//!   `anycast`: the endpoint's own checker, `checker` left out);
//! - `{"at_ms": 0, "event": "hosts", "region": "us-east-1", "healthy": 1, "total": 4}`:
//!   host health of a region (`priority`);
//! - `{"at_ms": 0, "event": "lookup", "client": "alice", "origin": "eu-west-1"}`:
//!   a client asks where to go; `dns` also takes `resolver` (`ttl`, `jvm`,
//!   `browser`, `forever`; default `ttl`) and `stretched` (default false),
//!   and keeps one cache per client name; `chapter_active_passive` takes
//!   `primary_ok`, what this request's health check of the primary returned.
//!   Without `origin`, geolocation found nothing (the chapter's active-active
//!   then picks its first region; the others treat the client as in the
//!   first region).

use super::routing::anycast::Anycast;
use super::routing::chapter::ChapterActivePassive;
use super::routing::dns::{Dns, Resolver, ResolverClass};
use super::routing::priority::Priority;
use super::routing::{RouterKind, RouterSpec};
use super::{LatencyMatrix, Place, Region};
use crate::engine::{RngFactory, SimTime};
use crate::scenario::check::{item, join};
use crate::scenario::raw_topology::{RawLatency, RawRegion, RawRouter};
use crate::scenario::validate_topology;
use crate::scenario::{parse_json_strict, Invalid, ScenarioError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The config file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRouterConfig {
    regions: Vec<RawRegion>,
    #[serde(default)]
    latency: RawLatency,
    router: RawRouter,
}

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    Probe,
    Hosts,
    Lookup,
}

/// One event as written; which fields apply depends on `event`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_ms: u64,
    event: EventKind,
    #[serde(default)]
    checker: Option<usize>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    healthy: Option<u32>,
    #[serde(default)]
    total: Option<u32>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    resolver: Option<ResolverClass>,
    #[serde(default)]
    stretched: Option<bool>,
    #[serde(default)]
    primary_ok: Option<bool>,
}

#[derive(Serialize)]
struct Line<'a> {
    at_ms: u64,
    event: EventKind,
    decision: &'a str,
    state: serde_json::Value,
}

enum Machine {
    Dns(Dns, BTreeMap<String, Resolver>),
    Anycast(Anycast),
    Priority(Priority),
    ActiveActive(super::routing::chapter::ChapterActiveActive),
    ActivePassive(ChapterActivePassive),
}

/// Drives the router configured in `config` through `events` and returns
/// one JSON line per event. Errors name the file and JSON path; nothing is
/// returned for a bad input, so nothing is printed.
pub fn drive(
    (config_file, config): (&str, &[u8]),
    (events_file, events): (&str, &[u8]),
    seed: u64,
) -> Result<Vec<String>, ScenarioError> {
    let invalid = |file: &str, invalid: Invalid| ScenarioError::Invalid {
        file: file.to_string(),
        invalid,
    };
    let raw: RawRouterConfig = parse_json_strict(config_file, config)?;
    let regions = validate_topology::regions("regions", &raw.regions)
        .map_err(|error| invalid(config_file, error))?;
    let matrix = validate_topology::latency("latency", &raw.latency, &regions)
        .map_err(|error| invalid(config_file, error))?;
    let spec = validate_topology::router("router", &raw.router, &regions)
        .map_err(|error| invalid(config_file, error))?;
    let events: Vec<RawEvent> =
        crate::policy::driver::read_events(events_file, events, |event: &RawEvent| {
            event.at_ms as f64
        })?;
    let mut lines = Vec::with_capacity(events.len());
    let mut rng = RngFactory::new(seed).stream(&format!("router/{}", spec.name));
    let mut machine = match &spec.kind {
        RouterKind::Dns(settings) => Machine::Dns(Dns::new(settings.clone()), BTreeMap::new()),
        RouterKind::Anycast(settings) => Machine::Anycast(Anycast::new(settings.clone())),
        RouterKind::Priority(settings) => Machine::Priority(Priority::new(settings.clone())),
        RouterKind::ChapterActiveActive(chapter) => Machine::ActiveActive(chapter.clone()),
        RouterKind::ChapterActivePassive(regions) => {
            Machine::ActivePassive(ChapterActivePassive::new(*regions))
        }
    };
    for (index, event) in events.iter().enumerate() {
        let path = item("", index);
        let line = step(
            &mut machine,
            &spec,
            &regions,
            &matrix,
            event,
            &path,
            &mut rng,
        )
        .map_err(|error| invalid(events_file, error))?;
        lines.push(serde_json::to_string(&line).unwrap_or_default());
    }
    Ok(lines)
}

fn require<T: Copy>(path: &str, field: &str, value: Option<T>, kind: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::new(join(path, field), format!("is required for {kind}")))
}

fn endpoint_of(
    path: &str,
    name: &Option<String>,
    regions: &[Region],
    endpoints: &[usize],
) -> Result<usize, Invalid> {
    let here = join(path, "region");
    let name = name
        .as_deref()
        .ok_or_else(|| Invalid::new(&here, "is required for a probe"))?;
    let id = validate_topology::region(&here, name, regions)?;
    endpoints.iter().position(|&e| e == id).ok_or_else(|| {
        Invalid::new(
            here,
            format!("region {name:?} is not one of the router's endpoints"),
        )
    })
}

fn health_map(endpoints: &[usize], healthy: &[bool], regions: &[Region]) -> serde_json::Value {
    let map: BTreeMap<&str, bool> = endpoints
        .iter()
        .zip(healthy)
        .map(|(&e, &up)| (regions[e].name.as_str(), up))
        .collect();
    serde_json::json!(map)
}

fn step(
    machine: &mut Machine,
    spec: &RouterSpec,
    regions: &[Region],
    matrix: &LatencyMatrix,
    event: &RawEvent,
    path: &str,
    rng: &mut crate::engine::SimRng,
) -> Result<Line<'static>, Invalid> {
    let now = SimTime::from_ms(event.at_ms);
    let kind_name = format!("{:?} routers", spec.name);
    let origin = match &event.origin {
        None => None,
        Some(text) => Some(validate_topology::place(
            &join(path, "origin"),
            text,
            regions,
        )?),
    };
    let line = |decision: &'static str, state: serde_json::Value| Line {
        at_ms: event.at_ms,
        event: event.event,
        decision,
        state,
    };
    let wrong = |what: &str| {
        Invalid::new(
            join(path, "event"),
            format!("{what} does not apply to router {:?}", spec.name),
        )
    };
    match (machine, event.event) {
        (Machine::Dns(dns, _), EventKind::Probe) => {
            let endpoints = dns.settings().endpoints.clone();
            let checker = require(path, "checker", event.checker, "a dns probe")?;
            let count = dns.settings().checkers.len();
            if checker >= count {
                return Err(Invalid::new(
                    join(path, "checker"),
                    format!("must be in [0, {}] (got {checker})", count - 1),
                ));
            }
            let endpoint = endpoint_of(path, &event.region, regions, &endpoints)?;
            let ok = require(path, "ok", event.ok, "a probe")?;
            let change = dns.record_probe(now, checker, endpoint, ok);
            Ok(line(
                decision(change),
                serde_json::json!({
                    "healthy": health_map(&endpoints, dns.healthy(), regions),
                    "checkers_seeing_healthy": dns.checkers_seeing_healthy(endpoint),
                }),
            ))
        }
        (Machine::Anycast(edge), EventKind::Probe) => {
            let endpoints = edge.settings().endpoints.clone();
            if event.checker.is_some() {
                return Err(Invalid::new(
                    join(path, "checker"),
                    "anycast endpoints have one checker each: leave checker out",
                ));
            }
            let endpoint = endpoint_of(path, &event.region, regions, &endpoints)?;
            let ok = require(path, "ok", event.ok, "a probe")?;
            let change = edge.record_probe(now, endpoint, ok);
            let routed = edge.routed_health(now).to_vec();
            Ok(line(
                decision(change),
                serde_json::json!({ "routed_healthy": health_map(&endpoints, &routed, regions) }),
            ))
        }
        (Machine::Priority(router), EventKind::Hosts) => {
            let here = join(path, "region");
            let name = event
                .region
                .as_deref()
                .ok_or_else(|| Invalid::new(&here, "is required for hosts"))?;
            let id = validate_topology::region(&here, name, regions)?;
            if !spec.regions().contains(&id) {
                return Err(Invalid::new(
                    here,
                    format!("region {name:?} is in none of the router's levels"),
                ));
            }
            let healthy = require(path, "healthy", event.healthy, "hosts")?;
            let total = require(path, "total", event.total, "hosts")?;
            if healthy > total {
                return Err(Invalid::new(
                    join(path, "healthy"),
                    format!("must be at most total {total} (got {healthy})"),
                ));
            }
            router.set_hosts(now, id, healthy, total);
            Ok(line(
                "recalculated",
                serde_json::to_value(router.loads()).unwrap_or_default(),
            ))
        }
        (machine, EventKind::Lookup) => {
            let client = event.client.clone().unwrap_or_default();
            let from = origin.unwrap_or(Place::region(0));
            let name = |region: usize| regions[region].name.clone();
            match machine {
                Machine::Dns(dns, caches) => {
                    let class = event.resolver.unwrap_or(ResolverClass::Ttl);
                    let stretched = event.stretched.unwrap_or(false);
                    let resolver = caches
                        .entry(client.clone())
                        .or_insert_with(|| Resolver::new(class, stretched));
                    if resolver.class() != class || resolver.stretched() != stretched {
                        return Err(Invalid::new(
                            join(path, "resolver"),
                            format!("client {client:?} was first seen with resolver {:?}; a client keeps its resolver", resolver.class().name()),
                        ));
                    }
                    let lookup = resolver.lookup(now, dns, from, matrix, rng);
                    Ok(line(
                        if lookup.cached { "cached" } else { "resolved" },
                        serde_json::json!({
                            "client": client,
                            "region": name(lookup.region),
                            "expires_at_ms": lookup.expires_at.map(|at| at.as_micros() / 1_000),
                        }),
                    ))
                }
                Machine::Anycast(edge) => {
                    let region = edge.route(now, from, matrix, rng);
                    Ok(line(
                        "routed",
                        serde_json::json!({ "client": client, "region": name(region) }),
                    ))
                }
                Machine::Priority(router) => {
                    let pick = router.route(rng);
                    Ok(line(
                        "routed",
                        serde_json::json!({ "client": client, "region": name(pick.region), "level": pick.level, "panic": pick.panic }),
                    ))
                }
                Machine::ActiveActive(chapter) => {
                    let region = chapter.route(origin.map(|place| place.region));
                    Ok(line(
                        "routed",
                        serde_json::json!({ "client": client, "region": name(region) }),
                    ))
                }
                Machine::ActivePassive(chapter) => {
                    let primary_ok = require(
                        path,
                        "primary_ok",
                        event.primary_ok,
                        "chapter_active_passive lookups",
                    )?;
                    let region = chapter.route(now, primary_ok);
                    Ok(line(
                        "routed",
                        serde_json::json!({ "client": client, "region": name(region), "counters": chapter.counters() }),
                    ))
                }
            }
        }
        (_, EventKind::Probe) => Err(wrong(&format!(
            "a probe ({kind_name} other than dns and anycast take none)"
        ))),
        (_, EventKind::Hosts) => Err(wrong("hosts (only priority routers take host counts)")),
    }
}

fn decision(change: Option<bool>) -> &'static str {
    match change {
        Some(true) => "healthy",
        Some(false) => "unhealthy",
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, events: &str) -> Result<Vec<String>, String> {
        drive(
            ("c.json", config.as_bytes()),
            ("e.json", events.as_bytes()),
            1,
        )
        .map_err(|error| error.to_string())
    }

    const TWO: &str = r#""regions": [{"name": "us"}, {"name": "eu"}],
        "latency": {"round_trips": [{"between": ["us", "eu"], "round_trip_ms": 80}]}"#;

    // A DNS failover: one checker, threshold 1, TTL 60 s; a client resolved
    // before the failure keeps the old answer until its cache expires.
    #[test]
    fn dns_lines_show_health_changes_and_cached_answers() {
        let config = format!(
            r#"{{{TWO}, "router": {{"kind": "dns", "name": "g", "checkers": ["eu"], "failure_threshold": 1, "interval_ms": 10000}}}}"#
        );
        let lines = run(
            &config,
            r#"[{"at_ms": 0, "event": "lookup", "client": "a"},
                {"at_ms": 10000, "event": "probe", "checker": 0, "region": "us", "ok": false},
                {"at_ms": 30000, "event": "lookup", "client": "a"},
                {"at_ms": 60000, "event": "lookup", "client": "a"}]"#,
        )
        .unwrap();
        assert_eq!(
            lines,
            vec![
                r#"{"at_ms":0,"event":"lookup","decision":"resolved","state":{"client":"a","expires_at_ms":60000,"region":"us"}}"#,
                r#"{"at_ms":10000,"event":"probe","decision":"unhealthy","state":{"checkers_seeing_healthy":0,"healthy":{"eu":true,"us":false}}}"#,
                r#"{"at_ms":30000,"event":"lookup","decision":"cached","state":{"client":"a","expires_at_ms":60000,"region":"us"}}"#,
                r#"{"at_ms":60000,"event":"lookup","decision":"resolved","state":{"client":"a","expires_at_ms":120000,"region":"eu"}}"#,
            ]
        );
    }

    // Events that do not fit the router, bad fields and bad configs name
    // their file and path.
    #[test]
    fn bad_input_names_the_file_and_path() {
        let dns = format!(r#"{{{TWO}, "router": {{"kind": "dns", "name": "g"}}}}"#);
        assert_eq!(
            run(
                &dns,
                r#"[{"at_ms": 0, "event": "hosts", "region": "us", "healthy": 1, "total": 1}]"#
            )
            .unwrap_err(),
            r#"e.json: [0].event: hosts (only priority routers take host counts) does not apply to router "g""#
        );
        assert_eq!(
            run(
                &dns,
                r#"[{"at_ms": 0, "event": "probe", "checker": 5, "region": "us", "ok": true}]"#
            )
            .unwrap_err(),
            "e.json: [0].checker: must be in [0, 1] (got 5)"
        );
        assert_eq!(
            run(
                &dns,
                r#"[{"at_ms": 5, "event": "lookup"}, {"at_ms": 4, "event": "lookup"}]"#
            )
            .unwrap_err(),
            "e.json: [1].at_ms: must not be before the previous event's at_ms 5 (got 4)"
        );
        let bad_ttl =
            format!(r#"{{{TWO}, "router": {{"kind": "dns", "name": "g", "ttl_ms": 90000000}}}}"#);
        assert_eq!(
            run(&bad_ttl, "[]").unwrap_err(),
            "c.json: router.ttl_ms: must be in [0, 86400000] (got 90000000)"
        );
        let missing = r#"{"regions": [{"name": "us"}, {"name": "eu"}], "router": {"kind": "anycast", "name": "g"}}"#;
        assert_eq!(
            run(missing, "[]").unwrap_err(),
            r#"c.json: latency: no latency from "us" to "eu"; give it in round_trips or one_way"#
        );
    }
}
