//! The write ledger: every write counted, from issued to its final state,
//! with bounded memory. Never sampled.
//!
//! States (the database's view; a client that gave up waiting does not
//! change what the database did with the write):
//! - **issued**: a write reached a node that took it (`issued`).
//! - **failed**: refused (not primary, stale epoch, down, disk full) or never
//!   acknowledged (still waiting for replicas when its primary lost the
//!   election, above the fork). Failed writes are not in the final history.
//! - **acknowledged**: the primary of the current epoch committed it.
//!   **Durable on n nodes** is a position count, not a state change
//!   (`durability`). When a promotion forks the history, acknowledged writes
//!   above the fork become **lost** (RPO); the rest are **surviving**.
//! - **divergent**: acknowledged by a primary whose epoch was already over (a
//!   fenced or demoted primary that did not know, or was never told: split
//!   brain). They will be thrown away when it rejoins.
//!
//! `issued = acknowledged + divergent + failed + pending` and
//! `acknowledged = surviving + lost` hold at every instant (debug-asserted
//! and tested). Beside the counts, the ledger integrates the time with two
//! or more writable primaries, counts reads and stale reads (a read that
//! misses an acknowledged write), and keeps one record per failover
//! (detection, promotion, routing, RTO, RPO in writes and in seconds of
//! lag, the lost LSN range, whether it was a false failover).
//!
//! Memory: fixed-size totals, one `WindowCounts` per time-series window (the
//! scenario caps windows at 100,000) and at most `FAILOVERS_KEPT` failover
//! records (the rest are still counted).

use super::replication::{Lsn, Promotion};
use crate::engine::{SimDuration, SimTime};
use serde::Serialize;

/// The most failover records kept; later failovers are counted only.
pub const FAILOVERS_KEPT: usize = 1_000;

/// Counts in one time-series window (or in total).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WindowCounts {
    /// Writes issued.
    pub issued: u64,
    /// Writes acknowledged by the current epoch's primary.
    pub acknowledged: u64,
    /// Writes refused or never acknowledged.
    pub failed: u64,
    /// Acknowledged writes that a promotion discarded.
    pub lost: u64,
    /// Writes acknowledged by a primary whose epoch was over.
    pub divergent: u64,
    /// Reads served.
    pub reads: u64,
    /// Reads that missed an acknowledged write.
    pub stale_reads: u64,
    /// Microseconds with two or more writable primaries.
    pub split_brain_micros: u64,
}

/// One failover, from the failure to clients reaching the new primary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailoverRecord {
    /// When the primary failed (crash, partition start), or when detection
    /// began for a false failover (the primary was fine).
    pub failure_at: SimTime,
    /// When the detector decided.
    pub detected_at: SimTime,
    /// When the new primary took writes.
    pub promoted_at: SimTime,
    /// When clients' routing reached the new primary, if it did.
    pub routed_at: Option<SimTime>,
    /// The old and new primaries.
    pub from_node: usize,
    /// The new primary.
    pub to_node: usize,
    /// Acknowledged writes lost (RPO in writes).
    pub lost_writes: u64,
    /// The lost LSN range `[first, last]` of the old epoch, if any.
    pub lost_lsns: Option<(Lsn, Lsn)>,
    /// The promoted node's receive lag when the primary failed (RPO in time).
    pub lag_at_failure: SimDuration,
    /// The primary was healthy: the failover was not needed.
    pub false_failover: bool,
}

impl FailoverRecord {
    /// Failure to decision.
    pub fn detection(&self) -> SimDuration {
        self.detected_at.saturating_since(self.failure_at)
    }

    /// Decision to the new primary taking writes.
    pub fn promotion(&self) -> SimDuration {
        self.promoted_at.saturating_since(self.detected_at)
    }

    /// Promotion to clients reaching it, if they did.
    pub fn routing(&self) -> Option<SimDuration> {
        self.routed_at
            .map(|at| at.saturating_since(self.promoted_at))
    }

