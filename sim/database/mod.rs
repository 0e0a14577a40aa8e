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
}
