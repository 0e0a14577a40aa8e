//! Turns a `RawScenario` into a `Scenario`: checks every range, resolves
//! names to indices and rejects scenarios too large for the event limit.
//! The first problem found is reported; paths use the `a.b[2].c` form.

use super::check::{self, item, join};
use super::error::Invalid;
use super::raw::{RateSchedule, RawFault, RawLoad, RawScenario};
use super::{Client, DependencyCall, Fault, Limits, Load, Scenario, Service, Target};
use crate::engine::{SimDuration, SimTime};
use crate::policy::PolicySpec;
use std::collections::BTreeSet;

/// The longest simulated duration: 30 days.
pub const DURATION_MS_MAX: u64 = 30 * 86_400_000;
/// The most time-series windows a run may have.
pub const WINDOWS_MAX: u64 = 100_000;
/// The highest rate any schedule may ask for.
pub const RPS_MAX: f64 = 10_000_000.0;
/// Events one request costs at least, without retries: its arrival, the
/// request crossing the network, the end of its service time and the reply
/// crossing back. Used to reject hopeless scenarios early; retries only add.
const EVENTS_PER_REQUEST_MIN: f64 = 4.0;

/// The highest `limits.in_flight_max`.
pub const IN_FLIGHT_MAX_MAX: u64 = 1_000_000_000;
/// The lowest and highest `limits.memory_mb` (64 MiB to 1 TiB).
pub const MEMORY_MB_MIN: u64 = 64;
/// See `MEMORY_MB_MIN`.
pub const MEMORY_MB_MAX: u64 = 1_048_576;

/// The most services, and the most clients, a scenario may have.
pub const COMPONENTS_MAX: usize = 1_000;

pub fn validate(
    raw: RawScenario,
    name: &str,
    hash: String,
    events_max_override: Option<u64>,
) -> Result<Scenario, Invalid> {
    // Empty lists get their own message below (`must list at least one`).
    check::list_length_max("services", raw.services.len(), COMPONENTS_MAX, "services")?;
    check::list_length_max("clients", raw.clients.len(), COMPONENTS_MAX, "clients")?;
    if raw.description.trim().is_empty() {
        return Err(Invalid::new(
            "description",
            "must say what the scenario demonstrates (got an empty string)",
        ));
    }
    check::within("duration_ms", raw.duration_ms, 1, DURATION_MS_MAX)?;
    check::within("window_ms", raw.window_ms, 1, DURATION_MS_MAX)?;
    check::within("limits.drain_ms", raw.limits.drain_ms, 0, 86_400_000)?;
    // Windows cover the load and the drain after it.
    let span_ms = raw.duration_ms + raw.limits.drain_ms;
    let windows = span_ms.div_ceil(raw.window_ms);
    if windows > WINDOWS_MAX {
        return Err(Invalid::new(
            "window_ms",
            format!(
                "gives {windows} windows over duration_ms plus limits.drain_ms ({span_ms} ms); at most {WINDOWS_MAX} are allowed, so use window_ms >= {}",
                span_ms.div_ceil(WINDOWS_MAX)
            ),
        ));
    }
    raw.network.latency_ms.validate("network.latency_ms")?;
    check::within(
        "limits.events_max",
        raw.limits.events_max,
        1_000,
        100_000_000_000,
    )?;
    check::within(
        "limits.in_flight_max",
        raw.limits.in_flight_max,
        1,
        IN_FLIGHT_MAX_MAX,
    )?;
    check::within(
        "limits.memory_mb",
        raw.limits.memory_mb,
        MEMORY_MB_MIN,
        MEMORY_MB_MAX,
    )?;

    let services = validate_services(&raw)?;
    let clients = validate_clients(&raw, &services)?;
    let faults = validate_faults(&raw, &services)?;
    let topology = match &raw.topology {
        Some(topology) => Some(super::validate_topology::validate(
            topology,
            &services,
            &clients,
            raw.duration_ms,
        )?),
        None => None,
    };
    let databases = super::validate_database::validate_databases_in(
        &raw.databases,
        &raw.faults,
        topology.as_ref(),
        raw.duration_ms,
    )?;

    let scenario = Scenario {
        name: name.to_string(),
        description: raw.description,
        hash,
        duration: SimDuration::from_ms(raw.duration_ms),
        window: SimDuration::from_ms(raw.window_ms),
        network_latency: raw.network.latency_ms,
        services,
        clients,
        faults,
        databases,
        limits: Limits {
            events_max: events_max_override.unwrap_or(raw.limits.events_max),
            drain: SimDuration::from_ms(raw.limits.drain_ms),
            in_flight_max: raw.limits.in_flight_max as usize,
            memory_mb: raw.limits.memory_mb,
        },
        topology,
    };
    // `--events-max` stands in for limits.events_max here too, and the
    // message names whichever set the limit.
    let events_max_name = if events_max_override.is_some() {
        "--events-max"
    } else {
        "limits.events_max"
    };
    check_event_budget(&scenario, events_max_name)?;
    super::memory::check(&scenario)?;
    Ok(scenario)
}