    /// Recovery time: failure to clients reaching the new primary (to the
    /// promotion if routing never completed).
    pub fn rto(&self) -> SimDuration {
        self.routed_at
            .unwrap_or(self.promoted_at)
            .saturating_since(self.failure_at)
    }
}

/// The ledger's totals at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerSummary {
    /// Everything, summed over windows.
    pub totals: WindowCounts,
    /// Acknowledged and not lost.
    pub surviving: u64,
    /// Issued, not yet acknowledged, failed or divergent.
    pub pending: u64,
    /// Seconds with two or more writable primaries.
    pub split_brain_seconds: f64,
    /// Failovers, all of them.
    pub failovers: u64,
    /// Failovers of a healthy primary.
    pub false_failovers: u64,
    /// The largest RPO of any failover, in writes.
    pub rpo_writes_max: u64,
    /// The largest RPO of any failover, in seconds of lag.
    pub rpo_seconds_max: f64,
    /// The longest RTO of any kept failover, in seconds.
    pub rto_seconds_max: f64,
}

/// The write ledger of one cluster.
#[derive(Clone, Debug)]
pub struct WriteLedger {
    window: SimDuration,
    windows: Vec<WindowCounts>,
    windows_max: usize,
    totals: WindowCounts,
    epoch: u64,
    writable: usize,
    writable_since: SimTime,
    failovers: Vec<FailoverRecord>,
    failovers_total: u64,
    false_failovers: u64,
    rpo_writes_max: u64,
    rpo_lag_max: SimDuration,
}

impl WriteLedger {
    /// A ledger with windows of `window` (at most `windows_max` of them;
    /// later events land in the last) and one writable primary in epoch 0.
    pub fn new(window: SimDuration, windows_max: usize) -> WriteLedger {
        debug_assert!(window > SimDuration::ZERO && windows_max > 0);
        WriteLedger {
            window,
            windows: Vec::new(),
            windows_max,
            totals: WindowCounts::default(),
            epoch: 0,
            writable: 1,
            writable_since: SimTime::ZERO,
            failovers: Vec::new(),
            failovers_total: 0,
            false_failovers: 0,
            rpo_writes_max: 0,
            rpo_lag_max: SimDuration::ZERO,
        }
    }

    fn window_at(&mut self, now: SimTime) -> &mut WindowCounts {
        let index =
            ((now.as_micros() / self.window.as_micros()) as usize).min(self.windows_max - 1);
        if self.windows.len() <= index {
            self.windows.resize(index + 1, WindowCounts::default());
        }
        &mut self.windows[index]
    }

    fn add(&mut self, now: SimTime, apply: impl Fn(&mut WindowCounts)) {
        apply(&mut self.totals);
        apply(self.window_at(now));
        self.check();
    }

    /// The current epoch (the number of promotions so far).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `count` writes were taken by a node.
    pub fn issued(&mut self, now: SimTime, count: u64) {
        self.add(now, |counts| counts.issued += count);
    }

    /// `count` writes were acknowledged by a primary of `writer_epoch`:
    /// acknowledged if that is the current epoch, divergent if it is over.
    pub fn acknowledged(&mut self, now: SimTime, writer_epoch: u64, count: u64) {
        debug_assert!(writer_epoch <= self.epoch);
        if writer_epoch == self.epoch {
            self.add(now, |counts| counts.acknowledged += count);
        } else {
            self.add(now, |counts| counts.divergent += count);
        }
    }

    /// `count` writes were refused, or will never be acknowledged.
    pub fn failed(&mut self, now: SimTime, count: u64) {
        self.add(now, |counts| counts.failed += count);
    }

    /// A read was served by a node that has applied `applied_lsn` of the
    /// current history while `committed_lsn` is acknowledged: stale if it
    /// misses an acknowledged write.
    pub fn read(&mut self, now: SimTime, applied_lsn: Lsn, committed_lsn: Lsn) {
        let stale = u64::from(applied_lsn < committed_lsn);
        self.add(now, |counts| {
            counts.reads += 1;
            counts.stale_reads += stale;
        });
    }

