//! Checks the scenario's `databases` section and builds each cluster's
//! `database::ClusterConfig`, filling in the defaults that depend on the
//! detector. The first problem found is reported, with its JSON path.
//!
//! Places: with a `topology`, every `nodes[i].region`/`zone`,
//! `detection.observers[j]` and `dcs[k]` must name a region (and a zone of
//! it) of the topology (`check_places`). Without one, the names are labels:
//! the scenario has one implicit region, and nodes in different zones or
//! regions are `zone_delay_ms` apart.
//!
//! The `database_crash`, `replication_pause`, `slow_replica` and
//! `disk_full` entries of `faults` are checked here, with their cluster.

use super::check::{self, item, join};
use super::error::Invalid;
use super::raw::RawFault;
use super::raw_database::{RawDatabase, RawDatabaseRouting, RawDetection, RawPlace};
use crate::database::detection::{LeaseSettings, QuorumSettings};
use crate::database::fencing::FencingMode;
use crate::database::promotion::CandidateRules;
use crate::database::replication::{ReplicationMode, ReplicationSettings};
use crate::database::{
    ClusterConfig, DatabaseFault, DetectionConfig, DnsRecordRouting, NodeConfig, Place,
    ProxyRouting,
};
use crate::engine::{SimDuration, SimTime};
use crate::topology::Topology;
use std::collections::BTreeSet;

/// The most databases a scenario may have.
pub const DATABASES_MAX: usize = 100;
/// The most nodes in one cluster, and the most observers.
pub const NODES_MAX: usize = 64;
/// The longest duration any database setting may have: one day.
const SETTING_MS_MAX: u64 = 86_400_000;
/// orchestrator's `RecoveryPeriodBlockSeconds` default, 3600 s.
pub const ANTI_FLAP_BLOCK_MS_QUORUM: u64 = 3_600_000;

/// Checks every cluster of `databases` alone: no topology, no faults.
pub fn validate_databases(databases: &[RawDatabase]) -> Result<Vec<ClusterConfig>, Invalid> {
    validate_databases_in(databases, &[], None, u64::MAX)
}

