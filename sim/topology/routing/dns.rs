//! DNS-based global routing, modelled on Amazon Route 53.
//!
//! Three stages, each with Route 53's semantics (Route 53 Developer Guide,
//! "How Amazon Route 53 determines whether a health check is healthy" and
//! "Values that you specify when you create a health check"):
//!
//! 1. **Health checkers** stand in several places. Each probes every
//!    endpoint once per `interval` (30 s standard, 10 s fast: the only two
//!    Route 53 offers). A checker changes its view of an endpoint after
//!    `failure_threshold` consecutive probes disagree with it (default 3,
//!    range 1 to 10), in both directions. Checkers are staggered: checker
//!    `k` of `n` probes at `k * interval / n + m * interval`.
//! 2. **The endpoint's health**: healthy when more than 18% of the checkers
//!    see it healthy ("If more than 18% of health checkers report that an
//!    endpoint is healthy, Route 53 considers it healthy"). So a region is
//!    declared down only when at least 82% of checkers lose it, and a
//!    partition that cuts most checkers off a healthy region is enough for a
//!    false failover.
//! 3. **Answers and caches**: the authoritative answer follows the `Policy`
//!    over the endpoints' health; a client keeps what it resolved for its
//!    cache time, which depends on its resolver class and the record TTL
//!    (60 s is typical): `ttl` honours the TTL; `jvm` adds 30 s (the
//!    `networkaddress.cache.ttl` default of 30 s on top of a resolver that
//!    honours the TTL); `browser` keeps it at least 60 s (Chrome's and
//!    Firefox's host caches hold entries for a minute); `forever` never
//!    re-resolves (a JVM with a security manager, `networkaddress.cache.ttl=-1`,
//!    or a long-lived connection pool). A fraction of recursive resolvers
//!    stretch short TTLs to a minimum (measured in the wild, e.g. Moura et
//!    al., "Cache Me If You Can", IMC 2019): for a client behind one, the
//!    TTL used above is `max(ttl, stretch_ttl_min)`.
//!
//! ## The worst case
//!
//! After an endpoint fails at `t`, every checker's `failure_threshold`-th
//! failing probe is before `t + failure_threshold * interval`, so the
//! answer has changed by then; a client that resolved just before keeps the
//! old answer for its cache time. Every client has moved by
//! `t + failure_threshold * interval + cache time` (`worst_case_move`), and
//! `forever` clients never do. The property test checks this bound.

use super::{choose, Policy, PolicyState, ThresholdView};
use crate::engine::{SimDuration, SimRng, SimTime};
use crate::topology::{LatencyMatrix, Place, RegionId};
use serde::{Deserialize, Serialize};

/// Route 53's standard probe interval, ms.
pub const INTERVAL_MS_DEFAULT: u64 = 30_000;
/// The intervals Route 53 offers, ms: fast and standard.
pub const INTERVALS_MS: [u64; 2] = [10_000, 30_000];
/// Route 53's default failure threshold.
pub const FAILURE_THRESHOLD_DEFAULT: u32 = 3;
/// Route 53's failure threshold range.
pub const FAILURE_THRESHOLD_RANGE: (u32, u32) = (1, 10);
/// The share of checkers that must see an endpoint healthy, exclusive.
pub const HEALTHY_FRACTION_MIN: f64 = 0.18;
/// A typical record TTL, ms.
pub const TTL_MS_DEFAULT: u64 = 60_000;
/// The longest TTL accepted, ms: one day.
pub const TTL_MS_MAX: u64 = 86_400_000;
/// What a JVM adds on top of the TTL, ms.
pub const JVM_EXTRA_MS: u64 = 30_000;
/// The least a browser keeps an answer, ms.
pub const BROWSER_FLOOR_MS: u64 = 60_000;
/// The default minimum TTL of stretching resolvers, ms.
pub const STRETCH_TTL_MS_MIN_DEFAULT: u64 = 300_000;

/// How a client caches what it resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolverClass {
    /// Honours the TTL.
    Ttl,
    /// The TTL plus 30 s.
    Jvm,
    /// At least 60 s.
    Browser,
    /// Never re-resolves.
    Forever,
}

