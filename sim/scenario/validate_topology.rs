//! Checks the scenario's `topology` section and resolves it into a
//! `topology::Topology`: names to indices, milliseconds to durations, every
//! range checked. Errors carry the JSON path (`topology.routers[0].ttl_ms`)
//! and what is allowed, like the rest of `validate`. The region, latency and
//! router checks are public so that `sim policy router` reuses them.

use super::check::{self, item, join};
use super::error::Invalid;
use super::raw_topology::{
    Direction, RawLatency, RawPolicy, RawRegion, RawRouter, RawTopology, RawTopologyFault,
};
use super::{Client, Service};
use crate::engine::{SimDuration, SimTime};
use crate::model::distribution::{Distribution, SAMPLE_MS_MAX};
use crate::topology::failure::FailureTarget;
use crate::topology::faults::TopologyFault;
use crate::topology::network::{CheckerCut, Degradation, Partition, Window};
use crate::topology::routing::anycast::{self, AnycastSettings};
use crate::topology::routing::chapter::{ActivePassiveRegions, ChapterActiveActive};
use crate::topology::routing::dns::{self, DnsSettings};
use crate::topology::routing::priority::{Locality, PrioritySettings};
use crate::topology::routing::{Policy, RouterKind, RouterSpec};
use crate::topology::{
    one_way_from_round_trip, preset, ClientPlacement, LatencyMatrix, Place, Placement, Region,
    Topology, PRESETS,
};
use std::collections::BTreeSet;

/// The most regions a topology may have.
pub const REGIONS_MAX: usize = 64;
/// The most zones per region.
pub const ZONES_MAX: usize = 16;
/// The most entries of each list (placements, clients, routers, faults, checkers).
pub const ENTRIES_MAX: usize = 1_000;

/// Checks the whole section against the scenario's services and clients.
pub fn validate(
    raw: &RawTopology,
    services: &[Service],
    clients: &[Client],
    duration_ms: u64,
) -> Result<Topology, Invalid> {
    let path = "topology";
    let regions = regions(&join(path, "regions"), &raw.regions)?;
    let latency = latency(&join(path, "latency"), &raw.latency, &regions)?;
    for (list, len) in [
        ("placements", raw.placements.len()),
        ("clients", raw.clients.len()),
        ("routers", raw.routers.len()),
        ("faults", raw.faults.len()),
    ] {
        check::within(
            &format!("{} (length)", join(path, list)),
            len,
            0,
            ENTRIES_MAX,
        )?;
    }
    let placements = placements(raw, &regions, services)?;
    let mut routers = Vec::with_capacity(raw.routers.len());
    for (index, router) in raw.routers.iter().enumerate() {
        let here = item(&join(path, "routers"), index);
        if raw.routers[..index]
            .iter()
            .any(|earlier| earlier.name() == router.name())
        {
            return Err(Invalid::new(
                join(&here, "name"),
                format!("duplicate name {:?}: names must be unique", router.name()),
            ));
        }
        routers.push(self::router(&here, router, &regions)?);
    }
    let topology_clients =
        client_placements(raw, &regions, clients, services, &placements, &routers)?;
    let faults = faults(raw, &regions, services, &routers, duration_ms)?;
    Ok(Topology {
        regions,
        latency,
        placements,
        clients: topology_clients,
        routers,
        faults,
    })
}

/// Checks the regions and zones: 1 to 64 regions with unique names, each
/// with at most 16 uniquely named zones.
pub fn regions(path: &str, raw: &[RawRegion]) -> Result<Vec<Region>, Invalid> {
    if raw.is_empty() {
        return Err(Invalid::new(path, "must list at least one region"));
    }
    check::within(&format!("{path} (length)"), raw.len(), 1, REGIONS_MAX)?;
    let mut names = BTreeSet::new();
    let mut regions = Vec::with_capacity(raw.len());
    for (index, region) in raw.iter().enumerate() {
        let here = item(path, index);
        check::name(&join(&here, "name"), &region.name)?;
        if !names.insert(region.name.as_str()) {
            return Err(Invalid::new(
                join(&here, "name"),
                format!("duplicate name {:?}: names must be unique", region.name),
            ));
        }
        let zones_path = join(&here, "zones");
        check::within(
            &format!("{zones_path} (length)"),
            region.zones.len(),
            0,
            ZONES_MAX,
        )?;
        for (zone_index, zone) in region.zones.iter().enumerate() {
            check::name(&item(&zones_path, zone_index), zone)?;
            if region.zones[..zone_index].contains(zone) {
                return Err(Invalid::new(
                    item(&zones_path, zone_index),
                    format!("duplicate zone {zone:?}: zone names must be unique within a region"),
                ));
            }
        }
        regions.push(Region {
            name: region.name.clone(),
            zones: region.zones.clone(),
        });
    }
    Ok(regions)
}