fn unique_names<'a>(path: &str, names: impl Iterator<Item = &'a str>) -> Result<(), Invalid> {
    let mut seen = BTreeSet::new();
    for (index, name) in names.enumerate() {
        let here = join(&item(path, index), "name");
        check::name(&here, name)?;
        if !seen.insert(name) {
            return Err(Invalid::new(
                here,
                format!("duplicate name {name:?}: names must be unique"),
            ));
        }
    }
    Ok(())
}

fn resolve(path: &str, name: &str, services: &[String]) -> Result<usize, Invalid> {
    services
        .iter()
        .position(|candidate| candidate == name)
        .ok_or_else(|| {
            Invalid::new(
                path,
                format!(
                    "unknown service {name:?}; the services are: {}",
                    services.join(", ")
                ),
            )
        })
}

fn validate_policies(path: &str, policies: &[PolicySpec]) -> Result<(), Invalid> {
    check::within(&format!("{path} (length)"), policies.len(), 0, 16)?;
    for (index, policy) in policies.iter().enumerate() {
        let path = item(path, index);
        policy.validate(&path)?;
        if let PolicySpec::ConnectTimeout(_) = policy {
            // Only the innermost layer hears that its attempt connected.
            if index + 1 != policies.len() {
                return Err(Invalid::new(
                    path,
                    "connect_timeout must be the innermost (last) policy",
                ));
            }
        }
    }
    Ok(())
}