impl ResolverClass {
    /// How long a client of this class keeps an answer resolved with `ttl`;
    /// `None` is forever.
    pub fn cache_for(self, ttl: SimDuration) -> Option<SimDuration> {
        match self {
            ResolverClass::Ttl => Some(ttl),
            ResolverClass::Jvm => Some(ttl + SimDuration::from_ms(JVM_EXTRA_MS)),
            ResolverClass::Browser => Some(ttl.max(SimDuration::from_ms(BROWSER_FLOOR_MS))),
            ResolverClass::Forever => None,
        }
    }

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ResolverClass::Ttl => "ttl",
            ResolverClass::Jvm => "jvm",
            ResolverClass::Browser => "browser",
            ResolverClass::Forever => "forever",
        }
    }
}

/// Checked settings of a `dns` router. Defaults: `interval_ms` 30000,
/// `failure_threshold` 3, `healthy_fraction_min` 0.18, `ttl_ms` 60000,
/// checkers one per region, policy `failover` over the endpoints in order
/// with failback, no stretching resolvers.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsSettings {
    /// Where each health checker stands.
    pub checkers: Vec<Place>,
    /// Time between one checker's probes of one endpoint.
    pub interval: SimDuration,
    /// Consecutive disagreeing probes before a checker changes its view.
    pub failure_threshold: u32,
    /// An endpoint is healthy when more than this share of checkers say so.
    pub healthy_fraction_min: f64,
    /// The record TTL.
    pub ttl: SimDuration,
    /// The endpoints' regions.
    pub endpoints: Vec<RegionId>,
    /// How the answer is picked among healthy endpoints.
    pub policy: Policy,
    /// The share of resolvers that stretch the TTL, in `[0, 1]`.
    pub stretch_fraction: f64,
    /// The TTL those resolvers use at least.
    pub stretch_ttl_min: SimDuration,
}

impl DnsSettings {
    /// The cache time of a client of `class`, behind a stretching resolver or not.
    pub fn cache_for(&self, class: ResolverClass, stretched: bool) -> Option<SimDuration> {
        let ttl = if stretched {
            self.ttl.max(self.stretch_ttl_min)
        } else {
            self.ttl
        };
        class.cache_for(ttl)
    }

    /// The latest a client of `class` can still be sent to a failed endpoint,
    /// after the failure: `failure_threshold * interval + cache time`
    /// (`None` for `forever`).
    pub fn worst_case_move(&self, class: ResolverClass, stretched: bool) -> Option<SimDuration> {
        let detection = self
            .interval
            .saturating_mul(u64::from(self.failure_threshold));
        self.cache_for(class, stretched)
            .map(|cache| detection + cache)
    }
}

/// Counters of a DNS router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DnsCounters {
    /// Probes recorded.
    pub probes: u64,
    /// Endpoint health changes.
    pub health_changes: u64,
    /// Authoritative answers given (cache misses).
    pub answers: u64,
}

/// The authoritative side: checkers' views, endpoint health, answers.
#[derive(Clone, Debug)]
pub struct Dns {
    settings: DnsSettings,
    /// `[checker * endpoints + endpoint]`.
    views: Vec<ThresholdView>,
    healthy: Vec<bool>,
    policy_state: PolicyState,
    counters: DnsCounters,
}

