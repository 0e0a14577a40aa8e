//! Databases: a primary and its replicas placed in regions and zones,
//! replication, failure detection, promotion, fencing and the write ledger.
//!
//! Phase 1 (this module) is the pure part: every piece is a state machine
//! that takes `now` and inputs and returns decisions, unit- and
//! property-tested alone, with no event loop and no network of its own.
//! Reachability and delays are inputs the caller computes (the world's
//! adapter, from the topology and network of the regions issue, in phase 2;
//! see `docs/databases-integration.md`). Places are plain
//! `(region, zone)` names here for the same reason.
//!
//! | file | what it is |
//! |---|---|
//! | `replication.rs` | `Replication`: `async`, `semi_sync`, `sync`; LSN positions per node; lag from link delay plus apply backlog; promotion forks the history |
//! | `detection.rs` | `LeaseDetector` (Patroni), `QuorumDetector` (Sentinel), `ManagedDetector` (RDS, Aurora) |
//! | `promotion.rs` | `Promoter`: candidate rules (maximum lag, region scope, anti-flap block, synchronised only) |
//! | `fencing.rs` | `Fencing`: `none`, `self_demote`, `stonith`, `fencing_tokens`; who accepts a write |
//! | `ledger.rs` | `WriteLedger`: every write from issued to surviving, lost or divergent; RPO, RTO, split-brain seconds, stale reads |
//! | `chapter.rs` | `ChapterFailover`: the chapter's `DatabaseFailover`, exactly as written, with its counterexamples |
//! | `failures.rs` | `PrimaryFailures`: the primary role's MTTF/MTTR crash process |
//!
//! This file holds the checked configuration of a cluster (`ClusterConfig`),
//! which `scenario::validate_database` builds from the scenario's
//! `databases` section.
//!
//! Why positions and not lists of writes: a node's data is a prefix of the
//! history, so "which writes does replica r hold" is one number, a
//! promotion is a fork at one number, and the ledger needs counts and LSN
//! ranges only. Memory does not grow with the number of writes.

pub mod chapter;
pub mod detection;
pub mod failures;
pub mod fencing;
pub mod ledger;
pub mod promotion;
pub mod replication;

use crate::model::distribution::Distribution;
use detection::{LeaseSettings, QuorumSettings};
use fencing::FencingMode;
use promotion::CandidateRules;
use replication::ReplicationSettings;
use serde::{Deserialize, Serialize};

/// Where a node or an observer is: a region and, optionally, a zone in it.
/// Names are checked against the topology in phase 2.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// The region's name.
    pub region: String,
    /// The zone's name, if placed in one.
    pub zone: Option<String>,
}

/// One database node, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Unique within its cluster.
    pub name: String,
    /// Where it runs.
    pub place: Place,
    /// Writes per second it applies as a replica, `> 0`.
    pub apply_rate_per_second: f64,
    /// `place` resolved: against the topology's regions and zones, or,
    /// without a topology, numbered by first appearance in the cluster.
    pub site: crate::topology::Place,
}

/// How failures are detected and a replica promoted, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum DetectionConfig {
    /// Patroni's leader lease.
    Lease(LeaseSettings),
    /// Sentinel-style observers; `observers[i]` is observer i's place.
    Quorum {
        /// The settings.
        settings: QuorumSettings,
        /// Where each observer runs.
        observers: Vec<Place>,
    },
    /// A managed service's failover time.
    Managed {
        /// From failure to the standby serving.
        failover_ms: Distribution,
    },
    /// The chapter's client-side `DatabaseFailover`: the primary, then the
    /// replicas in node order.
    Chapter,
}

impl DetectionConfig {
    /// The `kind` as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            DetectionConfig::Lease(_) => "lease",
            DetectionConfig::Quorum { .. } => "quorum",
            DetectionConfig::Managed { .. } => "managed",
            DetectionConfig::Chapter => "chapter",
        }
    }
}

/// Where clients send reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadRouting {
    /// Every read goes to the primary (never stale, unless split brain).
    #[default]
    Primary,
    /// Reads go to the replicas (round-robin), stale by their apply lag.
    Replicas,
    /// Reads go to any node, primary included.
    Any,
}

