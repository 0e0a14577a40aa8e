//! The regions adapter: the live state of a run's topology (issue 7, phase
//! 2; `docs/regions-integration.md` is the plan). The world owns one as
//! `Option<Regions>` (`None` for a scenario without `topology`, which then
//! takes none of these paths) and calls it at a few points: when an attempt
//! leaves a caller (`pick_region`, `deliver`), when the load balancer picks
//! an instance (`members`, `down`), when a reply goes back (`deliver`), and
//! for its own events (`RegionEvent`: health probes, fault edges, failure
//! processes). The adapter never touches the event queue: it returns
//! `(SimTime, RegionEvent)` pairs, and `Effect`s on instances, that the
//! world applies.
//!
//! What it holds: the `Network` (latency matrix, partitions, degradations,
//! checker cuts), the scripted `Outages`, the failure processes, one router
//! state per `RouterSpec`, the DNS resolver caches, where every instance and
//! every caller stands, and the per-region counters, windows and failover
//! records that the report reads (`RegionReport`).
//!
//! The database adapter (issue 8) reuses `Place`s, `deliver` and
//! `reachable` for its nodes, and `place_of_region`/`instance_place` to put
//! callers on the map.
//!
//! ## Random streams
//!
//! Named so that adding a topology shifts nothing else:
//! `region/client/<client>/resolvers` (each simulated resolver's class and
//! stretching, drawn once), `region/client/<client>/route` (which resolver a
//! request asks; weighted and priority draws), `region/network/<from>-><to>`
//! (latency and loss draws per ordered region pair, and the chapter's
//! per-request health check), `region/probes/<router>` (loss on the health
//! probes of `dns` and `anycast` routers), and `failures/<target>` (one
//! per failure process: `failures/region/us-east-1`, `failures/instance/api[3]`).

use crate::engine::{RngFactory, SimDuration, SimRng, SimTime};
use crate::metrics::summary::{recovery_ms, RECOVERY_TOLERANCE, RECOVERY_WINDOWS};
use crate::metrics::{Outcome, WindowRow};
use crate::scenario::{OutageMode, Scenario};
use crate::topology::failure::{FailureProcess, FailureTarget};
use crate::topology::faults::{network, Outages, TopologyFault};
use crate::topology::network::{Delivery, Network};
use crate::topology::routing::anycast::Anycast;
use crate::topology::routing::chapter::{ChapterActiveActive, ChapterActivePassive};
use crate::topology::routing::dns::{Dns, Resolver, ResolverClass};
use crate::topology::routing::priority::Priority;
use crate::topology::routing::RouterKind;
use crate::topology::{Place, RegionId, Topology};
use serde::Serialize;
use std::collections::BTreeMap;

/// Simulated resolvers per client behind a `dns` router: each request asks
/// one picked uniformly, so the share of clients still on a failed region
/// moves in steps of 0.1%. Memory: one cache entry each, fixed at start.
pub const RESOLVERS_PER_CLIENT: usize = 1_000;

/// How long the chapter's per-request health check waits for an answer
/// when the client has no timeout of its own (its `fetch` has none; 30 s is
/// a common default of HTTP clients).
pub const CHAPTER_PROBE_TIMEOUT_MS: u64 = 30_000;

/// No region chosen yet (the sentinel a request starts with).
pub const NO_REGION: u32 = u32::MAX;

/// An event of the regions adapter, pushed by the world at the time the
/// adapter returned with it. Small: the world's event stays 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionEvent {
    /// A health checker of a router probes every endpoint (`dns`), or the
    /// checker of one endpoint probes it (`anycast`: `checker` is the endpoint).
    Probe {
        /// Index in `Topology::routers`.
        router: u16,
        /// Checker index.
        checker: u16,
    },
    /// A scripted topology fault begins or ends (outages change what is
    /// down; network faults need no event but mark the chart).
    FaultEdge {
        /// Index in `Topology::faults`.
        fault: u32,
        /// Begin, or end.
        begin: bool,
    },
    /// A failure process's unit fails or comes back.
    FailureEdge {
        /// Index in `Topology::faults`.
        fault: u32,
        /// Whether the unit comes back up.
        up: bool,
    },
}

/// What the world must do to an instance after a region event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Crash instance `.1` of service `.0` (as a `crash` fault does).
    Crash(usize, usize),
    /// Undo one crash of that instance (it restarts).
    Restart(usize, usize),
}

/// What happened to an attempt or reply on the network, as the world sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// It arrives after this extra delay (added to `network.latency_ms`).
    After(SimDuration),
    /// It never arrives (a partition or loss dropped it).
    Dropped,
}

/// Per-region counters, as written in `summary.json` under `regions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegionCounters {
    /// Client attempts a router (or the origin) sent to this region.
    pub routed: u64,
    /// Attempts (client and dependency calls) that arrived here.
    pub arrivals: u64,
    /// Of those, dependency calls from another region.
    pub cross_region_calls: u64,
    /// Successful answers sent from here.
    pub succeeded: u64,
    /// Other answers sent from here (errors, 503s, refusals).
    pub failed: u64,
    /// Attempts refused by a fail-fast region or zone outage.
    pub refused_outage: u64,
    /// Attempts swallowed by a hang outage (never answered).
    pub lost_in_outage: u64,
    /// Attempts to this region dropped by a partition on the way.
    pub requests_partitioned: u64,
    /// Attempts to this region lost on the way (degradation loss).
    pub requests_lost: u64,
    /// Answers from this region dropped by a partition on the way back.
    pub replies_partitioned: u64,
    /// Answers from this region lost on the way back.
    pub replies_lost: u64,
    /// The chapter's per-request health checks this region received.
    pub health_checks: u64,
    /// Worker time spent on jobs here (every service's instances placed in
    /// the region), ms: the integral of busy workers over the run.
    pub busy_worker_ms: u64,
}