impl Dns {
    /// A router with every view and endpoint healthy.
    pub fn new(settings: DnsSettings) -> Dns {
        debug_assert!(!settings.checkers.is_empty() && !settings.endpoints.is_empty());
        let views =
            vec![ThresholdView::default(); settings.checkers.len() * settings.endpoints.len()];
        let healthy = vec![true; settings.endpoints.len()];
        Dns {
            settings,
            views,
            healthy,
            policy_state: PolicyState::default(),
            counters: DnsCounters::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &DnsSettings {
        &self.settings
    }

    /// The first probe time of `checker` at or after `now` (checkers are
    /// staggered evenly over one interval).
    pub fn next_probe_at(&self, checker: usize, now: SimTime) -> SimTime {
        let interval = self.settings.interval.as_micros();
        let offset = interval * checker as u64 / self.settings.checkers.len() as u64;
        let micros = now.as_micros();
        if micros <= offset {
            return SimTime(offset);
        }
        let rounds = (micros - offset).div_ceil(interval);
        SimTime(offset.saturating_add(rounds.saturating_mul(interval)))
    }

    /// Records `checker`'s probe of endpoint `endpoint` (an index into
    /// `endpoints`): `ok` when the endpoint answered healthy and the answer
    /// came back. Returns the endpoint's new health if it changed.
    pub fn record_probe(
        &mut self,
        _now: SimTime,
        checker: usize,
        endpoint: usize,
        ok: bool,
    ) -> Option<bool> {
        let endpoints = self.settings.endpoints.len();
        debug_assert!(checker < self.settings.checkers.len() && endpoint < endpoints);
        self.counters.probes += 1;
        if !self.views[checker * endpoints + endpoint].record(ok, self.settings.failure_threshold) {
            return None;
        }
        let seeing_healthy = (0..self.settings.checkers.len())
            .filter(|&c| self.views[c * endpoints + endpoint].healthy())
            .count();
        let share = seeing_healthy as f64 / self.settings.checkers.len() as f64;
        let healthy = share > self.settings.healthy_fraction_min;
        if healthy == self.healthy[endpoint] {
            return None;
        }
        self.healthy[endpoint] = healthy;
        self.counters.health_changes += 1;
        Some(healthy)
    }

    /// Each endpoint's health as Route 53 sees it.
    pub fn healthy(&self) -> &[bool] {
        &self.healthy
    }

    /// How many checkers see `endpoint` healthy.
    pub fn checkers_seeing_healthy(&self, endpoint: usize) -> usize {
        let endpoints = self.settings.endpoints.len();
        (0..self.settings.checkers.len())
            .filter(|&c| self.views[c * endpoints + endpoint].healthy())
            .count()
    }

    /// The authoritative answer for a query from `origin` now.
    pub fn answer(&mut self, origin: Place, matrix: &LatencyMatrix, rng: &mut SimRng) -> RegionId {
        self.counters.answers += 1;
        let endpoint = choose(
            &self.settings.policy,
            &mut self.policy_state,
            &self.settings.endpoints,
            &self.healthy,
            origin,
            matrix,
            rng,
        );
        self.settings.endpoints[endpoint]
    }

    /// The counters.
    pub fn counters(&self) -> DnsCounters {
        self.counters
    }
}

/// What a client's lookup returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The region the request goes to.
    pub region: RegionId,
    /// Whether it came from the client's cache.
    pub cached: bool,
    /// When the cached answer expires; `None` is never.
    pub expires_at: Option<SimTime>,
}

/// One client's (or one simulated resolver's) cache. Memory is one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolver {
    class: ResolverClass,
    stretched: bool,
    cached: Option<(RegionId, Option<SimTime>)>,
}

impl Resolver {
    /// An empty cache of `class`, behind a stretching resolver or not.
    pub fn new(class: ResolverClass, stretched: bool) -> Resolver {
        Resolver {
            class,
            stretched,
            cached: None,
        }
    }

    /// The class.
    pub fn class(&self) -> ResolverClass {
        self.class
    }

    /// The region cached now, expired or not (`None` before the first lookup).
    pub fn cached_region(&self) -> Option<RegionId> {
        self.cached.map(|(region, _)| region)
    }

    /// Whether this client sits behind a TTL-stretching resolver.
    pub fn stretched(&self) -> bool {
        self.stretched
    }

