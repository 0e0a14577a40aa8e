//! Global routing: which region a client's request goes to.
//!
//! Three mechanisms, each a pure state machine with the semantics and
//! defaults of the system it models (sources in each module):
//! - `dns`: Route 53 style health checkers in several places, a record TTL
//!   and client resolver caches (the "DNS tail");
//! - `anycast`: Global Accelerator style, one address, the edge shifts
//!   traffic itself, no client caching, fail open;
//! - `priority`: Envoy's priority levels, overprovisioning factor and panic
//!   threshold, with locality weights;
//!
//! plus the chapter's `ActiveActiveDeployment` and `ActivePassiveDeployment`
//! (section 8.9) exactly as written, in `chapter`.
//!
//! `dns` and `anycast` share the `Policy` that picks among healthy
//! endpoints: active-active (`weighted`, `nearest`, `geo`) or active-passive
//! (`failover`, with or without failback). `priority` expresses both with
//! its levels (one level with several localities is active-active; a level
//! per region is active-passive with automatic failback).
//!
//! ## When nothing is healthy
//!
//! Route 53 and Global Accelerator both fail open: when every endpoint of a
//! group is unhealthy, Route 53 "considers all records in the group healthy"
//! (Route 53 Developer Guide, "How Amazon Route 53 chooses records when
//! health checking is configured"), and Global Accelerator routes to all
//! endpoints. `choose` does the same: an all-unhealthy set is treated as all
//! healthy. A failover group whose members are all unhealthy therefore
//! answers its primary.

pub mod anycast;
pub mod chapter;
pub mod dns;
pub mod priority;

use super::{LatencyMatrix, Place, RegionId};
use crate::engine::SimRng;

/// How a router picks among its endpoints (regions).
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Active-active by weight: each healthy endpoint gets traffic in
    /// proportion to its weight (Route 53 weighted records; GA traffic dials).
    Weighted {
        /// One weight per endpoint, summing to more than 0.
        weights: Vec<u32>,
    },
    /// Active-active by latency: the healthy endpoint with the lowest mean
    /// one-way latency from the client's origin (Route 53 latency records,
    /// GA's nearest endpoint group). Ties go to the earlier endpoint.
    Nearest,
    /// Active-active by origin: each origin region has an endpoint; others
    /// use `default` (Route 53 geolocation records with a default record).
    /// If the mapped endpoint is unhealthy, `default`; if that is too, the
    /// nearest healthy endpoint.
    Geo {
        /// `(origin region, endpoint index)` pairs.
        by_origin: Vec<(RegionId, usize)>,
        /// The endpoint for every other origin.
        default: usize,
    },
    /// Active-passive: the first healthy endpoint in `order` (primary, then
    /// secondaries). With `failback`, traffic returns to the primary as soon
    /// as it is healthy again (Route 53 failover records do); without, it
    /// stays where it failed over to until that endpoint fails in turn.
    Failover {
        /// Endpoint indices, primary first.
        order: Vec<usize>,
        /// Whether traffic returns to a recovered primary.
        failback: bool,
    },
}

/// What a policy remembers between decisions: where failover traffic went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyState {
    /// The endpoint a `failover` policy without failback is using.
    current: Option<usize>,
}

/// Picks an endpoint index. `healthy[i]` is endpoint `i`'s health as the
/// router sees it; `regions[i]` its region. Draws from `rng` only for
/// `weighted` with more than one candidate.
pub fn choose(
    policy: &Policy,
    state: &mut PolicyState,
    regions: &[RegionId],
    healthy: &[bool],
    origin: Place,
    matrix: &LatencyMatrix,
    rng: &mut SimRng,
) -> usize {
    debug_assert_eq!(regions.len(), healthy.len());
    debug_assert!(!regions.is_empty());
    // Fail open: all unhealthy reads as all healthy.
    let all_down = !healthy.iter().any(|&up| up);
    let up = |endpoint: usize| all_down || healthy[endpoint];
    let nearest = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.min_by(|&a, &b| {
            let distance = |e: usize| matrix.mean_ms(origin, Place::region(regions[e]));
            distance(a).total_cmp(&distance(b)).then(a.cmp(&b))
        })
    };
    let chosen = match policy {
        Policy::Weighted { weights } => {
            // Two passes over the endpoints rather than a list of the
            // candidates: a router picks once per request.
            let candidate = |endpoint: usize| up(endpoint) && weights[endpoint] > 0;
            let candidates = || (0..regions.len()).filter(|&e| candidate(e));
            let (count, total, last) = candidates().fold((0, 0, 0), |(count, total, _), e| {
                (count + 1, total + u64::from(weights[e]), e)
            });
            if count == 0 {
                // Only zero-weight endpoints are healthy: Route 53 then
                // answers among them with equal chance.
                let healthy_ones = || (0..regions.len()).filter(|&e| up(e));
                let nth = rng.index(healthy_ones().count());
                healthy_ones()
                    .nth(nth)
                    .expect("an endpoint is up when all read as up")
            } else if count == 1 {
                last
            } else {
                let mut ticket = rng.between(0, total - 1);
                let mut pick = last;
                for e in candidates() {
                    let weight = u64::from(weights[e]);
                    if ticket < weight {
                        pick = e;
                        break;
                    }
                    ticket -= weight;
                }
                pick
            }
        }
        Policy::Nearest => nearest(&mut (0..regions.len()).filter(|&e| up(e))).unwrap_or(0),
        Policy::Geo { by_origin, default } => {
            let mapped = by_origin
                .iter()
                .find(|(region, _)| *region == origin.region)
                .map_or(*default, |&(_, endpoint)| endpoint);
            if up(mapped) {
                mapped
            } else if up(*default) {
                *default
            } else {
                nearest(&mut (0..regions.len()).filter(|&e| up(e))).unwrap_or(mapped)
            }
        }
        Policy::Failover { order, failback } => {
            let first_up = order.iter().copied().find(|&e| up(e)).unwrap_or(order[0]);
            match state.current {
                Some(current) if !failback && up(current) => current,
                _ => first_up,
            }
        }
    };
    if let Policy::Failover { .. } = policy {
        state.current = Some(chosen);
    }
    debug_assert!(chosen < regions.len());
    chosen
}