/// A failover: a region that became unable to serve, and how the routers
/// and the clients followed. Times are from the fault, in ms; `None` when
/// the phase never happened before the run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailoverRecord {
    /// The region that failed (or looked failed).
    pub region: String,
    /// What hit it: `region_outage`, `failures`, `checker_partition`, or
    /// `partition` (up, but cut off from every client that can use it).
    pub fault: String,
    /// When the fault began, ms.
    pub fault_ms: f64,
    /// When it ended, ms (`None`: not before the run ended).
    pub fault_end_ms: Option<f64>,
    /// From the fault to the first router marking the region unhealthy.
    pub detection_ms: Option<f64>,
    /// From the fault to the router's answer changing (detection plus an
    /// anycast `shift_ms`).
    pub routing_change_ms: Option<f64>,
    /// From the routing change until at most 1% of the resolvers that were
    /// on the region still are (`dns` only; `None` if never).
    pub dns_tail_ms: Option<f64>,
    /// The share of those resolvers still on the region at the end of the
    /// fault (or of the run): `forever` caches never move.
    pub clients_never_moved: Option<f64>,
    /// From the fault until availability is back, counting only the
    /// requests of `recovery_clients` (see the reference).
    pub recovery_ms: Option<f64>,
    /// The clients whose requests `recovery_ms` counts: those that had sent
    /// attempts to the region before the fault (all clients when none had).
    pub recovery_clients: Vec<String>,
    /// Whether the surviving regions held the moved load.
    pub capacity: Option<CapacityVerdict>,
    #[serde(skip)]
    region_id: RegionId,
    /// The index of the topology fault that opened it.
    #[serde(skip)]
    fault_index: usize,
    #[serde(skip)]
    started: SimTime,
    #[serde(skip)]
    tail: Option<Tail>,
    /// Indices of `recovery_clients` (empty: all clients).
    #[serde(skip)]
    clients: Vec<usize>,
}

/// The capacity verdict after a failover.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityVerdict {
    /// `holds` or `saturated`.
    pub verdict: &'static str,
    /// The surviving region with the highest mean utilisation.
    pub region: String,
    /// Its measured utilisation, busy worker time over `instances × workers
    /// × window` of the routed service, averaged over the whole windows from
    /// the routing change to the fault's end; the verdict is `holds` below
    /// `SATURATION_BUSY`.
    pub utilisation_mean: f64,
    /// Its highest measured utilisation in one window over the same span.
    pub utilisation_peak: f64,
    /// Its offered utilisation over the same windows, `routed attempts per
    /// second × mean service time / (instances × workers)`: above 1 it asks
    /// for more than the region has, which the measured figure cannot show.
    pub offered_utilisation_mean: f64,
    /// Its highest offered utilisation in one window.
    pub offered_utilisation_peak: f64,
}

/// The measured utilisation at and above which surviving regions count as
/// saturated: busy workers cannot exceed 1, so a region asked for more than
/// it has sits just below it (the gaps are the instants a queue is empty).
pub const SATURATION_BUSY: f64 = 0.95;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Tail {
    /// The router whose resolvers are counted.
    router: usize,
    /// Resolvers on the failed region at the routing change.
    initial: u32,
    /// Of those, still on it.
    remaining: u32,
    /// When the count first fell to at most 1%.
    ended: Option<SimTime>,
}

enum RouterState {
    Dns(Dns),
    Anycast(Anycast),
    Priority(Priority),
    ActiveActive(ChapterActiveActive),
    ActivePassive(ChapterActivePassive),
}

struct ClientRouting {
    origin: Place,
    router: Option<usize>,
    /// The service its requests target.
    target: usize,
    resolvers: Vec<Resolver>,
    route_rng: SimRng,
    /// The client's own timeout, for the chapter's health check.
    probe_timeout: SimDuration,
}

struct Failure {
    fault: usize,
    process: FailureProcess,
    /// The repair time of the window drawn last.
    repair_at: SimTime,
}

/// The live topology of one run. See the module doc.
pub struct Regions<'a> {
    topology: &'a Topology,
    network: Network,
    outages: Outages,
    /// Place outages in force from failure processes: `(fault, place, mode)`.
    failing: Vec<(usize, Place, OutageMode)>,
    failures: Vec<Failure>,
    routers: Vec<RouterState>,
    clients: Vec<ClientRouting>,
    /// `[service][region]`: the instance indices placed there, in order.
    members: Vec<Vec<Vec<usize>>>,
    /// `[service][region]`: round-robin cursor within `members`.
    cursors: Vec<Vec<usize>>,
    /// `[service][instance]`.
    instance_places: Vec<Vec<Place>>,
    /// Per policy stack (the world's order): the caller's place, and for a
    /// dependency stack the region its calls go to (`NO_REGION` for clients).
    stacks: Vec<(Place, u32)>,
    /// `[from * regions + to]`.
    network_rngs: Vec<SimRng>,
    /// The service each router's endpoints are checked for.
    router_services: Vec<Option<usize>>,
    counters: Vec<RegionCounters>,
    /// Per window: `routed` then `ok` per region.
    windows: Vec<u64>,
    window: SimDuration,
    failovers: Vec<FailoverRecord>,
    /// Every failover opened, kept or not.
    failovers_total: u64,
    workers: Vec<u32>,
    mean_service_ms: Vec<f64>,
    /// Per router: loss draws on its health probes.
    probe_rngs: Vec<SimRng>,
    /// `[service * regions + region]`: workers busy now, and since when the
    /// count is integrated.
    busy: Vec<(u32, SimTime)>,
    /// Per window, per region: busy worker time of `verdict_service`, µs.
    busy_windows: Vec<u64>,
    /// Per region: busy worker time of every service, µs.
    busy_total_us: Vec<u64>,
    /// The service the capacity verdict is about: the first router's, else
    /// the first client's target.
    verdict_service: Option<usize>,
    /// `[client * regions + region]`: client attempts routed there.
    client_routed: Vec<u64>,
    /// Per window, per client (the first `CLIENT_SERIES_MAX`): successful
    /// then finished requests.
    client_windows: Vec<u64>,
    /// Client names, in the scenario's order.
    client_names: Vec<String>,
}