fn region_names(regions: &[Region]) -> String {
    regions
        .iter()
        .map(|region| region.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves a region name.
pub fn region(path: &str, name: &str, regions: &[Region]) -> Result<usize, Invalid> {
    regions
        .iter()
        .position(|region| region.name == name)
        .ok_or_else(|| {
            Invalid::new(
                path,
                format!(
                    "unknown region {name:?}; the regions are: {}",
                    region_names(regions)
                ),
            )
        })
}

/// Resolves a place: `region` or `region/zone`.
pub fn place(path: &str, text: &str, regions: &[Region]) -> Result<Place, Invalid> {
    let (region_name, zone_name) = match text.split_once('/') {
        Some((region_name, zone_name)) => (region_name, Some(zone_name)),
        None => (text, None),
    };
    let region_id = region(path, region_name, regions)?;
    let zone = match zone_name {
        None => None,
        Some(zone_name) => {
            let zones = &regions[region_id].zones;
            Some(zones.iter().position(|z| z == zone_name).ok_or_else(|| {
                Invalid::new(
                    path,
                    format!(
                        "unknown zone {zone_name:?} in region {region_name:?}; its zones are: {}",
                        if zones.is_empty() {
                            "none".to_string()
                        } else {
                            zones.join(", ")
                        }
                    ),
                )
            })?)
        }
    };
    Ok(Place {
        region: region_id,
        zone,
    })
}

/// Builds the latency matrix: the preset, then `round_trips`, then
/// `one_way`; every ordered pair of distinct regions must end up with an entry.
pub fn latency(path: &str, raw: &RawLatency, regions: &[Region]) -> Result<LatencyMatrix, Invalid> {
    let n = regions.len();
    let mut entries: Vec<Option<Distribution>> = vec![None; n * n];
    let preset = match &raw.preset {
        None => None,
        Some(name) => Some(preset(name).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|preset| preset.name).collect();
            Invalid::new(
                join(path, "preset"),
                format!(
                    "unknown preset {name:?}; the presets are: {}",
                    names.join(", ")
                ),
            )
        })?),
    };
    if let Some(preset) = preset {
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    if let Some(ms) = preset.round_trip_ms(&regions[from].name, &regions[to].name) {
                        entries[from * n + to] = Some(one_way_from_round_trip(ms));
                    }
                }
            }
        }
    }
    check::within(
        &format!("{} (length)", join(path, "round_trips")),
        raw.round_trips.len(),
        0,
        ENTRIES_MAX,
    )?;
    for (index, round_trip) in raw.round_trips.iter().enumerate() {
        let here = item(&join(path, "round_trips"), index);
        let a = region(
            &item(&join(&here, "between"), 0),
            &round_trip.between[0],
            regions,
        )?;
        let b = region(
            &item(&join(&here, "between"), 1),
            &round_trip.between[1],
            regions,
        )?;
        if a == b {
            return Err(Invalid::new(
                join(&here, "between"),
                "must name two different regions (latency within a region is between_zones_ms)",
            ));
        }
        check::within_f64(
            &join(&here, "round_trip_ms"),
            round_trip.round_trip_ms,
            0.0,
            10_000.0,
        )?;
        entries[a * n + b] = Some(one_way_from_round_trip(round_trip.round_trip_ms));
        entries[b * n + a] = Some(one_way_from_round_trip(round_trip.round_trip_ms));
    }
    check::within(
        &format!("{} (length)", join(path, "one_way")),
        raw.one_way.len(),
        0,
        ENTRIES_MAX,
    )?;
    for (index, one_way) in raw.one_way.iter().enumerate() {
        let here = item(&join(path, "one_way"), index);
        let from = region(&join(&here, "from"), &one_way.from, regions)?;
        let to = region(&join(&here, "to"), &one_way.to, regions)?;
        if from == to {
            return Err(Invalid::new(
                join(&here, "to"),
                "must be another region than from (latency within a region is between_zones_ms)",
            ));
        }
        one_way.latency_ms.validate(&join(&here, "latency_ms"))?;
        entries[from * n + to] = Some(one_way.latency_ms.clone());
    }
    let between_zones = match &raw.between_zones_ms {
        Some(distribution) => {
            distribution.validate(&join(path, "between_zones_ms"))?;
            distribution.clone()
        }
        None => preset.map_or_else(Distribution::zero, |preset| preset.between_zones()),
    };
    let mut one_way = Vec::with_capacity(n * n);
    for from in 0..n {
        for to in 0..n {
            match entries[from * n + to].take() {
                Some(distribution) => one_way.push(distribution),
                None if from == to => one_way.push(Distribution::zero()),
                None => {
                    return Err(Invalid::new(
                        path,
                        format!(
                            "no latency from {:?} to {:?}{}; give it in round_trips or one_way",
                            regions[from].name,
                            regions[to].name,
                            preset.map_or(String::new(), |preset| format!(
                                " (the preset {:?} has no such pair)",
                                preset.name
                            )),
                        ),
                    ))
                }
            }
        }
    }
    // Keep the maths bounded: a one-way mean beyond a day is a typo.
    debug_assert!(one_way.iter().all(|d| d.mean_ms() <= SAMPLE_MS_MAX));
    Ok(LatencyMatrix::new(n, one_way, between_zones))
}

