//! The world's adapter for databases: it owns one live cluster per
//! `Scenario::databases` entry and drives the pure machines of `database/`
//! (replication, detection, promotion, fencing, the ledger, the chapter's
//! failover) from the event loop. The world calls it from four places only:
//! `send_attempt` (a dependency call whose target is a database),
//! `schedule_start`, `handle` (`Event::Database`) and `finish`. Without
//! databases none of this is built and no event is scheduled.
//!
//! ## One database call
//!
//! The transport of a dependency stack whose target is a database
//! sends an operation (`Op`) instead of a job: a write with the cluster's
//! `write_fraction`, else a read. A write goes to the node the caller's
//! routing points at (the proxy's current primary, the node its cached DNS
//! answer names, or the chapter's `currentPrimary`), a read per `reads`.
//! The operation crosses the network (the scenario's `network.latency_ms`
//! plus the regions adapter's `deliver` between the caller instance's place
//! and the node's: one network, one set of latency streams and fault
//! windows for service and database calls; without a topology,
//! `zone_delay_ms` between different sites), is handled at the node
//! (`DatabaseEvent::Op`), and the answer comes back after `operation_ms`
//! plus the way back. A partition drops it: nobody answers, and the
//! caller's timeout (if any) ends the attempt, as for a service.
//!
//! At the node: down → a retryable error; a client error drawn with
//! `client_error_probability` → a non-retryable error; a write refused by
//! fencing or a full disk → a retryable error (counted failed); a write
//! accepted by the current primary → `Replication::write`, answered when
//! acknowledged (at once in `async`, after replica acknowledgements in
//! `semi_sync`/`sync`); a write accepted by a primary of an older epoch
//! (split brain) → acknowledged at once and counted divergent; a read →
//! served, stale if the node misses an acknowledged write.
//!
//! ## Failover
//!
//! Detection runs as timed events (`Lease` loops, quorum `Probe`s, the
//! `Managed` failover time, or, for `chapter`, inside the caller on any
//! error). A decision waits for the candidate's replay (`PromotionReady`),
//! then fencing gates it, `Replication::promote` forks the history, the
//! ledger counts lost writes and opens the failover record, and each
//! caller's proxy moves to the new primary after `rise` passing checks it
//! can reach (`RouteCheck`), or, with DNS routing, re-resolves when its
//! cache expires and gets the new primary once the record has changed
//! (`update_ms` after the promotion); when every caller has moved, the
//! record's routing time is set. With `primary_failures`, the primary role
//! crashes at random (`PrimaryFailure`) and its node is repaired later
//! (`NodeRepair`); the next failure is drawn when a node takes the role. The failure instant of a record is the primary's
//! crash, or the first instant it was cut off from its detectors (DCS
//! majority, observer majority, or every other node); with none (the
//! primary was fine), the failover is false and its failure instant is the
//! decision.
//!
//! Topology faults (partitions, degradations, region and zone outages) are
//! windows the network answers for any `now`; the adapter gets an event at
//! each window edge (`NetworkEdge`) to re-link the replicas, take nodes in
//! an outage down and up, note a primary cut off, and let a healed old
//! primary rejoin (Patroni's and Sentinel's managers do; the chapter's
//! does not). A `failures` process on a region or zone takes the same path
//! at each of its edges (`World::region_event` calls it), since its down
//! windows are drawn during the run.
//!
//! Memory: one `Op` per call in flight (bounded by the frames that wait
//! for them), one `Attempt` per live transport (forgotten when the
//! frame ends), waiting writes pruned when their caller gave up, one sample
//! per node per time-series window. A frame its caller abandoned (a
//! timeout with `on_timeout: abandon`) is freed as soon as none of its
//! operations is out (`World::database_frame_idle`), so operations dropped
//! on the way or answers lost on the way back leave nothing behind.

use super::*;
use crate::database::chapter::{ChapterFailover, Failover, QueryError};
use crate::database::detection::{
    LeaseAction, LeaseDetector, LoopView, ManagedDetector, QuorumDecision, QuorumDetector,
};
use crate::database::failures::PrimaryFailures;
use crate::database::fencing::{Admission, Fencing, Gate};
use crate::database::ledger::{FailoverRecord, LedgerSummary, WindowCounts, WriteLedger};
use crate::database::promotion::{Candidate, Promoter};
use crate::database::replication::{Link, Lsn, Replication, ReplicationEvent};
use crate::database::{ClusterConfig, DatabaseFault, DetectionConfig, ReadRouting};
use crate::scenario::Target;
use crate::topology::faults::TopologyFault;
use crate::topology::network::Delivery;
use crate::topology::Place;
use slotmap::SecondaryMap;

mod failover;

new_key_type! {
    /// One database operation in flight.
    pub(super) struct OpKey;
}

/// A database event; `cluster` is an index into `Scenario::databases`
/// (at most `DATABASES_MAX`, so a `u16` where two indices share the event).
/// Eight bytes, so that `Event` stays at twelve: an operation's arrival,
/// which needs a whole key, is `Event::DatabaseOp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum DatabaseEvent {
    /// Replication has a delivery or a semi-sync timeout due.
    Replication { cluster: u32 },
    /// The next Patroni HA loop of the cluster's nodes.
    Lease { cluster: u32 },
    /// The next quorum observer probe.
    Probe { cluster: u32 },
    /// A managed failover completes.
    Managed { cluster: u32 },
    /// A decided promotion's replay is done.
    PromotionReady { cluster: u32 },
    /// A caller's proxy checks which node is primary.
    RouteCheck { cluster: u16, caller: u32 },
    /// A database fault begins or ends.
    Fault {
        cluster: u16,
        fault: u32,
        begin: bool,
    },
    /// A topology fault window begins or ends.
    NetworkEdge,
    /// A time-series window ends: sample roles and lags.
    Sample,
    /// The primary's crash process (`primary_failures`) crashes the primary.
    PrimaryFailure { cluster: u32 },
    /// A node the crash process took down is repaired.
    NodeRepair { cluster: u16, node: u16 },
}

/// A dependency stack's database target: the cluster and the caller's index
/// in that cluster's callers (one per calling service instance and call).
#[derive(Clone, Copy, Debug)]
pub(super) struct DatabaseCaller {
    cluster: u32,
    caller: u32,
}

struct Op {
    frame: TransportKey,
    cluster: u32,
    caller: u32,
    node: u32,
    write: bool,
    /// The chapter's single retry after a failover, or a first attempt
    /// whose `catch` already ran: its answer is final.
    retry: bool,
    /// Its frame's timeout abandoned it (`on_timeout: abandon`) after the
    /// chapter's `catch` had sent the retry: nobody withdraws it, so it
    /// runs at its node even when its frame has ended meanwhile (the other
    /// attempt's answer ended it).
    abandoned: bool,
    sent_at: SimTime,
}

/// What a database transport's attempt was, kept from its send until
/// the frame ends: its operation may be gone long before (answered at the
/// node with the answer on its way back, dropped on the way there, lost on
/// the way back), and a timeout's `catch` must still resend the same query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attempt {
    write: bool,
    /// Its `catch` ran (a failover, whatever came of it, and the retry):
    /// the attempt is now the retry, which is not inside a `try`.
    caught: bool,
    /// Its operations still out (0 to 2: the first and the chapter's
    /// retry), so that an abandoned frame with none left can be freed
    /// (`World::database_frame_idle`) even when `by_frame` has lost track
    /// of the first after the retry's removal.
    out: u8,
}