impl<'a> Regions<'a> {
    /// The adapter for `scenario`, or `None` without a topology. Streams
    /// come from `rngs`.
    pub fn new(scenario: &'a Scenario, rngs: &RngFactory) -> Option<Regions<'a>> {
        let topology = scenario.topology.as_ref()?;
        let regions = topology.regions.len();
        let instance_places: Vec<Vec<Place>> = scenario
            .services
            .iter()
            .enumerate()
            .map(|(service, config)| {
                (0..config.instances)
                    .map(|index| {
                        topology
                            .instance_place(service, index)
                            .unwrap_or(Place::region(0))
                    })
                    .collect()
            })
            .collect();
        let members: Vec<Vec<Vec<usize>>> = instance_places
            .iter()
            .map(|places| {
                (0..regions)
                    .map(|region| {
                        (0..places.len())
                            .filter(|&index| places[index].region == region)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let cursors = vec![vec![0; regions]; scenario.services.len()];
        let clients: Vec<ClientRouting> = scenario
            .clients
            .iter()
            .enumerate()
            .map(|(index, client)| {
                let placement = topology.clients.iter().find(|p| p.client == index);
                let origin = placement.map_or(Place::region(0), |p| p.origin);
                let router = placement.and_then(|p| p.router);
                let mut resolver_rng =
                    rngs.stream(&format!("region/client/{}/resolvers", client.name));
                let resolvers = match (router, placement) {
                    (Some(router), Some(placement)) => match &topology.routers[router].kind {
                        RouterKind::Dns(settings) => (0..RESOLVERS_PER_CLIENT)
                            .map(|_| {
                                let class = draw_class(&placement.resolvers, &mut resolver_rng);
                                let stretched = settings.stretch_fraction > 0.0
                                    && resolver_rng.chance(settings.stretch_fraction);
                                Resolver::new(class, stretched)
                            })
                            .collect(),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                ClientRouting {
                    origin,
                    router,
                    target: client.target,
                    resolvers,
                    route_rng: rngs.stream(&format!("region/client/{}/route", client.name)),
                    probe_timeout: client_timeout(&client.policies)
                        .unwrap_or(SimDuration::from_ms(CHAPTER_PROBE_TIMEOUT_MS)),
                }
            })
            .collect();
        let matrix = &topology.latency;
        let nearest_with = |service: usize, from: Place| -> u32 {
            let has = |region: usize| !members[service][region].is_empty();
            if has(from.region) {
                return from.region as u32;
            }
            (0..regions)
                .filter(|&region| has(region))
                .min_by(|&a, &b| {
                    matrix
                        .mean_ms(from, Place::region(a))
                        .total_cmp(&matrix.mean_ms(from, Place::region(b)))
                        .then(a.cmp(&b))
                })
                .unwrap_or(0) as u32
        };
        let mut stacks: Vec<(Place, u32)> = clients
            .iter()
            .map(|client| (client.origin, NO_REGION))
            .collect();
        for (config, places) in scenario.services.iter().zip(&instance_places) {
            for &place in places {
                for call in &config.dependencies {
                    // A database call is delivered by the database adapter.
                    let region = call
                        .service()
                        .map_or(NO_REGION, |service| nearest_with(service, place));
                    stacks.push((place, region));
                }
            }
        }
        let routers: Vec<RouterState> = topology
            .routers
            .iter()
            .map(|spec| match &spec.kind {
                RouterKind::Dns(settings) => RouterState::Dns(Dns::new(settings.clone())),
                RouterKind::Anycast(settings) => {
                    RouterState::Anycast(Anycast::new(settings.clone()))
                }
                RouterKind::Priority(settings) => {
                    RouterState::Priority(Priority::new(settings.clone()))
                }
                RouterKind::ChapterActiveActive(chapter) => {
                    RouterState::ActiveActive(chapter.clone())
                }
                RouterKind::ChapterActivePassive(regions) => {
                    RouterState::ActivePassive(ChapterActivePassive::new(*regions))
                }
            })
            .collect();
        let router_services = (0..topology.routers.len())
            .map(|router| {
                clients
                    .iter()
                    .find(|client| client.router == Some(router))
                    .map(|client| client.target)
            })
            .collect();
        let network_rngs = (0..regions * regions)
            .map(|pair| {
                let (from, to) = (pair / regions, pair % regions);
                rngs.stream(&format!(
                    "region/network/{}->{}",
                    topology.regions[from].name, topology.regions[to].name
                ))
            })
            .collect();
        let failures = topology
            .faults
            .iter()
            .enumerate()
            .filter_map(|(fault, raw)| match raw {
                TopologyFault::Failures {
                    target,
                    mttf_ms,
                    mttr_ms,
                    ..
                } => {
                    let name = match target {
                        FailureTarget::Instance(service, index) => {
                            format!("instance/{}[{index}]", scenario.services[*service].name)
                        }
                        FailureTarget::Place(place) => {
                            let kind = if place.zone.is_some() {
                                "zone"
                            } else {
                                "region"
                            };
                            format!("{kind}/{}", topology.place_name(*place))
                        }
                    };
                    let rng = rngs.stream(&format!("failures/{name}"));
                    Some(Failure {
                        fault,
                        process: FailureProcess::new(*mttf_ms, *mttr_ms, rng, SimTime::ZERO),
                        repair_at: SimTime::ZERO,
                    })
                }
                _ => None,
            })
            .collect();
        let mut adapter = Regions {
            topology,
            network: network(topology.latency.clone(), &topology.faults),
            outages: Outages::new(&topology.faults),
            failing: Vec::new(),
            failures,
            routers,
            clients,
            members,
            cursors,
            instance_places,
            stacks,
            network_rngs,
            router_services,
            counters: vec![RegionCounters::default(); regions],
            windows: Vec::new(),
            window: scenario.window,
            failovers: Vec::new(),
            failovers_total: 0,
            workers: scenario.services.iter().map(|s| s.workers).collect(),
            mean_service_ms: scenario
                .services
                .iter()
                .map(|s| s.service_time.mean_ms())
                .collect(),
            probe_rngs: topology
                .routers
                .iter()
                .map(|router| rngs.stream(&format!("region/probes/{}", router.name)))
                .collect(),
            busy: vec![(0, SimTime::ZERO); scenario.services.len() * regions],
            busy_windows: Vec::new(),
            busy_total_us: vec![0; regions],
            verdict_service: None,
            client_routed: vec![0; scenario.clients.len() * regions],
            client_windows: Vec::new(),
            client_names: scenario.clients.iter().map(|c| c.name.clone()).collect(),
        };
        adapter.verdict_service = adapter
            .router_services
            .iter()
            .flatten()
            .next()
            .copied()
            .or_else(|| adapter.clients.first().map(|client| client.target));
        adapter.recount_hosts(SimTime::ZERO, &|_, _| true);
        Some(adapter)
    }

    /// The checked topology.
    pub fn topology(&self) -> &'a Topology {
        self.topology
    }

    /// The network: latency matrix and the partitions, degradations and
    /// checker cuts on it (every query takes `now`).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The place of a region as a whole.
    pub fn place_of_region(&self, name: &str) -> Option<Place> {
        self.topology.region_id(name).map(Place::region)
    }

    /// Where instance `instance` of `service` stands (the first region for
    /// a service the topology does not place).
    pub fn instance_place(&self, service: usize, instance: usize) -> Place {
        self.instance_places[service][instance]
    }

    /// Where the caller of policy stack `stack` stands (a client's origin,
    /// or the calling instance's place), in the world's stack order.
    pub fn caller_place(&self, stack: usize) -> Place {
        self.stacks[stack].0
    }

    /// Whether a packet from `from` gets to `to` at `now` (partitions only;
    /// one-way: says nothing of the reverse direction).
    pub fn reachable(&self, now: SimTime, from: Place, to: Place) -> bool {
        self.network.reachable(now, from, to)
    }

    /// Sends one packet from `from` to `to` at `now`: its extra one-way
    /// delay (the matrix plus added latency), or `Dropped` by a partition
    /// or loss. Draws from the `region/network/<from>-><to>` stream. Counts
    /// nothing: callers count what they send.
    pub fn deliver(&mut self, now: SimTime, from: Place, to: Place) -> Delivery {
        let regions = self.topology.regions.len();
        let rng = &mut self.network_rngs[from.region * regions + to.region];
        self.network.deliver(now, from, to, rng)
    }

    /// How `place` is down at `now`, if it is: a scripted region or zone
    /// outage, or a failure process's down window.
    pub fn down(&self, now: SimTime, place: Place) -> Option<OutageMode> {
        self.outages.down(now, place).or_else(|| {
            self.failing
                .iter()
                .find(|(_, scope, _)| scope.contains(place))
                .map(|&(_, _, mode)| mode)
        })
    }

    /// The instances of `service` placed in `region`, with its round-robin
    /// cursor (an index into that list), for the load balancer.
    pub fn members(&mut self, service: usize, region: u32) -> (&[usize], &mut usize) {
        let region = region as usize;
        (
            &self.members[service][region],
            &mut self.cursors[service][region],
        )
    }

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

    /// An attempt of policy stack `stack` to `region` leaves at `now`:
    /// whether it arrives, and after what extra delay. A dependency call to
    /// another region counts as a cross-region call.
    pub fn send(&mut self, now: SimTime, stack: usize, region: u32) -> Leg {
        let from = self.stacks[stack].0;
        let to = Place::region(region as usize);
        let counters = &mut self.counters[region as usize];
        if self.stacks[stack].1 != NO_REGION && from.region != to.region {
            counters.cross_region_calls += 1;
        }
        match self.deliver(now, from, to) {
            Delivery::After(delay) => Leg::After(delay),
            Delivery::Partitioned => {
                self.counters[region as usize].requests_partitioned += 1;
                Leg::Dropped
            }
            Delivery::Lost => {
                self.counters[region as usize].requests_lost += 1;
                Leg::Dropped
            }
        }
    }

    /// An attempt arrived in `region`.
    pub fn arrived(&mut self, region: u32) {
        self.counters[region as usize].arrivals += 1;
    }

    /// The load balancer chose `instance` of `service` for an attempt of
    /// policy stack `stack`: whether a partition between the caller's zone
    /// and the instance's zone stops it at `now` (counted as
    /// `requests_partitioned`). Requests are addressed to regions, so only
    /// here, once the instance and so its zone are known, can a zone
    /// partition apply; one between whole regions already dropped the
    /// attempt when it left (`send`).
    pub fn instance_unreachable(
        &mut self,
        now: SimTime,
        stack: usize,
        service: usize,
        instance: usize,
    ) -> bool {
        let from = self.stacks[stack].0;
        let to = self.instance_places[service][instance];
        if (from.zone.is_none() && to.zone.is_none()) || self.network.reachable(now, from, to) {
            return false;
        }
        self.counters[to.region].requests_partitioned += 1;
        true
    }

    /// `delta` workers of instance `instance` of `service` became busy
    /// (positive) or free (negative) at `now`.
    pub fn workers_changed(&mut self, now: SimTime, service: usize, instance: usize, delta: i64) {
        let region = self.instance_places[service][instance].region;
        let key = service * self.topology.regions.len() + region;
        self.integrate_busy(now, key);
        let busy = &mut self.busy[key].0;
        debug_assert!(i64::from(*busy) + delta >= 0);
        *busy = (i64::from(*busy) + delta).max(0) as u32;
    }

    /// Adds the busy worker time of `key` up to `now`, split by window.
    fn integrate_busy(&mut self, now: SimTime, key: usize) {
        let (count, since) = self.busy[key];
        self.busy[key].1 = now;
        if count == 0 || now <= since {
            return;
        }
        let regions = self.topology.regions.len();
        let (service, region) = (key / regions, key % regions);
        self.busy_total_us[region] += u64::from(count) * now.saturating_since(since).0;
        if Some(service) != self.verdict_service {
            return;
        }
        let mut at = since;
        while at < now {
            let index = (at.0 / self.window.0) as usize;
            let window_end = SimTime((index as u64 + 1) * self.window.0).min(now);
            let slot = index * regions + region;
            if self.busy_windows.len() <= slot {
                self.busy_windows.resize((index + 1) * regions, 0);
            }
            self.busy_windows[slot] += u64::from(count) * window_end.saturating_since(at).0;
            at = window_end;
        }
    }

    /// A request of client `client` finished at `now`, successfully or not
    /// (for the recovery of the clients a failover hit).
    pub fn request_finished(&mut self, now: SimTime, client: usize, success: bool) {
        let clients = self.clients.len().min(CLIENT_SERIES_MAX);
        if client >= clients {
            return;
        }
        let index = (now.0 / self.window.0) as usize;
        let at = (index * clients + client) * 2;
        if self.client_windows.len() <= at + 1 {
            self.client_windows.resize((index + 1) * clients * 2, 0);
        }
        self.client_windows[at] += u64::from(success);
        self.client_windows[at + 1] += 1;
    }

    /// The load balancer chose `instance` of `service`: how it is down at
    /// `now`, if its region or zone is (counted as refused or swallowed).
    pub fn instance_down(
        &mut self,
        now: SimTime,
        service: usize,
        instance: usize,
    ) -> Option<OutageMode> {
        let place = self.instance_places[service][instance];
        let mode = self.down(now, place)?;
        let counters = &mut self.counters[place.region];
        match mode {
            OutageMode::FailFast => counters.refused_outage += 1,
            OutageMode::Hang => counters.lost_in_outage += 1,
        }
        Some(mode)
    }

    /// An answer leaves `from` (an instance's place, or its region when no
    /// instance took the call) for the caller of policy stack `stack`.
    pub fn reply(&mut self, now: SimTime, from: Place, stack: usize, success: bool) -> Leg {
        let to = self.stacks[stack].0;
        let counters = &mut self.counters[from.region];
        if success {
            counters.succeeded += 1;
            self.count_window(now, from.region, 1);
        } else {
            counters.failed += 1;
        }
        match self.deliver(now, from, to) {
            Delivery::After(delay) => Leg::After(delay),
            Delivery::Partitioned => {
                self.counters[from.region].replies_partitioned += 1;
                Leg::Dropped
            }
            Delivery::Lost => {
                self.counters[from.region].replies_lost += 1;
                Leg::Dropped
            }
        }
    }

    fn count_window(&mut self, now: SimTime, region: usize, column: usize) {
        let regions = self.topology.regions.len();
        let index = (now.0 / self.window.0) as usize;
        let at = (index * 2 + column) * regions + region;
        if self.windows.len() <= at {
            self.windows.resize((index + 1) * 2 * regions, 0);
        }
        self.windows[at] += 1;
    }

    /// The events to push at the start of the run: every router's first
    /// probes, every fault edge, every failure process's first failure.
    pub fn start(&mut self) -> Vec<(SimTime, RegionEvent)> {
        let mut events = Vec::new();
        for (router, state) in self.routers.iter().enumerate() {
            match state {
                RouterState::Dns(dns) => {
                    for checker in 0..dns.settings().checkers.len() {
                        events.push((
                            dns.next_probe_at(checker, SimTime::ZERO),
                            probe(router, checker),
                        ));
                    }
                }
                RouterState::Anycast(anycast) => {
                    for endpoint in 0..anycast.settings().endpoints.len() {
                        events.push((
                            anycast.next_probe_at(endpoint, SimTime::ZERO),
                            probe(router, endpoint),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (index, fault) in self.topology.faults.iter().enumerate() {
            let window = match fault {
                TopologyFault::Outage { window, .. } => *window,
                TopologyFault::Partition(partition) => partition.window,
                TopologyFault::Degradation(degradation) => degradation.window,
                TopologyFault::CheckerCut(cut) => cut.window,
                TopologyFault::Failures { .. } => continue,
            };
            let fault = index as u32;
            events.push((window.start, RegionEvent::FaultEdge { fault, begin: true }));
            events.push((
                window.end,
                RegionEvent::FaultEdge {
                    fault,
                    begin: false,
                },
            ));
        }
        for failure in &mut self.failures {
            let (fail_at, repair_at) = failure.process.next_window();
            failure.repair_at = repair_at;
            events.push((
                fail_at,
                RegionEvent::FailureEdge {
                    fault: failure.fault as u32,
                    up: false,
                },
            ));
        }
        events
    }

    /// Handles one of the adapter's events at `now`. `is_up(service,
    /// instance)` says whether an instance is running (no crash in force).
    /// Returns the events to push and what to do to instances.
    pub fn handle(
        &mut self,
        now: SimTime,
        event: RegionEvent,
        is_up: &dyn Fn(usize, usize) -> bool,
    ) -> (Vec<(SimTime, RegionEvent)>, Vec<Effect>) {
        let mut next = Vec::new();
        let mut effects = Vec::new();
        match event {
            RegionEvent::Probe { router, checker } => {
                if let Some(at) = self.probe(now, router as usize, checker as usize, is_up) {
                    next.push((at, event));
                }
            }
            RegionEvent::FaultEdge { fault, begin } => {
                self.fault_edge(now, fault as usize, begin);
                self.recount_hosts(now, is_up);
            }
            RegionEvent::FailureEdge { fault, up } => {
                let fault = fault as usize;
                let Some(position) = self.failures.iter().position(|f| f.fault == fault) else {
                    return (next, effects);
                };
                let TopologyFault::Failures { target, mode, .. } = &self.topology.faults[fault]
                else {
                    return (next, effects);
                };
                let failure = &mut self.failures[position];
                if up {
                    let (fail_at, repair_at) = failure.process.next_window();
                    failure.repair_at = repair_at;
                    next.push((
                        fail_at,
                        RegionEvent::FailureEdge {
                            fault: fault as u32,
                            up: false,
                        },
                    ));
                } else {
                    // The window's repair time was drawn with its failure time.
                    next.push((
                        failure.repair_at,
                        RegionEvent::FailureEdge {
                            fault: fault as u32,
                            up: true,
                        },
                    ));
                }
                match target {
                    FailureTarget::Instance(service, index) => {
                        let instance = (*service, *index as usize);
                        effects.push(if up {
                            Effect::Restart(instance.0, instance.1)
                        } else {
                            Effect::Crash(instance.0, instance.1)
                        });
                    }
                    FailureTarget::Place(place) => {
                        if up {
                            self.failing.retain(|(f, _, _)| *f != fault);
                            self.close_failover(now, fault);
                        } else {
                            self.failing.push((fault, *place, *mode));
                            if place.zone.is_none() {
                                self.open_failover(now, fault, place.region, "failures");
                            }
                        }
                        self.recount_hosts(now, is_up);
                    }
                }
            }
        }
        (next, effects)
    }

    /// One probe round; returns when the next one is due.
    fn probe(
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
        match &self.routers[router] {
            RouterState::Dns(dns) => {
                let settings = dns.settings();
                let stand = settings.checkers[checker];
                let endpoints = settings.endpoints.clone();
                let interval = settings.interval;
                let mut results = Vec::with_capacity(endpoints.len());
                for &region in &endpoints {
                    let ok = serving(self, region)
                        && self.network.probe_delivered(
                            now,
                            (router, checker),
                            stand,
                            region,
                            &mut self.probe_rngs[router],
                        );
                    results.push(ok);
                }
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
                let ok = serving(self, region)
                    && self.network.probe_delivered(
                        now,
                        (router, checker),
                        stand,
                        region,
                        &mut self.probe_rngs[router],
                    );
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
    fn recount_hosts(&mut self, now: SimTime, is_up: &dyn Fn(usize, usize) -> bool) {
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

    fn fault_edge(&mut self, now: SimTime, fault: usize, begin: bool) {
        if let TopologyFault::Partition(_) = &self.topology.faults[fault] {
            return self.partition_edge(now, fault);
        }
        let (region, kind) = match &self.topology.faults[fault] {
            TopologyFault::Outage { scope, .. } if scope.zone.is_none() => {
                (scope.region, "region_outage")
            }
            TopologyFault::CheckerCut(cut) => (cut.region, "checker_partition"),
            _ => return,
        };
        if begin {
            self.open_failover(now, fault, region, kind);
        } else {
            self.close_failover(now, fault);
        }
    }

    /// A partition began or ended: every region that holds instances for
    /// some client and that none of those clients can reach and hear back
    /// from is, to them, an outage (`partition` record); one that they can
    /// reach again closes it.
    fn partition_edge(&mut self, now: SimTime, fault: usize) {
        for region in 0..self.topology.regions.len() {
            let to = Place::region(region);
            let mut origins = self
                .clients
                .iter()
                .filter(|client| !self.members[client.target][region].is_empty())
                .filter(|client| match client.router {
                    Some(router) => self.topology.routers[router].regions().contains(&region),
                    None => client.origin.region == region,
                })
                .map(|client| client.origin)
                .peekable();
            if origins.peek().is_none() {
                continue;
            }
            let cut = origins.all(|origin| !self.network.round_trip_reachable(now, origin, to));
            let open = self.failovers.iter().rposition(|record| {
                record.region_id == region
                    && record.fault == "partition"
                    && record.fault_end_ms.is_none()
            });
            match (cut, open) {
                (true, None) => self.open_failover(now, fault, region, "partition"),
                (false, Some(position)) => {
                    self.failovers[position].fault_end_ms = Some(now.as_ms_f64());
                }
                _ => {}
            }
        }
    }

    fn open_failover(&mut self, now: SimTime, fault: usize, region: RegionId, kind: &str) {
        self.failovers_total += 1;
        if self.failovers.len() >= FAILOVERS_KEPT_MAX {
            // A failure process over a long run fails without end: keep the
            // first records, count the rest, so memory stays bounded.
            return;
        }
        self.failovers.push(FailoverRecord {
            region: self.topology.regions[region].name.clone(),
            fault: kind.to_string(),
            fault_ms: now.as_ms_f64(),
            fault_end_ms: None,
            detection_ms: None,
            routing_change_ms: None,
            dns_tail_ms: None,
            clients_never_moved: None,
            recovery_ms: None,
            recovery_clients: Vec::new(),
            capacity: None,
            region_id: region,
            fault_index: fault,
            started: now,
            tail: None,
            clients: (0..self.clients.len())
                .filter(|&client| {
                    self.client_routed[client * self.topology.regions.len() + region] > 0
                })
                .collect(),
        });
    }

    fn close_failover(&mut self, now: SimTime, fault: usize) {
        if let Some(record) = self
            .failovers
            .iter_mut()
            .rev()
            .find(|record| record.fault_index == fault && record.fault_end_ms.is_none())
        {
            record.fault_end_ms = Some(now.as_ms_f64());
        }
    }

    /// A router marked `region` unhealthy at `now`; its answers change at
    /// `routed_at`. Fills the open failover of that region, if any.
    fn detected(&mut self, now: SimTime, region: RegionId, routed_at: SimTime) {
        let Some(position) = self.failovers.iter().rposition(|record| {
            record.region_id == region
                && record.fault_end_ms.is_none()
                && record.detection_ms.is_none()
        }) else {
            return;
        };
        let started = self.failovers[position].started;
        let tail = self.count_tail(region);
        let record = &mut self.failovers[position];
        record.detection_ms = Some(now.saturating_since(started).as_ms_f64());
        record.routing_change_ms = Some(routed_at.saturating_since(started).as_ms_f64());
        record.tail = tail;
    }

    /// Resolvers of every `dns` router currently cached on `region`.
    fn count_tail(&self, region: RegionId) -> Option<Tail> {
        let router = self
            .routers
            .iter()
            .position(|state| matches!(state, RouterState::Dns(dns) if dns.settings().endpoints.contains(&region)))?;
        let initial = self
            .clients
            .iter()
            .filter(|client| client.router == Some(router))
            .flat_map(|client| &client.resolvers)
            .filter(|resolver| resolver.cached_region() == Some(region))
            .count() as u32;
        Some(Tail {
            router,
            initial,
            remaining: initial,
            ended: (initial == 0).then_some(SimTime::ZERO),
        })
    }
}

fn probe(router: usize, checker: usize) -> RegionEvent {
    RegionEvent::Probe {
        router: router as u16,
        checker: checker as u16,
    }
}

/// Draws a resolver class from `shares` (summing to 1).
fn draw_class(shares: &[(ResolverClass, f64)], rng: &mut SimRng) -> ResolverClass {
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
fn client_timeout(policies: &[crate::policy::PolicySpec]) -> Option<SimDuration> {
    policies.iter().find_map(|policy| match policy {
        crate::policy::PolicySpec::Timeout(config) => {
            Some(SimDuration::from_ms_f64(config.timeout_ms))
        }
        _ => None,
    })
}

/// The most failure-process down windows kept for the chart's shading;
/// later ones are counted in the failovers only.
pub const FAULT_WINDOWS_KEPT_MAX: usize = 200;

/// The clients (the first ones, in scenario order) whose requests are
/// counted per window for the recovery of a failover; a failover that hits
/// a later client measures recovery over all requests.
pub const CLIENT_SERIES_MAX: usize = 64;

/// At most this many failover records are kept per run (the first ones);
/// `failovers_not_kept` in the summary counts the rest.
pub const FAILOVERS_KEPT_MAX: usize = 1_000;

/// What the regions adapter measured, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionReport {
    /// Region names, in topology order.
    pub names: Vec<String>,
    /// Per region, in topology order.
    pub counters: Vec<RegionCounters>,
    /// Per window (as the run's rows): client attempts routed to each region.
    pub routed: Vec<Vec<u64>>,
    /// Per window: successful answers sent from each region.
    pub ok: Vec<Vec<u64>>,
    /// Every failover, in the order the faults began (the first
    /// `FAILOVERS_KEPT_MAX`).
    pub failovers: Vec<FailoverRecord>,
    /// Failovers beyond the first `FAILOVERS_KEPT_MAX`: counted, not kept.
    pub failovers_not_kept: u64,
    /// Topology fault windows for the chart: label, start and end in ms.
    pub fault_windows: Vec<(String, f64, f64)>,
    /// Per router (by name): its counters.
    pub routers: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

/// The `regions` section of `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionsSummary {
    /// Per region, by name.
    pub regions: BTreeMap<String, RegionCounters>,
    /// Every failover, in the order the faults began (the first
    /// `FAILOVERS_KEPT_MAX`).
    pub failovers: Vec<FailoverRecord>,
    /// Failovers that began beyond the first `FAILOVERS_KEPT_MAX`: counted,
    /// not kept. Written only when some were dropped.
    #[serde(skip_serializing_if = "is_zero")]
    pub failovers_not_kept: u64,
    /// Per router, by name: its counters.
    pub routers: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl RegionReport {
    /// The `regions` section of `summary.json`.
    pub fn summary(&self) -> RegionsSummary {
        RegionsSummary {
            regions: self
                .names
                .iter()
                .cloned()
                .zip(self.counters.iter().copied())
                .collect(),
            failovers: self.failovers.clone(),
            failovers_not_kept: self.failovers_not_kept,
            routers: self.routers.clone(),
        }
    }
}

impl<'a> Regions<'a> {
    /// Closes the books at `end`: per-window columns aligned with `rows`,
    /// and each failover's DNS tail, recovery and capacity verdict.
    pub fn report(mut self, rows: &[WindowRow], end: SimTime) -> RegionReport {
        let regions = self.topology.regions.len();
        for key in 0..self.busy.len() {
            self.integrate_busy(end, key);
        }
        for (counters, busy_us) in self.counters.iter_mut().zip(&self.busy_total_us) {
            counters.busy_worker_ms = busy_us / 1_000;
        }
        let column = |windows: &[u64], offset: usize| -> Vec<Vec<u64>> {
            (0..rows.len())
                .map(|index| {
                    let at = (index * 2 + offset) * regions;
                    (0..regions)
                        .map(|region| windows.get(at + region).copied().unwrap_or(0))
                        .collect()
                })
                .collect()
        };
        let routed = column(&self.windows, 0);
        let ok = column(&self.windows, 1);
        let window_ms = self.window.as_ms_f64();
        let service = self.verdict_service;
        let mut failovers = std::mem::take(&mut self.failovers);
        for record in &mut failovers {
            let fault_end = record
                .fault_end_ms
                .map_or(end, |ms| SimTime::ZERO + SimDuration::from_ms_f64(ms));
            if let Some(tail) = record.tail {
                let routed_at = record.started
                    + SimDuration::from_ms_f64(record.routing_change_ms.unwrap_or(0.0));
                record.dns_tail_ms = tail
                    .ended
                    .map(|ended| ended.max(routed_at).saturating_since(routed_at).as_ms_f64());
                record.clients_never_moved = Some(if tail.initial == 0 {
                    0.0
                } else {
                    round3(f64::from(tail.remaining) / f64::from(tail.initial))
                });
            }
            let series_kept = self.clients.len().min(CLIENT_SERIES_MAX);
            if record.clients.is_empty() || record.clients.iter().any(|&c| c >= series_kept) {
                let baseline = availability_before(rows, record.started);
                record.recovery_ms = recovery_ms(rows, record.started, baseline);
                record.recovery_clients = names(&self.client_names, 0..self.clients.len());
            } else {
                // Only the requests of the clients that were on the region.
                let series: Vec<(u64, u64)> = (0..rows.len())
                    .map(|index| {
                        record
                            .clients
                            .iter()
                            .fold((0, 0), |(ok, finished), &client| {
                                let at = (index * series_kept + client) * 2;
                                (
                                    ok + self.client_windows.get(at).copied().unwrap_or(0),
                                    finished
                                        + self.client_windows.get(at + 1).copied().unwrap_or(0),
                                )
                            })
                    })
                    .collect();
                record.recovery_ms = recovery_of(rows, &series, record.started);
                record.recovery_clients = names(&self.client_names, record.clients.iter().copied());
            }
            if let (Some(change), Some(service)) = (record.routing_change_ms, service) {
                let from = record.started + SimDuration::from_ms_f64(change);
                let workers = f64::from(self.workers[service]);
                let mean_s = self.mean_service_ms[service] / 1_000.0;
                // Per surviving region: (sum of busy ρ, windows, peak busy
                // ρ, sum of offered ρ, peak offered ρ).
                let mut load = vec![(0.0, 0u32, 0.0f64, 0.0, 0.0f64); regions];
                for (index, row) in rows.iter().enumerate() {
                    let window_end = row.start + self.window;
                    // Whole windows after the routing change and before the fault's end.
                    if row.start < from || window_end > fault_end {
                        continue;
                    }
                    for region in (0..regions).filter(|&r| r != record.region_id) {
                        let instances = self.members[service][region].len() as f64;
                        if instances == 0.0 {
                            continue;
                        }
                        let rate = routed[index][region] as f64 / (window_ms / 1_000.0);
                        let offered = rate * mean_s / (instances * workers);
                        let busy_us = self
                            .busy_windows
                            .get(index * regions + region)
                            .copied()
                            .unwrap_or(0);
                        let busy = busy_us as f64 / (self.window.0 as f64 * instances * workers);
                        let entry = &mut load[region];
                        entry.0 += busy;
                        entry.1 += 1;
                        entry.2 = entry.2.max(busy);
                        entry.3 += offered;
                        entry.4 = entry.4.max(offered);
                    }
                }
                let busiest = (0..regions)
                    .filter(|&region| load[region].1 > 0)
                    .map(|region| (region, load[region].0 / f64::from(load[region].1)))
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
                record.capacity = busiest.map(|(region, mean)| CapacityVerdict {
                    verdict: if mean < SATURATION_BUSY {
                        "holds"
                    } else {
                        "saturated"
                    },
                    region: self.topology.regions[region].name.clone(),
                    utilisation_mean: round3(mean),
                    utilisation_peak: round3(load[region].2),
                    offered_utilisation_mean: round3(load[region].3 / f64::from(load[region].1)),
                    offered_utilisation_peak: round3(load[region].4),
                });
            }
        }
        let mut fault_windows = Vec::new();
        for fault in &self.topology.faults {
            let label = |kind: &str, from: Place, to: Option<Place>| match to {
                Some(to) => format!(
                    "{kind} {}->{}",
                    self.topology.place_name(from),
                    self.topology.place_name(to)
                ),
                None => format!("{kind} {}", self.topology.place_name(from)),
            };
            let (text, window) = match fault {
                TopologyFault::Outage { scope, window, .. } => {
                    let kind = if scope.zone.is_some() {
                        "zone outage"
                    } else {
                        "region outage"
                    };
                    (label(kind, *scope, None), *window)
                }
                TopologyFault::Partition(p) => (label("partition", p.from, Some(p.to)), p.window),
                TopologyFault::Degradation(d) => {
                    (label("degradation", d.from, Some(d.to)), d.window)
                }
                TopologyFault::CheckerCut(cut) => (
                    label("checker partition", Place::region(cut.region), None),
                    cut.window,
                ),
                TopologyFault::Failures { .. } => continue,
            };
            fault_windows.push((text, window.start.as_ms_f64(), window.end.as_ms_f64()));
        }
        for (record, _) in failovers
            .iter()
            .filter(|record| record.fault == "failures")
            .zip(0..FAULT_WINDOWS_KEPT_MAX)
        {
            fault_windows.push((
                format!("failure {}", record.region),
                record.fault_ms,
                record.fault_end_ms.unwrap_or(end.as_ms_f64()),
            ));
        }
        let routers = self
            .topology
            .routers
            .iter()
            .zip(&self.routers)
            .map(|(spec, state)| {
                let counters: BTreeMap<&'static str, u64> = match state {
                    RouterState::Dns(dns) => {
                        let c = dns.counters();
                        [
                            ("probes", c.probes),
                            ("health_changes", c.health_changes),
                            ("answers", c.answers),
                        ]
                        .into()
                    }
                    RouterState::Anycast(anycast) => [("shifts", anycast.shifts())].into(),
                    RouterState::Priority(_) | RouterState::ActiveActive(_) => BTreeMap::new(),
                    RouterState::ActivePassive(chapter) => {
                        let c = chapter.counters();
                        [
                            ("requests", c.requests),
                            ("to_secondary", c.to_secondary),
                            ("flips", c.flips),
                        ]
                        .into()
                    }
                };
                (spec.name.clone(), counters)
            })
            .collect();
        RegionReport {
            names: self
                .topology
                .regions
                .iter()
                .map(|region| region.name.clone())
                .collect(),
            counters: self.counters,
            routed,
            ok,
            failovers_not_kept: self.failovers_total - failovers.len() as u64,
            failovers,
            fault_windows,
            routers,
        }
    }
}

/// The names of `clients`, in order.
fn names(all: &[String], clients: impl Iterator<Item = usize>) -> Vec<String> {
    clients.map(|client| all[client].clone()).collect()
}

/// `recovery_ms` over one series of `(successful, finished)` per window
/// (aligned with `rows`): from `start`, until `RECOVERY_WINDOWS` windows in a
/// row are within `RECOVERY_TOLERANCE` of the availability before `start`.
fn recovery_of(rows: &[WindowRow], series: &[(u64, u64)], start: SimTime) -> Option<f64> {
    let (ok, finished) = rows
        .iter()
        .zip(series)
        .take_while(|(row, _)| row.start + SimDuration(1) <= start)
        .fold((0, 0), |(ok, finished), (_, &(o, f))| {
            (ok + o, finished + f)
        });
    let baseline = if finished == 0 {
        1.0
    } else {
        ok as f64 / finished as f64
    };
    let first = rows
        .iter()
        .position(|row| row.start >= start)
        .map_or(rows.len(), |index| index.saturating_sub(1));
    let mut run = 0;
    for (index, &(ok, finished)) in series.iter().enumerate().skip(first) {
        let healthy = finished > 0 && ok as f64 / finished as f64 >= baseline - RECOVERY_TOLERANCE;
        run = if healthy { run + 1 } else { 0 };
        if run == RECOVERY_WINDOWS {
            let began = index + 1 - RECOVERY_WINDOWS;
            return Some(rows[began].start.saturating_since(start).as_ms_f64());
        }
    }
    None
}

/// Availability of the windows that start before `start`; 1 when none finished.
fn availability_before(rows: &[WindowRow], start: SimTime) -> f64 {
    let (success, finished) = rows
        .iter()
        .take_while(|row| row.start + SimDuration(1) <= start)
        .fold((0u64, 0u64), |(success, finished), row| {
            (
                success + row.outcomes.get(Outcome::Success),
                finished + row.finished(),
            )
        });
    if finished == 0 {
        1.0
    } else {
        success as f64 / finished as f64
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::OutcomeCounts;

    fn rows(count: usize) -> Vec<WindowRow> {
        (0..count)
            .map(|index| WindowRow {
                start: SimTime::from_ms(index as u64 * 1_000),
                issued: 0,
                outcomes: OutcomeCounts::default(),
                attempts: 0,
                latency_us: None,
                queue_depth: 0,
            })
            .collect()
    }

    // Recovery over one client series: the baseline is the series' own
    // availability before the fault, and it takes five healthy windows in a
    // row, the first of which is where recovery is.
    #[test]
    fn recovery_of_a_series_waits_for_five_healthy_windows() {
        let rows = rows(20);
        let mut series = vec![(10, 10); 20];
        // The fault at 5 s: windows 5 to 8 fail, 9 is healthy, 10 fails
        // again, 11 on are healthy.
        for window in [5, 6, 7, 8, 10] {
            series[window] = (2, 10);
        }
        let recovery = recovery_of(&rows, &series, SimTime::from_ms(5_000));
        assert_eq!(recovery, Some(6_000.0));
        // A baseline of 90% tolerates 89.5% windows.
        let mut lower = vec![(9, 10); 20];
        lower[5] = (0, 10);
        lower[6] = (895, 1_000);
        assert_eq!(
            recovery_of(&rows, &lower, SimTime::from_ms(5_000)),
            Some(1_000.0)
        );
        // Windows without finished requests are not healthy.
        let empty = vec![(0, 0); 20];
        assert_eq!(recovery_of(&rows, &empty, SimTime::from_ms(5_000)), None);
    }
}
