//! The `databases` section of a scenario file, exactly as written: serde
//! types with defaults, no cross-checks. `validate_database` turns each
//! entry into a `database::ClusterConfig`. Field docs here are the scenario
//! reference's source for the Databases section.

use crate::database::detection::ManagedPreset;
use crate::database::fencing::FencingMode;
use crate::database::promotion::RegionScope;
use crate::database::replication::ReplicationMode;
use crate::database::ReadRouting;
use crate::model::distribution::Distribution;
use serde::{Deserialize, Serialize};

/// One database cluster: a primary and its replicas.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// Unique name among the databases.
    pub name: String,
    /// The nodes, 1 to 64; the first is the primary unless `primary` says otherwise.
    pub nodes: Vec<RawDatabaseNode>,
    /// The initial primary's name; default the first node.
    #[serde(default)]
    pub primary: Option<String>,
    /// Replication; default `async`.
    #[serde(default)]
    pub replication: RawReplication,
    /// Failure detection; default `lease` with Patroni's defaults.
    #[serde(default)]
    pub detection: RawDetection,
    /// Candidate rules; defaults depend on `detection.kind`.
    #[serde(default)]
    pub promotion: RawPromotion,
    /// `none`, `self_demote`, `stonith` or `fencing_tokens`; default
    /// `self_demote` with `lease`, `stonith` with `managed`, `none` otherwise.
    #[serde(default)]
    pub fencing: Option<FencingMode>,
    /// How clients use the database.
    #[serde(default)]
    pub clients: RawDatabaseClients,
    /// A node's work per read or write; default constant 1 ms.
    #[serde(default = "operation_default")]
    pub operation_ms: Distribution,
    /// How callers find the primary; default a proxy with Patroni's HAProxy
    /// template checks (`inter 3s`, `rise 2`).
    #[serde(default)]
    pub routing: RawDatabaseRouting,
    /// Where the DCS members of `lease` detection run; default one member in
    /// the initial primary's region. A node reaches the DCS when it reaches
    /// a majority of them.
    #[serde(default)]
    pub dcs: Vec<RawPlace>,
    /// One-way delay between nodes in different zones or regions when the
    /// scenario has no `topology` (ms, in `[0, 60000]`); default 0. With a
    /// topology the latency matrix gives every delay.
    #[serde(default)]
    pub zone_delay_ms: f64,
    /// The primary (whichever node holds the role) fails at random and its
    /// node is repaired later; default none.
    #[serde(default)]
    pub primary_failures: Option<RawPrimaryFailures>,
}

/// An MTTF/MTTR crash process on the primary role: the node that is primary
/// crashes an exponential time (mean `mttf_ms`) after it took the role (or
/// came back holding it), and restarts an exponential time (mean `mttr_ms`)
/// after its crash, as a replica when another node was promoted meanwhile.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrimaryFailures {
    /// Mean time to failure, ms, in `[1, 1e12]`.
    pub mttf_ms: f64,
    /// Mean time to repair, ms, in `[1, 1e12]`.
    pub mttr_ms: f64,
}

fn operation_default() -> Distribution {
    Distribution::Constant { value_ms: 1.0 }
}

/// How callers find the current primary.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDatabaseRouting {
    /// A proxy beside each caller (HAProxy on Patroni's REST API) checks
    /// which node is primary every `check_interval_ms` and moves writes to
    /// a new primary after `rise` passing checks it can reach.
    Proxy {
        /// Time between checks, ms, in `[1, 3600000]`; default 3000.
        #[serde(default = "check_interval_default")]
        check_interval_ms: u64,
        /// Passing checks before the new primary takes traffic, in `[1, 100]`; default 2.
        #[serde(default = "rise_default")]
        rise: u32,
    },
    /// A DNS name for the primary (RDS/Aurora endpoints, a Patroni callback
    /// updating Route 53): the record points at the new primary `update_ms`
    /// after a promotion, and each caller re-resolves only when its cache
    /// (the `resolver` class's time for `ttl_ms`) expires.
    Dns {
        /// Record TTL, ms, in `[1, 86400000]`; default 5000 (Aurora and RDS endpoints).
        #[serde(default = "dns_ttl_default")]
        ttl_ms: u64,
        /// From the promotion until the record answers with the new
        /// primary, ms, in `[0, 3600000]`; default 0.
        #[serde(default)]
        update_ms: u64,
        /// `ttl`, `jvm` (TTL + 30 s), `browser` (at least 60 s) or
        /// `forever`; default `ttl`.
        #[serde(default = "dns_resolver_default")]
        resolver: crate::topology::routing::dns::ResolverClass,
    },
}