/// One calling service instance (per dependency call) of a cluster.
struct Caller {
    /// Where the instance runs; `None` without a topology placement.
    site: Option<Place>,
    /// The node its proxy sends writes to.
    routed: usize,
    /// Passing checks of the new primary so far.
    passes: u32,
    /// A `RouteCheck` is pending.
    checking: bool,
    /// When this caller's proxy checks: `phase + k x check_interval`.
    phase: SimDuration,
    /// Round-robin position for replica reads.
    next_read: usize,
    /// The chapter's per-instance `DatabaseFailover`.
    chapter: Option<ChapterFailover>,
}

enum Detector {
    Lease(LeaseDetector),
    Quorum(QuorumDetector),
    Managed(ManagedDetector),
    Chapter,
}

struct Pending {
    node: usize,
    detected_at: SimTime,
}

/// `DrawnFault::kind` of a crash of the cluster's `primary_failures` process.
const PRIMARY_FAILURE: &str = "primary_failure";
/// `DrawnFault::kind` of a `failures` process's down window over a node.
const PLACE_FAILURE: &str = "failure";

/// Role code of a replica in the role timeline (`DatabaseSample::roles`).
pub const ROLE_REPLICA: u8 = 0;
/// The current primary.
pub const ROLE_PRIMARY: u8 = 1;
/// An old primary still taking writes (split brain).
pub const ROLE_STALE_PRIMARY: u8 = 2;
/// Crashed, in an outage or powered off.
pub const ROLE_DOWN: u8 = 3;
/// Fenced or detached (up, taking no writes, not replicating).
pub const ROLE_FENCED: u8 = 4;

/// One window's state of one cluster, sampled at the window's end.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseSample {
    /// The current primary's node index.
    pub primary: usize,
    /// Nodes that accept writes.
    pub writable_primaries: usize,
    /// Per node: apply lag in ms (0 for the primary).
    pub lag_ms: Vec<f64>,
    /// Per node: role code (`ROLE_*`).
    pub roles: Vec<u8>,
}

/// A node crash drawn during the run (not a scheduled fault), for
/// `summary.json`'s `faults` (`metrics::database::drawn_fault_windows`).
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnFault {
    /// `primary_failure` (the cluster's `primary_failures` process crashed
    /// its primary) or `failure` (a region or zone `failures` process drew
    /// a down window over the node's place).
    pub kind: &'static str,
    /// The node's index.
    pub node: usize,
    /// When the node went down.
    pub start: SimTime,
    /// When it came back (the repair, the down window's end); `None` if it
    /// was still down when the run ended.
    pub end: Option<SimTime>,
}

impl DrawnFault {
    /// Whether a region or zone `failures` process took the node down (not
    /// the cluster's own `primary_failures`).
    pub fn by_place_failure(&self) -> bool {
        self.kind == PLACE_FAILURE
    }
}

/// The most drawn faults kept per cluster (the regions adapter's cap on the
/// failure windows it keeps); later ones are counted only.
pub const DRAWN_FAULTS_KEPT_MAX: usize = crate::model::regions::FAULT_WINDOWS_KEPT_MAX;

/// What one cluster did in a run.
#[derive(Clone, Debug)]
pub struct DatabaseReport {
    /// The cluster's name.
    pub name: String,
    /// Its node names, in node order.
    pub nodes: Vec<String>,
    /// The ledger's totals at the end.
    pub summary: LedgerSummary,
    /// The kept failover records.
    pub failovers: Vec<FailoverRecord>,
    /// The ledger's counts per time-series window.
    pub windows: Vec<WindowCounts>,
    /// Roles and lags per time-series window.
    pub samples: Vec<DatabaseSample>,
    /// Semi-sync fallbacks to async.
    pub semi_sync_fallbacks: u64,
    /// Promotions that fencing (`stonith`) withheld.
    pub promotions_withheld: u64,
    /// Detector decisions that found no candidate (anti-flap, lag, scope).
    pub promotions_refused: u64,
    /// The chapter's `PROMOTE` of a node that was already primary.
    pub redundant_promotions: u64,
    /// Per window: summed call latency (µs) and calls answered.
    pub latency_windows: Vec<(u64, u64)>,
    /// The node crashes drawn during the run, in the order they began (the
    /// first `DRAWN_FAULTS_KEPT_MAX`).
    pub drawn_faults: Vec<DrawnFault>,
    /// Drawn crashes beyond the first `DRAWN_FAULTS_KEPT_MAX`: counted only.
    pub drawn_faults_not_kept: u64,
}

struct Cluster {
    replication: Replication,
    detector: Detector,
    promoter: Promoter,
    fencing: Fencing,
    ledger: WriteLedger,
    /// Node down (crash fault or topology outage), counted per cause.
    down: Vec<u32>,
    disk_full: Vec<u32>,
    /// In a topology outage (one of the reasons counted in `down`).
    outage: Vec<bool>,
    /// An old primary no longer following anyone.
    detached: Vec<bool>,
    callers: Vec<Caller>,
    waiting: VecDeque<(Lsn, OpKey)>,
    /// The committed position already counted acknowledged in the ledger.
    counted_lsn: Lsn,
    replication_due: Option<(SimTime, EventId)>,
    pending: Option<Pending>,
    /// When the primary failed or was cut off, and each node's receive lag then.
    failure: Option<(SimTime, Vec<SimDuration>)>,
    /// With DNS routing: when the record starts answering with the current
    /// primary, and the node it answers with until then.
    record: Option<(SimTime, usize)>,
    /// The primary's crash process and its pending failure event.
    failures: Option<PrimaryFailures>,
    failure_due: Option<EventId>,
    rng: SimRng,
    managed_rng: SimRng,
    samples: Vec<DatabaseSample>,
    latency_windows: Vec<(u64, u64)>,
    semi_sync_fallbacks: u64,
    promotions_withheld: u64,
    promotions_refused: u64,
    redundant_promotions: u64,
    drawn_faults: Vec<DrawnFault>,
    drawn_faults_not_kept: u64,
}

/// Every cluster of a run. The network is the regions adapter's (one
/// latency matrix, one set of fault windows, one place for latency draws).
pub(super) struct Databases {
    clusters: Vec<Cluster>,
    ops: Ops,
}

/// The operations in flight, for each frame the operation its latest
/// attempt sent, so that `database_timeout` finds a timed-out attempt's
/// operation in O(1) rather than by scanning every operation in flight, and
/// for each chapter frame what its attempt was (`Attempt`).
///
/// `insert` and `remove` are the only ways in and out of `slots` and
/// `by_frame`, so the index stays in step: an entry names a live operation
/// of that frame. A frame has one operation at a time, except after
/// `database_timeout` sends the chapter's retry for a frame whose first
/// operation is still out: the entry then names the retry, and removing the
/// first operation leaves it alone. Either one has `retry` set, so a lookup
/// would answer the same for both.
///
/// `attempts` has an entry from `begin` (the transport sends) to
/// `end` (`World::database_frame_ended`: its answer arrived, it was
/// cancelled, or it was abandoned with nothing left out and freed), so at
/// most one per live frame, whether or not its operation is still out; it
/// counts the frame's operations still out (`Attempt::out`), and `held`
/// sums those counts: the operations whose frame is live.
///
/// Memory: the maps are `SecondaryMap`s over the transports' slots, 12 and
/// 8 bytes per slot up to the transports' slot count (bounded by
/// `limits.in_flight_max`). A transport is charged in
/// `in_flight_call_bytes` as a frame, with a request slot and a policy
/// entry it does not use (88 bytes); its operation's slot (40) and both
/// entries fit in them, so the estimate is unchanged (the sizes are pinned
/// by a test below).
struct Ops {
    slots: SlotMap<OpKey, Op>,
    by_frame: SecondaryMap<TransportKey, OpKey>,
    attempts: SecondaryMap<TransportKey, Attempt>,
    /// Operations out whose frame is live (the sum of `Attempt::out`).
    held: usize,
}

