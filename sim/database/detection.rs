//! Failure detection, as pure state machines: `now` and what each node or
//! observer can see (inputs from the caller, who computes them from the
//! network) in, decisions out. Three families, each with the defaults of
//! the system it models:
//!
//! - `lease` (Patroni): a leader key in a DCS (etcd, Consul, ZooKeeper) with
//!   a time to live. Every node runs its HA loop every `loop_wait`. The
//!   leader renews the key each loop; when the DCS does not answer, it keeps
//!   retrying for `retry_timeout` and then demotes itself, which the rule
//!   `ttl >= loop_wait + 2 x retry_timeout` guarantees happens before the key
//!   expires. A replica whose loop finds the key expired, that can reach the
//!   DCS and that the candidate rules allow (`promotion`), takes the key
//!   (compare-and-set: one winner) and promotes. A crash is therefore noticed
//!   between `ttl - loop_wait` and `ttl + loop_wait` after it. Defaults from
//!   Patroni's documentation (`ttl` 30 s, `loop_wait` 10 s, `retry_timeout`
//!   10 s, `maximum_lag_on_failover` 1048576 bytes).
//! - `quorum` (Redis Sentinel; orchestrator is similar): observers placed in
//!   regions probe the primary every `probe_interval` (Sentinel pings every
//!   second). An observer that has had no good reply for `down_after`
//!   (Sentinel's `down-after-milliseconds`, 30 s in the shipped
//!   sentinel.conf) considers it subjectively down. When `quorum` observers
//!   it can talk to agree, it is objectively down; a failover also needs the
//!   votes of a majority of all observers (Sentinel's leader election), so
//!   the side of a partition holding a minority of observers can reach
//!   "objectively down" but never fail over.
//! - `managed` (Amazon RDS Multi-AZ, Aurora): the provider detects and fails
//!   over on its own; the model is a failover time drawn from a
//!   distribution (RDS Multi-AZ documents 60-120 s, Aurora 30-60 s; presets
//!   in `ManagedPreset`).

use crate::engine::{SimDuration, SimRng, SimTime};
use crate::model::distribution::Distribution;
use serde::{Deserialize, Serialize};

/// Patroni's settings, checked. Defaults: `ttl` 30 s, `loop_wait` 10 s,
/// `retry_timeout` 10 s, `maximum_lag_on_failover` 1048576 bytes (Patroni
/// documentation, "Dynamic configuration settings").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long the leader key lives without a renewal.
    pub ttl: SimDuration,
    /// Time between two runs of a node's HA loop.
    pub loop_wait: SimDuration,
    /// How long the leader keeps retrying the DCS before demoting itself.
    pub retry_timeout: SimDuration,
    /// The most a replica may lag, in bytes, and still be promoted.
    pub maximum_lag_on_failover_bytes: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            ttl: SimDuration::from_ms(30_000),
            loop_wait: SimDuration::from_ms(10_000),
            retry_timeout: SimDuration::from_ms(10_000),
            maximum_lag_on_failover_bytes: 1_048_576,
        }
    }
}

impl LeaseSettings {
    /// `maximum_lag_on_failover` in writes of `write_size_bytes` each,
    /// rounded down (a replica lagging by more bytes than this is refused).
    pub fn lag_max_writes(&self, write_size_bytes: u64) -> u64 {
        self.maximum_lag_on_failover_bytes / write_size_bytes.max(1)
    }

    /// Patroni's rule: the leader must give up before its key expires.
    pub fn ttl_min(loop_wait: SimDuration, retry_timeout: SimDuration) -> SimDuration {
        loop_wait + retry_timeout.saturating_mul(2)
    }
}

/// What one node's HA loop sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopView {
    /// The node is up (a crashed node runs no loop).
    pub alive: bool,
    /// The node can reach the DCS.
    pub dcs_reachable: bool,
    /// The candidate rules allow promoting this node (`promotion`).
    pub eligible: bool,
}