impl ReadRouting {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ReadRouting::Primary => "primary",
            ReadRouting::Replicas => "replicas",
            ReadRouting::Any => "any",
        }
    }
}

/// One database cluster, checked: what the engine will run in phase 2.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Unique among the scenario's databases.
    pub name: String,
    /// The nodes; indices are node ids.
    pub nodes: Vec<NodeConfig>,
    /// The initial primary's index.
    pub primary: usize,
    /// Replication mode and its settings.
    pub replication: ReplicationSettings,
    /// Failure detection.
    pub detection: DetectionConfig,
    /// Candidate rules, with the detector's defaults filled in.
    pub candidates: CandidateRules,
    /// Fencing, with the detector's default filled in.
    pub fencing: FencingMode,
    /// The fraction of the clients' calls that are writes, in `[0, 1]`.
    pub write_fraction: f64,
    /// Where reads go.
    pub reads: ReadRouting,
    /// Bytes per write, to turn byte limits into writes.
    pub write_size_bytes: u64,
    /// The chance that a call ends in a client error, in `[0, 1]`.
    pub client_error_probability: f64,
    /// A node's work per read or write.
    pub operation: Distribution,
    /// How callers find the primary (the proxy's checks; unused with `dns`).
    pub routing: ProxyRouting,
    /// Callers find the primary through a DNS record instead of a proxy.
    pub dns: Option<DnsRecordRouting>,
    /// Where the DCS members of `lease` detection run (resolved sites).
    pub dcs_sites: Vec<crate::topology::Place>,
    /// Where the observers of `quorum` detection run (resolved sites; empty otherwise).
    pub observer_sites: Vec<crate::topology::Place>,
    /// One-way delay between different sites when the scenario has no topology.
    pub zone_delay: crate::engine::SimDuration,
    /// The primary's crash process, `(mttf_ms, mttr_ms)`; `None` without one.
    pub primary_failures: Option<(f64, f64)>,
    /// The `faults` entries that hit this cluster, in file order.
    pub faults: Vec<DatabaseFault>,
}

/// A proxy beside each caller that follows the primary (HAProxy with
/// Patroni's REST checks). Defaults from Patroni's HAProxy template:
/// `inter 3s`, `rise 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyRouting {
    /// Time between two checks.
    pub check_interval: crate::engine::SimDuration,
    /// Passing checks of the new primary before it takes traffic.
    pub rise: u32,
}

/// A fault on one node of one cluster, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseFault {
    /// The node crashes at `at`, and restarts after `restart_after` if given.
    Crash {
        /// The node.
        node: usize,
        /// When.
        at: crate::engine::SimTime,
        /// Down time, if it restarts.
        restart_after: Option<crate::engine::SimDuration>,
    },
    /// Replication to the node stops (receiving and applying) in `[start, end)`.
    ReplicationPause {
        /// The node.
        node: usize,
        /// Start.
        start: crate::engine::SimTime,
        /// End.
        end: crate::engine::SimTime,
    },
    /// The node applies at `apply_rate_per_second` in `[start, end)`.
    SlowReplica {
        /// The node.
        node: usize,
        /// Start.
        start: crate::engine::SimTime,
        /// End.
        end: crate::engine::SimTime,
        /// The reduced rate.
        apply_rate_per_second: f64,
    },
    /// Writes on the node fail in `[start, end)`; reads work.
    DiskFull {
        /// The node.
        node: usize,
        /// Start.
        start: crate::engine::SimTime,
        /// End.
        end: crate::engine::SimTime,
    },
}

impl DatabaseFault {
    /// The node it hits.
    pub fn node(&self) -> usize {
        match self {
            DatabaseFault::Crash { node, .. }
            | DatabaseFault::ReplicationPause { node, .. }
            | DatabaseFault::SlowReplica { node, .. }
            | DatabaseFault::DiskFull { node, .. } => *node,
        }
    }

    /// When it begins and, if it ends by itself, when it ends.
    pub fn window(&self) -> (crate::engine::SimTime, Option<crate::engine::SimTime>) {
        match self {
            DatabaseFault::Crash {
                at, restart_after, ..
            } => (*at, restart_after.map(|after| *at + after)),
            DatabaseFault::ReplicationPause { start, end, .. }
            | DatabaseFault::SlowReplica { start, end, .. }
            | DatabaseFault::DiskFull { start, end, .. } => (*start, Some(*end)),
        }
    }