impl Ops {
    fn new() -> Ops {
        Ops {
            slots: SlotMap::with_key(),
            by_frame: SecondaryMap::new(),
            attempts: SecondaryMap::new(),
            held: 0,
        }
    }

    fn insert(&mut self, op: Op) -> OpKey {
        let frame = op.frame;
        let key = self.slots.insert(op);
        // Sent by a live frame (its first attempt or the chapter's retry).
        let attempt = self.attempts.get_mut(frame);
        debug_assert!(attempt.is_some(), "an operation of a frame that sent none");
        if let Some(attempt) = attempt {
            attempt.out += 1;
            self.held += 1;
        }
        let previous = self.by_frame.insert(frame, key);
        // Only the chapter's retry joins an operation of its frame still out,
        // and that one has had its `catch` (`retry` set).
        debug_assert!(previous
            .and_then(|previous| self.slots.get(previous))
            .is_none_or(|previous| previous.retry));
        key
    }

    fn remove(&mut self, key: OpKey) -> Option<Op> {
        let op = self.slots.remove(key)?;
        if self.by_frame.get(op.frame) == Some(&key) {
            self.by_frame.remove(op.frame);
        }
        // Its frame may have ended meanwhile (the slot map's versions tell
        // a later frame in the same slot apart): then it was not counted.
        if let Some(attempt) = self.attempts.get_mut(op.frame) {
            debug_assert!(attempt.out > 0);
            attempt.out -= 1;
            self.held -= 1;
        }
        Some(op)
    }

    fn get(&self, key: OpKey) -> Option<&Op> {
        self.slots.get(key)
    }

    fn get_mut(&mut self, key: OpKey) -> Option<&mut Op> {
        self.slots.get_mut(key)
    }

    /// The operation the latest attempt of `frame` sent, if it is still out.
    fn of_frame_mut(&mut self, frame: TransportKey) -> Option<&mut Op> {
        let key = *self.by_frame.get(frame)?;
        let op = self.slots.get_mut(key);
        debug_assert!(op.as_ref().is_some_and(|op| op.frame == frame));
        op
    }

    /// Transport frame `frame` sends its attempt (one per frame).
    fn begin(&mut self, frame: TransportKey, write: bool) {
        let previous = self.attempts.insert(
            frame,
            Attempt {
                write,
                caught: false,
                out: 0,
            },
        );
        debug_assert!(previous.is_none(), "two attempts for one frame");
    }

    /// The chapter's `catch` runs for `frame`'s attempt: returns the
    /// attempt as it was (`None` if the frame sent none) and marks it, and
    /// the operation still out for it, caught. With `abandoned`, that
    /// operation runs at its node even after the frame has ended.
    fn catch(&mut self, frame: TransportKey, abandoned: bool) -> Option<Attempt> {
        if let Some(op) = self.of_frame_mut(frame) {
            op.retry = true;
            op.abandoned |= abandoned;
        }
        let attempt = self.attempts.get_mut(frame)?;
        let before = *attempt;
        attempt.caught = true;
        Some(before)
    }

    /// `frame` has ended: forget its attempt. Its operations still out
    /// (abandoned ones, or writes waiting for acknowledgements) are no
    /// longer held by a live frame.
    fn end(&mut self, frame: TransportKey) {
        if let Some(attempt) = self.attempts.remove(frame) {
            self.held -= attempt.out as usize;
        }
    }

    /// Whether `frame` sent its attempt and has no operation of it out.
    fn idle(&self, frame: TransportKey) -> bool {
        self.attempts
            .get(frame)
            .is_some_and(|attempt| attempt.out == 0)
    }
}