/// The index of the database called `name`, for a dependency call.
pub fn resolve_database(
    path: &str,
    name: &str,
    databases: &[RawDatabase],
) -> Result<usize, Invalid> {
    databases
        .iter()
        .position(|database| database.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = databases
                .iter()
                .map(|database| database.name.as_str())
                .collect();
            Invalid::new(
                path,
                format!(
                    "unknown database {name:?}; the databases are: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
}

/// Checks every cluster of `databases` (the scenario's `databases` array),
/// its places against `topology` and its entries of `faults`.
pub fn validate_databases_in(
    databases: &[RawDatabase],
    faults: &[RawFault],
    topology: Option<&Topology>,
    duration_ms: u64,
) -> Result<Vec<ClusterConfig>, Invalid> {
    check::within("databases (length)", databases.len(), 0, DATABASES_MAX)?;
    let mut names = BTreeSet::new();
    let mut clusters = Vec::with_capacity(databases.len());
    for (index, database) in databases.iter().enumerate() {
        let path = item("databases", index);
        check::name(&join(&path, "name"), &database.name)?;
        if !names.insert(database.name.as_str()) {
            return Err(Invalid::new(
                join(&path, "name"),
                format!("duplicate name {:?}: names must be unique", database.name),
            ));
        }
        clusters.push(validate_cluster(&path, database, topology)?);
    }
    validate_faults(faults, databases, &mut clusters, duration_ms)?;
    Ok(clusters)
}

/// Checks the database entries of `faults` and files each under its cluster.
fn validate_faults(
    faults: &[RawFault],
    databases: &[RawDatabase],
    clusters: &mut [ClusterConfig],
    duration_ms: u64,
) -> Result<(), Invalid> {
    for (index, fault) in faults.iter().enumerate() {
        let path = item("faults", index);
        let (database, node) = match fault {
            RawFault::DatabaseCrash(crash) => (&crash.database, &crash.node),
            RawFault::ReplicationPause(window) | RawFault::DiskFull(window) => {
                (&window.database, &window.node)
            }
            RawFault::SlowReplica(slow) => (&slow.database, &slow.node),
            _ => continue,
        };
        let cluster = resolve_database(&join(&path, "database"), database, databases)?;
        let nodes = &clusters[cluster].nodes;
        let node = nodes
            .iter()
            .position(|candidate| &candidate.name == node)
            .ok_or_else(|| {
                Invalid::new(
                    join(&path, "node"),
                    format!(
                        "unknown node {node:?} of database {database:?}; the nodes are: {}",
                        nodes
                            .iter()
                            .map(|node| node.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        let last_ms = duration_ms.saturating_sub(1);
        let window = |start_ms: u64, end_ms: u64| -> Result<(SimTime, SimTime), Invalid> {
            check::within(&join(&path, "start_ms"), start_ms, 0, last_ms)?;
            if end_ms <= start_ms {
                return Err(Invalid::new(
                    join(&path, "end_ms"),
                    format!("must be after start_ms {start_ms} (got {end_ms})"),
                ));
            }
            Ok((SimTime::from_ms(start_ms), SimTime::from_ms(end_ms)))
        };
        let checked = match fault {
            RawFault::DatabaseCrash(crash) => {
                check::within(&join(&path, "at_ms"), crash.at_ms, 0, last_ms)?;
                if let Some(after) = crash.restart_after_ms {
                    check::within(&join(&path, "restart_after_ms"), after, 1, SETTING_MS_MAX)?;
                }
                DatabaseFault::Crash {
                    node,
                    at: SimTime::from_ms(crash.at_ms),
                    restart_after: crash.restart_after_ms.map(SimDuration::from_ms),
                }
            }
            RawFault::ReplicationPause(raw) => {
                let (start, end) = window(raw.start_ms, raw.end_ms)?;
                DatabaseFault::ReplicationPause { node, start, end }
            }
            RawFault::DiskFull(raw) => {
                let (start, end) = window(raw.start_ms, raw.end_ms)?;
                DatabaseFault::DiskFull { node, start, end }
            }
            RawFault::SlowReplica(raw) => {
                let (start, end) = window(raw.start_ms, raw.end_ms)?;
                let rate_path = join(&path, "apply_rate_per_second");
                check::positive(&rate_path, raw.apply_rate_per_second)?;
                check::within_f64(&rate_path, raw.apply_rate_per_second, 0.0, 1e9)?;
                DatabaseFault::SlowReplica {
                    node,
                    start,
                    end,
                    apply_rate_per_second: raw.apply_rate_per_second,
                }
            }
            _ => unreachable!("filtered above"),
        };
        clusters[cluster].faults.push(checked);
    }
    Ok(())
}

fn place(path: &str, raw_region: &str, raw_zone: &Option<String>) -> Result<Place, Invalid> {
    check::name(&join(path, "region"), raw_region)?;
    if let Some(zone) = raw_zone {
        check::name(&join(path, "zone"), zone)?;
    }
    Ok(Place {
        region: raw_region.to_string(),
        zone: raw_zone.clone(),
    })
}

fn milliseconds(path: &str, value: u64, low: u64) -> Result<SimDuration, Invalid> {
    check::within(path, value, low, SETTING_MS_MAX)?;
    Ok(SimDuration::from_ms(value))
}

fn validate_cluster(
    path: &str,
    raw: &RawDatabase,
    topology: Option<&Topology>,
) -> Result<ClusterConfig, Invalid> {
    let nodes_path = join(path, "nodes");
    check::within(
        &format!("{nodes_path} (length)"),
        raw.nodes.len(),
        1,
        NODES_MAX,
    )?;
    let mut seen = BTreeSet::new();
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    for (index, node) in raw.nodes.iter().enumerate() {
        let here = item(&nodes_path, index);
        check::name(&join(&here, "name"), &node.name)?;
        if !seen.insert(node.name.as_str()) {
            return Err(Invalid::new(
                join(&here, "name"),
                format!("duplicate name {:?}: names must be unique", node.name),
            ));
        }
        let rate_path = join(&here, "apply_rate_per_second");
        check::positive(&rate_path, node.apply_rate_per_second)?;
        check::within_f64(&rate_path, node.apply_rate_per_second, 0.0, 1e9)?;
        nodes.push(NodeConfig {
            name: node.name.clone(),
            place: place(&here, &node.region, &node.zone)?,
            apply_rate_per_second: node.apply_rate_per_second,
            site: crate::topology::Place::region(0),
        });
    }
    let primary = match &raw.primary {
        None => 0,
        Some(name) => nodes
            .iter()
            .position(|node| &node.name == name)
            .ok_or_else(|| {
                Invalid::new(
                    join(path, "primary"),
                    format!(
                        "unknown node {name:?}; the nodes are: {}",
                        nodes
                            .iter()
                            .map(|node| node.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
    };
    let replicas = nodes.len() - 1;

    let replication_path = join(path, "replication");
    let replication = ReplicationSettings {
        mode: raw.replication.mode,
        acks_required: raw.replication.acks_required,
        semi_sync_timeout: milliseconds(
            &join(&replication_path, "semi_sync_timeout_ms"),
            raw.replication.semi_sync_timeout_ms,
            1,
        )?,
    };
    if replication.mode != ReplicationMode::Async {
        let acks_path = join(&replication_path, "acks_required");
        if replicas == 0 {
            return Err(Invalid::new(
                join(&replication_path, "mode"),
                format!(
                    "{} needs at least one replica (the cluster has one node); use async",
                    replication.mode.name()
                ),
            ));
        }
        check::within(&acks_path, replication.acks_required as usize, 1, replicas).map_err(
            |invalid| Invalid::new(invalid.path, format!("{} (the replicas)", invalid.message)),
        )?;
    }

    let write_fraction_path = join(path, "clients.write_fraction");
    check::probability(&write_fraction_path, raw.clients.write_fraction)?;
    let write_size_path = join(path, "clients.write_size_bytes");
    check::within(&write_size_path, raw.clients.write_size_bytes, 1, 1 << 30)?;

    let detection_path = join(path, "detection");
    let detection = validate_detection(&detection_path, &raw.detection)?;

    let fencing = raw.fencing.unwrap_or(match detection {
        DetectionConfig::Lease(_) => FencingMode::SelfDemote,
        DetectionConfig::Managed { .. } => FencingMode::Stonith,
        DetectionConfig::Quorum { .. } | DetectionConfig::Chapter => FencingMode::None,
    });
    if fencing == FencingMode::SelfDemote && !matches!(detection, DetectionConfig::Lease(_)) {
        return Err(Invalid::new(
            join(path, "fencing"),
            format!(
                "self_demote needs detection.kind lease (a node demotes itself when it loses its lease; got {}); use none, stonith or fencing_tokens",
                detection.kind()
            ),
        ));
    }

    let promotion_path = join(path, "promotion");
    let anti_flap_block_ms = raw.promotion.anti_flap_block_ms.unwrap_or(match detection {
        DetectionConfig::Quorum { .. } => ANTI_FLAP_BLOCK_MS_QUORUM,
        _ => 0,
    });
    let anti_flap_block = SimDuration::from_ms(anti_flap_block_ms);
    check::within(
        &join(&promotion_path, "anti_flap_block_ms"),
        anti_flap_block_ms,
        0,
        30 * SETTING_MS_MAX,
    )?;
    let lag_max_writes = raw.promotion.lag_max_writes.or(match &detection {
        DetectionConfig::Lease(settings) => {
            Some(settings.lag_max_writes(raw.clients.write_size_bytes))
        }
        _ => None,
    });
    let candidates = CandidateRules {
        lag_max_writes,
        scope: raw.promotion.scope,
        anti_flap_block,
        // PostgreSQL synchronous mode (Patroni's synchronous_mode) promotes
        // only a standby holding every acknowledged write.
        require_synchronised: replication.mode == ReplicationMode::Sync,
    };
    let client_error_path = join(path, "clients.client_error_probability");
    check::probability(&client_error_path, raw.clients.client_error_probability)?;
    raw.operation_ms.validate(&join(path, "operation_ms"))?;
    let (routing, dns) = match &raw.routing {
        RawDatabaseRouting::Proxy {
            check_interval_ms,
            rise,
        } => (
            ProxyRouting {
                check_interval: milliseconds(
                    &join(path, "routing.check_interval_ms"),
                    *check_interval_ms,
                    1,
                )?,
                rise: check::within(&join(path, "routing.rise"), *rise as usize, 1, 100)
                    .map(|()| *rise)?,
            },
            None,
        ),
        RawDatabaseRouting::Dns {
            ttl_ms,
            update_ms,
            resolver,
        } => {
            check::within(
                &join(path, "routing.ttl_ms"),
                *ttl_ms,
                1,
                crate::topology::routing::dns::TTL_MS_MAX,
            )?;
            check::within(&join(path, "routing.update_ms"), *update_ms, 0, 3_600_000)?;
            (
                ProxyRouting {
                    check_interval: SimDuration::from_ms(3_000),
                    rise: 2,
                },
                Some(DnsRecordRouting {
                    ttl: SimDuration::from_ms(*ttl_ms),
                    update: SimDuration::from_ms(*update_ms),
                    resolver: *resolver,
                }),
            )
        }
    };
    let primary_failures = match &raw.primary_failures {
        Some(failures) => {
            check::within_f64(
                &join(path, "primary_failures.mttf_ms"),
                failures.mttf_ms,
                1.0,
                1e12,
            )?;
            check::within_f64(
                &join(path, "primary_failures.mttr_ms"),
                failures.mttr_ms,
                1.0,
                1e12,
            )?;
            Some((failures.mttf_ms, failures.mttr_ms))
        }
        None => None,
    };
    check::within_f64(
        &join(path, "zone_delay_ms"),
        raw.zone_delay_ms,
        0.0,
        60_000.0,
    )?;
    check::within(
        &format!("{} (length)", join(path, "dcs")),
        raw.dcs.len(),
        0,
        NODES_MAX,
    )?;
    let dcs_places = raw
        .dcs
        .iter()
        .enumerate()
        .map(|(index, RawPlace { region, zone })| {
            place(&item(&join(path, "dcs"), index), region, zone)
        })
        .collect::<Result<Vec<Place>, Invalid>>()?;
    let mut sites = check_places(path, &mut nodes, &detection, &dcs_places, topology)?;
    if sites.dcs.is_empty() {
        sites
            .dcs
            .push(crate::topology::Place::region(nodes[primary].site.region));
    }
    Ok(ClusterConfig {
        name: raw.name.clone(),
        nodes,
        primary,
        replication,
        detection,
        candidates,
        fencing,
        write_fraction: raw.clients.write_fraction,
        reads: raw.clients.reads,
        write_size_bytes: raw.clients.write_size_bytes,
        client_error_probability: raw.clients.client_error_probability,
        operation: raw.operation_ms.clone(),
        routing,
        dns,
        dcs_sites: sites.dcs,
        observer_sites: sites.observers,
        zone_delay: SimDuration::from_ms_f64(raw.zone_delay_ms),
        primary_failures,
        faults: Vec::new(),
    })
}

/// The resolved sites of a cluster's DCS members and observers.
struct Sites {
    dcs: Vec<crate::topology::Place>,
    observers: Vec<crate::topology::Place>,
}

fn validate_detection(path: &str, raw: &RawDetection) -> Result<DetectionConfig, Invalid> {
    match raw {
        RawDetection::Lease {
            ttl_ms,
            loop_wait_ms,
            retry_timeout_ms,
            maximum_lag_on_failover_bytes,
        } => {
            let loop_wait = milliseconds(&join(path, "loop_wait_ms"), *loop_wait_ms, 1)?;
            let retry_timeout =
                milliseconds(&join(path, "retry_timeout_ms"), *retry_timeout_ms, 1)?;
            let ttl = milliseconds(&join(path, "ttl_ms"), *ttl_ms, 1)?;
            let ttl_min = LeaseSettings::ttl_min(loop_wait, retry_timeout);
            if ttl < ttl_min {
                return Err(Invalid::new(
                    join(path, "ttl_ms"),
                    format!(
                        "must be >= loop_wait_ms + 2 x retry_timeout_ms = {} (Patroni's rule: the leader must demote before its key expires) (got {ttl_ms})",
                        ttl_min.as_micros() / 1_000
                    ),
                ));
            }
            Ok(DetectionConfig::Lease(LeaseSettings {
                ttl,
                loop_wait,
                retry_timeout,
                maximum_lag_on_failover_bytes: *maximum_lag_on_failover_bytes,
            }))
        }
        RawDetection::Quorum {
            observers,
            quorum,
            probe_interval_ms,
            down_after_ms,
        } => {
            let observers_path = join(path, "observers");
            check::within(
                &format!("{observers_path} (length)"),
                observers.len(),
                1,
                NODES_MAX,
            )?;
            let places = observers
                .iter()
                .enumerate()
                .map(|(index, RawPlace { region, zone })| {
                    place(&item(&observers_path, index), region, zone)
                })
                .collect::<Result<Vec<Place>, Invalid>>()?;
            let count = observers.len() as u32;
            let quorum = quorum.unwrap_or(count / 2 + 1);
            if quorum < 1 || quorum > count {
                return Err(Invalid::new(
                    join(path, "quorum"),
                    format!("must be in [1, {count}] (the observers) (got {quorum})"),
                ));
            }
            Ok(DetectionConfig::Quorum {
                settings: QuorumSettings {
                    observers: count,
                    quorum,
                    probe_interval: milliseconds(
                        &join(path, "probe_interval_ms"),
                        *probe_interval_ms,
                        1,
                    )?,
                    down_after: milliseconds(&join(path, "down_after_ms"), *down_after_ms, 1)?,
                },
                observers: places,
            })
        }
        RawDetection::Managed {
            preset,
            failover_ms,
        } => {
            let failover_ms = match failover_ms {
                Some(distribution) => {
                    distribution.validate(&join(path, "failover_ms"))?;
                    distribution.clone()
                }
                None => preset.failover_ms(),
            };
            Ok(DetectionConfig::Managed { failover_ms })
        }
        RawDetection::Chapter {} => Ok(DetectionConfig::Chapter),
    }
}

/// Resolves every place of the cluster. With a topology, each region
/// (and zone) must exist in it; without one, names are numbered by first
/// appearance (nodes, then observers, then DCS members), so that equal
/// names give equal sites. Writes each node's `site`; returns the DCS and
/// observer sites (the DCS defaults to the initial primary's region).
fn check_places(
    path: &str,
    nodes: &mut [NodeConfig],
    detection: &DetectionConfig,
    dcs: &[Place],
    topology: Option<&Topology>,
) -> Result<Sites, Invalid> {
    let mut labels: Vec<(String, Vec<String>)> = Vec::new();
    let mut resolve = |here: &str, place: &Place| -> Result<crate::topology::Place, Invalid> {
        match topology {
            Some(topology) => {
                let region = topology.region_id(&place.region).ok_or_else(|| {
                    Invalid::new(
                        join(here, "region"),
                        format!(
                            "unknown region {:?}; the regions are: {}",
                            place.region,
                            topology
                                .regions
                                .iter()
                                .map(|region| region.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                let zone = match &place.zone {
                    None => None,
                    Some(zone) => Some(
                        topology.regions[region]
                            .zones
                            .iter()
                            .position(|candidate| candidate == zone)
                            .ok_or_else(|| {
                                Invalid::new(
                                    join(here, "zone"),
                                    format!(
                                        "zone {zone:?} is not in region {:?}; its zones are: {}",
                                        place.region,
                                        if topology.regions[region].zones.is_empty() {
                                            "none".to_string()
                                        } else {
                                            topology.regions[region].zones.join(", ")
                                        }
                                    ),
                                )
                            })?,
                    ),
                };
                Ok(crate::topology::Place { region, zone })
            }
            None => {
                let region = match labels.iter().position(|(name, _)| *name == place.region) {
                    Some(index) => index,
                    None => {
                        labels.push((place.region.clone(), Vec::new()));
                        labels.len() - 1
                    }
                };
                let zone = place.zone.as_ref().map(|zone| {
                    let zones = &mut labels[region].1;
                    match zones.iter().position(|candidate| candidate == zone) {
                        Some(index) => index,
                        None => {
                            zones.push(zone.clone());
                            zones.len() - 1
                        }
                    }
                });
                Ok(crate::topology::Place { region, zone })
            }
        }
    };
    let nodes_path = join(path, "nodes");
    for (index, node) in nodes.iter_mut().enumerate() {
        node.site = resolve(&item(&nodes_path, index), &node.place)?;
    }
    let mut observers = Vec::new();
    if let DetectionConfig::Quorum {
        observers: places, ..
    } = detection
    {
        let observers_path = join(path, "detection.observers");
        for (index, place) in places.iter().enumerate() {
            observers.push(resolve(&item(&observers_path, index), place)?);
        }
    }
    let dcs_path = join(path, "dcs");
    let mut dcs_sites = Vec::new();
    for (index, place) in dcs.iter().enumerate() {
        dcs_sites.push(resolve(&item(&dcs_path, index), place)?);
    }
    Ok(Sites {
        dcs: dcs_sites,
        observers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::promotion::RegionScope;
    use crate::database::ReadRouting;

    fn parse(json: &str) -> Result<Vec<ClusterConfig>, String> {
        let raw: Vec<RawDatabase> =
            serde_json::from_str(json).map_err(|error| error.to_string())?;
        validate_databases(&raw).map_err(|invalid| invalid.to_string())
    }

    const TWO_NODES: &str = r#"[{"name": "orders", "nodes": [
        {"name": "a", "region": "east"}, {"name": "b", "region": "west", "zone": "w1"}]}]"#;

    // An entry with only nodes gets every default: async, Patroni's lease, self-demotion.
    #[test]
    fn defaults_follow_the_lease_detector() {
        let clusters = parse(TWO_NODES).unwrap();
        let cluster = &clusters[0];
        assert_eq!(cluster.primary, 0);
        assert_eq!(cluster.replication, ReplicationSettings::default());
        assert_eq!(
            cluster.detection,
            DetectionConfig::Lease(LeaseSettings::default())
        );
        assert_eq!(cluster.fencing, FencingMode::SelfDemote);
        assert_eq!(cluster.candidates.lag_max_writes, Some(1_024));
        assert_eq!(cluster.candidates.scope, RegionScope::AnyRegion);
        assert_eq!(cluster.candidates.anti_flap_block, SimDuration::ZERO);
        assert!(!cluster.candidates.require_synchronised);
        assert_eq!(cluster.write_fraction, 0.1);
        assert_eq!(cluster.reads, ReadRouting::Primary);
        assert_eq!(cluster.nodes[0].apply_rate_per_second, 10_000.0);
        assert_eq!(
            cluster.nodes[1].place,
            Place {
                region: "west".into(),
                zone: Some("w1".into())
            }
        );
    }

    // Quorum detection defaults: a majority quorum, orchestrator's one-hour block, no fencing.
    #[test]
    fn quorum_defaults_to_a_majority_and_an_hour_block() {
        let clusters = parse(
            r#"[{"name": "o", "nodes": [{"name": "a", "region": "east"}, {"name": "b", "region": "west"}],
                "replication": {"mode": "sync"},
                "detection": {"kind": "quorum", "observers": [{"region": "east"}, {"region": "west"}, {"region": "west"}]}}]"#,
        )
        .unwrap();
        let cluster = &clusters[0];
        let DetectionConfig::Quorum {
            settings,
            observers,
        } = &cluster.detection
        else {
            panic!("{:?}", cluster.detection)
        };
        assert_eq!(*settings, QuorumSettings::sentinel(3));
        assert_eq!(observers.len(), 3);
        assert_eq!(cluster.fencing, FencingMode::None);
        assert_eq!(
            cluster.candidates.anti_flap_block,
            SimDuration::from_ms(3_600_000)
        );
        assert!(cluster.candidates.require_synchronised);
    }

    // Managed detection takes its preset's distribution and fences with STONITH.
    #[test]
    fn managed_uses_its_preset() {
        let clusters = parse(
            r#"[{"name": "o", "nodes": [{"name": "a", "region": "east"}, {"name": "b", "region": "east"}],
                "detection": {"kind": "managed", "preset": "aurora"}}]"#,
        )
        .unwrap();
        assert_eq!(
            clusters[0].detection,
            DetectionConfig::Managed {
                failover_ms: crate::database::detection::ManagedPreset::Aurora.failover_ms()
            }
        );
        assert_eq!(clusters[0].fencing, FencingMode::Stonith);
    }

    fn error(json: &str) -> String {
        parse(json).unwrap_err()
    }

    // Bad input names the path and what is allowed.
    #[test]
    fn bad_input_names_the_path_and_what_is_allowed() {
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}, {"name": "b", "region": "e"}],
                "detection": {"kind": "quorum", "observers": [{"region": "e"}, {"region": "w"}], "quorum": 3}}]"#
            ),
            "databases[0].detection.quorum: must be in [1, 2] (the observers) (got 3)"
        );
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}], "clients": {"write_fraction": 1.5}}]"#
            ),
            "databases[0].clients.write_fraction: must be a probability in [0, 1] (got 1.5)"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}],
                "detection": {"kind": "lease", "ttl_ms": 20000}}]"#),
            "databases[0].detection.ttl_ms: must be >= loop_wait_ms + 2 x retry_timeout_ms = 30000 (Patroni's rule: the leader must demote before its key expires) (got 20000)"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}], "primary": "z"}]"#),
            "databases[0].primary: unknown node \"z\"; the nodes are: a"
        );
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}, {"name": "a", "region": "e"}]}]"#
            ),
            "databases[0].nodes[1].name: duplicate name \"a\": names must be unique"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}], "replication": {"mode": "sync"}}]"#),
            "databases[0].replication.mode: sync needs at least one replica (the cluster has one node); use async"
        );
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}, {"name": "b", "region": "e"}],
                "replication": {"mode": "semi_sync", "acks_required": 2}}]"#
            ),
            "databases[0].replication.acks_required: must be in [1, 1] (got 2) (the replicas)"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}], "fencing": "self_demote",
                "detection": {"kind": "chapter"}}]"#),
            "databases[0].fencing: self_demote needs detection.kind lease (a node demotes itself when it loses its lease; got chapter); use none, stonith or fencing_tokens"
        );
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e", "apply_rate_per_second": 0}]}]"#
            ),
            "databases[0].nodes[0].apply_rate_per_second: must be a finite number > 0 (got 0)"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": []}]"#),
            "databases[0].nodes (length): must be in [1, 64] (got 0)"
        );
        assert_eq!(
            error(
                r#"[{"name": "o", "nodes": [{"name": "a", "region": "e"}]}, {"name": "o", "nodes": [{"name": "a", "region": "e"}]}]"#
            ),
            "databases[1].name: duplicate name \"o\": names must be unique"
        );
        assert_eq!(
            error(r#"[{"name": "o", "nodes": [{"name": "a", "region": "us east"}]}]"#),
            "databases[0].nodes[0].region: must be 1 to 64 characters of a-z, A-Z, 0-9, '-' or '_' (got \"us east\")"
        );
    }
}