fn dns_ttl_default() -> u64 {
    5_000
}

fn dns_resolver_default() -> crate::topology::routing::dns::ResolverClass {
    crate::topology::routing::dns::ResolverClass::Ttl
}

fn check_interval_default() -> u64 {
    3_000
}

fn rise_default() -> u32 {
    2
}

impl Default for RawDatabaseRouting {
    fn default() -> Self {
        RawDatabaseRouting::Proxy {
            check_interval_ms: check_interval_default(),
            rise: rise_default(),
        }
    }
}

/// `database_crash`: a node crashes at `at_ms` and, if `restart_after_ms`
/// is given, restarts that long after (a returning old primary rejoins as a
/// replica, unless fencing is `none` and nobody replaced it).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseCrash {
    /// The cluster.
    pub database: String,
    /// The node's name.
    pub node: String,
    /// When, ms, before `duration_ms`.
    pub at_ms: u64,
    /// Down time, ms, `> 0`; default none (stays down).
    #[serde(default)]
    pub restart_after_ms: Option<u64>,
}

/// `replication_pause` and `disk_full`: one node, one window.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseWindow {
    /// The cluster.
    pub database: String,
    /// The node's name.
    pub node: String,
    /// Start, ms, before `duration_ms`.
    pub start_ms: u64,
    /// End, ms, after `start_ms`.
    pub end_ms: u64,
}

/// `slow_replica`: a node applies at `apply_rate_per_second` in the window.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlowReplica {
    /// The cluster.
    pub database: String,
    /// The node's name.
    pub node: String,
    /// Start, ms, before `duration_ms`.
    pub start_ms: u64,
    /// End, ms, after `start_ms`.
    pub end_ms: u64,
    /// The apply rate in the window, writes per second, `> 0`.
    pub apply_rate_per_second: f64,
}

/// One node.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseNode {
    /// Unique name within the cluster.
    pub name: String,
    /// The region it runs in.
    pub region: String,
    /// The zone it runs in; default none.
    #[serde(default)]
    pub zone: Option<String>,
    /// Writes per second it applies as a replica; default 10000.
    #[serde(default = "apply_rate_default")]
    pub apply_rate_per_second: f64,
}

fn apply_rate_default() -> f64 {
    10_000.0
}

/// Replication settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplication {
    /// `async` (default), `semi_sync` or `sync`.
    #[serde(default)]
    pub mode: ReplicationMode,
    /// Replica acknowledgements a write waits for (`semi_sync`, `sync`); default 1.
    #[serde(default = "acks_default")]
    pub acks_required: u32,
    /// How long `semi_sync` waits before reverting to async, in ms; default 10000.
    #[serde(default = "semi_sync_timeout_default")]
    pub semi_sync_timeout_ms: u64,
}

fn acks_default() -> u32 {
    1
}

fn semi_sync_timeout_default() -> u64 {
    10_000
}

impl Default for RawReplication {
    fn default() -> Self {
        RawReplication {
            mode: ReplicationMode::Async,
            acks_required: acks_default(),
            semi_sync_timeout_ms: semi_sync_timeout_default(),
        }
    }
}