    /// The kind as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseFault::Crash { .. } => "database_crash",
            DatabaseFault::ReplicationPause { .. } => "replication_pause",
            DatabaseFault::SlowReplica { .. } => "slow_replica",
            DatabaseFault::DiskFull { .. } => "disk_full",
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pure machines composed by hand, as the phase 2 adapter will:
    //! replication, Patroni's lease, the candidate rules, fencing and the
    //! ledger, driven in time order by a seeded Poisson write stream.

    use super::detection::{LeaseAction, LeaseDetector, LeaseSettings, LoopView};
    use super::fencing::{Fencing, FencingMode, Gate};
    use super::ledger::{FailoverRecord, WriteLedger};
    use super::promotion::{Candidate, CandidateRules, Promoter};
    use super::replication::{Link, Replication, ReplicationSettings};
    use crate::engine::{RngFactory, SimDuration, SimTime, MICROS_PER_SECOND_F64};

    struct Outcome {
        detected_after: SimDuration,
        promoted_after: SimDuration,
        lost: u64,
        expected_lost: u64,
        promoted: usize,
    }

    /// Node 0 (east) leads; node 1 (east, 20 ms) and node 2 (west, 40 ms)
    /// follow. 100 writes/s; node 0 crashes at 60 s; Patroni's defaults.
    fn crash_and_failover(seed: u64) -> Outcome {
        let factory = RngFactory::new(seed);
        let mut writes = factory.stream("test/writes");
        let mut phases = factory.stream("test/phases");
        let settings = LeaseSettings::default();
        let regions = ["east", "east", "west"];
        let delays = [0, 20, 40].map(SimDuration::from_ms);
        let links = delays.map(Link::up);
        let mut replication =
            Replication::new(ReplicationSettings::default(), &[1e4; 3], &links, 0);
        let phase_draws: Vec<SimDuration> = (0..3)
            .map(|_| SimDuration(phases.between(0, settings.loop_wait.as_micros() - 1)))
            .collect();
        let mut lease = LeaseDetector::new(settings, 0, &phase_draws);
        let promoter = Promoter::new(CandidateRules {
            lag_max_writes: Some(settings.lag_max_writes(1_024)),
            ..CandidateRules::default()
        });
        let mut fencing = Fencing::new(FencingMode::SelfDemote, 3, 0);
        let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 200);
        let crash_at = SimTime::from_ms(60_000);
        let mut next_write = 0.0f64;
        let mut crashed = false;
        let mut expected_lost = 0;
        let mut decided: Option<(usize, SimTime, SimTime)> = None;
        loop {
            let write_at = SimTime(next_write as u64);
            let (node, loop_at) = lease.next_loop();
            if let Some((chosen, detected_at, ready_at)) = decided {
                if ready_at <= loop_at.min(write_at) {
                    // The promotion completes after the replay.
                    assert_eq!(
                        fencing.on_promotion(chosen, 0, true),
                        Gate::Proceed { fenced: false }
                    );
                    let promotion =
                        replication.promote(ready_at, chosen, &[Link::down(), links[1], links[2]]);
                    let record = FailoverRecord {
                        failure_at: crash_at,
                        detected_at,
                        promoted_at: ready_at,
                        routed_at: None,
                        from_node: 0,
                        to_node: chosen,
                        lost_writes: 0,
                        lost_lsns: None,
                        lag_at_failure: SimDuration::ZERO,
                        false_failover: false,
                    };
                    ledger.promoted(ready_at, &promotion, record);
                    ledger.set_writable_primaries(ready_at, fencing.writable_primaries());
                    let summary = ledger.summary(ready_at);
                    assert_eq!(
                        summary.totals.issued,
                        summary.totals.acknowledged + summary.totals.failed
                    );
                    return Outcome {
                        detected_after: detected_at.saturating_since(crash_at),
                        promoted_after: ready_at.saturating_since(crash_at),
                        lost: summary.totals.lost,
                        expected_lost,
                        promoted: chosen,
                    };
                }
            }
            if !crashed && crash_at <= loop_at.min(write_at) {
                crashed = true;
                replication.crash(crash_at, 0);
                fencing.on_crash(0);
                ledger.set_writable_primaries(crash_at, fencing.writable_primaries());
                expected_lost = replication.committed_lsn() - replication.received_lsn(1);
                continue;
            }
            if write_at < loop_at && !crashed {
                let (_, acknowledged) = replication.write(write_at);
                assert!(acknowledged);
                ledger.issued(write_at, 1);
                ledger.acknowledged(write_at, 0, 1);
                next_write += -(1.0 - writes.unit()).ln() / 100.0 * MICROS_PER_SECOND_F64;
                continue;
            }
            if write_at < loop_at {
                // Clients' writes fail while there is no primary.
                ledger.issued(write_at, 1);
                ledger.failed(write_at, 1);
                next_write += -(1.0 - writes.unit()).ln() / 100.0 * MICROS_PER_SECOND_F64;
                continue;
            }
            replication.advance(loop_at);
            let candidates: Vec<Candidate<'_>> = (1..3)
                .map(|index| Candidate {
                    node: index,
                    region: regions[index],
                    available: replication.alive(index),
                    received_lsn: replication.received_lsn(index),
                })
                .collect();
            let choice = promoter.choose(
                loop_at,
                "east",
                replication.head_lsn(),
                replication.committed_lsn(),
                &candidates,
            );
            let view = LoopView {
                alive: node != 0 || !crashed,
                dcs_reachable: true,
                eligible: choice == Ok(node) && decided.is_none(),
            };
            match lease.on_loop(loop_at, node, view) {
                LeaseAction::Promote => {
                    let replay = replication.replay_time(node).expect("it applies");
                    decided = Some((node, loop_at, loop_at + replay));
                }
                LeaseAction::Demote => {
                    fencing.on_lease_lost(node);
                }
                _ => {}
            }
        }
    }

    // Fidelity: detection inside [ttl - loop_wait, ttl + loop_wait], the
    // promotion after the replay, the most advanced replica promoted, and
    // the ledger's lost writes are exactly the acknowledged writes it lacked:
    // on average write rate x shipping lag (100/s x 20 ms = 2).
    #[test]
    fn patroni_crash_failover_composes_from_the_pure_machines() {
        let settings = LeaseSettings::default();
        let runs = 300;
        let mut lost_total = 0;
        for seed in 0..runs {
            let outcome = crash_and_failover(seed);
            assert!(outcome.detected_after >= settings.ttl - settings.loop_wait);
            assert!(outcome.detected_after <= settings.ttl + settings.loop_wait);
            assert!(outcome.promoted_after >= outcome.detected_after);
            assert!(outcome.promoted_after <= outcome.detected_after + SimDuration::from_ms(1));
            assert_eq!(outcome.promoted, 1);
            assert_eq!(outcome.lost, outcome.expected_lost);
            lost_total += outcome.lost;
        }
        let mean = lost_total as f64 / runs as f64;
        let half_width = 3.29 * (2.0f64 / runs as f64).sqrt();
        assert!((mean - 2.0).abs() < half_width, "mean lost {mean}");
    }
}

/// Callers find the primary through a DNS name (an RDS or Aurora cluster
/// endpoint; a Patroni callback that rewrites a Route 53 record): the
/// failover manager points the record at the new primary `update` after
/// the promotion, and each caller keeps what it resolved for its resolver
/// class's cache time (`topology::routing::dns::ResolverClass::cache_for`
/// of `ttl`), re-resolving as its cache expires. Until then it keeps
/// sending writes to the old primary. Defaults: `ttl` 5 s (Aurora's and
/// RDS's endpoints), `update` 0 (a managed failover time already includes
/// it), resolver `ttl` (honours the TTL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRecordRouting {
    /// The record's TTL.
    pub ttl: crate::engine::SimDuration,
    /// From the promotion until the record answers with the new primary.
    pub update: crate::engine::SimDuration,
    /// How every caller caches what it resolved.
    pub resolver: crate::topology::routing::dns::ResolverClass,
}

impl DnsRecordRouting {
    /// How long a caller keeps an answer; `None` is forever.
    pub fn cache_for(&self) -> Option<crate::engine::SimDuration> {
        self.resolver.cache_for(self.ttl)
    }
}