impl Databases {
    /// The clusters of `scenario`, their callers (the dependency stacks
    /// whose target is a database get `stacks[i].database`), and random
    /// streams named `database/<name>/...`. `None` without databases.
    pub(super) fn new(
        scenario: &Scenario,
        rngs: &RngFactory,
        stacks: &mut [Stack],
        services: &[ServiceState<'_>],
    ) -> Option<Box<Databases>> {
        if scenario.databases.is_empty() {
            return None;
        }
        let mut clusters: Vec<Cluster> = scenario
            .databases
            .iter()
            .map(|config| Cluster::new(config, rngs, scenario.window, scenario.duration))
            .collect();
        for (service_index, service) in scenario.services.iter().enumerate() {
            let calls = service.dependencies.len();
            for instance in 0..service.instances {
                for (index, call) in service.dependencies.iter().enumerate() {
                    let Target::Database(cluster) = call.target else {
                        continue;
                    };
                    let config = &scenario.databases[cluster];
                    let state = &mut clusters[cluster];
                    let site = scenario
                        .topology
                        .as_ref()
                        .and_then(|topology| topology.instance_place(service_index, instance));
                    // A proxy checks every interval; a DNS caller
                    // re-resolves every cache time, from a phase of its own.
                    let interval = match config.dns {
                        Some(dns) => dns.cache_for().unwrap_or(dns.ttl),
                        None => config.routing.check_interval,
                    }
                    .as_micros()
                    .max(1);
                    let phase = SimDuration(state.rng.between(0, interval - 1));
                    let chapter = matches!(config.detection, DetectionConfig::Chapter).then(|| {
                        let replicas = (0..config.nodes.len())
                            .filter(|&node| node != config.primary)
                            .collect();
                        ChapterFailover::new(config.primary, replicas)
                    });
                    let stack =
                        services[service_index].stack_base + instance as usize * calls + index;
                    stacks[stack].database = Some(DatabaseCaller {
                        cluster: cluster as u32,
                        caller: state.callers.len() as u32,
                    });
                    state.callers.push(Caller {
                        site,
                        routed: config.primary,
                        passes: 0,
                        checking: false,
                        phase,
                        next_read: 0,
                        chapter,
                    });
                }
            }
        }
        Some(Box::new(Databases {
            clusters,
            ops: Ops::new(),
        }))
    }
}

/// The one-way delay between two sites, if a packet gets through at `now`:
/// the regions adapter's `deliver` (its latency draws and fault windows);
/// without a topology, `zone_delay_ms` between different sites.
fn hop(
    regions: Option<&mut Regions<'_>>,
    config: &ClusterConfig,
    from: Option<Place>,
    to: Place,
    now: SimTime,
) -> Option<SimDuration> {
    let Some(from) = from else {
        return Some(SimDuration::ZERO);
    };
    match regions {
        Some(regions) => match regions.deliver(now, from, to) {
            Delivery::After(delay) => Some(delay),
            Delivery::Partitioned | Delivery::Lost => None,
        },
        None if from == to => Some(SimDuration::ZERO),
        None => Some(config.zone_delay),
    }
}

/// Whether `a` and `b` can talk both ways at `now` (always without a topology).
fn reach(regions: Option<&Regions<'_>>, a: Option<Place>, b: Place, now: SimTime) -> bool {
    match (regions, a) {
        (Some(regions), Some(a)) => regions.network().round_trip_reachable(now, a, b),
        _ => true,
    }
}

/// The replication link between `primary` and every node at `now`: cut by
/// a partition, otherwise the mean one-way latency (replication streams see
/// the matrix's mean, not a per-packet draw).
fn links_from(
    regions: Option<&Regions<'_>>,
    config: &ClusterConfig,
    primary: usize,
    now: SimTime,
) -> Vec<Link> {
    let from = config.nodes[primary].site;
    config
        .nodes
        .iter()
        .map(|node| {
            let to = node.site;
            match regions {
                Some(regions) => {
                    let network = regions.network();
                    if network.round_trip_reachable(now, from, to) {
                        Link::up(SimDuration::from_ms_f64(network.matrix().mean_ms(from, to)))
                    } else {
                        Link::down()
                    }
                }
                None if from == to => Link::up(SimDuration::ZERO),
                None => Link::up(config.zone_delay),
            }
        })
        .collect()
}

impl Cluster {
    fn new(
        config: &ClusterConfig,
        rngs: &RngFactory,
        window: SimDuration,
        duration: SimDuration,
    ) -> Cluster {
        let name = &config.name;
        let mut phases = rngs.stream(&format!("database/{name}/phases"));
        let nodes = config.nodes.len();
        let detector = match &config.detection {
            DetectionConfig::Lease(settings) => {
                let draws: Vec<SimDuration> = (0..nodes)
                    .map(|_| {
                        SimDuration(phases.between(0, settings.loop_wait.as_micros().max(1) - 1))
                    })
                    .collect();
                Detector::Lease(LeaseDetector::new(*settings, config.primary, &draws))
            }
            DetectionConfig::Quorum { settings, .. } => {
                let draws: Vec<SimDuration> = (0..settings.observers)
                    .map(|_| {
                        SimDuration(
                            phases.between(0, settings.probe_interval.as_micros().max(1) - 1),
                        )
                    })
                    .collect();
                Detector::Quorum(QuorumDetector::new(*settings, &draws))
            }
            DetectionConfig::Managed { failover_ms } => {
                Detector::Managed(ManagedDetector::new(failover_ms.clone()))
            }
            DetectionConfig::Chapter => Detector::Chapter,
        };
        let windows_max = (duration.as_micros() / window.as_micros().max(1)) as usize + 2;
        Cluster {
            // Replaced once the regions adapter exists (`database_start`).
            replication: Replication::new(
                config.replication,
                &vec![1.0; nodes],
                &vec![Link::up(SimDuration::ZERO); nodes],
                config.primary,
            ),
            detector,
            promoter: Promoter::new(config.candidates),
            fencing: Fencing::new(config.fencing, nodes, config.primary),
            ledger: WriteLedger::new(window, windows_max.min(100_000)),
            down: vec![0; nodes],
            disk_full: vec![0; nodes],
            outage: vec![false; nodes],
            detached: vec![false; nodes],
            callers: Vec::new(),
            waiting: VecDeque::new(),
            counted_lsn: 0,
            replication_due: None,
            pending: None,
            failure: None,
            record: None,
            failures: config.primary_failures.map(|(mttf_ms, mttr_ms)| {
                PrimaryFailures::new(
                    mttf_ms,
                    mttr_ms,
                    rngs.stream(&format!("database/{name}/failures")),
                )
            }),
            failure_due: None,
            rng: rngs.stream(&format!("database/{name}/operations")),
            managed_rng: rngs.stream(&format!("database/{name}/managed")),
            samples: Vec::new(),
            latency_windows: Vec::new(),
            semi_sync_fallbacks: 0,
            promotions_withheld: 0,
            promotions_refused: 0,
            redundant_promotions: 0,
            drawn_faults: Vec::new(),
            drawn_faults_not_kept: 0,
        }
    }

    /// `node` went down at `now` for a drawn fault of `kind`: kept while
    /// fewer than `DRAWN_FAULTS_KEPT_MAX` are, else counted.
    fn fault_drawn(&mut self, kind: &'static str, node: usize, now: SimTime) {
        if self.drawn_faults.len() < DRAWN_FAULTS_KEPT_MAX {
            self.drawn_faults.push(DrawnFault {
                kind,
                node,
                start: now,
                end: None,
            });
        } else {
            self.drawn_faults_not_kept += 1;
        }
    }

    /// `node`'s drawn fault of `kind` ended at `now` (if it was kept).
    fn fault_repaired(&mut self, kind: &'static str, node: usize, now: SimTime) {
        let open = self
            .drawn_faults
            .iter_mut()
            .rev()
            .find(|fault| fault.kind == kind && fault.node == node && fault.end.is_none());
        if let Some(fault) = open {
            fault.end = Some(now);
        }
    }

    fn alive(&self, node: usize) -> bool {
        self.down[node] == 0
    }

    /// Caller `caller` now sends to `primary` and has stopped checking;
    /// when every caller does, the failover's routing phase ends at `now`.
    fn caller_routed(&mut self, caller: usize, primary: usize, now: SimTime) {
        let state = &mut self.callers[caller];
        state.routed = primary;
        state.checking = false;
        if self.callers.iter().all(|caller| caller.routed == primary) {
            self.ledger.routed(now);
        }
    }
}

impl<'a> World<'a> {
    fn db(&mut self) -> &mut Databases {
        self.databases.as_mut().expect("a scenario with databases")
    }

    /// Detectors and samples go on while there is load or work in flight,
    /// not through an idle drain period (as health checks do).
    fn keeps_running(&self, next: SimTime) -> bool {
        next <= self.end_of_load || !self.requests.is_empty()
    }

    fn push_db(&mut self, at: SimTime, event: DatabaseEvent) -> EventId {
        self.queue.push(at, Event::Database(event))
    }

