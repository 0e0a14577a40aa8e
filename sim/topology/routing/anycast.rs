//! Anycast global routing, modelled on AWS Global Accelerator.
//!
//! Clients reach one set of static anycast addresses; the edge network sends
//! each connection to an endpoint (a region) and moves traffic itself when an
//! endpoint's health changes. So there is no client caching at all: a
//! request made after the edge has shifted goes to the new endpoint.
//!
//! Semantics and defaults (AWS Global Accelerator Developer Guide,
//! "Health check options" and the `CreateEndpointGroup` API):
//! - health checks every `interval` (`HealthCheckIntervalSeconds`, 10 or 30,
//!   default 30 s); an endpoint changes state after `threshold` consecutive
//!   checks disagree (`ThresholdCount`, 1 to 10, default 3);
//! - the new state takes effect at the edge after `shift` (default 0: Global
//!   Accelerator reroutes "within seconds", with no DNS involved);
//! - traffic goes to the nearest healthy endpoint group by default (`policy`
//!   `nearest`), or by traffic-dial weights (`weighted`);
//! - when no endpoint is healthy, it fails open: traffic is sent to all
//!   endpoints as if they were healthy.
//!
//! The health checks run from AWS's own network next to the endpoints, so by
//! default a checker stands in the endpoint's region, and a partition between
//! regions does not change what it sees; a scenario can place it elsewhere.

use super::{choose, Policy, PolicyState, ThresholdView};
use crate::engine::{SimDuration, SimRng, SimTime};
use crate::topology::{LatencyMatrix, Place, RegionId};

/// Global Accelerator's default health check interval, ms.
pub const INTERVAL_MS_DEFAULT: u64 = 30_000;
/// The intervals Global Accelerator offers, ms.
pub const INTERVALS_MS: [u64; 2] = [10_000, 30_000];
/// Global Accelerator's default threshold count.
pub const THRESHOLD_DEFAULT: u32 = 3;
/// The threshold count range.
pub const THRESHOLD_RANGE: (u32, u32) = (1, 10);

/// Checked settings of an `anycast` router. Defaults: `interval_ms` 30000,
/// `threshold` 3, `shift_ms` 0, policy `nearest`, checkers in the endpoints'
/// own regions.
#[derive(Clone, Debug, PartialEq)]
pub struct AnycastSettings {
    /// The endpoints' regions.
    pub endpoints: Vec<RegionId>,
    /// Where the health checker of each endpoint stands.
    pub checkers: Vec<Place>,
    /// Time between health checks of one endpoint.
    pub interval: SimDuration,
    /// Consecutive disagreeing checks before the state changes.
    pub threshold: u32,
    /// Time from a state change to the edge routing by it.
    pub shift: SimDuration,
    /// How traffic is split among healthy endpoints.
    pub policy: Policy,
}

/// The edge's state: health views and the changes on their way to the edge.
#[derive(Clone, Debug)]
pub struct Anycast {
    settings: AnycastSettings,
    views: Vec<ThresholdView>,
    /// Health the edge routes by.
    routed: Vec<bool>,
    /// A decided change not yet at the edge: `(effective at, healthy)`.
    pending: Vec<Option<(SimTime, bool)>>,
    policy_state: PolicyState,
    shifts: u64,
}

