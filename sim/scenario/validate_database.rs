//! Checks the scenario's `databases` section and builds each cluster's
//! `database::ClusterConfig`, filling in the defaults that depend on the
//! detector. The first problem found is reported, with its JSON path.
//!
//! PHASE 2 (issue 7's topology): region and zone names are only checked for
//! their form here. Once the topology is on this branch, every
//! `nodes[i].region`, `nodes[i].zone` and `detection.observers[j].region`
//! must name a region (and a zone of it) of the scenario's topology; see
//! `check_places` below and docs/databases-integration.md.

use super::check::{self, item, join};
use super::error::Invalid;
use super::raw_database::{RawDatabase, RawDetection, RawPlace};
use crate::database::detection::{LeaseSettings, QuorumSettings};
use crate::database::fencing::FencingMode;
use crate::database::promotion::CandidateRules;
use crate::database::replication::{ReplicationMode, ReplicationSettings};
use crate::database::{ClusterConfig, DetectionConfig, NodeConfig, Place};
use crate::engine::SimDuration;
use std::collections::BTreeSet;

/// The most databases a scenario may have.
pub const DATABASES_MAX: usize = 100;
/// The most nodes in one cluster, and the most observers.
pub const NODES_MAX: usize = 64;
/// The longest duration any database setting may have: one day.
const SETTING_MS_MAX: u64 = 86_400_000;
/// orchestrator's `RecoveryPeriodBlockSeconds` default, 3600 s.
pub const ANTI_FLAP_BLOCK_MS_QUORUM: u64 = 3_600_000;

/// Checks every cluster of `databases` (the scenario's `databases` array).
pub fn validate_databases(databases: &[RawDatabase]) -> Result<Vec<ClusterConfig>, Invalid> {
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
        clusters.push(validate_cluster(&path, database)?);
    }
    Ok(clusters)
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

fn validate_cluster(path: &str, raw: &RawDatabase) -> Result<ClusterConfig, Invalid> {
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
    check_places(path, &nodes, &detection)?;
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
    })
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

/// Checks the places against the topology. PHASE 2: until the topology of
/// issue 7 is merged there is nothing to check names against, so this
/// accepts every well-formed name; phase 2 makes it reject a region or zone
/// the topology does not define (`databases[0].nodes[1].region: unknown
/// region "us-east-9"; the regions are: ...`).
fn check_places(
    _path: &str,
    _nodes: &[NodeConfig],
    _detection: &DetectionConfig,
) -> Result<(), Invalid> {
    Ok(())
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