fn validate_services(raw: &RawScenario) -> Result<Vec<Service>, Invalid> {
    if raw.services.is_empty() {
        return Err(Invalid::new("services", "must list at least one service"));
    }
    unique_names(
        "services",
        raw.services.iter().map(|service| service.name.as_str()),
    )?;
    let names: Vec<String> = raw
        .services
        .iter()
        .map(|service| service.name.clone())
        .collect();
    let mut services = Vec::with_capacity(raw.services.len());
    for (index, service) in raw.services.iter().enumerate() {
        let path = item("services", index);
        check::within(&join(&path, "instances"), service.instances, 1, 10_000)?;
        check::within(&join(&path, "workers"), service.workers, 1, 100_000)?;
        check::within(
            &join(&path, "queue_capacity"),
            service.queue_capacity,
            0,
            10_000_000,
        )?;
        service
            .service_time_ms
            .validate(&join(&path, "service_time_ms"))?;
        check::probability(&join(&path, "error_probability"), service.error_probability)?;
        check::probability(
            &join(&path, "client_error_probability"),
            service.client_error_probability,
        )?;
        if let Some(health_check) = &service.health_check {
            health_check.validate(&join(&path, "health_check"))?;
        }
        if let Some(load_shedding) = &service.load_shedding {
            load_shedding.validate(&join(&path, "load_shedding"))?;
        }
        let flags_path = join(&path, "feature_flags");
        check::within(
            &format!("{flags_path} (length)"),
            service.feature_flags.len(),
            0,
            64,
        )?;
        let mut feature_flags = Vec::with_capacity(service.feature_flags.len());
        for (flag_index, flag) in service.feature_flags.iter().enumerate() {
            let here = item(&flags_path, flag_index);
            flag.validate(&here)?;
            if service.feature_flags[..flag_index]
                .iter()
                .any(|earlier| earlier.name == flag.name)
            {
                return Err(Invalid::new(
                    join(&here, "name"),
                    format!("duplicate name {:?}: names must be unique", flag.name),
                ));
            }
            let called: Vec<&str> = service
                .dependencies
                .iter()
                .flat_map(|dependencies| {
                    dependencies
                        .calls
                        .iter()
                        .filter_map(|call| call.service.as_deref())
                })
                .collect();
            if !called.contains(&flag.dependency.as_str()) {
                return Err(Invalid::new(
                    join(&here, "dependency"),
                    format!(
                        "must be a service that {:?} calls (got {:?}; it calls: {})",
                        service.name,
                        flag.dependency,
                        if called.is_empty() {
                            "nothing".to_string()
                        } else {
                            called.join(", ")
                        }
                    ),
                ));
            }
            let target = resolve(&join(&here, "dependency"), &flag.dependency, &names)?;
            feature_flags.push((flag.clone(), target));
        }
        let mut dependencies = Vec::new();
        let mut dependency_mode = Default::default();
        if let Some(raw_dependencies) = &service.dependencies {
            let path = join(&path, "dependencies");
            dependency_mode = raw_dependencies.mode;
            if raw_dependencies.calls.is_empty() {
                return Err(Invalid::new(
                    join(&path, "calls"),
                    "must list at least one call (or leave out dependencies)",
                ));
            }
            check::within(
                &join(&path, "calls (length)"),
                raw_dependencies.calls.len(),
                1,
                64,
            )?;
            for (call_index, call) in raw_dependencies.calls.iter().enumerate() {
                let path = item(&join(&path, "calls"), call_index);
                let target = match (&call.service, &call.database) {
                    (Some(service), None) => {
                        Target::Service(resolve(&join(&path, "service"), service, &names)?)
                    }
                    (None, Some(database)) => {
                        Target::Database(super::validate_database::resolve_database(
                            &join(&path, "database"),
                            database,
                            &raw.databases,
                        )?)
                    }
                    (Some(_), Some(_)) => {
                        return Err(Invalid::new(
                            path,
                            "give either service or database (got both)",
                        ))
                    }
                    (None, None) => {
                        return Err(Invalid::new(
                            path,
                            "give either service or database (got neither)",
                        ))
                    }
                };
                validate_policies(&join(&path, "policies"), &call.policies)?;
                check::probability(&join(&path, "probability"), call.probability)?;
                dependencies.push(DependencyCall {
                    target,
                    probability: call.probability,
                    policies: call.policies.clone(),
                });
            }
        }
        services.push(Service {
            name: service.name.clone(),
            instances: service.instances,
            workers: service.workers,
            queue_capacity: service.queue_capacity,
            load_balancer: service.load_balancer,
            service_time: service.service_time_ms.clone(),
            error_probability: service.error_probability,
            client_error_probability: service.client_error_probability,
            dependency_mode,
            dependencies,
            health_check: service.health_check.clone(),
            load_shedding: service.load_shedding.clone(),
            feature_flags,
        });
    }
    reject_cycles(&services)?;
    Ok(services)
}