/// One checker's view of one endpoint: it changes only after `threshold`
/// consecutive probes disagree with it (Route 53's failure threshold, GA's
/// threshold count). Views start healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThresholdView {
    healthy: bool,
    streak: u32,
}

impl Default for ThresholdView {
    fn default() -> Self {
        ThresholdView {
            healthy: true,
            streak: 0,
        }
    }
}

impl ThresholdView {
    /// Records one probe; returns whether the view changed.
    pub fn record(&mut self, ok: bool, threshold: u32) -> bool {
        debug_assert!(threshold >= 1);
        if ok == self.healthy {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        if self.streak >= threshold {
            self.healthy = ok;
            self.streak = 0;
            true
        } else {
            false
        }
    }

    /// The current view.
    pub fn healthy(self) -> bool {
        self.healthy
    }
}

/// A checked global router: its name and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterSpec {
    /// Unique name, referred to by clients.
    pub name: String,
    /// The mechanism and its settings.
    pub kind: RouterKind,
}

/// The mechanisms.
#[derive(Clone, Debug, PartialEq)]
pub enum RouterKind {
    /// Route 53 style DNS.
    Dns(dns::DnsSettings),
    /// Global Accelerator style anycast.
    Anycast(anycast::AnycastSettings),
    /// Envoy style priority levels.
    Priority(priority::PrioritySettings),
    /// The chapter's `ActiveActiveDeployment`.
    ChapterActiveActive(chapter::ChapterActiveActive),
    /// The chapter's `ActivePassiveDeployment`.
    ChapterActivePassive(chapter::ActivePassiveRegions),
}