fn placements(
    raw: &RawTopology,
    regions: &[Region],
    services: &[Service],
) -> Result<Vec<Placement>, Invalid> {
    let path = "topology.placements";
    let mut placements = Vec::with_capacity(raw.placements.len());
    for (index, placement) in raw.placements.iter().enumerate() {
        let here = item(path, index);
        let service = service(&join(&here, "service"), &placement.service, services)?;
        let place = self::place(&join(&here, "place"), &placement.place, regions)?;
        check::within(&join(&here, "instances"), placement.instances, 1, 10_000)?;
        placements.push(Placement {
            service,
            place,
            instances: placement.instances,
        });
    }
    for (service_index, service) in services.iter().enumerate() {
        let placed: u32 = placements
            .iter()
            .filter(|placement| placement.service == service_index)
            .map(|placement| placement.instances)
            .sum();
        if placed > 0 && placed != service.instances {
            let last = placements
                .iter()
                .rposition(|placement| placement.service == service_index)
                .unwrap_or(0);
            return Err(Invalid::new(
                join(&item(path, last), "instances"),
                format!(
                    "the placements of {:?} hold {placed} instances but services[{service_index}].instances is {}; they must match",
                    service.name, service.instances
                ),
            ));
        }
    }
    Ok(placements)
}

fn service(path: &str, name: &str, services: &[Service]) -> Result<usize, Invalid> {
    services
        .iter()
        .position(|service| service.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            Invalid::new(
                path,
                format!(
                    "unknown service {name:?}; the services are: {}",
                    names.join(", ")
                ),
            )
        })
}

/// Instances of `service` in `region`: its placements there, or all of them
/// in the first region when it has none.
fn instances_in(
    placements: &[Placement],
    services: &[Service],
    service: usize,
    region: usize,
) -> u32 {
    let placed = placements
        .iter()
        .any(|placement| placement.service == service);
    if !placed {
        return if region == 0 {
            services[service].instances
        } else {
            0
        };
    }
    placements
        .iter()
        .filter(|placement| placement.service == service && placement.place.region == region)
        .map(|placement| placement.instances)
        .sum()
}