    /// Schedules the detectors, the faults, the topology edges and the
    /// window samples. Called once, only with databases.
    pub(super) fn database_start(&mut self) {
        let scenario = self.scenario;
        for (index, config) in scenario.databases.iter().enumerate() {
            let links = links_from(self.regions.as_ref(), config, config.primary, SimTime::ZERO);
            self.db().clusters[index].replication = Replication::new(
                config.replication,
                &config
                    .nodes
                    .iter()
                    .map(|node| node.apply_rate_per_second)
                    .collect::<Vec<_>>(),
                &links,
                config.primary,
            );
        }
        for (index, config) in scenario.databases.iter().enumerate() {
            let cluster = index as u32;
            match &self.db().clusters[index].detector {
                Detector::Lease(lease) => {
                    let at = lease.next_loop().1;
                    self.push_db(at, DatabaseEvent::Lease { cluster });
                }
                Detector::Quorum(quorum) => {
                    let at = quorum.next_probe().1;
                    self.push_db(at, DatabaseEvent::Probe { cluster });
                }
                Detector::Managed(_) | Detector::Chapter => {}
            }
            for (fault, entry) in config.faults.iter().enumerate() {
                let (start, end) = entry.window();
                let fault = fault as u32;
                self.push_db(
                    start,
                    DatabaseEvent::Fault {
                        cluster: index as u16,
                        fault,
                        begin: true,
                    },
                );
                if let Some(end) = end {
                    self.push_db(
                        end,
                        DatabaseEvent::Fault {
                            cluster: index as u16,
                            fault,
                            begin: false,
                        },
                    );
                }
            }
        }
        if let Some(topology) = &scenario.topology {
            let mut edges: Vec<SimTime> = Vec::new();
            for fault in &topology.faults {
                let window = match fault {
                    TopologyFault::Outage { window, .. } => *window,
                    TopologyFault::Partition(partition) => partition.window,
                    TopologyFault::Degradation(degradation) => degradation.window,
                    TopologyFault::CheckerCut(_) | TopologyFault::Failures { .. } => continue,
                };
                edges.push(window.start);
                edges.push(window.end);
            }
            edges.sort_unstable();
            edges.dedup();
            for at in edges {
                self.push_db(at, DatabaseEvent::NetworkEdge);
            }
        }
        for index in 0..scenario.databases.len() {
            self.schedule_primary_failure(index);
        }
        let first = SimTime::ZERO + scenario.window;
        self.push_db(first, DatabaseEvent::Sample);
    }

    /// The transport of a database stack sends one operation.
    pub(super) fn database_attempt(&mut self, frame: TransportKey, target: DatabaseCaller) {
        let stack = self.transports[frame].stack as usize;
        let latency = self.network_latency.sample(&mut self.stacks[stack].network);
        self.recorder.attempt_sent(self.now, false);
        let config = &self.scenario.databases[target.cluster as usize];
        let cluster = &mut self.db().clusters[target.cluster as usize];
        let write = cluster.rng.chance(config.write_fraction);
        let caller = &mut cluster.callers[target.caller as usize];
        let primary = match &caller.chapter {
            Some(chapter) => chapter.current_primary(),
            None => caller.routed,
        };
        let nodes = config.nodes.len();
        let node = if write {
            primary
        } else {
            match config.reads {
                ReadRouting::Primary => primary,
                ReadRouting::Replicas if nodes > 1 => {
                    let offset = caller.next_read % (nodes - 1);
                    caller.next_read = caller.next_read.wrapping_add(1);
                    (primary + 1 + offset) % nodes
                }
                ReadRouting::Replicas => primary,
                ReadRouting::Any => {
                    let node = caller.next_read % nodes;
                    caller.next_read = caller.next_read.wrapping_add(1);
                    node
                }
            }
        };
        self.db().ops.begin(frame, write);
        let sent = self.send_op(frame, target, node, write, false, latency);
        if sent.is_none() {
            // A frame its parent abandoned before it started (it was kept
            // so that its operation is sent, as the caller's would be).
            self.release_if_abandoned(frame);
        }
    }

    /// Sends `frame`'s operation to `node`; its key, unless the network
    /// dropped it on the way.
    fn send_op(
        &mut self,
        frame: TransportKey,
        target: DatabaseCaller,
        node: usize,
        write: bool,
        retry: bool,
        latency: SimDuration,
    ) -> Option<OpKey> {
        let now = self.now;
        let config = &self.scenario.databases[target.cluster as usize];
        let databases = self.databases.as_mut().expect("databases");
        let site = databases.clusters[target.cluster as usize].callers[target.caller as usize].site;
        let Some(hop) = hop(
            self.regions.as_mut(),
            config,
            site,
            config.nodes[node].site,
            now,
        ) else {
            // Dropped on the way: nobody answers; the caller's timeout ends it.
            return None;
        };
        let op = databases.ops.insert(Op {
            frame,
            cluster: target.cluster,
            caller: target.caller,
            node: node as u32,
            write,
            retry,
            abandoned: false,
            sent_at: now,
        });
        // Never cancelled: an abandoned operation is marked, not withdrawn.
        self.queue
            .schedule(now + latency + hop, Event::DatabaseOp { op });
        Some(op)
    }

    /// A transport has ended (its answer arrived, or it was
    /// cancelled): the adapter forgets its attempt. Called for every
    /// transport of a run with databases; a no-op for the others.
    pub(super) fn database_frame_ended(&mut self, frame: TransportKey) {
        self.db().ops.end(frame);
    }

    /// Whether transport `frame` of a database stack, abandoned by
    /// its parent, can be freed now: it has sent its attempt and none of
    /// its operations is out. Such a frame only waits for an answer that
    /// is already on its way back (which then finds no frame and is
    /// dropped, as it would find no parent) or that never comes (its
    /// operation was dropped on the way there or its answer lost on the
    /// way back). A frame with an operation out is kept until that
    /// operation's answer, because the adapter still reads it: `answer`
    /// draws the way back from its stack's network stream and counts the
    /// call's latency only for a live frame, `op_failed` sends the
    /// chapter's retry only for one, and `op_arrive` drops an operation
    /// whose frame is gone unless it is `abandoned`. Freeing it earlier
    /// would change what the database does and what the run draws. A frame
    /// that has not started yet is kept too: it still sends its operation.
    pub(super) fn database_frame_idle(&self, frame: TransportKey) -> bool {
        self.databases
            .as_ref()
            .is_some_and(|databases| databases.ops.idle(frame))
    }

    /// `frame`'s operations have ended and no answer is on its way back
    /// (the last one lost on the way back, or the chapter's retry dropped
    /// on the way there): if its parent abandoned it, nothing would ever
    /// end it, so it is freed now (see `database_frame_idle`).
    fn release_if_abandoned(&mut self, frame: TransportKey) {
        let Some(state) = self.transports.get(frame) else {
            return;
        };
        let Parent::Frame(parent) = self.transport_parent(state) else {
            return;
        };
        if self.frames.contains_key(parent) || !self.database_frame_idle(frame) {
            return;
        }
        let state = self.transports.remove(frame).expect("live transport");
        debug_assert!(state.job.is_none());
        self.database_frame_ended(frame);
    }

    pub(super) fn database_event(&mut self, event: DatabaseEvent) {
        match event {
            DatabaseEvent::Replication { cluster } => {
                let index = cluster as usize;
                self.db().clusters[index].replication_due = None;
                let now = self.now;
                self.db().clusters[index].replication.advance(now);
                self.settle(index);
            }
            DatabaseEvent::Lease { cluster } => self.lease_loop(cluster as usize),
            DatabaseEvent::Probe { cluster } => self.quorum_probe(cluster as usize),
            DatabaseEvent::Managed { cluster } => self.managed_done(cluster as usize),
            DatabaseEvent::PromotionReady { cluster } => self.promotion_ready(cluster as usize),
            DatabaseEvent::RouteCheck { cluster, caller } => {
                self.route_check(cluster as usize, caller as usize)
            }
            DatabaseEvent::Fault {
                cluster,
                fault,
                begin,
            } => self.database_fault(cluster as usize, fault as usize, begin),
            DatabaseEvent::NetworkEdge => {
                for index in 0..self.scenario.databases.len() {
                    self.network_changed(index);
                }
            }
            DatabaseEvent::Sample => self.sample(),
            DatabaseEvent::PrimaryFailure { cluster } => self.primary_failure(cluster as usize),
            DatabaseEvent::NodeRepair { cluster, node } => {
                let (index, node) = (cluster as usize, node as usize);
                let now = self.now;
                self.db().clusters[index].fault_repaired(PRIMARY_FAILURE, node, now);
                self.node_up(index, node);
                self.settle(index);
                self.check_primary(index);
                if node == self.db().clusters[index].replication.primary() {
                    // Back still holding the role (nobody was promoted).
                    self.schedule_primary_failure(index);
                }
            }
        }
    }