/// What a node's HA loop decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// Nothing changes.
    Nothing,
    /// The leader renewed its key, which now expires at `expires_at`.
    Renewed {
        /// The new expiry.
        expires_at: SimTime,
    },
    /// The leader could not reach the DCS; it retries until `until`.
    Retrying {
        /// When it gives up and demotes.
        until: SimTime,
    },
    /// The leader demotes itself: it lost or could not renew the key.
    Demote,
    /// This replica took the expired key and promotes.
    Promote,
}

/// Patroni's leader lease: see the module documentation.
#[derive(Clone, Debug)]
pub struct LeaseDetector {
    settings: LeaseSettings,
    /// The node holding the leader key in the DCS, if any.
    holder: Option<usize>,
    expires_at: SimTime,
    /// Which nodes believe they lead (a leader cut off from the DCS still
    /// does until its retries give up).
    leading: Vec<bool>,
    /// When each leader's DCS retries give up, if it is retrying.
    retrying_until: Vec<Option<SimTime>>,
    next_loop: Vec<SimTime>,
}

impl LeaseDetector {
    /// Node `leader` holds a fresh key at time zero; node i's first loop runs
    /// at `phases[i]` (in `[0, loop_wait)`, drawn by the caller so that
    /// nodes do not loop in lockstep).
    pub fn new(settings: LeaseSettings, leader: usize, phases: &[SimDuration]) -> LeaseDetector {
        debug_assert!(leader < phases.len());
        let mut leading = vec![false; phases.len()];
        leading[leader] = true;
        LeaseDetector {
            settings,
            holder: Some(leader),
            expires_at: SimTime::ZERO + settings.ttl,
            leading,
            retrying_until: vec![None; phases.len()],
            next_loop: phases.iter().map(|&phase| SimTime::ZERO + phase).collect(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> LeaseSettings {
        self.settings
    }

    /// Who holds the leader key.
    pub fn holder(&self) -> Option<usize> {
        self.holder
    }

    /// When the key expires unless renewed.
    pub fn expires_at(&self) -> SimTime {
        self.expires_at
    }

    /// Whether node `node` believes it leads (and accepts writes).
    pub fn leading(&self, node: usize) -> bool {
        self.leading[node]
    }

    /// How many nodes believe they lead.
    pub fn leaders(&self) -> usize {
        self.leading.iter().filter(|&&leading| leading).count()
    }

    /// When node `node` runs its next loop.
    pub fn next_loop_at(&self, node: usize) -> SimTime {
        self.next_loop[node]
    }

    /// The node whose loop runs next, and when (lowest index on a tie).
    pub fn next_loop(&self) -> (usize, SimTime) {
        let (node, at) = self
            .next_loop
            .iter()
            .enumerate()
            .min_by_key(|&(index, &at)| (at, index))
            .expect("at least one node");
        (node, *at)
    }

    /// Runs node `node`'s HA loop at `now` (its `next_loop_at`).
    pub fn on_loop(&mut self, now: SimTime, node: usize, view: LoopView) -> LeaseAction {
        debug_assert!(now >= self.next_loop[node]);
        self.next_loop[node] = now + self.settings.loop_wait;
        if !view.alive {
            // A crashed node leads nothing; its key expires on its own.
            self.leading[node] = false;
            self.retrying_until[node] = None;
            return LeaseAction::Nothing;
        }
        if self.leading[node] {
            return self.leader_loop(now, node, view);
        }
        let expired = self.holder.is_none() || now >= self.expires_at;
        if expired && view.dcs_reachable && view.eligible {
            self.holder = Some(node);
            self.leading[node] = true;
            self.expires_at = now + self.settings.ttl;
            self.retrying_until[node] = None;
            return LeaseAction::Promote;
        }
        LeaseAction::Nothing
    }

    fn leader_loop(&mut self, now: SimTime, node: usize, view: LoopView) -> LeaseAction {
        if view.dcs_reachable {
            self.retrying_until[node] = None;
            if self.holder != Some(node) || now >= self.expires_at {
                // Someone else took the key, or it expired: Patroni demotes.
                if self.holder == Some(node) {
                    self.holder = None;
                }
                self.leading[node] = false;
                return LeaseAction::Demote;
            }
            self.expires_at = now + self.settings.ttl;
            return LeaseAction::Renewed {
                expires_at: self.expires_at,
            };
        }
        match self.retrying_until[node] {
            Some(until) if now >= until => {
                self.leading[node] = false;
                self.retrying_until[node] = None;
                LeaseAction::Demote
            }
            Some(until) => {
                self.next_loop[node] = until;
                LeaseAction::Retrying { until }
            }
            None => {
                let until = now + self.settings.retry_timeout;
                self.retrying_until[node] = Some(until);
                // The loop blocks in DCS retries and comes back at `until`.
                self.next_loop[node] = until;
                LeaseAction::Retrying { until }
            }
        }
    }
}

/// Sentinel-style settings, checked. Defaults: probes every 1 s (Sentinel
/// pings each instance every second), `down_after` 30 s (the shipped
/// sentinel.conf's `down-after-milliseconds 30000`); `quorum` has no default
/// in Sentinel: the scenario says it, commonly a majority of the observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumSettings {
    /// How many observers there are.
    pub observers: u32,
    /// Observers that must agree the primary is down, in `[1, observers]`.
    pub quorum: u32,
    /// Time between two probes by one observer.
    pub probe_interval: SimDuration,
    /// Time without a good reply after which an observer thinks the primary is down.
    pub down_after: SimDuration,
}

impl QuorumSettings {
    /// Sentinel's defaults for `observers` observers with a majority quorum.
    pub fn sentinel(observers: u32) -> QuorumSettings {
        QuorumSettings {
            observers,
            quorum: observers / 2 + 1,
            probe_interval: SimDuration::from_ms(1_000),
            down_after: SimDuration::from_ms(30_000),
        }
    }

    /// Votes a failover needs: a majority of all observers, and at least the quorum.
    pub fn votes_needed(&self) -> u32 {
        (self.observers / 2 + 1).max(self.quorum)
    }
}

/// What an observer's probe led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumDecision {
    /// Nothing new.
    Nothing,
    /// This observer now thinks the primary is down (Sentinel's `+sdown`).
    SubjectivelyDown,
    /// Enough observers agree (`+odown`), but too few can vote for a failover.
    ObjectivelyDown {
        /// Observers this one can talk to, itself included.
        reachable_observers: u32,
    },
    /// Agreement and votes: fail over now.
    Failover,
}

/// Sentinel-style failure detection by a quorum of observers.
#[derive(Clone, Debug)]
pub struct QuorumDetector {
    settings: QuorumSettings,
    last_ok: Vec<SimTime>,
    down: Vec<bool>,
    next_probe: Vec<SimTime>,
    failed_over: bool,
}

impl QuorumDetector {
    /// Observer i probes first at `phases[i]` (in `[0, probe_interval)`).
    pub fn new(settings: QuorumSettings, phases: &[SimDuration]) -> QuorumDetector {
        debug_assert_eq!(phases.len(), settings.observers as usize);
        debug_assert!(settings.quorum >= 1 && settings.quorum <= settings.observers);
        QuorumDetector {
            settings,
            last_ok: vec![SimTime::ZERO; phases.len()],
            down: vec![false; phases.len()],
            next_probe: phases.iter().map(|&phase| SimTime::ZERO + phase).collect(),
            failed_over: false,
        }
    }

