//! Replication from one primary to its replicas, as a pure state machine:
//! `now` and inputs (writes, links, pauses, apply rates, crashes) in, commit
//! positions and mode changes out.
//!
//! Writes are numbered by a log sequence number (LSN), so "which writes does
//! node r hold" is a number: node r holds every write up to its `received`
//! LSN (on disk, in its relay log or WAL) and has made visible every write
//! up to its `applied` LSN.
//!
//! Lag is not drawn from a distribution, it emerges:
//! - **Shipping.** Each write is sent to each replica over its link and
//!   arrives one link delay later, in order (a replication stream is one TCP
//!   connection). The link delay is an input: the caller (the world's
//!   adapter) computes it from the network.
//! - **Applying.** Each replica applies at its own rate (writes per second),
//!   as a fluid: a replica whose apply rate `mu` is below the write rate
//!   `lambda` falls behind, and once the write rate drops it catches up in
//!   `backlog / (mu - lambda)` seconds (`catch_up_seconds`).
//!
//! Modes (the `mode` of `ReplicationSettings`):
//! - `async`: the primary acknowledges a write as soon as it is local.
//! - `semi_sync` (MySQL's semisynchronous replication, `AFTER_SYNC`): a write
//!   is acknowledged once `acks_required` replicas (default 1,
//!   `rpl_semi_sync_master_wait_for_slave_count`) have received it. If the
//!   oldest waiting write has waited `semi_sync_timeout` (default 10 s,
//!   `rpl_semi_sync_master_timeout`), the primary silently reverts to async
//!   and acknowledges everything; it switches back on when a replica's
//!   acknowledgement reaches the position where it fell back (MySQL's
//!   `try_switch_on`).
//! - `sync` (PostgreSQL `synchronous_commit = on` with `ANY k` standbys): a
//!   write is acknowledged once `acks_required` replicas have received it,
//!   never earlier; with no replica reachable, writes wait forever (the
//!   caller's timeouts give up on them).
//!
//! Design choices, stated so the numbers can be read:
//! - A message in flight is dropped when its sender crashes or its link is
//!   cut. In reality bytes already on the wire may still arrive; treating
//!   the link delay as "until durable on the replica" makes the window of
//!   writes lost at a primary crash exactly the shipping lag, an upper bound
//!   on RPO and the quantity RPO-at-failure reports.
//! - When a link comes back (or a replica restarts or resumes) the replica
//!   asks for everything after its `received` position, which arrives as one
//!   batch a link delay later.
//! - Pausing replication (`set_paused`) stops both receiving and applying,
//!   as MySQL's `STOP REPLICA` does; slowing a replica is `set_apply_rate`.
//! - A promoted replica first replays everything it received (PostgreSQL and
//!   MySQL both do): the caller waits `replay_time` before calling
//!   `promote`. The new primary's history forks at its `received` LSN (a new
//!   epoch, PostgreSQL's timeline): writes above the fork in the old epoch
//!   are gone, replicas ahead of the fork are rewound to it (`pg_rewind`),
//!   and LSNs from the fork on are reused by the new epoch.
//! - Memory is bounded: each in-flight pipe holds at most `PIPE_CAPACITY`
//!   batches (a full pipe merges the newest batch into the last one, which
//!   only delays the earlier writes to the later arrival time), and the LSN
//!   to issue-time samples used for lag in seconds are thinned to half when
//!   full, as PostgreSQL's `LagTracker` keeps a fixed-size buffer.

use crate::engine::{SimDuration, SimTime, MICROS_PER_SECOND_F64};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A log sequence number: write number `n` of the history, from 1.
pub type Lsn = u64;

/// The most batches one link direction holds in flight.
pub const PIPE_CAPACITY: usize = 1_024;
/// The most LSN-to-time samples kept for lag in seconds.
pub const LSN_SAMPLES_MAX: usize = 8_192;

/// How the primary waits for replicas before acknowledging a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Acknowledge when local.
    #[default]
    Async,
    /// Wait for replica acknowledgements, revert to async after a timeout.
    SemiSync,
    /// Wait for replica acknowledgements, forever.
    Sync,
}

impl ReplicationMode {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ReplicationMode::Async => "async",
            ReplicationMode::SemiSync => "semi_sync",
            ReplicationMode::Sync => "sync",
        }
    }
}

/// Replication settings, checked. Defaults: `async`, one acknowledgement,
/// a 10 s semi-sync timeout (MySQL's `rpl_semi_sync_master_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// The mode.
    pub mode: ReplicationMode,
    /// Replica acknowledgements a write waits for (`semi_sync`, `sync`),
    /// in `[1, replicas]`.
    pub acks_required: u32,
    /// How long `semi_sync` waits before reverting to async.
    pub semi_sync_timeout: SimDuration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            mode: ReplicationMode::Async,
            acks_required: 1,
            semi_sync_timeout: SimDuration::from_ms(10_000),
        }
    }
}

/// The link between the primary and one node, in both directions: whether
/// messages get through, and the one-way delay. Computed by the caller from
/// the network (placement, latency matrix, partitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Whether messages get through.
    pub reachable: bool,
    /// One-way delay.
    pub delay: SimDuration,
}

impl Link {
    /// A reachable link with this one-way delay.
    pub fn up(delay: SimDuration) -> Link {
        Link {
            reachable: true,
            delay,
        }
    }

    /// A cut link.
    pub fn down() -> Link {
        Link {
            reachable: false,
            delay: SimDuration::ZERO,
        }
    }
}

/// Something the caller should know about, drained with `drain_events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationEvent {
    /// Semi-sync reverted to async: the oldest waiting write waited out the timeout.
    SemiSyncOff {
        /// When.
        at: SimTime,
    },
    /// Semi-sync switched back on: a replica caught up.
    SemiSyncOn {
        /// When.
        at: SimTime,
    },
}

