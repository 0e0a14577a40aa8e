//! Client routing in the regions adapter: one live state per router of the
//! topology (`dns` with its checkers, `anycast`, `priority`, the chapter's
//! active-active and active-passive), each client's simulated DNS resolver
//! caches and route stream, `pick_region` (which region a client attempt
//! goes to) and `dependency_region`, and the health probes and host counts
//! that tell the routers which regions serve. A router marking a region
//! unhealthy fills the open failover record (`failover.rs`).

use crate::engine::{SimDuration, SimRng, SimTime};
use crate::topology::network::Delivery;
use crate::topology::routing::anycast::Anycast;
use crate::topology::routing::chapter::{ChapterActiveActive, ChapterActivePassive};
use crate::topology::routing::dns::{Dns, Resolver, ResolverClass};
use crate::topology::routing::priority::Priority;
use crate::topology::{Place, RegionId};

use super::{RegionEvent, Regions, NO_REGION};

/// Simulated resolvers per client behind a `dns` router: each request asks
/// one picked uniformly, so the share of clients still on a failed region
/// moves in steps of 0.1%. Memory: one cache entry each, fixed at start.
pub const RESOLVERS_PER_CLIENT: usize = 1_000;

/// How long the chapter's per-request health check waits for an answer
/// when the client has no timeout of its own (its `fetch` has none; 30 s is
/// a common default of HTTP clients).
pub const CHAPTER_PROBE_TIMEOUT_MS: u64 = 30_000;

pub(super) enum RouterState {
    Dns(Dns),
    Anycast(Anycast),
    Priority(Priority),
    ActiveActive(ChapterActiveActive),
    ActivePassive(ChapterActivePassive),
}

pub(super) struct ClientRouting {
    pub(super) origin: Place,
    pub(super) router: Option<usize>,
    /// The service its requests target.
    pub(super) target: usize,
    pub(super) resolvers: Vec<Resolver>,
    pub(super) route_rng: SimRng,
    /// The client's own timeout, for the chapter's health check.
    pub(super) probe_timeout: SimDuration,
}