    /// The settings.
    pub fn settings(&self) -> QuorumSettings {
        self.settings
    }

    /// The observer that probes next, and when (lowest index on a tie).
    pub fn next_probe(&self) -> (usize, SimTime) {
        let (observer, at) = self
            .next_probe
            .iter()
            .enumerate()
            .min_by_key(|&(index, &at)| (at, index))
            .expect("at least one observer");
        (observer, *at)
    }

    /// Observers that currently think the primary is down.
    pub fn down_count(&self) -> u32 {
        self.down.iter().filter(|&&down| down).count() as u32
    }

    /// Observer `observer` probes at `now`: `reached` says whether the
    /// primary answered, `peers[i]` whether it can talk to observer i (its
    /// own entry true). A failover is decided once, until `reset`.
    pub fn on_probe(
        &mut self,
        now: SimTime,
        observer: usize,
        reached: bool,
        peers: &[bool],
    ) -> QuorumDecision {
        debug_assert_eq!(peers.len(), self.down.len());
        self.next_probe[observer] = now + self.settings.probe_interval;
        if reached {
            self.last_ok[observer] = now;
            self.down[observer] = false;
            return QuorumDecision::Nothing;
        }
        let newly_down = !self.down[observer]
            && now.saturating_since(self.last_ok[observer]) >= self.settings.down_after;
        if newly_down {
            self.down[observer] = true;
        }
        if !self.down[observer] || self.failed_over {
            return QuorumDecision::Nothing;
        }
        let agreeing = (0..peers.len())
            .filter(|&other| peers[other] && self.down[other])
            .count() as u32;
        let reachable = peers.iter().filter(|&&peer| peer).count() as u32;
        if agreeing < self.settings.quorum {
            return if newly_down {
                QuorumDecision::SubjectivelyDown
            } else {
                QuorumDecision::Nothing
            };
        }
        if reachable >= self.settings.votes_needed() {
            self.failed_over = true;
            QuorumDecision::Failover
        } else {
            QuorumDecision::ObjectivelyDown {
                reachable_observers: reachable,
            }
        }
    }