impl Anycast {
    /// An edge with every endpoint healthy.
    pub fn new(settings: AnycastSettings) -> Anycast {
        let endpoints = settings.endpoints.len();
        debug_assert!(endpoints > 0 && settings.checkers.len() == endpoints);
        Anycast {
            settings,
            views: vec![ThresholdView::default(); endpoints],
            routed: vec![true; endpoints],
            pending: vec![None; endpoints],
            policy_state: PolicyState::default(),
            shifts: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AnycastSettings {
        &self.settings
    }

    /// The first health check of `endpoint` at or after `now`; checks of
    /// different endpoints are staggered over one interval.
    pub fn next_probe_at(&self, endpoint: usize, now: SimTime) -> SimTime {
        let interval = self.settings.interval.as_micros();
        let offset = interval * endpoint as u64 / self.settings.endpoints.len() as u64;
        let micros = now.as_micros();
        if micros <= offset {
            return SimTime(offset);
        }
        let rounds = (micros - offset).div_ceil(interval);
        SimTime(offset.saturating_add(rounds.saturating_mul(interval)))
    }

    /// Records a health check of `endpoint`. Returns the decided new health
    /// if it changed; the edge routes by it from `now + shift`.
    pub fn record_probe(&mut self, now: SimTime, endpoint: usize, ok: bool) -> Option<bool> {
        self.apply_due(now);
        if !self.views[endpoint].record(ok, self.settings.threshold) {
            return None;
        }
        let healthy = self.views[endpoint].healthy();
        self.pending[endpoint] = Some((now + self.settings.shift, healthy));
        self.apply_due(now);
        Some(healthy)
    }

    fn apply_due(&mut self, now: SimTime) {
        for endpoint in 0..self.pending.len() {
            if let Some((at, healthy)) = self.pending[endpoint] {
                if at <= now {
                    if self.routed[endpoint] != healthy {
                        self.shifts += 1;
                    }
                    self.routed[endpoint] = healthy;
                    self.pending[endpoint] = None;
                }
            }
        }
    }

    /// The health the edge routes by at `now`.
    pub fn routed_health(&mut self, now: SimTime) -> &[bool] {
        self.apply_due(now);
        &self.routed
    }

    /// The region a request from `origin` goes to at `now`.
    pub fn route(
        &mut self,
        now: SimTime,
        origin: Place,
        matrix: &LatencyMatrix,
        rng: &mut SimRng,
    ) -> RegionId {
        self.apply_due(now);
        let endpoint = choose(
            &self.settings.policy,
            &mut self.policy_state,
            &self.settings.endpoints,
            &self.routed,
            origin,
            matrix,
            rng,
        );
        self.settings.endpoints[endpoint]
    }

    /// How many times the edge's routing changed.
    pub fn shifts(&self) -> u64 {
        self.shifts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::topology::routing::tests::matrix;
    use proptest::prelude::*;

    fn anycast(shift_ms: u64) -> Anycast {
        Anycast::new(AnycastSettings {
            endpoints: vec![0, 1, 2],
            checkers: vec![Place::region(0), Place::region(1), Place::region(2)],
            interval: SimDuration::from_ms(10_000),
            threshold: 3,
            shift: SimDuration::from_ms(shift_ms),
            policy: Policy::Nearest,
        })
    }

    // Three failed checks move traffic from origin 0 to the next nearest
    // region, after the shift delay; recovery moves it back.
    #[test]
    fn traffic_shifts_after_threshold_checks_and_the_shift_delay() {
        let mut edge = anycast(2_000);
        let (matrix, mut rng) = (matrix(), RngFactory::new(1).stream("t"));
        let origin = Place::region(0);
        let at = SimTime::from_ms;
        assert_eq!(edge.route(at(0), origin, &matrix, &mut rng), 0);
        assert_eq!(edge.record_probe(at(10_000), 0, false), None);
        assert_eq!(edge.record_probe(at(20_000), 0, false), None);
        assert_eq!(edge.record_probe(at(30_000), 0, false), Some(false));
        assert_eq!(edge.route(at(31_999), origin, &matrix, &mut rng), 0);
        assert_eq!(edge.route(at(32_000), origin, &matrix, &mut rng), 1);
        for t in [40_000, 50_000, 60_000] {
            edge.record_probe(at(t), 0, true);
        }
        assert_eq!(edge.route(at(62_000), origin, &matrix, &mut rng), 0);
        assert_eq!(edge.shifts(), 2);
    }

    // With every endpoint failed, the edge fails open and keeps routing to the nearest.
    #[test]
    fn all_unhealthy_fails_open() {
        let mut edge = anycast(0);
        let (matrix, mut rng) = (matrix(), RngFactory::new(1).stream("t"));
        for endpoint in 0..3 {
            for round in 0..3 {
                edge.record_probe(SimTime::from_ms(round * 10_000), endpoint, false);
            }
        }
        assert_eq!(edge.routed_health(SimTime::from_ms(30_000)), &[false; 3]);
        assert_eq!(
            edge.route(
                SimTime::from_ms(30_000),
                Place::region(2),
                &matrix,
                &mut rng
            ),
            2
        );
    }

    // Checks of different endpoints are staggered over one interval.
    #[test]
    fn checks_are_staggered() {
        let edge = anycast(0);
        assert_eq!(
            edge.next_probe_at(0, SimTime::from_ms(1)),
            SimTime::from_ms(10_000)
        );
        assert_eq!(edge.next_probe_at(1, SimTime::ZERO), SimTime(3_333_333));
    }

    proptest! {
        // The anycast bound: whatever the interval, threshold, shift and
        // failure time, no request goes to the failed region from
        // failure + threshold x interval + shift on, and none leaves it before
        // the failure (no client caching, no false shift).
        #[test]
        fn anycast_moves_within_threshold_intervals_plus_shift(
            fast: bool,
            threshold in 1u32..=10,
            shift_ms in 0u64..60_000,
            down_ms in 0u64..300_000,
            lookups in prop::collection::vec(0u64..1_000_000, 1..30),
        ) {
            let interval = SimDuration::from_ms(if fast { 10_000 } else { 30_000 });
            let mut edge = Anycast::new(AnycastSettings {
                endpoints: vec![0, 1, 2],
                checkers: vec![Place::region(0), Place::region(1), Place::region(2)],
                interval,
                threshold,
                shift: SimDuration::from_ms(shift_ms),
                policy: Policy::Nearest,
            });
            let bound = interval.saturating_mul(u64::from(threshold)) + SimDuration::from_ms(shift_ms);
            let down_at = SimTime::from_ms(down_ms);
            let (matrix, mut rng) = (matrix(), RngFactory::new(1).stream("t"));
            let mut next = edge.next_probe_at(0, SimTime::ZERO);
            let mut lookups = lookups;
            lookups.sort_unstable();
            for at_ms in lookups {
                let at = SimTime::from_ms(at_ms);
                while next <= at {
                    edge.record_probe(next, 0, next < down_at);
                    next = next + interval;
                }
                let region = edge.route(at, Place::region(0), &matrix, &mut rng);
                if at < down_at {
                    prop_assert_eq!(region, 0);
                }
                if at >= down_at + bound {
                    prop_assert_eq!(region, 1, "at {} ms", at_ms);
                }
            }
        }
    }
}