impl<'a> Regions<'a> {
    /// The region a client attempt goes to and the extra delay before it
    /// leaves (the chapter's active-passive waits for its health check).
    /// `previous` is the region an earlier attempt of the same request went
    /// to (`NO_REGION` for the first): a DNS answer and the chapter's
    /// choices hold for the whole request (retries reuse them); anycast and
    /// priority decide per connection, so they pick again.
    pub fn pick_region(
        &mut self,
        now: SimTime,
        client: usize,
        previous: u32,
        is_up: &dyn Fn(usize, usize) -> bool,
    ) -> (u32, SimDuration) {
        let state = &mut self.clients[client];
        let Some(router) = state.router else {
            let region = state.origin.region as u32;
            self.counters[region as usize].routed += 1;
            self.client_routed[client * self.topology.regions.len() + region as usize] += 1;
            return (region, SimDuration::ZERO);
        };
        let matrix = &self.topology.latency;
        let mut delay = SimDuration::ZERO;
        let region = match &mut self.routers[router] {
            RouterState::Dns(_) | RouterState::ActiveActive(_) | RouterState::ActivePassive(_)
                if previous != NO_REGION =>
            {
                previous as usize
            }
            RouterState::Dns(dns) => {
                let index = state.route_rng.index(state.resolvers.len());
                let resolver = &mut state.resolvers[index];
                let before = resolver.cached_region();
                let lookup = resolver.lookup(now, dns, state.origin, matrix, &mut state.route_rng);
                if before != Some(lookup.region) {
                    if let Some(old) = before {
                        for record in &mut self.failovers {
                            if let Some(tail) = &mut record.tail {
                                if tail.router == router
                                    && record.region_id == old
                                    && tail.remaining > 0
                                {
                                    tail.remaining -= 1;
                                    if tail.ended.is_none()
                                        && u64::from(tail.remaining) * 100
                                            <= u64::from(tail.initial)
                                    {
                                        tail.ended = Some(now);
                                    }
                                }
                            }
                        }
                    }
                }
                lookup.region
            }
            RouterState::Anycast(anycast) => {
                anycast.route(now, state.origin, matrix, &mut state.route_rng)
            }
            RouterState::Priority(priority) => priority.route(&mut state.route_rng).region,
            RouterState::ActiveActive(chapter) => chapter.route(Some(state.origin.region)),
            RouterState::ActivePassive(chapter) => {
                let primary = self.topology.routers[router].regions()[0];
                let (ok, waited) = {
                    let target = state.target;
                    let origin = state.origin;
                    let timeout = state.probe_timeout;
                    self.counters[primary].health_checks += 1;
                    let to = Place::region(primary);
                    let regions = self.topology.regions.len();
                    let there = self.network.deliver(
                        now,
                        origin,
                        to,
                        &mut self.network_rngs[origin.region * regions + primary],
                    );
                    let back = match there {
                        Delivery::After(out) => {
                            let serving = self.outages.down(now, to).is_none()
                                && !self.failing.iter().any(|(_, scope, _)| scope.contains(to))
                                && self.members[target][primary]
                                    .iter()
                                    .any(|&instance| is_up(target, instance));
                            match self.network.deliver(
                                now + out,
                                to,
                                origin,
                                &mut self.network_rngs[primary * regions + origin.region],
                            ) {
                                Delivery::After(back) if serving => Some(out + back),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    match back {
                        Some(round_trip) => (true, round_trip),
                        None => (false, timeout),
                    }
                };
                delay = waited;
                let before = chapter.counters().to_secondary;
                let region = chapter.route(now, ok);
                if chapter.counters().to_secondary > before {
                    self.detected(now, primary, now);
                }
                region
            }
        };
        self.counters[region].routed += 1;
        self.client_routed[client * self.topology.regions.len() + region] += 1;
        self.count_window(now, region, 0);
        (region as u32, delay)
    }

    /// The region dependency calls of policy stack `stack` go to: the
    /// caller's own region when the dependency has instances there, else
    /// the nearest region that has.
    pub fn dependency_region(&self, stack: usize) -> u32 {
        self.stacks[stack].1
    }

    /// One probe round; returns when the next one is due.
    pub(super) fn probe(
        &mut self,
        now: SimTime,
        router: usize,
        checker: usize,
        is_up: &dyn Fn(usize, usize) -> bool,
    ) -> Option<SimTime> {
        let service = self.router_services[router];
        let serving = |regions: &Regions, region: RegionId| -> bool {
            let place = Place::region(region);
            if regions.down(now, place).is_some() {
                return false;
            }
            match service {
                Some(service) => regions.members[service][region].iter().any(|&instance| {
                    is_up(service, instance)
                        && regions
                            .down(now, regions.instance_places[service][instance])
                            .is_none()
                }),
                None => true,
            }
        };
        // The probe from checker stand `stand` to `region` passes: the region
        // serves and the probe gets through the network.
        let passes = |regions: &mut Regions, stand, region: RegionId| -> bool {
            serving(regions, region)
                && regions.network.probe_delivered(
                    now,
                    (router, checker),
                    stand,
                    region,
                    &mut regions.probe_rngs[router],
                )
        };
        match &self.routers[router] {
            RouterState::Dns(dns) => {
                let settings = dns.settings();
                let stand = settings.checkers[checker];
                let endpoints = settings.endpoints.clone();
                let interval = settings.interval;
                let results: Vec<bool> = endpoints
                    .iter()
                    .map(|&region| passes(self, stand, region))
                    .collect();
                for (endpoint, ok) in results.into_iter().enumerate() {
                    let RouterState::Dns(dns) = &mut self.routers[router] else {
                        unreachable!()
                    };
                    if dns.record_probe(now, checker, endpoint, ok) == Some(false) {
                        self.detected(now, endpoints[endpoint], now);
                    }
                }
                Some(now + interval)
            }
            RouterState::Anycast(anycast) => {
                let settings = anycast.settings();
                let region = settings.endpoints[checker];
                let stand = settings.checkers[checker];
                let interval = settings.interval;
                let shift = settings.shift;
                let ok = passes(self, stand, region);
                let RouterState::Anycast(anycast) = &mut self.routers[router] else {
                    unreachable!()
                };
                if anycast.record_probe(now, checker, ok) == Some(false) {
                    self.detected(now, region, now + shift);
                }
                Some(now + interval)
            }
            _ => None,
        }
    }

    /// Recounts healthy and total hosts per region for `priority` routers.
    pub(super) fn recount_hosts(&mut self, now: SimTime, is_up: &dyn Fn(usize, usize) -> bool) {
        for router in 0..self.routers.len() {
            let RouterState::Priority(_) = &self.routers[router] else {
                continue;
            };
            let Some(service) = self.router_services[router] else {
                continue;
            };
            let regions = self.topology.routers[router].regions();
            for region in regions {
                let members = &self.members[service][region];
                let total = members.len() as u32;
                let healthy = members
                    .iter()
                    .filter(|&&instance| {
                        is_up(service, instance)
                            && self
                                .down(now, self.instance_places[service][instance])
                                .is_none()
                    })
                    .count() as u32;
                let RouterState::Priority(priority) = &mut self.routers[router] else {
                    unreachable!()
                };
                let before = priority.loads().load.clone();
                priority.set_hosts(now, region, healthy, total);
                if healthy < total && priority.loads().load != before {
                    self.detected(now, region, now);
                }
            }
        }
    }
}

pub(super) fn probe(router: usize, checker: usize) -> RegionEvent {
    RegionEvent::Probe {
        router: router as u16,
        checker: checker as u16,
    }
}

/// Draws a resolver class from `shares` (summing to 1).
pub(super) fn draw_class(shares: &[(ResolverClass, f64)], rng: &mut SimRng) -> ResolverClass {
    let mut ticket = rng.unit();
    for &(class, share) in shares {
        if ticket < share {
            return class;
        }
        ticket -= share;
    }
    shares
        .last()
        .map_or(ResolverClass::Ttl, |&(class, _)| class)
}

/// The outermost timeout among a client's policies, if any.
pub(super) fn client_timeout(policies: &[crate::policy::PolicySpec]) -> Option<SimDuration> {
    policies.iter().find_map(|policy| match policy {
        crate::policy::PolicySpec::Timeout(config) => {
            Some(SimDuration::from_ms_f64(config.timeout_ms))
        }
        _ => None,
    })
}