    /// A new primary is in place at `now`: every observer starts afresh.
    pub fn reset(&mut self, now: SimTime) {
        self.last_ok.iter_mut().for_each(|at| *at = now);
        self.down.iter_mut().for_each(|down| *down = false);
        self.failed_over = false;
    }
}

/// A managed database's published failover times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedPreset {
    /// Amazon RDS Multi-AZ: "typically 60-120 seconds" (RDS User Guide,
    /// "Failover process for Amazon RDS"), uniform on [60, 120] s.
    #[default]
    RdsMultiAz,
    /// Amazon Aurora: "typically less than 30 seconds" to 60 s with a
    /// replica to promote (Aurora User Guide, "High availability"), uniform
    /// on [30, 60] s.
    Aurora,
}

impl ManagedPreset {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ManagedPreset::RdsMultiAz => "rds_multi_az",
            ManagedPreset::Aurora => "aurora",
        }
    }

    /// The failover time distribution of this preset.
    pub fn failover_ms(self) -> Distribution {
        match self {
            ManagedPreset::RdsMultiAz => Distribution::Uniform {
                min_ms: 60_000.0,
                max_ms: 120_000.0,
            },
            ManagedPreset::Aurora => Distribution::Uniform {
                min_ms: 30_000.0,
                max_ms: 60_000.0,
            },
        }
    }
}

/// A managed failover: from the primary's failure to the standby serving,
/// one draw from the failover time distribution.
#[derive(Clone, Debug)]
pub struct ManagedDetector {
    failover_ms: Distribution,
    pending: Option<SimTime>,
}

impl ManagedDetector {
    /// A detector with this failover time distribution.
    pub fn new(failover_ms: Distribution) -> ManagedDetector {
        ManagedDetector {
            failover_ms,
            pending: None,
        }
    }

    /// The primary failed (crashed, or cut off from the provider's
    /// monitoring) at `now`: returns when the failover completes. A second
    /// report while one is pending changes nothing.
    pub fn on_primary_failure(&mut self, now: SimTime, rng: &mut SimRng) -> SimTime {
        if let Some(at) = self.pending {
            return at;
        }
        let at = now + self.failover_ms.sample(rng);
        self.pending = Some(at);
        at
    }

    /// The failover pending, if any.
    pub fn pending(&self) -> Option<SimTime> {
        self.pending
    }