/// What `promote` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The new epoch (timeline).
    pub epoch: u64,
    /// The new primary.
    pub primary: usize,
    /// The LSN where the new history forks: the new primary's `received`.
    pub fork_lsn: Lsn,
    /// The old primary's last written LSN.
    pub old_head_lsn: Lsn,
    /// The old primary's last acknowledged LSN.
    pub old_committed_lsn: Lsn,
    /// Acknowledged writes not on the new primary: `old_committed - fork`.
    pub committed_lost: u64,
    /// Replicas rewound to the fork, with the LSN they held before.
    pub rewound: Vec<(usize, Lsn)>,
}

/// A FIFO of `(arrival time, LSN)` batches on one link direction.
#[derive(Clone, Debug, Default)]
struct Pipe {
    batches: VecDeque<(SimTime, Lsn)>,
}

impl Pipe {
    fn push(&mut self, at: SimTime, lsn: Lsn) {
        // A stream delivers in order: a batch never overtakes the one before.
        let at = match self.batches.back() {
            Some(&(last_at, _)) => at.max(last_at),
            None => at,
        };
        if self.batches.len() >= PIPE_CAPACITY {
            let last = self.batches.back_mut().expect("a full pipe is not empty");
            *last = (at, lsn.max(last.1));
        } else {
            self.batches.push_back((at, lsn));
        }
        debug_assert!(self.batches.len() <= PIPE_CAPACITY);
    }

    fn pop_due(&mut self, now: SimTime) -> Option<(SimTime, Lsn)> {
        match self.batches.front() {
            Some(&(at, _)) if at <= now => self.batches.pop_front(),
            _ => None,
        }
    }

    fn next_at(&self) -> Option<SimTime> {
        self.batches.front().map(|&(at, _)| at)
    }

    fn clear(&mut self) {
        self.batches.clear();
    }
}

/// Samples of `(LSN, issue time)`, thinned to half when full, to turn a
/// position into "seconds behind".
#[derive(Clone, Debug, Default)]
struct LsnTimes {
    samples: VecDeque<(Lsn, SimTime)>,
}

impl LsnTimes {
    fn record(&mut self, lsn: Lsn, at: SimTime) {
        if let Some(last) = self.samples.back_mut() {
            debug_assert!(last.0 < lsn && last.1 <= at);
            if last.1 == at {
                last.0 = lsn;
                return;
            }
        }
        self.samples.push_back((lsn, at));
        if self.samples.len() > LSN_SAMPLES_MAX {
            // Keep every other sample, always the oldest and the newest.
            let newest = *self.samples.back().expect("not empty");
            let kept: VecDeque<(Lsn, SimTime)> = self
                .samples
                .iter()
                .copied()
                .enumerate()
                .filter(|(index, _)| index % 2 == 0)
                .map(|(_, sample)| sample)
                .collect();
            self.samples = kept;
            if self.samples.back() != Some(&newest) {
                self.samples.push_back(newest);
            }
        }
        debug_assert!(self.samples.len() <= LSN_SAMPLES_MAX);
    }

    /// The issue time of the first sample at or after `lsn`: the write was
    /// issued no later than this.
    fn issued_at(&self, lsn: Lsn) -> Option<SimTime> {
        let index = self.samples.partition_point(|&(sample, _)| sample < lsn);
        self.samples.get(index).map(|&(_, at)| at)
    }

    /// Forgets samples below `lsn` (every node holds those writes).
    fn forget_below(&mut self, lsn: Lsn) {
        while self.samples.len() > 1 && self.samples[0].0 < lsn {
            self.samples.pop_front();
        }
    }

    /// Forgets samples above `lsn` (a fork discarded those writes).
    fn truncate_above(&mut self, lsn: Lsn) {
        while self.samples.back().is_some_and(|&(sample, _)| sample > lsn) {
            self.samples.pop_back();
        }
    }
}

/// One node as replication sees it.
#[derive(Clone, Debug)]
struct Node {
    alive: bool,
    paused: bool,
    /// Follows the primary; false for the primary and for a detached old primary.
    following: bool,
    link: Link,
    apply_rate_per_second: f64,
    received: Lsn,
    applied: Lsn,
    /// The highest acknowledgement from this node that reached the primary.
    acked: Lsn,
    apply_carry: f64,
    applied_until: SimTime,
    to_node: Pipe,
    from_node: Pipe,
}

/// Replication in one cluster: see the module documentation.
#[derive(Clone, Debug)]
pub struct Replication {
    settings: ReplicationSettings,
    nodes: Vec<Node>,
    primary: usize,
    epoch: u64,
    epoch_start: Lsn,
    head: Lsn,
    committed: Lsn,
    semi_sync_on: bool,
    /// The head when semi-sync fell back; it switches on again when an
    /// acknowledgement reaches it.
    fell_back_at_lsn: Lsn,
    times: LsnTimes,
    now: SimTime,
    events: Vec<ReplicationEvent>,
}

