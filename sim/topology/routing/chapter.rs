//! The chapter's two deployments (section 8.9, "Active-Active vs
//! Active-Passive"), exactly as written, with their weaknesses kept as
//! executable counterexamples (as `policy::breaker` does for the chapter's
//! breaker).
//!
//! ```javascript
//! // ActiveActiveDeployment.routeRequest
//! const userRegion = this.getUserRegion(request);
//! return this.regions.find(r => r === userRegion) || this.regions[0];
//!
//! // ActivePassiveDeployment.routeRequest
//! const primaryHealthy = await this.checkHealth(this.primary);
//! if (primaryHealthy) { return this.primary; }
//! return this.secondary;
//! ```
//!
//! What that code does, and so what these machines do:
//! - **Active-active** routes a user to the region of their origin if it is
//!   in the list, and any other origin to the first region. It never looks
//!   at health: a region that is down keeps all of its users.
//! - **Active-passive** checks the primary's health on every request, once,
//!   with no retry and no hysteresis: one failed check sends that request to
//!   the secondary, the next passing check sends the next one back. The
//!   secondary is returned without any check, so with both down every
//!   request goes to the secondary. Each request pays a health check (a
//!   round trip to the primary's region, by the adapter, before the request
//!   leaves), and the primary receives one health request per user request.

use crate::engine::SimTime;
use crate::topology::RegionId;
use serde::Serialize;

/// `ActiveActiveDeployment`: the regions list, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapterActiveActive {
    regions: Vec<RegionId>,
}

impl ChapterActiveActive {
    /// The deployment over `regions` (at least one; the first is the default).
    pub fn new(regions: Vec<RegionId>) -> ChapterActiveActive {
        assert!(!regions.is_empty(), "validated: at least one region");
        ChapterActiveActive { regions }
    }

    /// The regions, in order.
    pub fn regions(&self) -> &[RegionId] {
        &self.regions
    }

    /// `routeRequest`: the user's origin region if listed, else the first.
    /// `origin` is what geolocation found (`None` when it found nothing).
    pub fn route(&self, origin: Option<RegionId>) -> RegionId {
        origin
            .and_then(|origin| self.regions.iter().copied().find(|&r| r == origin))
            .unwrap_or(self.regions[0])
    }
}

/// The primary and secondary of `ActivePassiveDeployment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivePassiveRegions {
    /// `this.primary`.
    pub primary: RegionId,
    /// `this.secondary`.
    pub secondary: RegionId,
}

/// Counters of the chapter's active-passive router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActivePassiveCounters {
    /// Requests routed, which is also health checks sent to the primary.
    pub requests: u64,
    /// Requests sent to the secondary.
    pub to_secondary: u64,
    /// Times consecutive requests went to different regions.
    pub flips: u64,
}

/// `ActivePassiveDeployment` with its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapterActivePassive {
    regions: ActivePassiveRegions,
    last: Option<RegionId>,
    counters: ActivePassiveCounters,
}

impl ChapterActivePassive {
    /// The deployment.
    pub fn new(regions: ActivePassiveRegions) -> ChapterActivePassive {
        ChapterActivePassive {
            regions,
            last: None,
            counters: ActivePassiveCounters::default(),
        }
    }

    /// `routeRequest`, given what this request's `checkHealth(primary)`
    /// returned (`response.ok`; false on any error or no answer).
    pub fn route(&mut self, _now: SimTime, primary_healthy: bool) -> RegionId {
        let region = if primary_healthy {
            self.regions.primary
        } else {
            // 'Primary unhealthy, failing over to secondary': never checked.
            self.regions.secondary
        };
        self.counters.requests += 1;
        if region == self.regions.secondary {
            self.counters.to_secondary += 1;
        }
        if self.last.is_some_and(|last| last != region) {
            self.counters.flips += 1;
        }
        self.last = Some(region);
        region
    }