    /// Sends `reply` for `op` after the node's work and the way back.
    fn answer(&mut self, key: OpKey, reply: Reply, work: bool) {
        let now = self.now;
        let Some(op) = self.db().ops.remove(key) else {
            return;
        };
        let config = &self.scenario.databases[op.cluster as usize];
        let databases = self.databases.as_mut().expect("databases");
        let cluster = &mut databases.clusters[op.cluster as usize];
        let work = if work {
            config.operation.sample(&mut cluster.rng)
        } else {
            SimDuration::ZERO
        };
        let site = cluster.callers[op.caller as usize].site;
        let node_site = config.nodes[op.node as usize].site;
        let Some(back) = hop(
            self.regions.as_mut(),
            config,
            Some(node_site),
            site.unwrap_or(node_site),
            now + work,
        ) else {
            // The answer is lost on the way back.
            self.release_if_abandoned(op.frame);
            return;
        };
        let stack = self
            .transports
            .get(op.frame)
            .map(|frame| frame.stack as usize);
        let Some(stack) = stack else {
            // The caller gave up: nobody hears the answer.
            return;
        };
        let latency = self.network_latency.sample(&mut self.stacks[stack].network);
        let at = now + work + back + latency;
        let window = (at.as_micros() / self.scenario.window.as_micros().max(1)) as usize;
        let cluster = &mut self.db().clusters[op.cluster as usize];
        if window < 100_000 {
            if cluster.latency_windows.len() <= window {
                cluster.latency_windows.resize(window + 1, (0, 0));
            }
            let entry = &mut cluster.latency_windows[window];
            entry.0 += at.saturating_since(op.sent_at).as_micros();
            entry.1 += 1;
        }
        self.queue.schedule(
            at,
            Event::ReplyArrive {
                transport: op.frame,
                reply,
            },
        );
    }

    pub(super) fn op_arrive(&mut self, key: OpKey) {
        let now = self.now;
        let Some(op) = self.db().ops.get(key) else {
            return;
        };
        let (index, node, write, retry, caller, frame) = (
            op.cluster as usize,
            op.node as usize,
            op.write,
            op.retry,
            op.caller as usize,
            op.frame,
        );
        if !op.abandoned && !self.transports.contains_key(frame) {
            // Cancelled on the way: the connection closed before it arrived.
            self.db().ops.remove(key);
            return;
        }
        let config = &self.scenario.databases[index];
        let cluster = &mut self.db().clusters[index];
        if !cluster.alive(node) {
            if write {
                // Refused by a node that is down: the write fails.
                cluster.ledger.issued(now, 1);
                cluster.ledger.failed(now, 1);
            }
            return self.op_failed(key, QueryError::Connection, retry, caller, index);
        }
        if config.client_error_probability > 0.0
            && cluster.rng.chance(config.client_error_probability)
        {
            return self.op_failed(key, QueryError::Client, retry, caller, index);
        }
        if !write {
            let committed = cluster.replication.committed_lsn();
            let applied = cluster.replication.applied_lsn(node);
            cluster.ledger.read(now, applied, committed);
            return self.answer(key, Reply::Success, true);
        }
        let admission = cluster.fencing.admit(node);
        let full = cluster.disk_full[node] > 0;
        match admission {
            Admission::Accepted { epoch } if !full => {
                cluster.ledger.issued(now, 1);
                if epoch == cluster.fencing.epoch() && node == cluster.replication.primary() {
                    let (lsn, _) = cluster.replication.write(now);
                    cluster.waiting.push_back((lsn, key));
                    self.settle(index);
                } else {
                    // An old primary that nobody stopped: the client cannot tell.
                    cluster
                        .ledger
                        .acknowledged(now, epoch.min(cluster.ledger.epoch()), 1);
                    self.answer(key, Reply::Success, true);
                }
            }
            _ => {
                // Refused (not primary, stale epoch) or disk full: it reached
                // a node and failed there.
                cluster.ledger.issued(now, 1);
                cluster.ledger.failed(now, 1);
                self.op_failed(key, QueryError::Server, retry, caller, index);
            }
        }
    }

    /// An operation failed at its node: an error answer, or, with the
    /// chapter's failover, a promotion and one retry.
    fn op_failed(
        &mut self,
        key: OpKey,
        error: QueryError,
        retry: bool,
        caller: usize,
        index: usize,
    ) {
        let retryable = error != QueryError::Client;
        let chapter = self.db().clusters[index].callers[caller].chapter.is_some();
        if !chapter || retry {
            return self.answer(key, Reply::Error { retryable }, true);
        }
        // The attempt's `catch` runs now, once: a timeout of the same
        // attempt (its error answer may still be on its way back) must not
        // fail over again.
        let frame = self.db().ops.get(key).expect("live op").frame;
        let attempt = self.db().ops.catch(frame, false);
        debug_assert!(attempt.is_some_and(|attempt| !attempt.caught));
        let Some(node) = self.chapter_failover(index, caller, error) else {
            return self.answer(key, Reply::Error { retryable }, true);
        };
        let op = self.db().ops.remove(key).expect("live op");
        if self.transports.contains_key(op.frame) {
            self.chapter_retry(op.frame, op.cluster, op.caller, node, op.write);
            // The retry dropped on the way leaves an abandoned frame nothing.
            self.release_if_abandoned(op.frame);
        }
    }

    /// The chapter's second `executeQuery` on `node`: one attempt, no try.
    /// Its operation's key, unless the network dropped it.
    fn chapter_retry(
        &mut self,
        frame: TransportKey,
        cluster: u32,
        caller: u32,
        node: usize,
        write: bool,
    ) -> Option<OpKey> {
        let stack = self.transports[frame].stack as usize;
        let latency = self.network_latency.sample(&mut self.stacks[stack].network);
        let target = DatabaseCaller { cluster, caller };
        self.send_op(frame, target, node, write, true, latency)
    }

    /// The chapter's `catch (error) { await this.failover(); ... }` for
    /// `caller`: walks the replicas, promotes the first healthy one (even
    /// the current primary again) and returns it; `None` when no replica
    /// answered its health check (the query fails).
    fn chapter_failover(
        &mut self,
        index: usize,
        caller: usize,
        error: QueryError,
    ) -> Option<usize> {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let databases = self.databases.as_mut().expect("databases");
        let site = databases.clusters[index].callers[caller].site;
        let healthy: Vec<bool> = (0..config.nodes.len())
            .map(|node| {
                databases.clusters[index].alive(node)
                    && reach(self.regions.as_ref(), site, config.nodes[node].site, now)
            })
            .collect();
        let cluster = &mut databases.clusters[index];
        let outcome = cluster.callers[caller]
            .chapter
            .as_mut()
            .expect("chapter caller")
            .on_error(error, |node| healthy[node]);
        let Failover::Promoted { node, .. } = outcome else {
            return None;
        };
        if node == cluster.replication.primary() {
            cluster.redundant_promotions += 1;
        } else {
            if cluster.detached[node] {
                // A former primary promoted again: rewound first.
                cluster.replication.rejoin(now, node);
                cluster.fencing.rejoin(node);
                cluster.detached[node] = false;
            }
            cluster.pending = Some(Pending {
                node,
                detected_at: now,
            });
            self.promotion_ready(index);
        }
        Some(node)
    }