impl Replication {
    /// A cluster whose node `primary` is the primary and every other node
    /// follows it; `apply_rates_per_second[i]` is node i's apply rate and
    /// `links[i]` its link to the primary (the primary's own entry is
    /// ignored). All nodes start empty at LSN 0.
    pub fn new(
        settings: ReplicationSettings,
        apply_rates_per_second: &[f64],
        links: &[Link],
        primary: usize,
    ) -> Replication {
        assert_eq!(apply_rates_per_second.len(), links.len());
        assert!(primary < links.len());
        debug_assert!(
            settings.mode == ReplicationMode::Async
                || (settings.acks_required >= 1 && (settings.acks_required as usize) < links.len())
        );
        let nodes = apply_rates_per_second
            .iter()
            .zip(links)
            .enumerate()
            .map(|(index, (&rate, &link))| {
                debug_assert!(rate.is_finite() && rate >= 0.0);
                Node {
                    alive: true,
                    paused: false,
                    following: index != primary,
                    link,
                    apply_rate_per_second: rate,
                    received: 0,
                    applied: 0,
                    acked: 0,
                    apply_carry: 0.0,
                    applied_until: SimTime::ZERO,
                    to_node: Pipe::default(),
                    from_node: Pipe::default(),
                }
            })
            .collect();
        Replication {
            settings,
            nodes,
            primary,
            epoch: 0,
            epoch_start: 0,
            head: 0,
            committed: 0,
            semi_sync_on: true,
            fell_back_at_lsn: 0,
            times: LsnTimes::default(),
            now: SimTime::ZERO,
            events: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> ReplicationSettings {
        self.settings
    }

    /// The current primary.
    pub fn primary(&self) -> usize {
        self.primary
    }

    /// The current epoch (timeline); 0 until the first promotion.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The LSN where the current epoch began: the fork of the last
    /// promotion, 0 before any.
    pub fn epoch_start_lsn(&self) -> Lsn {
        self.epoch_start
    }

    /// The last LSN the primary wrote.
    pub fn head_lsn(&self) -> Lsn {
        self.head
    }

    /// The last LSN acknowledged to clients (every write up to it).
    pub fn committed_lsn(&self) -> Lsn {
        self.committed
    }

    /// The writes node `node` holds (durable, applied or not).
    pub fn received_lsn(&self, node: usize) -> Lsn {
        self.nodes[node].received
    }

    /// The writes node `node` has applied (visible to reads on it).
    pub fn applied_lsn(&self, node: usize) -> Lsn {
        self.nodes[node].applied
    }

    /// Whether node `node` is up.
    pub fn alive(&self, node: usize) -> bool {
        self.nodes[node].alive
    }

    /// Whether semi-sync is currently waiting for replicas (always false in
    /// other modes).
    pub fn semi_sync_active(&self) -> bool {
        self.settings.mode == ReplicationMode::SemiSync && self.semi_sync_on
    }

    /// Writes node `node` has not received.
    pub fn receive_lag_writes(&self, node: usize) -> u64 {
        self.head - self.nodes[node].received.min(self.head)
    }

    /// Writes node `node` has not applied.
    pub fn apply_lag_writes(&self, node: usize) -> u64 {
        self.head - self.nodes[node].applied.min(self.head)
    }

    /// How long ago the oldest write node `node` has not received was
    /// issued; zero when it holds everything. This is the RPO in seconds if
    /// the primary died now and `node` were promoted.
    pub fn receive_lag(&self, node: usize) -> SimDuration {
        self.lag_since(self.nodes[node].received)
    }

    /// How long ago the oldest write node `node` has not applied was issued:
    /// how stale a read on it is.
    pub fn apply_lag(&self, node: usize) -> SimDuration {
        self.lag_since(self.nodes[node].applied)
    }

    fn lag_since(&self, position: Lsn) -> SimDuration {
        if position >= self.head {
            return SimDuration::ZERO;
        }
        match self.times.issued_at(position + 1) {
            Some(at) => self.now.saturating_since(at),
            None => SimDuration::ZERO,
        }
    }

    /// How long node `node` needs to apply what it has received, at its
    /// current apply rate: the replay a promotion waits for. `None` if it
    /// cannot apply (rate zero with a backlog).
    pub fn replay_time(&self, node: usize) -> Option<SimDuration> {
        let node = &self.nodes[node];
        let backlog = node.received - node.applied;
        if backlog == 0 {
            return Some(SimDuration::ZERO);
        }
        if node.apply_rate_per_second <= 0.0 {
            return None;
        }
        let seconds = (backlog as f64 - node.apply_carry).max(0.0) / node.apply_rate_per_second;
        Some(SimDuration((seconds * MICROS_PER_SECOND_F64).ceil() as u64))
    }

    /// Mode changes since the last call.
    pub fn drain_events(&mut self) -> Vec<ReplicationEvent> {
        std::mem::take(&mut self.events)
    }

    /// The next instant at which something arrives or a semi-sync timeout
    /// fires; the caller calls `advance` then. Applying needs no events: it
    /// is computed when asked.
    pub fn next_event_at(&self) -> Option<SimTime> {
        let mut next: Option<SimTime> = None;
        let mut consider = |at: Option<SimTime>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |current: SimTime| current.min(at)));
            }
        };
        for node in &self.nodes {
            consider(node.to_node.next_at());
            consider(node.from_node.next_at());
        }
        if self.semi_sync_active() && self.committed < self.head {
            consider(
                self.times
                    .issued_at(self.committed + 1)
                    .map(|at| at + self.settings.semi_sync_timeout),
            );
        }
        next
    }

    /// Brings the state to `now`: delivers batches and acknowledgements due,
    /// applies, moves the commit position, fires the semi-sync timeout.
    pub fn advance(&mut self, now: SimTime) {
        debug_assert!(now >= self.now, "time goes forward");
        let now = now.max(self.now);
        // Deliver in time order across nodes, so acknowledgements and the
        // semi-sync timeout see the same order the network would.
        loop {
            let mut earliest: Option<(SimTime, usize, bool)> = None;
            for (index, node) in self.nodes.iter().enumerate() {
                for (at, is_ack) in [
                    (node.to_node.next_at(), false),
                    (node.from_node.next_at(), true),
                ] {
                    if let Some(at) = at {
                        if at <= now && earliest.is_none_or(|(best, _, _)| at < best) {
                            earliest = Some((at, index, is_ack));
                        }
                    }
                }
            }
            let timeout_at = self.semi_sync_timeout_at().filter(|&at| at <= now);
            match (earliest, timeout_at) {
                (Some((at, _, _)), Some(timeout)) if timeout < at => self.fall_back(timeout),
                (None, Some(timeout)) => self.fall_back(timeout),
                (Some((at, index, is_ack)), _) => self.deliver(at, index, is_ack),
                (None, None) => break,
            }
        }
        for index in 0..self.nodes.len() {
            self.apply_until(index, now);
        }
        self.now = now;
        let lowest = self
            .nodes
            .iter()
            .filter(|node| node.alive && node.following)
            .map(|node| node.received)
            .min()
            .unwrap_or(self.head);
        self.times.forget_below(lowest);
        self.check();
    }

    fn semi_sync_timeout_at(&self) -> Option<SimTime> {
        if self.semi_sync_active() && self.committed < self.head {
            self.times
                .issued_at(self.committed + 1)
                .map(|at| at + self.settings.semi_sync_timeout)
        } else {
            None
        }
    }

    fn fall_back(&mut self, at: SimTime) {
        debug_assert!(self.semi_sync_active());
        self.semi_sync_on = false;
        self.fell_back_at_lsn = self.head;
        self.committed = self.head;
        self.events.push(ReplicationEvent::SemiSyncOff { at });
    }

    fn deliver(&mut self, at: SimTime, index: usize, is_ack: bool) {
        if is_ack {
            let (_, lsn) = self.nodes[index].from_node.pop_due(at).expect("due");
            let node = &mut self.nodes[index];
            node.acked = node.acked.max(lsn);
            self.update_commit(at);
        } else {
            self.apply_until(index, at);
            let (_, lsn) = self.nodes[index].to_node.pop_due(at).expect("due");
            let node = &mut self.nodes[index];
            node.received = node.received.max(lsn);
            if self.settings.mode != ReplicationMode::Async && node.link.reachable {
                let received = node.received;
                let back = at + node.link.delay;
                node.from_node.push(back, received);
            }
        }
    }

    fn update_commit(&mut self, at: SimTime) {
        match self.settings.mode {
            ReplicationMode::Async => {}
            ReplicationMode::Sync => self.committed = self.committed.max(self.kth_ack()),
            ReplicationMode::SemiSync => {
                let kth = self.kth_ack();
                if self.semi_sync_on {
                    self.committed = self.committed.max(kth);
                } else if kth >= self.fell_back_at_lsn {
                    self.semi_sync_on = true;
                    self.events.push(ReplicationEvent::SemiSyncOn { at });
                }
            }
        }
        debug_assert!(self.committed <= self.head);
    }

    /// The k-th highest acknowledged position among the following nodes.
    fn kth_ack(&self) -> Lsn {
        let mut acks: Vec<Lsn> = self
            .nodes
            .iter()
            .filter(|node| node.following)
            .map(|node| node.acked.min(self.head))
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let k = self.settings.acks_required.max(1) as usize;
        acks.get(k - 1).copied().unwrap_or(0)
    }

    fn apply_until(&mut self, index: usize, at: SimTime) {
        let node = &mut self.nodes[index];
        let elapsed = at.saturating_since(node.applied_until);
        node.applied_until = node.applied_until.max(at);
        if !node.alive || node.paused || node.applied >= node.received {
            node.apply_carry = 0.0;
            return;
        }
        let credit = node.apply_carry
            + elapsed.as_micros() as f64 / MICROS_PER_SECOND_F64 * node.apply_rate_per_second;
        let whole = credit.floor();
        let backlog = node.received - node.applied;
        if whole >= backlog as f64 {
            node.applied = node.received;
            node.apply_carry = 0.0;
        } else {
            node.applied += whole as u64;
            node.apply_carry = credit - whole;
        }
        debug_assert!(node.applied <= node.received);
    }

    /// The primary accepts a write at `now`: returns its LSN and whether it
    /// is acknowledged at once (`async`, or `semi_sync` while reverted).
    /// Later acknowledgements show in `committed_lsn` after `advance`.
    pub fn write(&mut self, now: SimTime) -> (Lsn, bool) {
        self.advance(now);
        debug_assert!(self.nodes[self.primary].alive, "only a live primary writes");
        self.head += 1;
        let lsn = self.head;
        self.times.record(lsn, now);
        let primary = &mut self.nodes[self.primary];
        primary.received = lsn;
        primary.applied = lsn;
        primary.acked = lsn;
        for node in self.nodes.iter_mut() {
            if node.following && node.alive && !node.paused && node.link.reachable {
                node.to_node.push(now + node.link.delay, lsn);
            }
        }
        let immediate = match self.settings.mode {
            ReplicationMode::Async => true,
            ReplicationMode::SemiSync => !self.semi_sync_on,
            ReplicationMode::Sync => false,
        };
        if immediate {
            self.committed = lsn;
        }
        self.check();
        (lsn, immediate)
    }

    /// Changes node `node`'s link to the primary. Cutting it drops what is
    /// in flight both ways; restoring it ships the node's backlog.
    pub fn set_link(&mut self, now: SimTime, node: usize, link: Link) {
        self.advance(now);
        let was = self.nodes[node].link.reachable;
        self.nodes[node].link = link;
        if !link.reachable {
            self.nodes[node].to_node.clear();
            self.nodes[node].from_node.clear();
        } else if !was {
            self.resend(now, node);
        }
    }

    /// Pauses or resumes replication to node `node` (receiving and applying).
    pub fn set_paused(&mut self, now: SimTime, node: usize, paused: bool) {
        self.advance(now);
        let was = self.nodes[node].paused;
        self.nodes[node].paused = paused;
        if paused {
            self.nodes[node].to_node.clear();
        } else if was {
            self.resend(now, node);
        }
    }

    /// Changes node `node`'s apply rate (a slow replica, or its recovery).
    pub fn set_apply_rate(&mut self, now: SimTime, node: usize, rate_per_second: f64) {
        debug_assert!(rate_per_second.is_finite() && rate_per_second >= 0.0);
        self.advance(now);
        self.nodes[node].apply_rate_per_second = rate_per_second;
    }

    /// Node `node` crashes: it keeps what is on its disk (`received`), and
    /// everything in flight from or to it is dropped.
    pub fn crash(&mut self, now: SimTime, node: usize) {
        self.advance(now);
        self.nodes[node].alive = false;
        self.nodes[node].to_node.clear();
        self.nodes[node].from_node.clear();
        if node == self.primary {
            // What the primary had sent but not yet landed is lost with it.
            for other in self.nodes.iter_mut() {
                other.to_node.clear();
            }
        }
    }

    /// Node `node` restarts and, if it follows, asks for its backlog; if it
    /// is the primary (nobody was promoted), every replica asks again.
    pub fn restart(&mut self, now: SimTime, node: usize) {
        self.advance(now);
        self.nodes[node].alive = true;
        self.nodes[node].applied_until = now;
        if node == self.primary {
            for index in 0..self.nodes.len() {
                self.resend(now, index);
            }
        } else {
            self.resend(now, node);
        }
    }

    fn resend(&mut self, now: SimTime, index: usize) {
        let primary_alive = self.nodes[self.primary].alive;
        let head = self.head;
        let node = &mut self.nodes[index];
        if primary_alive
            && node.following
            && node.alive
            && !node.paused
            && node.link.reachable
            && node.received < head
        {
            node.to_node.push(now + node.link.delay, head);
        }
    }

    /// Promotes node `node` (alive, having replayed its backlog: see
    /// `replay_time`) to primary in a new epoch. `links[i]` is node i's link
    /// to the new primary. The old primary stops being followed; it rejoins
    /// with `rejoin` (rewound to the fork) if it comes back.
    pub fn promote(&mut self, now: SimTime, node: usize, links: &[Link]) -> Promotion {
        assert_eq!(links.len(), self.nodes.len());
        self.advance(now);
        debug_assert!(node != self.primary);
        debug_assert!(self.nodes[node].alive);
        let old_primary = self.primary;
        let fork = self.nodes[node].received;
        let old_head = self.head;
        let old_committed = self.committed;
        self.epoch += 1;
        self.epoch_start = fork;
        self.primary = node;
        self.head = fork;
        self.committed = fork;
        self.semi_sync_on = true;
        self.fell_back_at_lsn = 0;
        self.times.truncate_above(fork);
        let mut rewound = Vec::new();
        for (index, other) in self.nodes.iter_mut().enumerate() {
            other.to_node.clear();
            other.from_node.clear();
            other.link = links[index];
            if index == node {
                other.following = false;
                other.applied = fork;
                other.apply_carry = 0.0;
                other.acked = fork;
                continue;
            }
            if index == old_primary {
                other.following = false;
                continue;
            }
            if other.received > fork {
                rewound.push((index, other.received));
                other.received = fork;
                other.applied = other.applied.min(fork);
            }
            other.acked = other.received;
        }
        for index in 0..self.nodes.len() {
            self.resend(now, index);
        }
        self.check();
        Promotion {
            epoch: self.epoch,
            primary: node,
            fork_lsn: fork,
            old_head_lsn: old_head,
            old_committed_lsn: old_committed,
            committed_lost: old_committed - old_committed.min(fork),
            rewound,
        }
    }

    /// The detached old primary `node` comes back as a replica of the
    /// current primary: its writes above the current history are discarded
    /// (`pg_rewind`); returns how many it discarded.
    pub fn rejoin(&mut self, now: SimTime, node: usize) -> u64 {
        self.advance(now);
        debug_assert!(node != self.primary);
        let head = self.head;
        let entry = &mut self.nodes[node];
        let discarded = entry.received.saturating_sub(head);
        entry.received = entry.received.min(head);
        entry.applied = entry.applied.min(head);
        entry.acked = entry.received;
        entry.following = true;
        entry.alive = true;
        entry.applied_until = now;
        self.resend(now, node);
        discarded
    }

    fn check(&self) {
        debug_assert!(self.committed <= self.head);
        for node in &self.nodes {
            debug_assert!(node.applied <= node.received);
            debug_assert!(!node.following || node.received <= self.head);
        }
    }
}