fn client_placements(
    raw: &RawTopology,
    regions: &[Region],
    clients: &[Client],
    services: &[Service],
    placements: &[Placement],
    routers: &[RouterSpec],
) -> Result<Vec<ClientPlacement>, Invalid> {
    let path = "topology.clients";
    let mut out: Vec<ClientPlacement> = Vec::with_capacity(raw.clients.len());
    for (index, entry) in raw.clients.iter().enumerate() {
        let here = item(path, index);
        let client = clients
            .iter()
            .position(|client| client.name == entry.client)
            .ok_or_else(|| {
                let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
                Invalid::new(
                    join(&here, "client"),
                    format!(
                        "unknown client {:?}; the clients are: {}",
                        entry.client,
                        names.join(", ")
                    ),
                )
            })?;
        if out.iter().any(|earlier| earlier.client == client) {
            return Err(Invalid::new(
                join(&here, "client"),
                format!(
                    "client {:?} is placed twice: place each client once",
                    entry.client
                ),
            ));
        }
        let origin = place(&join(&here, "origin"), &entry.origin, regions)?;
        let resolvers_path = join(&here, "resolvers");
        if entry.resolvers.is_empty() {
            return Err(Invalid::new(
                &resolvers_path,
                "must list at least one resolver class",
            ));
        }
        check::within(
            &format!("{resolvers_path} (length)"),
            entry.resolvers.len(),
            1,
            4,
        )?;
        let mut resolvers = Vec::with_capacity(entry.resolvers.len());
        for (share_index, share) in entry.resolvers.iter().enumerate() {
            let share_path = item(&resolvers_path, share_index);
            check::probability(&join(&share_path, "share"), share.share)?;
            if resolvers.iter().any(|&(class, _)| class == share.class) {
                return Err(Invalid::new(
                    join(&share_path, "class"),
                    format!("class {:?} is listed twice", share.class.name()),
                ));
            }
            resolvers.push((share.class, share.share));
        }
        let total: f64 = resolvers.iter().map(|&(_, share)| share).sum();
        if (total - 1.0).abs() > 1e-9 {
            return Err(Invalid::new(
                resolvers_path,
                format!("shares must sum to 1 (got {total})"),
            ));
        }
        let router = match &entry.router {
            None => {
                let target = clients[client].target;
                if instances_in(placements, services, target, origin.region) == 0 {
                    return Err(Invalid::new(
                        join(&here, "origin"),
                        format!(
                            "without a router the client calls its origin region {:?}, which has no instance of service {:?}; place some there or give a router",
                            regions[origin.region].name, services[target].name
                        ),
                    ));
                }
                None
            }
            Some(name) => {
                let router_index = routers
                    .iter()
                    .position(|router| &router.name == name)
                    .ok_or_else(|| {
                        let names: Vec<&str> = routers.iter().map(|r| r.name.as_str()).collect();
                        Invalid::new(
                            join(&here, "router"),
                            format!(
                                "unknown router {name:?}; the routers are: {}",
                                if names.is_empty() {
                                    "none".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        )
                    })?;
                let target = clients[client].target;
                for region in routers[router_index].regions() {
                    if instances_in(placements, services, target, region) == 0 {
                        return Err(Invalid::new(
                            join(&here, "router"),
                            format!(
                                "router {name:?} can send client {:?} to region {:?}, which has no instance of service {:?}; place some there or remove the region from the router",
                                entry.client, regions[region].name, services[target].name
                            ),
                        ));
                    }
                }
                Some(router_index)
            }
        };
        out.push(ClientPlacement {
            client,
            origin,
            router,
            resolvers,
        });
    }
    Ok(out)
}

fn endpoints(
    path: &str,
    raw: &Option<Vec<String>>,
    regions: &[Region],
) -> Result<Vec<usize>, Invalid> {
    let Some(names) = raw else {
        return Ok((0..regions.len()).collect());
    };
    if names.is_empty() {
        return Err(Invalid::new(path, "must list at least one region"));
    }
    let mut out = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let id = region(&item(path, index), name, regions)?;
        if out.contains(&id) {
            return Err(Invalid::new(
                item(path, index),
                format!("region {name:?} is listed twice"),
            ));
        }
        out.push(id);
    }
    Ok(out)
}

fn interval(
    path: &str,
    value: u64,
    allowed: [u64; 2],
    system: &str,
) -> Result<SimDuration, Invalid> {
    if allowed.contains(&value) {
        Ok(SimDuration::from_ms(value))
    } else {
        Err(Invalid::new(
            path,
            format!(
                "must be {} or {} ({system}'s fast and standard intervals) (got {value})",
                allowed[0], allowed[1]
            ),
        ))
    }
}

fn policy(
    path: &str,
    raw: &RawPolicy,
    endpoints: &[usize],
    regions: &[Region],
) -> Result<Policy, Invalid> {
    let endpoint = |here: &str, name: &str| -> Result<usize, Invalid> {
        let id = region(here, name, regions)?;
        endpoints.iter().position(|&e| e == id).ok_or_else(|| {
            Invalid::new(
                here,
                format!("region {name:?} is not one of the router's endpoints"),
            )
        })
    };
    Ok(match raw {
        RawPolicy::Weighted { weights } => {
            let here = join(path, "weights");
            if weights.len() != endpoints.len() {
                return Err(Invalid::new(
                    here,
                    format!(
                        "must give one weight per endpoint ({} endpoints, got {} weights)",
                        endpoints.len(),
                        weights.len()
                    ),
                ));
            }
            for (index, weight) in weights.iter().enumerate() {
                check::within(&item(&here, index), *weight, 0, 1_000_000)?;
            }
            if weights.iter().all(|&weight| weight == 0) {
                return Err(Invalid::new(
                    here,
                    "weights must sum to more than 0 (got all 0)",
                ));
            }
            Policy::Weighted {
                weights: weights.clone(),
            }
        }
        RawPolicy::Nearest => Policy::Nearest,
        RawPolicy::Geo { by_origin, default } => {
            let mut pairs = Vec::with_capacity(by_origin.len());
            for (origin, target) in by_origin {
                let here = join(&join(path, "by_origin"), origin);
                let origin_id = region(&here, origin, regions)?;
                pairs.push((origin_id, endpoint(&here, target)?));
            }
            Policy::Geo {
                by_origin: pairs,
                default: endpoint(&join(path, "default"), default)?,
            }
        }
        RawPolicy::Failover { order, failback } => {
            let order = match order {
                None => (0..endpoints.len()).collect(),
                Some(names) => {
                    let here = join(path, "order");
                    if names.is_empty() {
                        return Err(Invalid::new(here, "must list at least the primary"));
                    }
                    let mut out = Vec::with_capacity(names.len());
                    for (index, name) in names.iter().enumerate() {
                        let e = endpoint(&item(&here, index), name)?;
                        if out.contains(&e) {
                            return Err(Invalid::new(
                                item(&here, index),
                                format!("region {name:?} is listed twice"),
                            ));
                        }
                        out.push(e);
                    }
                    out
                }
            };
            Policy::Failover {
                order,
                failback: *failback,
            }
        }
    })
}

fn places(path: &str, raw: &[String], regions: &[Region]) -> Result<Vec<Place>, Invalid> {
    if raw.is_empty() {
        return Err(Invalid::new(path, "must list at least one place"));
    }
    check::within(&format!("{path} (length)"), raw.len(), 1, 64)?;
    raw.iter()
        .enumerate()
        .map(|(index, text)| place(&item(path, index), text, regions))
        .collect()
}

/// Checks one router and resolves its names.
pub fn router(path: &str, raw: &RawRouter, regions: &[Region]) -> Result<RouterSpec, Invalid> {
    check::name(&join(path, "name"), raw.name())?;
    let kind = match raw {
        RawRouter::Dns {
            endpoints: raw_endpoints,
            checkers,
            interval_ms,
            failure_threshold,
            healthy_fraction_min,
            ttl_ms,
            policy: raw_policy,
            stretching_resolvers,
            ..
        } => {
            let endpoints = endpoints(&join(path, "endpoints"), raw_endpoints, regions)?;
            let checkers = match checkers {
                Some(list) => places(&join(path, "checkers"), list, regions)?,
                None => (0..regions.len()).map(Place::region).collect(),
            };
            let interval = interval(
                &join(path, "interval_ms"),
                *interval_ms,
                dns::INTERVALS_MS,
                "Route 53",
            )?;
            let (low, high) = dns::FAILURE_THRESHOLD_RANGE;
            check::within(
                &join(path, "failure_threshold"),
                *failure_threshold,
                low,
                high,
            )?;
            if !(0.0..1.0).contains(healthy_fraction_min) {
                return Err(Invalid::new(
                    join(path, "healthy_fraction_min"),
                    format!("must be in [0, 1) (got {healthy_fraction_min})"),
                ));
            }
            check::within(&join(path, "ttl_ms"), *ttl_ms, 0, dns::TTL_MS_MAX)?;
            let policy = match raw_policy {
                Some(raw_policy) => policy(&join(path, "policy"), raw_policy, &endpoints, regions)?,
                None => Policy::Failover {
                    order: (0..endpoints.len()).collect(),
                    failback: true,
                },
            };
            let (stretch_fraction, stretch_ttl_min) = match stretching_resolvers {
                None => (0.0, SimDuration::from_ms(dns::STRETCH_TTL_MS_MIN_DEFAULT)),
                Some(stretch) => {
                    let here = join(path, "stretching_resolvers");
                    check::probability(&join(&here, "fraction"), stretch.fraction)?;
                    check::within(
                        &join(&here, "ttl_ms_min"),
                        stretch.ttl_ms_min,
                        0,
                        dns::TTL_MS_MAX,
                    )?;
                    (stretch.fraction, SimDuration::from_ms(stretch.ttl_ms_min))
                }
            };
            RouterKind::Dns(DnsSettings {
                checkers,
                interval,
                failure_threshold: *failure_threshold,
                healthy_fraction_min: *healthy_fraction_min,
                ttl: SimDuration::from_ms(*ttl_ms),
                endpoints,
                policy,
                stretch_fraction,
                stretch_ttl_min,
            })
        }
        RawRouter::Anycast {
            endpoints: raw_endpoints,
            checkers,
            interval_ms,
            threshold,
            shift_ms,
            policy: raw_policy,
            ..
        } => {
            let endpoints = endpoints(&join(path, "endpoints"), raw_endpoints, regions)?;
            let checkers = match checkers {
                Some(list) => {
                    let here = join(path, "checkers");
                    let resolved = places(&here, list, regions)?;
                    if resolved.len() != endpoints.len() {
                        return Err(Invalid::new(
                            here,
                            format!(
                                "must give one checker place per endpoint ({} endpoints, got {})",
                                endpoints.len(),
                                resolved.len()
                            ),
                        ));
                    }
                    resolved
                }
                None => endpoints.iter().map(|&e| Place::region(e)).collect(),
            };
            let interval = interval(
                &join(path, "interval_ms"),
                *interval_ms,
                anycast::INTERVALS_MS,
                "Global Accelerator",
            )?;
            let (low, high) = anycast::THRESHOLD_RANGE;
            check::within(&join(path, "threshold"), *threshold, low, high)?;
            check::within(&join(path, "shift_ms"), *shift_ms, 0, 600_000)?;
            let policy = match raw_policy {
                Some(raw_policy) => policy(&join(path, "policy"), raw_policy, &endpoints, regions)?,
                None => Policy::Nearest,
            };
            RouterKind::Anycast(AnycastSettings {
                endpoints,
                checkers,
                interval,
                threshold: *threshold,
                shift: SimDuration::from_ms(*shift_ms),
                policy,
            })
        }
        RawRouter::Priority {
            levels,
            overprovisioning_factor,
            panic_threshold_percent,
            ..
        } => {
            let here = join(path, "levels");
            if levels.is_empty() {
                return Err(Invalid::new(&here, "must list at least one level"));
            }
            check::within(&format!("{here} (length)"), levels.len(), 1, 8)?;
            let mut seen = BTreeSet::new();
            let mut checked = Vec::with_capacity(levels.len());
            for (level_index, level) in levels.iter().enumerate() {
                let level_path = item(&here, level_index);
                if level.is_empty() {
                    return Err(Invalid::new(&level_path, "must list at least one region"));
                }
                check::within(&format!("{level_path} (length)"), level.len(), 1, 64)?;
                let mut localities = Vec::with_capacity(level.len());
                for (index, locality) in level.iter().enumerate() {
                    let locality_path = item(&level_path, index);
                    let id = region(&join(&locality_path, "region"), &locality.region, regions)?;
                    if !seen.insert(id) {
                        return Err(Invalid::new(
                            join(&locality_path, "region"),
                            format!(
                                "region {:?} appears twice; each region belongs to one level",
                                locality.region
                            ),
                        ));
                    }
                    check::within(
                        &join(&locality_path, "weight"),
                        locality.weight,
                        1,
                        1_000_000,
                    )?;
                    localities.push(Locality {
                        region: id,
                        weight: locality.weight,
                    });
                }
                checked.push(localities);
            }
            check::within_f64(
                &join(path, "overprovisioning_factor"),
                *overprovisioning_factor,
                1.0,
                10.0,
            )?;
            check::within_f64(
                &join(path, "panic_threshold_percent"),
                *panic_threshold_percent,
                0.0,
                100.0,
            )?;
            RouterKind::Priority(PrioritySettings {
                levels: checked,
                overprovisioning_percent: (overprovisioning_factor * 100.0).round() as u32,
                panic_threshold_percent: *panic_threshold_percent,
            })
        }
        RawRouter::ChapterActiveActive { regions: names, .. } => {
            let listed = endpoints(&join(path, "regions"), &Some(names.clone()), regions)?;
            RouterKind::ChapterActiveActive(ChapterActiveActive::new(listed))
        }
        RawRouter::ChapterActivePassive {
            primary, secondary, ..
        } => {
            let primary_id = region(&join(path, "primary"), primary, regions)?;
            let secondary_id = region(&join(path, "secondary"), secondary, regions)?;
            if primary_id == secondary_id {
                return Err(Invalid::new(
                    join(path, "secondary"),
                    format!("must be another region than the primary (got {secondary:?} for both)"),
                ));
            }
            RouterKind::ChapterActivePassive(ActivePassiveRegions {
                primary: primary_id,
                secondary: secondary_id,
            })
        }
    };
    Ok(RouterSpec {
        name: raw.name().to_string(),
        kind,
    })
}

fn window(path: &str, start_ms: u64, end_ms: u64, duration_ms: u64) -> Result<Window, Invalid> {
    check::within(
        &join(path, "start_ms"),
        start_ms,
        0,
        duration_ms.saturating_sub(1),
    )?;
    if end_ms <= start_ms {
        return Err(Invalid::new(
            join(path, "end_ms"),
            format!("must be after start_ms {start_ms} (got {end_ms})"),
        ));
    }
    Ok(Window {
        start: SimTime::from_ms(start_ms),
        end: SimTime::from_ms(end_ms),
    })
}

fn faults(
    raw: &RawTopology,
    regions: &[Region],
    services: &[Service],
    routers: &[RouterSpec],
    duration_ms: u64,
) -> Result<Vec<TopologyFault>, Invalid> {
    let path = "topology.faults";
    let mut out = Vec::with_capacity(raw.faults.len());
    for (index, fault) in raw.faults.iter().enumerate() {
        let here = item(path, index);
        let checked = match fault {
            RawTopologyFault::RegionOutage {
                region: name,
                start_ms,
                end_ms,
                mode,
            } => {
                let id = region(&join(&here, "region"), name, regions)?;
                TopologyFault::Outage {
                    scope: Place::region(id),
                    window: window(&here, *start_ms, *end_ms, duration_ms)?,
                    mode: *mode,
                }
            }
            RawTopologyFault::ZoneOutage {
                zone,
                start_ms,
                end_ms,
                mode,
            } => {
                let scope = place(&join(&here, "zone"), zone, regions)?;
                if scope.zone.is_none() {
                    return Err(Invalid::new(
                        join(&here, "zone"),
                        format!("must name a zone as region/zone (got {zone:?}); use region_outage for a whole region"),
                    ));
                }
                TopologyFault::Outage {
                    scope,
                    window: window(&here, *start_ms, *end_ms, duration_ms)?,
                    mode: *mode,
                }
            }
            RawTopologyFault::Partition {
                from,
                to,
                direction,
                start_ms,
                end_ms,
            } => {
                let (from, to) = distinct_places(&here, from, to, regions)?;
                TopologyFault::Partition(Partition {
                    from,
                    to,
                    two_way: *direction == Direction::TwoWay,
                    window: window(&here, *start_ms, *end_ms, duration_ms)?,
                })
            }
            RawTopologyFault::CheckerPartition {
                router: name,
                region: region_name,
                checkers,
                start_ms,
                end_ms,
            } => {
                let router_path = join(&here, "router");
                let router_index =
                    routers
                        .iter()
                        .position(|r| &r.name == name)
                        .ok_or_else(|| {
                            Invalid::new(&router_path, format!("unknown router {name:?}"))
                        })?;
                let count = match &routers[router_index].kind {
                    RouterKind::Dns(settings) => settings.checkers.len(),
                    RouterKind::Anycast(settings) => settings.checkers.len(),
                    _ => {
                        return Err(Invalid::new(
                            router_path,
                            format!("router {name:?} has no health checkers: only dns and anycast routers do"),
                        ))
                    }
                };
                let region_id = region(&join(&here, "region"), region_name, regions)?;
                let checkers = match checkers {
                    None => (0..count).collect(),
                    Some(list) => {
                        let list_path = join(&here, "checkers");
                        if list.is_empty() {
                            return Err(Invalid::new(
                                list_path,
                                "must list at least one checker (or leave it out for all)",
                            ));
                        }
                        for (i, &checker) in list.iter().enumerate() {
                            check::within(&item(&list_path, i), checker, 0, count - 1)?;
                        }
                        list.clone()
                    }
                };
                TopologyFault::CheckerCut(CheckerCut {
                    router: router_index,
                    checkers,
                    region: region_id,
                    window: window(&here, *start_ms, *end_ms, duration_ms)?,
                })
            }
            RawTopologyFault::Degradation {
                from,
                to,
                direction,
                added_latency_ms,
                loss,
                start_ms,
                end_ms,
            } => {
                let (from, to) = distinct_places(&here, from, to, regions)?;
                added_latency_ms.validate(&join(&here, "added_latency_ms"))?;
                check::probability(&join(&here, "loss"), *loss)?;
                TopologyFault::Degradation(Degradation {
                    from,
                    to,
                    two_way: *direction == Direction::TwoWay,
                    added: added_latency_ms.clone(),
                    loss: *loss,
                    window: window(&here, *start_ms, *end_ms, duration_ms)?,
                })
            }
            RawTopologyFault::Failures {
                place: raw_place,
                service: raw_service,
                instance,
                mttf_ms,
                mttr_ms,
                mode,
            } => {
                let target = match (raw_place, raw_service, instance) {
                    (Some(text), None, None) => {
                        FailureTarget::Place(place(&join(&here, "place"), text, regions)?)
                    }
                    (None, Some(name), Some(index)) => {
                        let service_index = service(&join(&here, "service"), name, services)?;
                        check::within(
                            &join(&here, "instance"),
                            *index,
                            0,
                            services[service_index].instances - 1,
                        )?;
                        FailureTarget::Instance(service_index, *index)
                    }
                    _ => {
                        return Err(Invalid::new(
                            here,
                            "must give either place, or service and instance",
                        ))
                    }
                };
                check::positive(&join(&here, "mttf_ms"), *mttf_ms)?;
                check::within_f64(&join(&here, "mttf_ms"), *mttf_ms, 1.0, 1e12)?;
                check::within_f64(&join(&here, "mttr_ms"), *mttr_ms, 1.0, 1e12)?;
                TopologyFault::Failures {
                    target,
                    mttf_ms: *mttf_ms,
                    mttr_ms: *mttr_ms,
                    mode: *mode,
                }
            }
        };
        out.push(checked);
    }
    Ok(out)
}

fn distinct_places(
    path: &str,
    from: &str,
    to: &str,
    regions: &[Region],
) -> Result<(Place, Place), Invalid> {
    let from_place = place(&join(path, "from"), from, regions)?;
    let to_place = place(&join(path, "to"), to, regions)?;
    if from_place.contains(to_place) || to_place.contains(from_place) {
        return Err(Invalid::new(
            join(path, "to"),
            format!("must not overlap from (got {from:?} and {to:?})"),
        ));
    }
    Ok((from_place, to_place))
}