    /// The failover completed (or was cancelled): ready for the next one.
    pub fn reset(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use proptest::prelude::*;

    fn s(seconds: u64) -> SimTime {
        SimTime::from_ms(seconds * 1_000)
    }

    fn up(eligible: bool) -> LoopView {
        LoopView {
            alive: true,
            dcs_reachable: true,
            eligible,
        }
    }

    /// Plays Patroni's loops on three nodes until `end`; node 0 leads and
    /// crashes at `crash_at`. Returns when a replica promoted.
    fn lease_crash(
        settings: LeaseSettings,
        phases: &[SimDuration],
        crash_at: SimTime,
    ) -> Option<SimTime> {
        let mut lease = LeaseDetector::new(settings, 0, phases);
        loop {
            let (node, at) = lease.next_loop();
            if at > crash_at + SimDuration::from_ms(600_000) {
                return None;
            }
            let view = LoopView {
                alive: node != 0 || at < crash_at,
                ..up(true)
            };
            if lease.on_loop(at, node, view) == LeaseAction::Promote {
                assert_ne!(node, 0);
                return Some(at);
            }
        }
    }

    // A leader that renews keeps the key; replicas never promote.
    #[test]
    fn a_healthy_leader_keeps_its_key() {
        let mut lease = LeaseDetector::new(LeaseSettings::default(), 0, &[SimDuration::ZERO; 2]);
        for round in 0..100 {
            let now = s(10 * round);
            assert!(matches!(
                lease.on_loop(now, 0, up(true)),
                LeaseAction::Renewed { .. }
            ));
            assert_eq!(lease.on_loop(now, 1, up(true)), LeaseAction::Nothing);
        }
        assert_eq!(lease.holder(), Some(0));
    }

    // Fidelity: Patroni notices a crashed leader between ttl - loop_wait and
    // ttl + loop_wait after the crash (20 to 40 s with the defaults). The
    // detection time is ttl - U + min(U1, U2): U the time since the last
    // renewal and U1, U2 the two replicas' loop phases after expiry, all
    // uniform on [0, loop_wait). Its mean is 30 - 5 + 10/3 = 28.33 s, its
    // standard deviation sqrt(100/12 + 100 x 2/36) = 3.73 s.
    #[test]
    fn lease_crash_detection_lies_within_ttl_plus_or_minus_loop_wait() {
        let settings = LeaseSettings::default();
        let factory = RngFactory::new(42);
        let mut rng = factory.stream("test/lease");
        let runs = 2_000;
        let mut total = 0.0;
        for _ in 0..runs {
            let phases: Vec<SimDuration> = (0..3)
                .map(|_| SimDuration(rng.between(0, settings.loop_wait.as_micros() - 1)))
                .collect();
            let crash_at = SimTime(rng.between(60_000_000, 120_000_000));
            let promoted = lease_crash(settings, &phases, crash_at).expect("a replica promotes");
            let detection = promoted.saturating_since(crash_at);
            assert!(
                detection >= settings.ttl - settings.loop_wait,
                "{detection}"
            );
            assert!(
                detection <= settings.ttl + settings.loop_wait,
                "{detection}"
            );
            total += detection.as_ms_f64() / 1_000.0;
        }
        let mean = total / runs as f64;
        // Detection is ttl - U + U' with U, U' uniform on [0, 10 s): sd 4.08 s.
        let half_width = 3.29 * 3.73 / (runs as f64).sqrt();
        assert!(
            (mean - (25.0 + 10.0 / 3.0)).abs() < half_width,
            "mean {mean}"
        );
    }

    // A replica the candidate rules refuse never takes the key.
    #[test]
    fn an_ineligible_replica_does_not_promote() {
        let mut lease = LeaseDetector::new(LeaseSettings::default(), 0, &[SimDuration::ZERO; 2]);
        assert_eq!(lease.on_loop(s(100), 1, up(false)), LeaseAction::Nothing);
        assert_eq!(lease.on_loop(s(110), 1, up(true)), LeaseAction::Promote);
        assert_eq!(lease.holder(), Some(1));
    }

    // A leader cut off from the DCS retries for retry_timeout, then demotes
    // itself, before its key expires and before any replica can promote.
    #[test]
    fn a_leader_cut_off_from_the_dcs_demotes_before_its_key_expires() {
        let settings = LeaseSettings::default();
        let mut lease = LeaseDetector::new(settings, 0, &[SimDuration::ZERO; 2]);
        lease.on_loop(s(0), 0, up(true));
        let cut = LoopView {
            dcs_reachable: false,
            ..up(true)
        };
        assert_eq!(
            lease.on_loop(s(10), 0, cut),
            LeaseAction::Retrying { until: s(20) }
        );
        assert_eq!(lease.next_loop_at(0), s(20));
        assert_eq!(lease.on_loop(s(20), 0, cut), LeaseAction::Demote);
        assert_eq!(lease.leaders(), 0);
        assert_eq!(lease.expires_at(), s(30));
        assert_eq!(lease.on_loop(s(20), 1, up(true)), LeaseAction::Nothing);
        assert_eq!(lease.on_loop(s(30), 1, up(true)), LeaseAction::Promote);
        // Back in touch, the old leader sees someone else holds the key.
        assert_eq!(lease.on_loop(s(30), 0, up(true)), LeaseAction::Nothing);
        assert_eq!(lease.leaders(), 1);
    }

    #[derive(Clone, Debug)]
    struct Step {
        node: usize,
        alive: bool,
        dcs_reachable: bool,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (
                0usize..3,
                proptest::bool::weighted(0.9),
                proptest::bool::weighted(0.6),
            )
                .prop_map(|(node, alive, dcs_reachable)| Step {
                    node,
                    alive,
                    dcs_reachable,
                }),
            1..200,
        )
    }