    /// From `now` on, `count` nodes accept writes; two or more is split brain.
    pub fn set_writable_primaries(&mut self, now: SimTime, count: usize) {
        debug_assert!(now >= self.writable_since);
        if self.writable >= 2 {
            self.add_split_brain(self.writable_since, now);
        }
        self.writable = count;
        self.writable_since = now;
    }

    /// Spreads the split-brain interval `[from, to)` over its windows.
    fn add_split_brain(&mut self, from: SimTime, to: SimTime) {
        let mut at = from;
        while at < to {
            let window_end =
                SimTime((at.as_micros() / self.window.as_micros() + 1) * self.window.as_micros());
            let end = window_end.min(to);
            let micros = end.saturating_since(at).as_micros();
            self.totals.split_brain_micros += micros;
            self.window_at(at).split_brain_micros += micros;
            at = end;
        }
    }

    /// A promotion completed at `now`: acknowledged writes above the fork
    /// become lost, unacknowledged ones above it fail, unacknowledged ones
    /// below it (the new primary has them) count as acknowledged, and the
    /// epoch advances. `record` describes the failover (its `lost_writes`
    /// and `lost_lsns` are filled in from `promotion`).
    pub fn promoted(&mut self, now: SimTime, promotion: &Promotion, mut record: FailoverRecord) {
        let fork = promotion.fork_lsn;
        let committed = promotion.old_committed_lsn;
        let head = promotion.old_head_lsn;
        debug_assert!(committed <= head);
        let lost = promotion.committed_lost;
        let discarded = head - committed.max(fork).min(head);
        let adopted = fork.min(head) - committed.min(fork);
        self.add(now, |counts| {
            counts.lost += lost;
            counts.failed += discarded;
            counts.acknowledged += adopted;
        });
        self.epoch += 1;
        debug_assert_eq!(self.epoch, promotion.epoch);
        record.lost_writes = lost;
        record.lost_lsns = (lost > 0).then_some((fork + 1, committed));
        self.failovers_total += 1;
        self.false_failovers += u64::from(record.false_failover);
        self.rpo_writes_max = self.rpo_writes_max.max(lost);
        self.rpo_lag_max = self.rpo_lag_max.max(record.lag_at_failure);
        if self.failovers.len() < FAILOVERS_KEPT {
            self.failovers.push(record);
        }
    }

    /// Clients' routing reached the newest primary at `now`.
    pub fn routed(&mut self, now: SimTime) {
        if let Some(last) = self.failovers.last_mut() {
            if last.routed_at.is_none() {
                last.routed_at = Some(now);
            }
        }
    }

    /// The kept failover records, oldest first.
    pub fn failovers(&self) -> &[FailoverRecord] {
        &self.failovers
    }

    /// The per-window counts so far (windows with nothing may be missing at the end).
    pub fn windows(&self) -> &[WindowCounts] {
        &self.windows
    }

    /// The totals as of `now` (split brain counted up to `now`).
    pub fn summary(&self, now: SimTime) -> LedgerSummary {
        let mut totals = self.totals;
        if self.writable >= 2 {
            totals.split_brain_micros += now.saturating_since(self.writable_since).as_micros();
        }
        LedgerSummary {
            totals,
            surviving: totals.acknowledged - totals.lost,
            pending: totals.issued - totals.acknowledged - totals.divergent - totals.failed,
            split_brain_seconds: totals.split_brain_micros as f64 / 1e6,
            failovers: self.failovers_total,
            false_failovers: self.false_failovers,
            rpo_writes_max: self.rpo_writes_max,
            rpo_seconds_max: self.rpo_lag_max.as_ms_f64() / 1_000.0,
            rto_seconds_max: self
                .failovers
                .iter()
                .map(|record| record.rto().as_ms_f64() / 1_000.0)
                .fold(0.0, f64::max),
        }
    }

