//! Which replica to promote, and whether to promote at all: the candidate
//! rules shared by every detector (except the chapter's, which has its own
//! in `chapter`). A pure function of `now`, the candidates' positions and
//! places, plus one piece of state: when the last failover happened.
//!
//! Rules, each from the system that has it:
//! - **Maximum lag** (Patroni's `maximum_lag_on_failover`, 1 MB by default;
//!   orchestrator's `FailMasterPromotionIfSQLThreadNotUpToDate`): a replica
//!   further behind the last known primary position than `lag_max_writes`
//!   is refused.
//! - **Region scope** (orchestrator's `PreventCrossDataCenterMasterFailover`,
//!   false by default): `same_region` promotes only inside the failed
//!   primary's region; `any_region` anywhere.
//! - **Anti-flap block** (orchestrator's `RecoveryPeriodBlockSeconds`, 3600 s
//!   by default): no automatic failover within this long after the last.
//! - **Fully synchronised** (PostgreSQL synchronous mode under Patroni's
//!   `synchronous_mode`): with `sync` replication only a replica holding
//!   every acknowledged write may be promoted.
//!
//! Among the candidates left, the most advanced (highest received LSN)
//! wins, the lowest node index on a tie (Patroni and Sentinel both prefer the
//! replica with the most data).

use super::replication::Lsn;
use crate::engine::{SimDuration, SimTime};
use serde::{Deserialize, Serialize};

/// Where a new primary may be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionScope {
    /// Anywhere (orchestrator's default).
    #[default]
    AnyRegion,
    /// Only in the failed primary's region.
    SameRegion,
}

impl RegionScope {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            RegionScope::AnyRegion => "any_region",
            RegionScope::SameRegion => "same_region",
        }
    }
}

/// The candidate rules, checked. Defaults depend on the detector (see the
/// scenario reference): no lag limit, `any_region`, no block, not
/// restricted to synchronised replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CandidateRules {
    /// The most writes a candidate may lag behind the last known primary position.
    pub lag_max_writes: Option<u64>,
    /// Where a new primary may be.
    pub scope: RegionScope,
    /// No failover within this long after the previous one.
    pub anti_flap_block: SimDuration,
    /// Only a replica holding every acknowledged write may be promoted.
    pub require_synchronised: bool,
}

/// One replica as the promoter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its node index.
    pub node: usize,
    /// Its region.
    pub region: &'a str,
    /// Up, and reachable by whoever decides (the DCS, the observers).
    pub available: bool,
    /// The writes it holds.
    pub received_lsn: Lsn,
}

/// Why nobody was promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPromotion {
    /// A failover happened less than `anti_flap_block` ago.
    Blocked {
        /// When automatic failover is allowed again.
        until: SimTime,
    },
    /// No replica is available.
    NoneAvailable,
    /// No available replica is in the primary's region (`same_region`).
    NoneInRegion,
    /// Every candidate lags too far; the best lags this many writes.
    TooFarBehind {
        /// The smallest lag among the candidates.
        lag_writes: u64,
    },
    /// No candidate holds every acknowledged write.
    NotSynchronised,
}

/// The decision: a node, or why none.
pub type Choice = Result<usize, NoPromotion>;

/// The candidate rules plus the time of the last failover.
#[derive(Clone, Debug)]
pub struct Promoter {
    rules: CandidateRules,
    last_failover: Option<SimTime>,
}