    /// Plays loops in time order; each loop's view comes from the next step
    /// for that node. Returns the most nodes that led at once.
    fn most_leaders(settings: LeaseSettings, steps: &[Step]) -> usize {
        let phases = [
            SimDuration::ZERO,
            SimDuration::from_ms(3_000),
            SimDuration::from_ms(7_000),
        ];
        let mut lease = LeaseDetector::new(settings, 0, &phases);
        let mut most = lease.leaders();
        for step in steps {
            let at = lease.next_loop_at(step.node);
            // Loops run in time order: first every node due before this one.
            while lease.next_loop().1 < at {
                let (node, when) = lease.next_loop();
                lease.on_loop(when, node, up(true));
                most = most.max(lease.leaders());
            }
            let view = LoopView {
                alive: step.alive,
                dcs_reachable: step.dcs_reachable,
                eligible: true,
            };
            lease.on_loop(at, step.node, view);
            most = most.max(lease.leaders());
        }
        most
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        // With Patroni's rule ttl >= loop_wait + 2 x retry_timeout, no two
        // nodes ever lead at once, whatever the DCS and crash schedule.
        #[test]
        fn with_patronis_rule_there_is_never_more_than_one_leader(schedule in steps()) {
            prop_assert!(most_leaders(LeaseSettings::default(), &schedule) <= 1);
        }

        // An observer that hears its primary never calls it down.
        #[test]
        fn an_answered_probe_clears_down(times in proptest::collection::vec(0u64..100_000, 1..50)) {
            let mut quorum = QuorumDetector::new(QuorumSettings::sentinel(3), &[SimDuration::ZERO; 3]);
            let mut sorted = times.clone();
            sorted.sort_unstable();
            for at in sorted {
                prop_assert_eq!(quorum.on_probe(SimTime::from_ms(at), 0, true, &[true; 3]), QuorumDecision::Nothing);
            }
            prop_assert_eq!(quorum.down_count(), 0);
        }
    }

    // Breaking the rule (ttl 15 s < 10 + 2 x 10) lets a replica promote while
    // the cut-off leader still leads: two leaders.
    #[test]
    fn without_patronis_rule_two_nodes_lead() {
        let settings = LeaseSettings {
            ttl: SimDuration::from_ms(15_000),
            ..LeaseSettings::default()
        };
        let mut lease = LeaseDetector::new(settings, 0, &[SimDuration::ZERO; 2]);
        lease.on_loop(s(0), 0, up(true));
        let cut = LoopView {
            dcs_reachable: false,
            ..up(true)
        };
        lease.on_loop(s(10), 0, cut);
        assert_eq!(lease.on_loop(s(15), 1, up(true)), LeaseAction::Promote);
        assert_eq!(lease.leaders(), 2);
        assert_eq!(
            LeaseSettings::ttl_min(settings.loop_wait, settings.retry_timeout),
            SimDuration::from_ms(30_000)
        );
    }

    // Maximum lag in writes is the byte limit over the write size.
    #[test]
    fn maximum_lag_converts_bytes_to_writes() {
        assert_eq!(LeaseSettings::default().lag_max_writes(1_024), 1_024);
        assert_eq!(LeaseSettings::default().lag_max_writes(0), 1_048_576);
    }