    fn check(&self) {
        let totals = &self.totals;
        debug_assert!(
            totals.acknowledged + totals.divergent + totals.failed <= totals.issued,
            "more writes ended than were issued: {totals:?}"
        );
        debug_assert!(totals.lost <= totals.acknowledged);
        debug_assert!(totals.stale_reads <= totals.reads);
    }
}

/// How many of the acknowledged writes (`1..=committed_lsn`) each
/// durability level holds: entry k-1 counts the writes on at least k nodes,
/// given each node's `received` position in the current history.
pub fn durability(committed_lsn: Lsn, positions: &[Lsn]) -> Vec<u64> {
    let mut sorted: Vec<Lsn> = positions
        .iter()
        .map(|&lsn| lsn.min(committed_lsn))
        .collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(seconds: u64) -> SimTime {
        SimTime::from_ms(seconds * 1_000)
    }

    fn record(failure: u64, detected: u64, promoted: u64) -> FailoverRecord {
        FailoverRecord {
            failure_at: s(failure),
            detected_at: s(detected),
            promoted_at: s(promoted),
            routed_at: None,
            from_node: 0,
            to_node: 1,
            lost_writes: 0,
            lost_lsns: None,
            lag_at_failure: SimDuration::from_ms(250),
            false_failover: false,
        }
    }

    fn promotion(fork: Lsn, committed: Lsn, head: Lsn) -> Promotion {
        Promotion {
            epoch: 1,
            primary: 1,
            fork_lsn: fork,
            old_head_lsn: head,
            old_committed_lsn: committed,
            committed_lost: committed - committed.min(fork),
            rewound: Vec::new(),
        }
    }

    // Acknowledged writes above the fork are lost; the record carries RPO and RTO.
    #[test]
    fn a_promotion_turns_acknowledged_writes_above_the_fork_into_losses() {
        let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 100);
        ledger.issued(s(1), 120);
        ledger.acknowledged(s(1), 0, 100);
        ledger.promoted(s(31), &promotion(90, 100, 120), record(1, 29, 31));
        ledger.routed(s(40));
        let summary = ledger.summary(s(50));
        assert_eq!(summary.totals.lost, 10);
        assert_eq!(summary.totals.failed, 20);
        assert_eq!(summary.surviving, 90);
        assert_eq!(summary.pending, 0);
        assert_eq!(summary.rpo_writes_max, 10);
        assert_eq!(summary.rpo_seconds_max, 0.25);
        let failover = &ledger.failovers()[0];
        assert_eq!(failover.lost_lsns, Some((91, 100)));
        assert_eq!(failover.detection(), SimDuration::from_ms(28_000));
        assert_eq!(failover.promotion(), SimDuration::from_ms(2_000));
        assert_eq!(failover.routing(), Some(SimDuration::from_ms(9_000)));
        assert_eq!(failover.rto(), SimDuration::from_ms(39_000));
        assert_eq!(summary.rto_seconds_max, 39.0);
        assert_eq!(ledger.windows()[31].lost, 10);
    }

    // Waiting writes the new primary already holds count as acknowledged (sync).
    #[test]
    fn waiting_writes_below_the_fork_are_adopted() {
        let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 100);
        ledger.issued(s(1), 50);
        ledger.acknowledged(s(1), 0, 40);
        ledger.promoted(s(2), &promotion(45, 40, 50), record(1, 1, 2));
        let summary = ledger.summary(s(2));
        assert_eq!(
            (
                summary.totals.acknowledged,
                summary.totals.lost,
                summary.totals.failed
            ),
            (45, 0, 5)
        );
    }

    // Writes acknowledged by the old epoch's primary after the promotion diverge,
    // and the time with two writable primaries is integrated across windows.
    #[test]
    fn split_brain_writes_diverge_and_its_seconds_are_counted() {
        let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 100);
        ledger.issued(s(0), 10);
        ledger.acknowledged(s(0), 0, 10);
        ledger.promoted(s(10), &promotion(10, 10, 10), record(5, 9, 10));
        ledger.set_writable_primaries(SimTime::from_ms(10_500), 2);
        ledger.issued(s(11), 7);
        ledger.acknowledged(s(11), 0, 3);
        ledger.acknowledged(s(11), 1, 4);
        ledger.set_writable_primaries(SimTime::from_ms(13_250), 1);
        let summary = ledger.summary(s(20));
        assert_eq!(summary.totals.divergent, 3);
        assert_eq!(summary.totals.acknowledged, 14);
        assert_eq!(summary.split_brain_seconds, 2.75);
        assert_eq!(ledger.windows()[10].split_brain_micros, 500_000);
        assert_eq!(ledger.windows()[13].split_brain_micros, 250_000);
        // Still split at the end: counted up to `now`.
        ledger.set_writable_primaries(s(15), 2);
        assert_eq!(ledger.summary(s(16)).split_brain_seconds, 3.75);
    }

    // A read that misses an acknowledged write is stale.
    #[test]
    fn stale_reads_miss_an_acknowledged_write() {
        let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 10);
        ledger.read(s(0), 5, 5);
        ledger.read(s(0), 4, 5);
        ledger.read(s(99), 6, 5);
        let summary = ledger.summary(s(99));
        assert_eq!((summary.totals.reads, summary.totals.stale_reads), (3, 1));
        // Events past the last window land in it: memory stays bounded.
        assert_eq!(ledger.windows().len(), 10);
    }

    // Durability levels: writes on at least 1, 2, 3 nodes.
    #[test]
    fn durability_counts_writes_per_level() {
        assert_eq!(durability(100, &[100, 80, 120]), vec![100, 100, 80]);
        assert_eq!(durability(0, &[0, 0]), vec![0, 0]);
    }

    #[derive(Clone, Debug)]
    enum Move {
        Issue(u64),
        Ack(u64, bool),
        Fail(u64),
        Promote(u64),
        Writable(usize),
    }

    proptest! {
        // The totals add up whatever happens, and memory is bounded.
        #[test]
        fn totals_add_up(moves in proptest::collection::vec(prop_oneof![
            (1u64..20).prop_map(Move::Issue),
            ((1u64..20), any::<bool>()).prop_map(|(n, stale)| Move::Ack(n, stale)),
            (1u64..20).prop_map(Move::Fail),
            (0u64..20).prop_map(Move::Promote),
            (0usize..3).prop_map(Move::Writable),
        ], 0..100)) {
            let mut ledger = WriteLedger::new(SimDuration::from_ms(1_000), 50);
            // The current history: `committed` acknowledged, `head - committed` waiting.
            let (mut head, mut committed) = (0u64, 0u64);
            for (step, action) in moves.iter().enumerate() {
                let now = SimTime::from_ms(step as u64 * 700);
                match *action {
                    Move::Issue(n) => { ledger.issued(now, n); head += n; }
                    Move::Ack(n, stale) => {
                        if stale && ledger.epoch() > 0 {
                            // An old primary takes and acknowledges writes outside this history.
                            ledger.issued(now, n);
                            ledger.acknowledged(now, ledger.epoch() - 1, n);
                        } else {
                            let n = n.min(head - committed);
                            ledger.acknowledged(now, ledger.epoch(), n);
                            committed += n;
                        }
                    }
                    // Refused writes get no LSN.
                    Move::Fail(n) => { ledger.issued(now, n); ledger.failed(now, n); }
                    Move::Promote(back) => {
                        let fork = head.saturating_sub(back);
                        let mut p = promotion(fork, committed, head);
                        p.epoch = ledger.epoch() + 1;
                        ledger.promoted(now, &p, record(0, 0, 0));
                        head = fork;
                        committed = fork;
                    }
                    Move::Writable(count) => ledger.set_writable_primaries(now, count),
                }
                let summary = ledger.summary(now);
                let t = summary.totals;
                prop_assert_eq!(t.issued, t.acknowledged + t.divergent + t.failed + summary.pending);
                prop_assert_eq!(t.acknowledged, summary.surviving + t.lost);
                prop_assert!(ledger.windows().len() <= 50);
            }
        }
    }
}