/// A service that (indirectly) calls itself would recurse without end.
fn reject_cycles(services: &[Service]) -> Result<(), Invalid> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        at: usize,
        services: &[Service],
        marks: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[at] = 1;
        path.push(at);
        for called in services[at]
            .dependencies
            .iter()
            .filter_map(DependencyCall::service)
        {
            if marks[called] == 1 {
                let start = path.iter().position(|&node| node == called).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(called);
                return Some(cycle);
            }
            if marks[called] == 0 {
                if let Some(cycle) = visit(called, services, marks, path) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        marks[at] = 2;
        None
    }
    let mut marks = vec![0u8; services.len()];
    for start in 0..services.len() {
        if marks[start] == 0 {
            if let Some(cycle) = visit(start, services, &mut marks, &mut Vec::new()) {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&index| services[index].name.as_str())
                    .collect();
                return Err(Invalid::new(
                    join(&item("services", cycle[0]), "dependencies"),
                    format!(
                        "services must not call each other in a cycle (got {})",
                        names.join(" -> ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn validate_rate(path: &str, rate: &RateSchedule) -> Result<(), Invalid> {
    let rps = |field: &str, value: f64| check::within_f64(&join(path, field), value, 0.0, RPS_MAX);
    match rate {
        RateSchedule::Constant { rps: value } => rps("rps", *value),
        RateSchedule::Steps { steps } => {
            if steps.is_empty() {
                return Err(Invalid::new(
                    join(path, "steps"),
                    "must list at least one step",
                ));
            }
            for (index, step) in steps.iter().enumerate() {
                let here = item(&join(path, "steps"), index);
                check::within_f64(&join(&here, "rps"), step.rps, 0.0, RPS_MAX)?;
                if index > 0 && step.at_ms <= steps[index - 1].at_ms {
                    return Err(Invalid::new(
                        join(&here, "at_ms"),
                        format!(
                            "must be after the previous step's at_ms {} (got {})",
                            steps[index - 1].at_ms,
                            step.at_ms
                        ),
                    ));
                }
            }
            Ok(())
        }
        RateSchedule::Ramp {
            start_ms,
            end_ms,
            from_rps,
            to_rps,
        } => {
            rps("from_rps", *from_rps)?;
            rps("to_rps", *to_rps)?;
            ends_after_start(path, *start_ms, *end_ms)
        }
        RateSchedule::Spike {
            base_rps,
            spike_rps,
            start_ms,
            end_ms,
        } => {
            rps("base_rps", *base_rps)?;
            rps("spike_rps", *spike_rps)?;
            ends_after_start(path, *start_ms, *end_ms)
        }
    }
}

/// A fault that starts after the load has ended would never be seen.
fn starts_during_load(
    path: &str,
    field: &str,
    at_ms: u64,
    duration_ms: u64,
) -> Result<(), Invalid> {
    check::within(&join(path, field), at_ms, 0, duration_ms.saturating_sub(1))
}

fn ends_after_start(path: &str, start_ms: u64, end_ms: u64) -> Result<(), Invalid> {
    if end_ms > start_ms {
        Ok(())
    } else {
        Err(Invalid::new(
            join(path, "end_ms"),
            format!("must be after start_ms {start_ms} (got {end_ms})"),
        ))
    }
}

fn validate_clients(raw: &RawScenario, services: &[Service]) -> Result<Vec<Client>, Invalid> {
    if raw.clients.is_empty() {
        return Err(Invalid::new("clients", "must list at least one client"));
    }
    unique_names(
        "clients",
        raw.clients.iter().map(|client| client.name.as_str()),
    )?;
    let names: Vec<String> = services
        .iter()
        .map(|service| service.name.clone())
        .collect();
    let mut clients = Vec::with_capacity(raw.clients.len());
    for (index, client) in raw.clients.iter().enumerate() {
        let path = item("clients", index);
        let target = resolve(&join(&path, "target"), &client.target, &names)?;
        validate_policies(&join(&path, "policies"), &client.policies)?;
        let load_path = join(&path, "load");
        let load = match &client.load {
            RawLoad::OpenLoop {
                arrival,
                rate,
                bursts,
            } => {
                validate_rate(&join(&load_path, "rate"), rate)?;
                let mut checked = Vec::with_capacity(bursts.len());
                for (burst_index, burst) in bursts.iter().enumerate() {
                    let here = item(&join(&load_path, "bursts"), burst_index);
                    check::within(
                        &join(&here, "at_ms"),
                        burst.at_ms,
                        0,
                        raw.duration_ms.saturating_sub(1),
                    )?;
                    check::within(&join(&here, "count"), burst.count, 1, 10_000_000)?;
                    checked.push((SimTime::from_ms(burst.at_ms), burst.count));
                }
                checked.sort_by_key(|&(at, _)| at);
                Load::OpenLoop {
                    arrival: *arrival,
                    rate: rate.clone(),
                    bursts: checked,
                }
            }
            RawLoad::ClosedLoop {
                users,
                think_time_ms,
            } => {
                check::within(&join(&load_path, "users"), *users, 1, 1_000_000)?;
                think_time_ms.validate(&join(&load_path, "think_time_ms"))?;
                Load::ClosedLoop {
                    users: *users,
                    think_time: think_time_ms.clone(),
                }
            }
        };
        clients.push(Client {
            name: client.name.clone(),
            target,
            load,
            policies: client.policies.clone(),
        });
    }
    Ok(clients)
}

fn validate_faults(raw: &RawScenario, services: &[Service]) -> Result<Vec<Fault>, Invalid> {
    let names: Vec<String> = services
        .iter()
        .map(|service| service.name.clone())
        .collect();
    let mut faults = Vec::with_capacity(raw.faults.len());
    check::within("faults (length)", raw.faults.len(), 0, 10_000)?;
    for (index, fault) in raw.faults.iter().enumerate() {
        let path = item("faults", index);
        let fault = match fault {
            RawFault::Outage {
                service,
                start_ms,
                end_ms,
                mode,
            } => {
                starts_during_load(&path, "start_ms", *start_ms, raw.duration_ms)?;
                ends_after_start(&path, *start_ms, *end_ms)?;
                Fault::Outage {
                    service: resolve(&join(&path, "service"), service, &names)?,
                    start: SimTime::from_ms(*start_ms),
                    end: SimTime::from_ms(*end_ms),
                    mode: *mode,
                }
            }
            RawFault::ErrorRate {
                service,
                start_ms,
                end_ms,
                probability,
            } => {
                starts_during_load(&path, "start_ms", *start_ms, raw.duration_ms)?;
                ends_after_start(&path, *start_ms, *end_ms)?;
                check::probability(&join(&path, "probability"), *probability)?;
                Fault::ErrorRate {
                    service: resolve(&join(&path, "service"), service, &names)?,
                    start: SimTime::from_ms(*start_ms),
                    end: SimTime::from_ms(*end_ms),
                    probability: *probability,
                }
            }
            RawFault::Latency {
                service,
                start_ms,
                end_ms,
                probability,
                added_ms,
            } => {
                starts_during_load(&path, "start_ms", *start_ms, raw.duration_ms)?;
                ends_after_start(&path, *start_ms, *end_ms)?;
                check::probability(&join(&path, "probability"), *probability)?;
                added_ms.validate(&join(&path, "added_ms"))?;
                Fault::Latency {
                    service: resolve(&join(&path, "service"), service, &names)?,
                    start: SimTime::from_ms(*start_ms),
                    end: SimTime::from_ms(*end_ms),
                    probability: *probability,
                    added: added_ms.clone(),
                }
            }
            RawFault::Crash {
                service,
                instance,
                at_ms,
                restart_after_ms,
            } => {
                let service = resolve(&join(&path, "service"), service, &names)?;
                starts_during_load(&path, "at_ms", *at_ms, raw.duration_ms)?;
                let instances = services[service].instances;
                check::within(&join(&path, "instance"), *instance, 0, instances - 1)?;
                check::within(
                    &join(&path, "restart_after_ms"),
                    *restart_after_ms,
                    1,
                    DURATION_MS_MAX,
                )?;
                Fault::Crash {
                    service,
                    instance: *instance,
                    at: SimTime::from_ms(*at_ms),
                    restart_after: SimDuration::from_ms(*restart_after_ms),
                }
            }
            RawFault::Shutdown {
                service,
                instance,
                at_ms,
                drain_timeout_ms,
                restart_after_ms,
            } => {
                starts_during_load(&path, "at_ms", *at_ms, raw.duration_ms)?;
                let service = resolve(&join(&path, "service"), service, &names)?;
                let instances = services[service].instances;
                check::within(&join(&path, "instance"), *instance, 0, instances - 1)?;
                check::within(
                    &join(&path, "drain_timeout_ms"),
                    *drain_timeout_ms,
                    0,
                    3_600_000,
                )?;
                if let Some(restart_after_ms) = restart_after_ms {
                    check::within(
                        &join(&path, "restart_after_ms"),
                        *restart_after_ms,
                        1,
                        DURATION_MS_MAX,
                    )?;
                }
                Fault::Shutdown {
                    service,
                    instance: *instance,
                    at: SimTime::from_ms(*at_ms),
                    drain_timeout: SimDuration::from_ms(*drain_timeout_ms),
                    restart_after: restart_after_ms.map(SimDuration::from_ms),
                }
            }
            RawFault::ChaosMonkey {
                service,
                start_ms,
                end_ms,
                failure_rate,
                latency_rate,
                latency_ms,
            } => {
                starts_during_load(&path, "start_ms", *start_ms, raw.duration_ms)?;
                ends_after_start(&path, *start_ms, *end_ms)?;
                check::probability(&join(&path, "failure_rate"), *failure_rate)?;
                check::within_f64(
                    &join(&path, "latency_rate"),
                    *latency_rate,
                    0.0,
                    1.0 - failure_rate,
                )?;
                check::within_f64(&join(&path, "latency_ms"), *latency_ms, 0.0, 3_600_000.0)?;
                Fault::ChaosMonkey {
                    service: resolve(&join(&path, "service"), service, &names)?,
                    start: SimTime::from_ms(*start_ms),
                    end: SimTime::from_ms(*end_ms),
                    failure_rate: *failure_rate,
                    latency_rate: *latency_rate,
                    latency_ms: *latency_ms,
                }
            }
            RawFault::KillInstances {
                service,
                start_ms,
                end_ms,
                interval_ms,
                probability,
                restart_after_ms,
            } => {
                starts_during_load(&path, "start_ms", *start_ms, raw.duration_ms)?;
                ends_after_start(&path, *start_ms, *end_ms)?;
                check::within(&join(&path, "interval_ms"), *interval_ms, 1, 86_400_000)?;
                check::probability(&join(&path, "probability"), *probability)?;
                check::within(
                    &join(&path, "restart_after_ms"),
                    *restart_after_ms,
                    1,
                    DURATION_MS_MAX,
                )?;
                Fault::KillInstances {
                    service: resolve(&join(&path, "service"), service, &names)?,
                    start: SimTime::from_ms(*start_ms),
                    end: SimTime::from_ms(*end_ms),
                    interval: SimDuration::from_ms(*interval_ms),
                    probability: *probability,
                    restart_after: SimDuration::from_ms(*restart_after_ms),
                }
            }
            // Checked with their cluster by `validate_database`.
            RawFault::DatabaseCrash(_)
            | RawFault::ReplicationPause(_)
            | RawFault::SlowReplica(_)
            | RawFault::DiskFull(_) => continue,
        };
        faults.push(fault);
    }
    Ok(faults)
}

/// Requests the scenario will issue, roughly: open-loop rate integrals plus
/// bursts plus closed-loop users cycling as fast as their think time allows.
pub fn requests_expected(scenario: &Scenario) -> f64 {
    let duration_ms = scenario.duration.as_ms_f64();
    scenario
        .clients
        .iter()
        .map(|client| match &client.load {
            Load::OpenLoop { rate, bursts, .. } => {
                rate.requests_between(SimTime::ZERO, SimTime::ZERO + scenario.duration)
                    + bursts
                        .iter()
                        .map(|&(_, count)| f64::from(count))
                        .sum::<f64>()
            }
            Load::ClosedLoop { users, think_time } => {
                let service = &scenario.services[client.target];
                let cycle_ms = (think_time.mean_ms() + service.service_time.mean_ms()).max(0.001);
                f64::from(*users) * duration_ms / cycle_ms
            }
        })
        .sum()
}

fn check_event_budget(scenario: &Scenario, events_max_name: &str) -> Result<(), Invalid> {
    // Every request visits its target and, through it, each dependency.
    let fan_out = |service: usize| -> f64 {
        let mut total = 0.0;
        let mut stack = vec![service];
        let mut steps = 0;
        while let Some(at) = stack.pop() {
            total += 1.0;
            steps += 1;
            if steps > 10_000 {
                break;
            }
            stack.extend(
                scenario.services[at]
                    .dependencies
                    .iter()
                    .filter_map(DependencyCall::service),
            );
        }
        total
    };
    let mut events = 0.0;
    let requests = requests_expected(scenario);
    if requests > 0.0 {
        let per_client: f64 = scenario
            .clients
            .iter()
            .map(|client| fan_out(client.target))
            .fold(0.0, f64::max);
        events = requests * EVENTS_PER_REQUEST_MIN * per_client;
    }
    let events_max = scenario.limits.events_max as f64;
    if events > events_max {
        return Err(Invalid::new(
            "duration_ms",
            format!(
                "is too long to simulate within {events_max_name} {}: about {:.0} requests need at least {:.0} events; shorten duration_ms, lower the rates or raise {events_max_name}",
                scenario.limits.events_max, requests, events
            ),
        ));
    }
    Ok(())
}