    /// Runs the quorum detector until a decision other than Nothing or
    /// SubjectivelyDown, with `reached(observer)` and `peers(observer)`.
    fn run_quorum(
        settings: QuorumSettings,
        failure_at: SimTime,
        reached: impl Fn(usize) -> bool,
        peers: impl Fn(usize) -> Vec<bool>,
    ) -> (SimTime, QuorumDecision) {
        let phases: Vec<SimDuration> = (0..settings.observers as u64)
            .map(|index| SimDuration::from_ms(index * 300))
            .collect();
        let mut quorum = QuorumDetector::new(settings, &phases);
        loop {
            let (observer, at) = quorum.next_probe();
            if at > failure_at + SimDuration::from_ms(300_000) {
                return (at, QuorumDecision::Nothing);
            }
            let answered = at < failure_at || reached(observer);
            let decision = quorum.on_probe(at, observer, answered, &peers(observer));
            if !matches!(
                decision,
                QuorumDecision::Nothing | QuorumDecision::SubjectivelyDown
            ) {
                return (at, decision);
            }
        }
    }

    // A crashed primary is failed over between down_after - probe interval
    // (down_after counts from the last good reply, up to one interval before
    // the crash) and down_after + probe interval.
    #[test]
    fn quorum_fails_over_a_crash_after_down_after() {
        let settings = QuorumSettings::sentinel(3);
        let (at, decision) = run_quorum(settings, s(100), |_| false, |_| vec![true; 3]);
        assert_eq!(decision, QuorumDecision::Failover);
        let detection = at.saturating_since(s(100));
        assert!(
            detection >= settings.down_after - settings.probe_interval,
            "{detection}"
        );
        assert!(
            detection <= settings.down_after + settings.probe_interval.saturating_mul(2),
            "{detection}"
        );
    }

    // GitHub 2018-10-21 in miniature: the primary's region is cut off; the two
    // observers in the other region agree and hold a majority of three: a
    // cross-region failover though the primary is alive.
    #[test]
    fn a_partition_gives_the_majority_side_a_failover() {
        let east = |observer: usize| observer == 0;
        let (_, decision) = run_quorum(QuorumSettings::sentinel(3), s(100), east, |observer| {
            (0..3).map(|other| east(other) == east(observer)).collect()
        });
        assert_eq!(decision, QuorumDecision::Failover);
    }

    // With five observers and quorum 2, the two on the cut-off side agree the
    // primary is down but cannot win a majority vote.
    #[test]
    fn a_minority_side_reaches_objectively_down_but_never_fails_over() {
        let settings = QuorumSettings {
            quorum: 2,
            ..QuorumSettings::sentinel(5)
        };
        let west = |observer: usize| observer < 2;
        let (_, decision) = run_quorum(
            settings,
            s(100),
            |observer| !west(observer),
            |observer| (0..5).map(|other| west(other) == west(observer)).collect(),
        );
        assert_eq!(
            decision,
            QuorumDecision::ObjectivelyDown {
                reachable_observers: 2
            }
        );
        assert_eq!(settings.votes_needed(), 3);
    }

    // A managed failover takes one draw from its preset's range, and a second
    // report while one is pending changes nothing.
    #[test]
    fn managed_failover_times_follow_the_preset() {
        let mut rng = RngFactory::new(1).stream("test/managed");
        for preset in [ManagedPreset::RdsMultiAz, ManagedPreset::Aurora] {
            let (low, high) = match preset {
                ManagedPreset::RdsMultiAz => (60_000.0, 120_000.0),
                ManagedPreset::Aurora => (30_000.0, 60_000.0),
            };
            for _ in 0..500 {
                let mut managed = ManagedDetector::new(preset.failover_ms());
                let done = managed.on_primary_failure(s(10), &mut rng);
                let took = done.saturating_since(s(10)).as_ms_f64();
                assert!(took >= low && took <= high, "{} {took}", preset.name());
                assert_eq!(managed.on_primary_failure(s(20), &mut rng), done);
                managed.reset();
                assert_eq!(managed.pending(), None);
            }
        }
    }
}