/// Failure detection: `{"kind": "lease", ...}`, `{"kind": "quorum", ...}`,
/// `{"kind": "managed", ...}` or `{"kind": "chapter"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDetection {
    /// Patroni's leader lease.
    Lease {
        /// Leader key time to live, ms; default 30000.
        #[serde(default = "ttl_default")]
        ttl_ms: u64,
        /// HA loop period, ms; default 10000.
        #[serde(default = "ten_seconds")]
        loop_wait_ms: u64,
        /// DCS retry time before the leader demotes, ms; default 10000.
        #[serde(default = "ten_seconds")]
        retry_timeout_ms: u64,
        /// The most a replica may lag and be promoted, bytes; default 1048576.
        #[serde(default = "maximum_lag_default")]
        maximum_lag_on_failover_bytes: u64,
    },
    /// Sentinel-style observers.
    Quorum {
        /// Where the observers run, at least one.
        observers: Vec<RawPlace>,
        /// Observers that must agree; default a majority.
        #[serde(default)]
        quorum: Option<u32>,
        /// Time between probes, ms; default 1000.
        #[serde(default = "probe_interval_default")]
        probe_interval_ms: u64,
        /// Silence before an observer calls the primary down, ms; default 30000.
        #[serde(default = "down_after_default")]
        down_after_ms: u64,
    },
    /// A managed service's failover time.
    Managed {
        /// `rds_multi_az` (default, 60-120 s) or `aurora` (30-60 s).
        #[serde(default)]
        preset: ManagedPreset,
        /// Replaces the preset's distribution.
        #[serde(default)]
        failover_ms: Option<Distribution>,
    },
    /// The chapter's client-side failover.
    Chapter {},
}

fn ttl_default() -> u64 {
    30_000
}

fn ten_seconds() -> u64 {
    10_000
}

fn maximum_lag_default() -> u64 {
    1_048_576
}

fn probe_interval_default() -> u64 {
    1_000
}

fn down_after_default() -> u64 {
    30_000
}

impl Default for RawDetection {
    fn default() -> Self {
        RawDetection::Lease {
            ttl_ms: ttl_default(),
            loop_wait_ms: ten_seconds(),
            retry_timeout_ms: ten_seconds(),
            maximum_lag_on_failover_bytes: maximum_lag_default(),
        }
    }
}

/// A region and an optional zone.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlace {
    /// The region.
    pub region: String,
    /// The zone; default none.
    #[serde(default)]
    pub zone: Option<String>,
}

/// Candidate rules.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromotion {
    /// The most writes a candidate may lag; default none, or
    /// `maximum_lag_on_failover_bytes / write_size_bytes` with `lease`.
    #[serde(default)]
    pub lag_max_writes: Option<u64>,
    /// `any_region` (default) or `same_region`.
    #[serde(default)]
    pub scope: RegionScope,
    /// No automatic failover within this long after the last, ms; default
    /// 3600000 with `quorum` (orchestrator), 0 otherwise.
    #[serde(default)]
    pub anti_flap_block_ms: Option<u64>,
}

/// How clients use the database.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseClients {
    /// The fraction of calls that are writes; default 0.1.
    #[serde(default = "write_fraction_default")]
    pub write_fraction: f64,
    /// `primary` (default), `replicas` or `any`.
    #[serde(default)]
    pub reads: ReadRouting,
    /// Bytes per write; default 1024.
    #[serde(default = "write_size_default")]
    pub write_size_bytes: u64,
    /// The chance that a call ends in a client error (a bad query, a
    /// constraint violation), in `[0, 1]`; default 0.
    #[serde(default)]
    pub client_error_probability: f64,
}

fn write_fraction_default() -> f64 {
    0.1
}

fn write_size_default() -> u64 {
    1_024
}

impl Default for RawDatabaseClients {
    fn default() -> Self {
        RawDatabaseClients {
            write_fraction: write_fraction_default(),
            reads: ReadRouting::Primary,
            write_size_bytes: write_size_default(),
            client_error_probability: 0.0,
        }
    }
}