impl Promoter {
    /// A promoter that has never failed over.
    pub fn new(rules: CandidateRules) -> Promoter {
        Promoter {
            rules,
            last_failover: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> CandidateRules {
        self.rules
    }

    /// Chooses the replica to promote at `now` after the primary in
    /// `primary_region` failed; `primary_lsn` is its last known position
    /// (what the DCS or the observers last saw), `committed_lsn` the last
    /// acknowledged write.
    pub fn choose(
        &self,
        now: SimTime,
        primary_region: &str,
        primary_lsn: Lsn,
        committed_lsn: Lsn,
        candidates: &[Candidate<'_>],
    ) -> Choice {
        if let Some(last) = self.last_failover {
            let until = last + self.rules.anti_flap_block;
            if now < until {
                return Err(NoPromotion::Blocked { until });
            }
        }
        let available: Vec<&Candidate<'_>> = candidates
            .iter()
            .filter(|candidate| candidate.available)
            .collect();
        if available.is_empty() {
            return Err(NoPromotion::NoneAvailable);
        }
        let in_scope: Vec<&Candidate<'_>> = available
            .into_iter()
            .filter(|candidate| {
                self.rules.scope == RegionScope::AnyRegion || candidate.region == primary_region
            })
            .collect();
        if in_scope.is_empty() {
            return Err(NoPromotion::NoneInRegion);
        }
        let lag = |candidate: &Candidate<'_>| primary_lsn.saturating_sub(candidate.received_lsn);
        let near: Vec<&Candidate<'_>> = in_scope
            .iter()
            .copied()
            .filter(|candidate| within_limit(self.rules.lag_max_writes, lag(candidate)))
            .collect();
        if near.is_empty() {
            let lag_writes = in_scope
                .iter()
                .map(|candidate| lag(candidate))
                .min()
                .unwrap_or(0);
            return Err(NoPromotion::TooFarBehind { lag_writes });
        }
        let synchronised: Vec<&Candidate<'_>> = near
            .into_iter()
            .filter(|candidate| {
                !self.rules.require_synchronised || candidate.received_lsn >= committed_lsn
            })
            .collect();
        synchronised
            .into_iter()
            .max_by_key(|candidate| (candidate.received_lsn, std::cmp::Reverse(candidate.node)))
            .map(|candidate| candidate.node)
            .ok_or(NoPromotion::NotSynchronised)
    }

    /// A failover happened at `now`: starts the anti-flap block.
    pub fn record_failover(&mut self, now: SimTime) {
        self.last_failover = Some(now);
    }
}

/// Whether `value` is within `limit`; `None` means no limit.
fn within_limit(limit: Option<u64>, value: u64) -> bool {
    limit.is_none_or(|limit| value <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn candidate(node: usize, region: &str, available: bool, received_lsn: Lsn) -> Candidate<'_> {
        Candidate {
            node,
            region,
            available,
            received_lsn,
        }
    }

    fn s(seconds: u64) -> SimTime {
        SimTime::from_ms(seconds * 1_000)
    }

    // The most advanced available replica wins; the lowest index on a tie.
    #[test]
    fn the_most_advanced_available_replica_wins() {
        let promoter = Promoter::new(CandidateRules::default());
        let candidates = [
            candidate(1, "east", true, 90),
            candidate(2, "west", true, 95),
            candidate(3, "west", false, 100),
            candidate(4, "east", true, 95),
        ];
        assert_eq!(promoter.choose(s(0), "east", 100, 100, &candidates), Ok(2));
    }

    // Each rule refuses with its own reason.
    #[test]
    fn each_rule_names_why_nobody_was_promoted() {
        let rules = CandidateRules {
            lag_max_writes: Some(5),
            scope: RegionScope::SameRegion,
            anti_flap_block: SimDuration::from_ms(3_600_000),
            require_synchronised: true,
        };
        let mut promoter = Promoter::new(rules);
        assert_eq!(
            promoter.choose(s(0), "east", 100, 100, &[candidate(1, "east", false, 100)]),
            Err(NoPromotion::NoneAvailable)
        );
        assert_eq!(
            promoter.choose(s(0), "east", 100, 100, &[candidate(1, "west", true, 100)]),
            Err(NoPromotion::NoneInRegion)
        );
        assert_eq!(
            promoter.choose(s(0), "east", 100, 100, &[candidate(1, "east", true, 90)]),
            Err(NoPromotion::TooFarBehind { lag_writes: 10 })
        );
        assert_eq!(
            promoter.choose(s(0), "east", 100, 100, &[candidate(1, "east", true, 96)]),
            Err(NoPromotion::NotSynchronised)
        );
        assert_eq!(
            promoter.choose(s(0), "east", 100, 96, &[candidate(1, "east", true, 96)]),
            Ok(1)
        );
        promoter.record_failover(s(10));
        assert_eq!(
            promoter.choose(s(3_609), "east", 100, 96, &[candidate(1, "east", true, 96)]),
            Err(NoPromotion::Blocked { until: s(3_610) })
        );
        assert_eq!(
            promoter.choose(s(3_610), "east", 100, 96, &[candidate(1, "east", true, 96)]),
            Ok(1)
        );
    }

    proptest! {
        // Whatever the candidates, a chosen node is available, in scope, within
        // the lag limit, and no eligible candidate holds more writes.
        #[test]
        fn a_chosen_candidate_satisfies_every_rule(
            raw in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..200), 0..6),
            lag_max in proptest::option::of(0u64..50),
            same_region in any::<bool>(),
            synchronised in any::<bool>(),
        ) {
            let rules = CandidateRules {
                lag_max_writes: lag_max,
                scope: if same_region { RegionScope::SameRegion } else { RegionScope::AnyRegion },
                anti_flap_block: SimDuration::ZERO,
                require_synchronised: synchronised,
            };
            let candidates: Vec<Candidate<'_>> = raw
                .iter()
                .enumerate()
                .map(|(node, &(available, east, lsn))| candidate(node, if east { "east" } else { "west" }, available, lsn))
                .collect();
            let eligible = |c: &Candidate<'_>| {
                c.available
                    && (!same_region || c.region == "east")
                    && within_limit(lag_max, 200 - c.received_lsn.min(200))
                    && (!synchronised || c.received_lsn >= 150)
            };
            match Promoter::new(rules).choose(SimTime::ZERO, "east", 200, 150, &candidates) {
                Ok(node) => {
                    prop_assert!(eligible(&candidates[node]));
                    for other in candidates.iter().filter(|c| eligible(c)) {
                        prop_assert!(other.received_lsn <= candidates[node].received_lsn);
                    }
                }
                Err(_) => prop_assert!(!candidates.iter().any(eligible)),
            }
        }
    }
}