    /// Resolves at `now`: the cached answer while it lasts, else a fresh
    /// answer from `dns`, cached for this class's time.
    pub fn lookup(
        &mut self,
        now: SimTime,
        dns: &mut Dns,
        origin: Place,
        matrix: &LatencyMatrix,
        rng: &mut SimRng,
    ) -> Lookup {
        if let Some((region, expires_at)) = self.cached {
            let fresh = match expires_at {
                None => true,
                Some(expiry) => now < expiry,
            };
            if fresh {
                return Lookup {
                    region,
                    cached: true,
                    expires_at,
                };
            }
        }
        let region = dns.answer(origin, matrix, rng);
        let expires_at = dns
            .settings()
            .cache_for(self.class, self.stretched)
            .map(|cache| now + cache);
        self.cached = Some((region, expires_at));
        Lookup {
            region,
            cached: false,
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::topology::routing::tests::matrix;
    use proptest::prelude::*;

    fn settings(checkers: usize, interval_ms: u64, threshold: u32, ttl_ms: u64) -> DnsSettings {
        DnsSettings {
            checkers: (0..checkers).map(|c| Place::region(c % 3)).collect(),
            interval: SimDuration::from_ms(interval_ms),
            failure_threshold: threshold,
            healthy_fraction_min: HEALTHY_FRACTION_MIN,
            ttl: SimDuration::from_ms(ttl_ms),
            endpoints: vec![0, 1],
            policy: Policy::Failover {
                order: vec![0, 1],
                failback: true,
            },
            stretch_fraction: 0.0,
            stretch_ttl_min: SimDuration::from_ms(STRETCH_TTL_MS_MIN_DEFAULT),
        }
    }

    // Plays every checker's probes of endpoint 0 until `until`; the endpoint
    // is down from `down_at`. Returns when Route 53 declared it unhealthy.
    fn probe_until(dns: &mut Dns, down_at: SimTime, until: SimTime) -> Option<SimTime> {
        let mut changed = None;
        let checkers = dns.settings().checkers.len();
        let mut next: Vec<SimTime> = (0..checkers)
            .map(|c| dns.next_probe_at(c, SimTime::ZERO))
            .collect();
        loop {
            let (checker, at) = next
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|&(c, at)| (at, c))
                .unwrap();
            if at > until {
                return changed;
            }
            if dns.record_probe(at, checker, 0, at < down_at) == Some(false) {
                changed.get_or_insert(at);
            }
            next[checker] = at + dns.settings().interval;
        }
    }

    // An endpoint stays healthy while more than 18% of checkers see it so:
    // with 10 checkers, 2 are enough; at 1 of 10 it is unhealthy.
    #[test]
    fn healthy_while_more_than_18_percent_of_checkers_say_so() {
        let mut dns = Dns::new(settings(10, 30_000, 1, 60_000));
        let now = SimTime::ZERO;
        for checker in 0..8 {
            assert_eq!(dns.record_probe(now, checker, 0, false), None);
        }
        assert!(dns.healthy()[0]);
        assert_eq!(dns.checkers_seeing_healthy(0), 2);
        assert_eq!(dns.record_probe(now, 8, 0, false), Some(false));
        assert_eq!(dns.checkers_seeing_healthy(0), 1);
        assert_eq!(dns.record_probe(now, 8, 0, true), Some(true));
    }

    // Checkers are staggered over one interval and probe once per interval.
    #[test]
    fn checkers_are_staggered_over_one_interval() {
        let dns = Dns::new(settings(3, 30_000, 3, 60_000));
        assert_eq!(dns.next_probe_at(0, SimTime::ZERO), SimTime::ZERO);
        assert_eq!(
            dns.next_probe_at(1, SimTime::ZERO),
            SimTime::from_ms(10_000)
        );
        assert_eq!(
            dns.next_probe_at(2, SimTime::from_ms(20_001)),
            SimTime::from_ms(50_000)
        );
        assert_eq!(
            dns.next_probe_at(0, SimTime::from_ms(30_000)),
            SimTime::from_ms(30_000)
        );
    }

    // With threshold 3 and 30 s, detection of a failure at 45 s is complete
    // before 45 + 90 s, and the answer moves to the secondary then.
    #[test]
    fn detection_takes_up_to_threshold_intervals() {
        let mut dns = Dns::new(settings(3, 30_000, 3, 60_000));
        let down_at = SimTime::from_ms(45_000);
        let changed = probe_until(&mut dns, down_at, SimTime::from_ms(300_000)).unwrap();
        assert!(changed > down_at);
        assert!(
            changed < down_at + SimDuration::from_ms(90_000),
            "{changed}"
        );
        let mut rng = RngFactory::new(1).stream("t");
        assert_eq!(dns.answer(Place::region(0), &matrix(), &mut rng), 1);
    }

    // Cache times per class: TTL, TTL + 30 s, at least 60 s, forever; a
    // stretching resolver raises the TTL first.
    #[test]
    fn resolver_classes_cache_as_documented() {
        let ttl = SimDuration::from_ms(20_000);
        assert_eq!(ResolverClass::Ttl.cache_for(ttl), Some(ttl));
        assert_eq!(
            ResolverClass::Jvm.cache_for(ttl),
            Some(SimDuration::from_ms(50_000))
        );
        assert_eq!(
            ResolverClass::Browser.cache_for(ttl),
            Some(SimDuration::from_ms(60_000))
        );
        assert_eq!(ResolverClass::Forever.cache_for(ttl), None);
        let settings = settings(3, 30_000, 3, 20_000);
        assert_eq!(
            settings.cache_for(ResolverClass::Jvm, true),
            Some(SimDuration::from_ms(330_000))
        );
        assert_eq!(
            settings.worst_case_move(ResolverClass::Ttl, false),
            Some(SimDuration::from_ms(110_000))
        );
    }

    // A `forever` client keeps the failed region; a `ttl` client moves once
    // its cache expires.
    #[test]
    fn forever_clients_never_move() {
        let mut dns = Dns::new(settings(1, 10_000, 1, 60_000));
        let (matrix, mut rng) = (matrix(), RngFactory::new(1).stream("t"));
        let origin = Place::region(0);
        let mut forever = Resolver::new(ResolverClass::Forever, false);
        let mut ttl = Resolver::new(ResolverClass::Ttl, false);
        assert_eq!(
            forever
                .lookup(SimTime::ZERO, &mut dns, origin, &matrix, &mut rng)
                .region,
            0
        );
        assert_eq!(
            ttl.lookup(SimTime::ZERO, &mut dns, origin, &matrix, &mut rng)
                .region,
            0
        );
        dns.record_probe(SimTime::from_ms(10_000), 0, 0, false);
        let later = SimTime::from_ms(3_600_000);
        let kept = forever.lookup(later, &mut dns, origin, &matrix, &mut rng);
        assert_eq!((kept.region, kept.cached, kept.expires_at), (0, true, None));
        assert_eq!(
            ttl.lookup(
                SimTime::from_ms(59_999),
                &mut dns,
                origin,
                &matrix,
                &mut rng
            )
            .region,
            0
        );
        let moved = ttl.lookup(
            SimTime::from_ms(60_000),
            &mut dns,
            origin,
            &matrix,
            &mut rng,
        );
        assert_eq!((moved.region, moved.cached), (1, false));
    }

    proptest! {
        // The DNS worst case: whatever the interval, threshold, TTL, class,
        // stretching, failure time and lookup times, a client that looks up
        // at or after failure + threshold x interval + cache time gets the
        // secondary.
        #[test]
        fn dns_worst_case_is_bounded_by_threshold_intervals_plus_caches(
            checkers in 1usize..9,
            fast: bool,
            threshold in 1u32..=10,
            ttl_ms in 0u64..400_000,
            class in prop::sample::select(vec![ResolverClass::Ttl, ResolverClass::Jvm, ResolverClass::Browser]),
            stretched: bool,
            down_ms in 0u64..200_000,
            lookups in prop::collection::vec(0u64..2_000_000, 1..20),
        ) {
            let interval_ms = if fast { 10_000 } else { 30_000 };
            let settings = settings(checkers, interval_ms, threshold, ttl_ms);
            let bound = settings.worst_case_move(class, stretched).unwrap();
            let mut dns = Dns::new(settings);
            let down_at = SimTime::from_ms(down_ms);
            let mut lookups = lookups;
            lookups.sort_unstable();
            let horizon = SimTime::from_ms(lookups[lookups.len() - 1] + 1);
            // Interleave probes and lookups in time order.
            let (matrix, mut rng) = (matrix(), RngFactory::new(1).stream("t"));
            let mut resolver = Resolver::new(class, stretched);
            let interval = dns.settings().interval;
            let mut next: Vec<SimTime> = (0..checkers).map(|c| dns.next_probe_at(c, SimTime::ZERO)).collect();
            for at_ms in lookups {
                let at = SimTime::from_ms(at_ms);
                loop {
                    let (checker, probe_at) = next.iter().copied().enumerate().min_by_key(|&(c, t)| (t, c)).unwrap();
                    if probe_at > at || probe_at > horizon { break; }
                    dns.record_probe(probe_at, checker, 0, probe_at < down_at);
                    next[checker] = probe_at + interval;
                }
                let lookup = resolver.lookup(at, &mut dns, Place::region(0), &matrix, &mut rng);
                if at >= down_at + bound {
                    prop_assert_eq!(lookup.region, 1, "at {} ms, bound {}", at_ms, bound);
                }
            }
        }
    }
}