    /// The counters.
    pub fn counters(&self) -> ActivePassiveCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RngFactory, SimDuration};
    use crate::test_support::counterexample_of as counterexample;
    use crate::topology::routing::tests::matrix;
    use crate::topology::routing::{choose, Policy, PolicyState, ThresholdView};
    use crate::topology::Place;

    const US: RegionId = 0;
    const EU: RegionId = 1;
    const ASIA: RegionId = 2;

    // The chapter's regions: us-east, eu-west, asia-southeast.
    fn active_active() -> ChapterActiveActive {
        ChapterActiveActive::new(vec![US, EU, ASIA])
    }

    fn active_passive() -> ChapterActivePassive {
        ChapterActivePassive::new(ActivePassiveRegions {
            primary: US,
            secondary: EU,
        })
    }

    // Users go to their own region; anything unknown goes to the first.
    #[test]
    fn chapter_active_active_routes_by_origin_else_first() {
        let router = ChapterActiveActive::new(vec![EU, ASIA]);
        assert_eq!(router.route(Some(ASIA)), ASIA);
        assert_eq!(
            router.route(Some(US)),
            EU,
            "an unlisted origin goes to the first region"
        );
        assert_eq!(
            router.route(None),
            EU,
            "no geolocation goes to the first region"
        );
    }

    /// A generic property every health-aware router passes: when the origin's
    /// region is down and another is up, the request does not go to the
    /// down region. `case` is `(origin, down regions as a bit set)`.
    fn avoids_down_regions(
        route: impl Fn(RegionId, [bool; 3]) -> RegionId,
        case: (usize, u8),
    ) -> Result<(), String> {
        let (origin, down_bits) = case;
        let healthy = [down_bits & 1 == 0, down_bits & 2 == 0, down_bits & 4 == 0];
        let region = route(origin, healthy);
        if healthy.iter().any(|&up| up) && !healthy[region] {
            return Err(format!(
                "origin {origin} sent to down region {region} with health {healthy:?}"
            ));
        }
        Ok(())
    }

    // The nearest-healthy policy (the `dns`/`anycast` `nearest` policy) passes
    // the property; the chapter's active-active fails it, and proptest shrinks
    // the failure to the smallest case: users of the first region while it is
    // down still go there. (Another proptest version may shrink differently:
    // then update the expected value from this test's message.)
    #[test]
    fn the_avoid_down_regions_property_fails_on_chapter_active_active() {
        let strategy = (0usize..3, 0u8..8);
        let nearest = |origin: RegionId, healthy: [bool; 3]| {
            let mut rng = RngFactory::new(1).stream("t");
            choose(
                &Policy::Nearest,
                &mut PolicyState::default(),
                &[0, 1, 2],
                &healthy,
                Place::region(origin),
                &matrix(),
                &mut rng,
            )
        };
        assert_eq!(
            counterexample(strategy.clone(), |case| avoids_down_regions(nearest, case)),
            None
        );
        let chapter = |origin: RegionId, _healthy: [bool; 3]| active_active().route(Some(origin));
        assert_eq!(
            counterexample(strategy, |case| avoids_down_regions(chapter, case)),
            Some((0, 1))
        );
    }

    // Weakness: no health at all. With us-east down for an hour, every
    // us-east user is still sent there, and every unknown origin too.
    #[test]
    fn chapter_active_active_keeps_sending_users_to_a_dead_region() {
        let router = active_active();
        let origins = [Some(US), Some(EU), Some(ASIA), None, Some(7)];
        let to_dead = origins
            .iter()
            .filter(|&&origin| router.route(origin) == US)
            .count();
        assert_eq!(to_dead, 3, "us-east users plus both unknown origins");
    }

    // The chapter's active-passive fails over on one failed check and back on
    // the next passing one: a primary failing 1 check in 2 makes it flip on
    // every request (no hysteresis). A threshold view of 3 (Route 53's
    // default) keeps the traffic where it is.
    #[test]
    fn chapter_active_passive_flaps_with_a_flaky_primary() {
        let mut router = active_passive();
        let now = SimTime::ZERO;
        for request in 0..1_000 {
            router.route(now, request % 2 == 0);
        }
        let counters = router.counters();
        assert_eq!(counters.flips, 999);
        assert_eq!(counters.to_secondary, 500);
        let mut view = ThresholdView::default();
        let changes = (0..1_000)
            .filter(|request| view.record(request % 2 == 0, 3))
            .count();
        assert_eq!(changes, 0);
    }

    // Weakness: the secondary is never checked. With both regions down,
    // every request goes to the secondary.
    #[test]
    fn chapter_active_passive_returns_the_secondary_unchecked() {
        let mut router = active_passive();
        assert_eq!(router.route(SimTime::ZERO, false), EU);
        assert_eq!(router.route(SimTime::from_ms(1), false), EU);
        assert_eq!(router.counters().to_secondary, 2);
    }

    // Weakness: one health check per request. The primary's health endpoint
    // sees exactly as many requests as the users send, and each request
    // waits a round trip to the primary before it leaves (from eu-west,
    // 2 x 40 ms with the test matrix), even when it is then served in eu-west.
    #[test]
    fn chapter_active_passive_checks_once_per_request() {
        let mut router = active_passive();
        for request in 0..250u64 {
            router.route(SimTime::from_ms(request), true);
        }
        assert_eq!(router.counters().requests, 250);
        let probe_round_trip = SimDuration::from_ms_f64(
            matrix().mean_ms(Place::region(EU), Place::region(US))
                + matrix().mean_ms(Place::region(US), Place::region(EU)),
        );
        assert_eq!(probe_round_trip, SimDuration::from_ms(80));
    }
}