/// Seconds a replica applying `apply_rate` writes per second needs to clear
/// `backlog` writes while `write_rate` new ones arrive:
/// `backlog / (apply_rate - write_rate)`, or `None` if it never catches up.
pub fn catch_up_seconds(backlog: u64, apply_rate: f64, write_rate: f64) -> Option<f64> {
    if apply_rate > write_rate {
        Some(backlog as f64 / (apply_rate - write_rate))
    } else if backlog == 0 {
        Some(0.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use proptest::prelude::*;

    fn ms(value: u64) -> SimTime {
        SimTime::from_ms(value)
    }

    fn settings(mode: ReplicationMode) -> ReplicationSettings {
        ReplicationSettings {
            mode,
            ..ReplicationSettings::default()
        }
    }

    /// Node 0 primary, replicas 1.. with these one-way delays (ms) and fast apply.
    fn cluster(mode: ReplicationMode, delays_ms: &[u64]) -> Replication {
        let mut links = vec![Link::up(SimDuration::ZERO)];
        links.extend(delays_ms.iter().map(|&d| Link::up(SimDuration::from_ms(d))));
        let rates = vec![1_000_000.0; links.len()];
        Replication::new(settings(mode), &rates, &links, 0)
    }

    // Async acknowledges at once; the replica holds the write one link delay later.
    #[test]
    fn async_acknowledges_locally_and_ships_after_the_link_delay() {
        let mut replication = cluster(ReplicationMode::Async, &[40]);
        assert_eq!(replication.write(ms(0)), (1, true));
        assert_eq!(replication.committed_lsn(), 1);
        replication.advance(ms(39));
        assert_eq!(replication.received_lsn(1), 0);
        assert_eq!(replication.receive_lag(1), SimDuration::from_ms(39));
        replication.advance(ms(40));
        assert_eq!(replication.received_lsn(1), 1);
        assert_eq!(replication.receive_lag(1), SimDuration::ZERO);
        // Applying one write takes 1 / apply rate (1 µs here).
        assert_eq!(replication.applied_lsn(1), 0);
        replication.advance(ms(40) + SimDuration(1));
        assert_eq!(replication.applied_lsn(1), 1);
    }

    // Sync waits a round trip for the acknowledgement.
    #[test]
    fn sync_acknowledges_after_a_round_trip() {
        let mut replication = cluster(ReplicationMode::Sync, &[40, 80]);
        assert_eq!(replication.write(ms(0)), (1, false));
        assert_eq!(replication.next_event_at(), Some(ms(40)));
        replication.advance(ms(79));
        assert_eq!(replication.committed_lsn(), 0);
        replication.advance(ms(80));
        assert_eq!(replication.committed_lsn(), 1);
    }

    // Sync never acknowledges with every replica cut off, however long it waits.
    #[test]
    fn sync_waits_forever_without_a_replica() {
        let mut replication = cluster(ReplicationMode::Sync, &[1]);
        replication.set_link(ms(0), 1, Link::down());
        replication.write(ms(0));
        replication.advance(ms(3_600_000));
        assert_eq!(replication.committed_lsn(), 0);
        assert_eq!(replication.next_event_at(), None);
        // The link comes back: the backlog ships and the write is acknowledged.
        replication.set_link(ms(3_600_000), 1, Link::up(SimDuration::from_ms(1)));
        replication.advance(ms(3_600_002));
        assert_eq!(replication.committed_lsn(), 1);
    }

    // Semi-sync silently reverts to async after its timeout (10 s) and
    // switches back on when the replica catches up.
    #[test]
    fn semi_sync_falls_back_after_the_timeout_and_returns() {
        let mut replication = cluster(ReplicationMode::SemiSync, &[1]);
        replication.write(ms(0));
        replication.advance(ms(2));
        assert_eq!(replication.committed_lsn(), 1);
        replication.set_paused(ms(10), 1, true);
        assert_eq!(replication.write(ms(100)), (2, false));
        assert_eq!(replication.next_event_at(), Some(ms(10_100)));
        replication.advance(ms(10_099));
        assert_eq!(replication.committed_lsn(), 1);
        assert!(replication.semi_sync_active());
        replication.advance(ms(10_100));
        assert_eq!(replication.committed_lsn(), 2);
        assert!(!replication.semi_sync_active());
        assert_eq!(
            replication.drain_events(),
            vec![ReplicationEvent::SemiSyncOff { at: ms(10_100) }]
        );
        // Reverted: writes are acknowledged at once.
        assert_eq!(replication.write(ms(11_000)), (3, true));
        replication.set_paused(ms(12_000), 1, false);
        replication.advance(ms(12_002));
        assert!(replication.semi_sync_active());
        assert_eq!(
            replication.drain_events(),
            vec![ReplicationEvent::SemiSyncOn { at: ms(12_002) }]
        );
        assert_eq!(replication.write(ms(13_000)), (4, false));
    }

    // A replica applying slower than the write rate falls behind, and catches
    // up at backlog / (apply rate - write rate) once it is faster again.
    #[test]
    fn a_slow_replica_falls_behind_and_catches_up_as_the_closed_form_says() {
        let links = [Link::up(SimDuration::ZERO), Link::up(SimDuration::ZERO)];
        let mut replication =
            Replication::new(ReplicationSettings::default(), &[1e6, 80.0], &links, 0);
        // 100 writes/s for 10 s against an apply rate of 80/s: 200 behind.
        for index in 0..1_000u64 {
            replication.write(SimTime(index * 10_000));
        }
        replication.advance(ms(10_000));
        let backlog = replication.apply_lag_writes(1);
        assert!((199..=201).contains(&backlog), "{backlog}");
        assert_eq!(replication.receive_lag_writes(1), 0);
        // Apply rate back to 150/s while writes go on at 100/s: 200 / 50 = 4 s.
        replication.set_apply_rate(ms(10_000), 1, 150.0);
        let expected = catch_up_seconds(backlog, 150.0, 100.0).unwrap();
        let mut caught_up_at = None;
        for index in 1_000..2_000u64 {
            let at = SimTime(index * 10_000);
            replication.write(at);
            replication.advance(at + SimDuration(9_999));
            if caught_up_at.is_none() && replication.apply_lag_writes(1) <= 1 {
                caught_up_at = Some(at);
            }
        }
        let seconds = caught_up_at.unwrap().as_seconds_f64() - 10.0;
        assert!((seconds - expected).abs() < 0.1, "{seconds} vs {expected}");
        assert_eq!(catch_up_seconds(5, 100.0, 100.0), None);
        assert_eq!(catch_up_seconds(0, 1.0, 100.0), Some(0.0));
    }

    // A primary crash loses what had not landed; promotion forks the history.
    #[test]
    fn promotion_forks_at_the_new_primary_and_rewinds_replicas_ahead() {
        let mut replication = cluster(ReplicationMode::Async, &[10, 50]);
        for at in 0..100 {
            replication.write(ms(at));
        }
        replication.crash(ms(100), 0);
        // A write issued at t lands at t + delay: 91 and 51 writes landed by 100 ms.
        assert_eq!(replication.received_lsn(1), 91);
        assert_eq!(replication.received_lsn(2), 51);
        // The last write landed just now: one microsecond of replay left.
        assert_eq!(replication.replay_time(1), Some(SimDuration(1)));
        let links = [
            Link::down(),
            Link::up(SimDuration::ZERO),
            Link::up(SimDuration::from_ms(5)),
        ];
        let promotion = replication.promote(ms(100), 2, &links);
        assert_eq!(promotion.fork_lsn, 51);
        assert_eq!(promotion.committed_lost, 49);
        assert_eq!(promotion.rewound, vec![(1, 91)]);
        assert_eq!(replication.head_lsn(), 51);
        assert_eq!(replication.epoch(), 1);
        assert_eq!(replication.epoch_start_lsn(), 51);
        // The new epoch reuses LSN 52 and replicates it.
        assert_eq!(replication.write(ms(101)), (52, true));
        replication.advance(ms(106));
        assert_eq!(replication.received_lsn(1), 52);
        // The old primary comes back, discards its 48 writes above the new history and follows.
        replication.set_link(ms(200), 0, Link::up(SimDuration::ZERO));
        assert_eq!(replication.rejoin(ms(200), 0), 48);
        replication.advance(ms(200));
        assert_eq!(replication.received_lsn(0), 52);
    }

    // A primary that restarts without a promotion resumes shipping to its replicas.
    #[test]
    fn a_restarted_primary_ships_again() {
        let mut replication = cluster(ReplicationMode::Async, &[10]);
        replication.write(ms(0));
        replication.crash(ms(5), 0);
        replication.restart(ms(100), 0);
        assert_eq!(replication.next_event_at(), Some(ms(110)));
        replication.advance(ms(110));
        assert_eq!(replication.received_lsn(1), 1);
    }

    // The replay a promotion waits for is backlog / apply rate.
    #[test]
    fn replay_time_is_the_backlog_over_the_apply_rate() {
        let links = [Link::up(SimDuration::ZERO), Link::up(SimDuration::ZERO)];
        let mut replication =
            Replication::new(ReplicationSettings::default(), &[1e6, 10.0], &links, 0);
        for _ in 0..50 {
            replication.write(ms(0));
        }
        replication.advance(ms(0));
        assert_eq!(
            replication.replay_time(1),
            Some(SimDuration::from_ms(5_000))
        );
        replication.set_apply_rate(ms(0), 1, 0.0);
        assert_eq!(replication.replay_time(1), None);
    }

    // Lag in seconds stays meaningful after the sample buffer has been thinned.
    #[test]
    fn lag_in_seconds_survives_thinning() {
        let mut replication = cluster(ReplicationMode::Async, &[0]);
        replication.set_paused(ms(0), 1, true);
        for index in 0..100_000u64 {
            replication.write(SimTime(index * 1_000));
        }
        // The replica has nothing: its lag is the age of write 1, within the thinning's resolution.
        let lag = replication.receive_lag(1).as_ms_f64();
        assert!((99_000.0..=100_000.0).contains(&lag), "{lag}");
        assert!(replication.times.samples.len() <= LSN_SAMPLES_MAX);
    }

    // A full pipe merges batches instead of growing.
    #[test]
    fn pipes_are_bounded() {
        let mut replication = cluster(ReplicationMode::Async, &[1_000_000]);
        for index in 0..10_000u64 {
            replication.write(SimTime(index));
        }
        assert_eq!(replication.nodes[1].to_node.batches.len(), PIPE_CAPACITY);
        replication.advance(SimTime(1_000_000_000 + 10_000));
        assert_eq!(replication.received_lsn(1), 10_000);
    }

    /// Drives one cluster with a seeded Poisson write stream at `rate` per
    /// second and a `delay` one-way link, crashes the primary at `crash_at`,
    /// and returns the acknowledged writes the replica does not hold.
    fn async_loss(seed: u64, rate: f64, delay: SimDuration, crash_at: SimTime) -> u64 {
        let mut rng = RngFactory::new(seed).stream("test/writes");
        let links = [Link::up(SimDuration::ZERO), Link::up(delay)];
        let mut replication =
            Replication::new(ReplicationSettings::default(), &[1e6, 1e6], &links, 0);
        let mut at = 0.0f64;
        loop {
            at += -(1.0 - rng.unit()).ln() / rate * MICROS_PER_SECOND_F64;
            let now = SimTime(at as u64);
            if now >= crash_at {
                break;
            }
            replication.write(now);
        }
        replication.crash(crash_at, 0);
        let lost = replication.committed_lsn() - replication.received_lsn(1);
        // RPO in seconds at failure is the shipping lag, at most the delay.
        assert!(replication.receive_lag(1) <= delay);
        lost
    }

    // Fidelity: with async replication, acknowledged writes lost at a primary
    // crash are a Poisson count with mean write rate x lag at failure
    // (200/s x 50 ms = 10); the mean over 400 seeds lies within its 99.9%
    // confidence interval and the variance matches the mean.
    #[test]
    fn async_loss_matches_write_rate_times_lag() {
        let rate = 200.0;
        let delay = SimDuration::from_ms(50);
        let expected = rate * 0.050;
        let seeds = 400u64;
        let losses: Vec<f64> = (0..seeds)
            .map(|seed| async_loss(seed, rate, delay, SimTime::from_ms(60_000)) as f64)
            .collect();
        let mean = losses.iter().sum::<f64>() / seeds as f64;
        let variance =
            losses.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (seeds as f64 - 1.0);
        let half_width = 3.29 * (expected / seeds as f64).sqrt();
        assert!(
            (mean - expected).abs() < half_width,
            "mean {mean} vs {expected} ± {half_width}"
        );
        assert!(
            (variance / expected - 1.0).abs() < 0.25,
            "variance {variance}"
        );
    }

    #[derive(Clone, Debug)]
    enum Fault {
        Write,
        Wait(u64),
        CrashReplica(usize),
        RestartReplica(usize),
        Cut(usize),
        Heal(usize, u64),
        Pause(usize),
        Resume(usize),
        Slow(usize),
        CrashPrimaryAndPromote,
    }

    fn faults() -> impl Strategy<Value = Vec<Fault>> {
        let fault = prop_oneof![
            6 => Just(Fault::Write),
            3 => (0u64..200).prop_map(Fault::Wait),
            1 => (0usize..3).prop_map(Fault::CrashReplica),
            1 => (0usize..3).prop_map(Fault::RestartReplica),
            1 => (0usize..3).prop_map(Fault::Cut),
            1 => ((0usize..3), (0u64..100)).prop_map(|(n, d)| Fault::Heal(n, d)),
            1 => (0usize..3).prop_map(Fault::Pause),
            1 => (0usize..3).prop_map(Fault::Resume),
            1 => (0usize..3).prop_map(Fault::Slow),
            1 => Just(Fault::CrashPrimaryAndPromote),
        ];
        proptest::collection::vec(fault, 1..120)
    }

    /// Plays `faults` on a three-node cluster; returns acknowledged writes
    /// lost over all promotions. Promotion follows PostgreSQL's synchronous
    /// mode: only a replica holding every acknowledged write may be
    /// promoted (the most advanced live one); with none, nothing is promoted.
    fn play(mode: ReplicationMode, acks_required: u32, faults: &[Fault]) -> u64 {
        let settings = ReplicationSettings {
            mode,
            acks_required,
            ..ReplicationSettings::default()
        };
        let delay = SimDuration::from_ms(10);
        let links = [Link::up(delay); 3];
        let mut replication = Replication::new(settings, &[1e6, 500.0, 50.0], &links, 0);
        let mut now = SimTime::ZERO;
        let mut lost = 0;
        for fault in faults {
            now = now + SimDuration::from_ms(1);
            let primary = replication.primary();
            let others: Vec<usize> = (0..3).filter(|&n| n != primary).collect();
            let pick = |n: usize| others[n % others.len()];
            match *fault {
                Fault::Write => {
                    if replication.alive(primary) {
                        replication.write(now);
                    }
                }
                Fault::Wait(wait) => now = now + SimDuration::from_ms(wait),
                Fault::CrashReplica(n) => replication.crash(now, pick(n)),
                Fault::RestartReplica(n) => {
                    if !replication.alive(pick(n)) && replication.nodes[pick(n)].following {
                        replication.restart(now, pick(n));
                    }
                }
                Fault::Cut(n) => replication.set_link(now, pick(n), Link::down()),
                Fault::Heal(n, d) => {
                    replication.set_link(now, pick(n), Link::up(SimDuration::from_ms(d)))
                }
                Fault::Pause(n) => replication.set_paused(now, pick(n), true),
                Fault::Resume(n) => replication.set_paused(now, pick(n), false),
                Fault::Slow(n) => replication.set_apply_rate(now, pick(n), 5.0),
                Fault::CrashPrimaryAndPromote => {
                    replication.crash(now, primary);
                    let committed = replication.committed_lsn();
                    let candidate = others
                        .iter()
                        .copied()
                        .filter(|&n| replication.alive(n) && replication.nodes[n].following)
                        .filter(|&n| {
                            mode == ReplicationMode::Async
                                || replication.received_lsn(n) >= committed
                        })
                        .max_by_key(|&n| (replication.received_lsn(n), std::cmp::Reverse(n)));
                    if let Some(candidate) = candidate {
                        let promotion = replication.promote(now, candidate, &[Link::up(delay); 3]);
                        lost += promotion.committed_lost;
                        let back = replication.rejoin(now, primary);
                        assert!(back <= promotion.old_head_lsn);
                    } else {
                        replication.restart(now, primary);
                    }
                }
            }
            replication.advance(now);
            prop_assert_invariants(&replication);
        }
        lost
    }

    fn prop_assert_invariants(replication: &Replication) {
        assert!(replication.committed_lsn() <= replication.head_lsn());
        for node in 0..replication.nodes.len() {
            assert!(replication.applied_lsn(node) <= replication.received_lsn(node));
        }
        if replication.settings.mode == ReplicationMode::Sync
            && replication.committed_lsn() > replication.epoch_start_lsn()
        {
            // Every write acknowledged in this epoch is on at least acks_required standbys.
            let holding = (0..replication.nodes.len())
                .filter(|&n| n != replication.primary())
                .filter(|&n| replication.received_lsn(n) >= replication.committed_lsn())
                .count();
            assert!(holding >= replication.settings.acks_required as usize);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        // Fidelity: sync replication loses no acknowledged write under any
        // schedule of crashes, partitions, pauses, slow replicas and failovers.
        #[test]
        fn sync_replication_loses_nothing_under_random_faults(schedule in faults(), acks in 1u32..=2) {
            prop_assert_eq!(play(ReplicationMode::Sync, acks, &schedule), 0);
        }

        // The invariants hold in every mode; async may lose writes, never more than it acknowledged.
        #[test]
        fn invariants_hold_in_every_mode(schedule in faults()) {
            play(ReplicationMode::Async, 1, &schedule);
            play(ReplicationMode::SemiSync, 1, &schedule);
        }
    }

    // The same random schedule shows async losing writes where sync loses none.
    #[test]
    fn async_loses_writes_where_sync_does_not() {
        let mut schedule = vec![Fault::Write; 50];
        schedule.push(Fault::CrashPrimaryAndPromote);
        assert!(play(ReplicationMode::Async, 1, &schedule) > 0);
        assert_eq!(play(ReplicationMode::Sync, 1, &schedule), 0);
    }
}