    /// A timeout layer directly around a database call ended its attempt
    /// (`frame` is the timeout layer's frame; `cancelling` when it cancels
    /// its call, `on_timeout: cancel`). With the chapter's failover this is
    /// an error inside its `try` like any other (`catch (error)` does not
    /// look at it): it fails over and resends the same query, once per
    /// attempt, whether the first operation is still out, was answered at
    /// its node (the answer, carrying the operation's time, is on its way
    /// back), was dropped on the way there or its answer lost on the way
    /// back: the attempt (`Attempt`) outlives its operation. An attempt
    /// whose `catch` already ran (an error answered at the node failed it
    /// over) is the retry, which is not inside a `try`: nothing more.
    ///
    /// The caller already has its timeout answer, so the retry's reply
    /// reaches nobody. With `on_timeout: cancel` the retry is withdrawn on
    /// the way, as the first operation is (the connection closes); with
    /// abandon, nobody withdraws either: both run at their nodes (the
    /// retried write happens at the new primary) even if the first answer
    /// ends the frame before the retry arrives. Timeouts further out
    /// (around retries, say) wrap the whole `query` and are not seen by its
    /// `catch`.
    pub(super) fn database_timeout(&mut self, frame: FrameKey, cancelling: bool) {
        let Some(state) = self.frames.get(frame) else {
            return;
        };
        let stack = state.stack as usize;
        let Some(target) = self.stacks[stack].database else {
            return;
        };
        if !self.transport_below(state.stack, state.depth) {
            return;
        }
        let (index, caller) = (target.cluster as usize, target.caller as usize);
        if self.db().clusters[index].callers[caller].chapter.is_none() {
            return;
        }
        let abandoned = !cancelling;
        let children = self.frames[frame].children.clone();
        for child in children.into_iter().map(TransportKey::from) {
            // Its `catch` runs now: a later error of the same attempt must
            // not fail over a second time.
            let Some(attempt) = self.db().ops.catch(child, abandoned) else {
                // The transport has not sent yet: nothing to catch.
                continue;
            };
            if attempt.caught {
                // The retry after a failover is not inside a `try`.
                continue;
            }
            let Some(node) = self.chapter_failover(index, caller, QueryError::Timeout) else {
                // No healthy replica: `failover()` throws, no retry.
                continue;
            };
            let retry =
                self.chapter_retry(child, target.cluster, target.caller, node, attempt.write);
            if let Some(op) = retry.and_then(|key| self.db().ops.get_mut(key)) {
                op.abandoned = abandoned;
            }
        }
    }

    /// Counts newly committed writes, answers the acknowledged waiting
    /// writes, notes semi-sync mode changes and schedules the next
    /// replication event while writes wait.
    fn settle(&mut self, index: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        let committed = cluster.replication.committed_lsn();
        if committed > cluster.counted_lsn {
            let epoch = cluster.ledger.epoch();
            cluster
                .ledger
                .acknowledged(now, epoch, committed - cluster.counted_lsn);
            cluster.counted_lsn = committed;
        }
        for event in cluster.replication.drain_events() {
            if let ReplicationEvent::SemiSyncOff { .. } = event {
                cluster.semi_sync_fallbacks += 1;
            }
        }
        // Answered after the loop (answering borrows the world); on the
        // stack, as this runs after every replication step.
        let mut done: SmallVec<[_; 16]> = SmallVec::new();
        while let Some(&(lsn, key)) = cluster.waiting.front() {
            if lsn > committed {
                break;
            }
            cluster.waiting.pop_front();
            done.push(key);
        }
        for key in done {
            self.answer(key, Reply::Success, true);
        }
        self.prune_waiting(index);
        let cluster = &mut self.db().clusters[index];
        if cluster.waiting.is_empty() {
            return;
        }
        let Some(at) = cluster.replication.next_event_at() else {
            return;
        };
        let at = at.max(now);
        if let Some((pending, id)) = cluster.replication_due {
            if pending <= at {
                return;
            }
            self.queue.cancel(id);
        }
        let id = self.push_db(
            at,
            DatabaseEvent::Replication {
                cluster: index as u32,
            },
        );
        self.db().clusters[index].replication_due = Some((at, id));
    }

    /// Drops waiting writes whose caller gave up, once they outnumber
    /// twice the operations that live frames hold (`Ops::held`): memory
    /// stays bounded by the calls in flight, and a scan leaves at most
    /// `held` behind, so scans are rare.
    ///
    /// The threshold counts operations, not frames, because a dropped write
    /// is never answered, and its answer would have drawn the operation's
    /// time from the cluster's stream and the way back from the network's:
    /// when pruning runs decides what later draws see. It was `2 x frames +
    /// 64` while abandoned frames stayed until their answer; now that they
    /// are freed once nothing of theirs is out, the number of frames would
    /// move it, whereas the operations live frames hold are the same whether
    /// such a frame is freed or not (it holds none). When this changed, no
    /// committed scenario at the goldens' seed and no database test pruned
    /// with either threshold.
    fn prune_waiting(&mut self, index: usize) {
        let limit = 2 * self.db().ops.held + 64;
        let databases = self.databases.as_mut().expect("databases");
        let cluster = &mut databases.clusters[index];
        if cluster.waiting.len() <= limit {
            return;
        }
        let transports = &self.transports;
        let ops = &mut databases.ops;
        cluster.waiting.retain(|&(_, key)| {
            let live = ops
                .get(key)
                .is_some_and(|op| transports.contains_key(op.frame));
            if !live {
                ops.remove(key);
            }
            live
        });
    }

    /// A window ends: sample each cluster's roles and lags.
    fn sample(&mut self) {
        let now = self.now;
        for index in 0..self.scenario.databases.len() {
            let nodes = self.scenario.databases[index].nodes.len();
            let cluster = &mut self.db().clusters[index];
            cluster.replication.advance(now);
            let primary = cluster.replication.primary();
            let roles = (0..nodes)
                .map(|node| {
                    if !cluster.alive(node) {
                        ROLE_DOWN
                    } else if node == primary {
                        ROLE_PRIMARY
                    } else if matches!(cluster.fencing.admit(node), Admission::Accepted { .. }) {
                        ROLE_STALE_PRIMARY
                    } else if cluster.detached[node] {
                        ROLE_FENCED
                    } else {
                        ROLE_REPLICA
                    }
                })
                .collect();
            let lag_ms = (0..nodes)
                .map(|node| {
                    if node == primary || cluster.detached[node] {
                        0.0
                    } else {
                        cluster.replication.apply_lag(node).as_ms_f64()
                    }
                })
                .collect();
            let sample = DatabaseSample {
                primary,
                writable_primaries: cluster.fencing.writable_primaries(),
                lag_ms,
                roles,
            };
            if cluster.samples.len() < 100_000 {
                cluster.samples.push(sample);
            }
        }
        let next = now + self.scenario.window;
        if self.keeps_running(next) {
            self.push_db(next, DatabaseEvent::Sample);
        }
    }