impl RouterSpec {
    /// Every region this router can send a request to.
    pub fn regions(&self) -> Vec<RegionId> {
        match &self.kind {
            RouterKind::Dns(settings) => settings.endpoints.clone(),
            RouterKind::Anycast(settings) => settings.endpoints.clone(),
            RouterKind::Priority(settings) => settings
                .levels
                .iter()
                .flatten()
                .map(|locality| locality.region)
                .collect(),
            RouterKind::ChapterActiveActive(chapter) => chapter.regions().to_vec(),
            RouterKind::ChapterActivePassive(regions) => vec![regions.primary, regions.secondary],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::model::distribution::Distribution;
    use proptest::prelude::*;

    /// Three regions: 0 and 1 are 40 ms apart, 2 is 100 ms from 0 and 60 from 1.
    pub(crate) fn matrix() -> LatencyMatrix {
        let c = |value_ms: f64| Distribution::Constant { value_ms };
        LatencyMatrix::new(
            3,
            vec![
                c(0.0),
                c(40.0),
                c(100.0),
                c(40.0),
                c(0.0),
                c(60.0),
                c(100.0),
                c(60.0),
                c(0.0),
            ],
            c(1.0),
        )
    }

    fn pick(policy: &Policy, state: &mut PolicyState, healthy: &[bool], origin: RegionId) -> usize {
        let mut rng = RngFactory::new(1).stream("test");
        choose(
            policy,
            state,
            &[0, 1, 2],
            healthy,
            Place::region(origin),
            &matrix(),
            &mut rng,
        )
    }

    // Nearest picks the closest healthy region, and fails open when none is.
    #[test]
    fn nearest_skips_unhealthy_regions_and_fails_open() {
        let mut state = PolicyState::default();
        assert_eq!(pick(&Policy::Nearest, &mut state, &[true; 3], 2), 2);
        assert_eq!(
            pick(&Policy::Nearest, &mut state, &[true, true, false], 2),
            1
        );
        assert_eq!(pick(&Policy::Nearest, &mut state, &[false; 3], 2), 2);
    }

    // Weights split traffic among healthy endpoints only.
    #[test]
    fn weights_split_traffic_among_healthy_endpoints() {
        let policy = Policy::Weighted {
            weights: vec![1, 3, 0],
        };
        let mut rng = RngFactory::new(7).stream("test");
        let mut state = PolicyState::default();
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            let e = choose(
                &policy,
                &mut state,
                &[0, 1, 2],
                &[true; 3],
                Place::region(0),
                &matrix(),
                &mut rng,
            );
            counts[e] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((9_500..10_500).contains(&counts[0]), "{counts:?}");
        let only_zero_weight = [false, false, true];
        assert_eq!(pick(&policy, &mut state, &only_zero_weight, 0), 2);
    }

    // Geo maps origins, falls back to the default, then to the nearest healthy.
    #[test]
    fn geo_falls_back_to_default_then_nearest() {
        let policy = Policy::Geo {
            by_origin: vec![(2, 2)],
            default: 0,
        };
        let mut state = PolicyState::default();
        assert_eq!(pick(&policy, &mut state, &[true; 3], 2), 2);
        assert_eq!(pick(&policy, &mut state, &[true; 3], 1), 0);
        assert_eq!(pick(&policy, &mut state, &[true, true, false], 2), 0);
        assert_eq!(pick(&policy, &mut state, &[false, true, false], 2), 1);
    }

    // Failover with failback returns to the primary; without, it stays on the
    // secondary until the secondary fails.
    #[test]
    fn failover_with_and_without_failback() {
        for failback in [true, false] {
            let policy = Policy::Failover {
                order: vec![0, 1, 2],
                failback,
            };
            let mut state = PolicyState::default();
            assert_eq!(pick(&policy, &mut state, &[true; 3], 2), 0);
            assert_eq!(pick(&policy, &mut state, &[false, true, true], 2), 1);
            let after_recovery = pick(&policy, &mut state, &[true; 3], 2);
            assert_eq!(after_recovery, if failback { 0 } else { 1 });
            assert_eq!(pick(&policy, &mut state, &[true, false, true], 2), 0);
            // All down: fail open to the primary (Route 53 treats all as healthy).
            let mut fresh = PolicyState::default();
            assert_eq!(pick(&policy, &mut fresh, &[false; 3], 2), 0);
        }
    }

    // A view flips only after `threshold` consecutive disagreeing probes.
    #[test]
    fn threshold_view_needs_consecutive_probes() {
        let mut view = ThresholdView::default();
        assert!(!view.record(false, 3));
        assert!(!view.record(false, 3));
        assert!(!view.record(true, 3));
        assert!(!view.record(false, 3));
        assert!(!view.record(false, 3));
        assert!(view.record(false, 3));
        assert!(!view.healthy());
        assert!(view.record(true, 1));
        assert!(view.healthy());
    }

    fn policies() -> impl Strategy<Value = Policy> {
        prop_oneof![
            prop::collection::vec(0u32..5, 3)
                .prop_filter("weights sum above 0", |w| w.iter().any(|&x| x > 0))
                .prop_map(|weights| Policy::Weighted { weights }),
            Just(Policy::Nearest),
            (0usize..3, 0usize..3, 0usize..3).prop_map(|(origin, endpoint, default)| Policy::Geo {
                by_origin: vec![(origin, endpoint)],
                default,
            }),
            (Just(vec![2usize, 0, 1]), any::<bool>())
                .prop_map(|(order, failback)| Policy::Failover { order, failback }),
        ]
    }

    proptest! {
        // Every policy sends a request to a healthy endpoint whenever one is
        // healthy, over any sequence of health changes (failover state included).
        #[test]
        fn policies_never_pick_an_unhealthy_endpoint_while_one_is_healthy(
            policy in policies(),
            steps in prop::collection::vec((prop::array::uniform3(any::<bool>()), 0usize..3), 1..40),
            seed: u64,
        ) {
            let mut state = PolicyState::default();
            let mut rng = RngFactory::new(seed).stream("test");
            for (healthy, origin) in steps {
                let chosen = choose(&policy, &mut state, &[0, 1, 2], &healthy, Place::region(origin), &matrix(), &mut rng);
                prop_assert!(chosen < 3);
                if healthy.iter().any(|&up| up) {
                    prop_assert!(healthy[chosen], "{:?} chose {} with {:?}", policy, chosen, healthy);
                }
            }
        }
    }
}