    /// The reports of every cluster at the end of the run.
    pub(super) fn database_reports(&mut self) -> Vec<DatabaseReport> {
        let now = self.now;
        let Some(databases) = self.databases.as_mut() else {
            return Vec::new();
        };
        databases
            .clusters
            .iter_mut()
            .zip(&self.scenario.databases)
            .map(|(cluster, config)| {
                let writable = cluster.fencing.writable_primaries();
                cluster.ledger.set_writable_primaries(now, writable);
                DatabaseReport {
                    name: config.name.clone(),
                    nodes: config.nodes.iter().map(|node| node.name.clone()).collect(),
                    summary: cluster.ledger.summary(now),
                    failovers: cluster.ledger.failovers().to_vec(),
                    windows: cluster.ledger.windows().to_vec(),
                    samples: std::mem::take(&mut cluster.samples),
                    semi_sync_fallbacks: cluster.semi_sync_fallbacks,
                    promotions_withheld: cluster.promotions_withheld,
                    promotions_refused: cluster.promotions_refused,
                    redundant_promotions: cluster.redundant_promotions,
                    latency_windows: std::mem::take(&mut cluster.latency_windows),
                    drawn_faults: std::mem::take(&mut cluster.drawn_faults),
                    drawn_faults_not_kept: cluster.drawn_faults_not_kept,
                }
            })
            .collect()
    }
}

/// The first proxy check at or after `now`: checks run at `phase + k x interval`.
fn next_check(now: SimTime, phase: SimDuration, interval: SimDuration) -> SimTime {
    let interval = interval.as_micros().max(1);
    let since = now.as_micros().saturating_sub(phase.as_micros());
    let k = since.div_ceil(interval);
    SimTime(phase.as_micros() + k * interval).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    // An operation in flight, its index entry and its frame's attempt stay
    // within the 88 bytes a transport is charged for and does not use
    // (see `Ops`): a slot map stores the operation with a 4-byte version,
    // a secondary map each value with one.
    #[test]
    fn an_operation_and_its_index_entries_fit_in_a_transports_spare_charge() {
        assert_eq!(size_of::<Op>(), 32);
        assert_eq!(size_of::<OpKey>(), 8);
        assert_eq!(size_of::<Attempt>(), 3);
        let op_slot = (size_of::<Op>() + 4).next_multiple_of(8);
        let index_entry = size_of::<OpKey>() + 4;
        let attempt_entry = (size_of::<Attempt>() + 4).next_multiple_of(4);
        let spare = (size_of::<Request>() + 4).next_multiple_of(8) + 64;
        assert_eq!(spare, 88);
        assert!(op_slot + index_entry + attempt_entry <= spare);
    }

    fn op(frame: TransportKey, write: bool, retry: bool) -> Op {
        Op {
            frame,
            cluster: 0,
            caller: 0,
            node: 0,
            write,
            retry,
            abandoned: false,
            sent_at: SimTime::ZERO,
        }
    }

    // The attempt outlives its operation: answered at the node (its answer
    // on the way back) or never sent (dropped on the way), a timeout's
    // `catch` still finds whether it was a write, once.
    #[test]
    fn an_attempt_is_caught_once_after_its_operation_is_gone() {
        let mut frames: SlotMap<TransportKey, ()> = SlotMap::with_key();
        let (answered, dropped) = (frames.insert(()), frames.insert(()));
        let mut ops = Ops::new();
        ops.begin(answered, true);
        let key = ops.insert(op(answered, true, false));
        assert!(ops.remove(key).is_some());
        assert!(ops.of_frame_mut(answered).is_none());
        ops.begin(dropped, false);
        let first = Attempt {
            write: true,
            caught: false,
            out: 0,
        };
        assert_eq!(ops.catch(answered, true), Some(first));
        assert_eq!(
            ops.catch(answered, true),
            Some(Attempt {
                caught: true,
                ..first
            })
        );
        assert_eq!(
            ops.catch(dropped, false),
            Some(Attempt {
                write: false,
                caught: false,
                out: 0,
            })
        );
    }

    // A catch while the first operation is still out marks it final (and
    // abandoned, with abandon); the retry then joins it in the index, and
    // the first one's answer leaves the index naming the retry.
    #[test]
    fn a_catch_with_the_first_operation_out_keeps_the_index_on_the_retry() {
        let mut frames: SlotMap<TransportKey, ()> = SlotMap::with_key();
        let frame = frames.insert(());
        let mut ops = Ops::new();
        ops.begin(frame, true);
        let first = ops.insert(op(frame, true, false));
        assert!(ops
            .catch(frame, true)
            .is_some_and(|attempt| !attempt.caught));
        let marked = ops.get(first).expect("still out");
        assert!(marked.retry && marked.abandoned);
        let retry = ops.insert(op(frame, true, true));
        assert!(ops.remove(first).is_some());
        assert_eq!(ops.by_frame.get(frame), Some(&retry));
        assert!(ops.catch(frame, true).is_some_and(|attempt| attempt.caught));
        assert!(ops.remove(retry).is_some());
        assert!(ops.by_frame.is_empty() && ops.slots.is_empty());
    }

    // A frame is idle (free to go once abandoned) only when it has sent its
    // attempt and none of its operations is out, the retry's removal before
    // the first's included (`by_frame` then names neither); `held` counts
    // the operations of live frames only.
    #[test]
    fn a_frame_is_idle_only_with_nothing_out() {
        let mut frames: SlotMap<TransportKey, ()> = SlotMap::with_key();
        let frame = frames.insert(());
        let mut ops = Ops::new();
        assert!(!ops.idle(frame), "not sent yet");
        ops.begin(frame, true);
        assert!(ops.idle(frame), "dropped on the way");
        let first = ops.insert(op(frame, true, false));
        assert!(ops.catch(frame, true).is_some());
        let retry = ops.insert(op(frame, true, true));
        assert_eq!(ops.held, 2);
        assert!(ops.remove(retry).is_some());
        assert!(ops.by_frame.get(frame).is_none());
        assert!(!ops.idle(frame), "the first is still out");
        assert!(ops.remove(first).is_some());
        assert!(ops.idle(frame));
        assert_eq!(ops.held, 0);
        // An operation outliving its frame is not held.
        let other = frames.insert(());
        ops.begin(other, false);
        let late = ops.insert(op(other, false, false));
        assert_eq!(ops.held, 1);
        frames.remove(other);
        ops.end(other);
        assert_eq!(ops.held, 0);
        assert!(!ops.idle(other));
        assert!(ops.remove(late).is_some());
        assert_eq!(ops.held, 0);
    }

    // An ended frame's attempt is gone, and a new frame in its slot starts
    // afresh: the attempts held are those of live frames only.
    #[test]
    fn an_ended_frames_attempt_is_forgotten() {
        let mut frames: SlotMap<TransportKey, ()> = SlotMap::with_key();
        let mut ops = Ops::new();
        for _ in 0..1_000 {
            let frame = frames.insert(());
            ops.begin(frame, true);
            assert!(ops.catch(frame, false).is_some());
            frames.remove(frame);
            ops.end(frame);
            assert_eq!(ops.catch(frame, false), None);
        }
        assert!(ops.attempts.is_empty());
        // One frame at a time reuses one slot: the map does not grow with
        // the frames that came and went.
        assert!(ops.attempts.capacity() < 64, "{}", ops.attempts.capacity());
    }
}
