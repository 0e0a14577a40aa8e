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
//!
//! ## Files
//!
//! - `mod.rs` (this file): the adapter's state (`Regions`) and how it is
//!   built, the world's calls on a request's path (`pick_region` aside:
//!   `send`, `arrived`, `instance_unreachable`, `instance_down`, `reply`),
//!   and the dispatch of its own events (`start`, `handle`).
//! - `routing.rs`: client routing: one state per router, the DNS resolver
//!   caches, anycast, priority and the chapter's routers (`pick_region`,
//!   `dependency_region`), and the health probes that feed them.
//! - `failover.rs`: failure processes and failover records: opening one
//!   (outages, partitions, checker cuts, failures), detection and the DNS
//!   tail count, closing it; at most `FAILOVERS_KEPT_MAX` are kept.
//! - `drawn.rs`: the down windows the failure processes draw, kept for
//!   `summary.json`'s `faults` (at most `FAULT_WINDOWS_KEPT_MAX`).
//! - `report.rs`: the series the report reads (busy workers, routed and
//!   answered attempts per window, per-client outcomes) and closing the
//!   books at the end (`report`): `RegionReport`, `RegionsSummary`, the
//!   capacity verdict, recovery over the clients a failover hit.

mod drawn;
mod failover;
mod report;
mod routing;

pub use drawn::DrawnWindow;
pub use failover::{FailoverRecord, FAILOVERS_KEPT_MAX};
pub use report::{
    CapacityVerdict, RegionReport, RegionsSummary, CLIENT_SERIES_MAX, FAULT_WINDOWS_KEPT_MAX,
    SATURATION_BUSY,
};
pub use routing::{CHAPTER_PROBE_TIMEOUT_MS, RESOLVERS_PER_CLIENT};

use crate::engine::{RngFactory, SimDuration, SimRng, SimTime};
use crate::scenario::{OutageMode, Scenario};
use crate::topology::failure::{FailureProcess, FailureTarget};
use crate::topology::faults::{network, Outages, TopologyFault};
use crate::topology::network::{Delivery, Network};
use crate::topology::routing::anycast::Anycast;
use crate::topology::routing::chapter::ChapterActivePassive;
use crate::topology::routing::dns::{Dns, Resolver};
use crate::topology::routing::priority::Priority;
use crate::topology::routing::RouterKind;
use crate::topology::{Place, Topology};
use serde::Serialize;

use failover::Failure;
use routing::{client_timeout, draw_class, probe, ClientRouting, RouterState};

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
    /// The failure processes' down windows, in the order they began (the
    /// first `FAULT_WINDOWS_KEPT_MAX`; `drawn.rs`).
    drawn: Vec<DrawnWindow>,
    /// Down windows beyond those: counted only.
    drawn_not_kept: u64,
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
            drawn: Vec::new(),
            drawn_not_kept: 0,
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

    /// Whether `place` is down at `now` only because a `failures` process
    /// drew a down window over it (no scheduled outage covers it).
    pub fn down_by_failures(&self, now: SimTime, place: Place) -> bool {
        self.outages.down(now, place).is_none() && self.failing_mode(place).is_some()
    }

    /// How `place` is down at `now`, if it is: a scripted region or zone
    /// outage, or a failure process's down window.
    pub fn down(&self, now: SimTime, place: Place) -> Option<OutageMode> {
        self.outages
            .down(now, place)
            .or_else(|| self.failing_mode(place))
    }

    /// How a failure process's down window over `place` has it down, if one does.
    fn failing_mode(&self, place: Place) -> Option<OutageMode> {
        self.failing
            .iter()
            .find(|(_, scope, _)| scope.contains(place))
            .map(|&(_, _, mode)| mode)
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
            let Some(window) = fault.window() else {
                continue;
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
                // A place a scheduled outage already has down is not listed
                // again (the scenario lists that outage).
                let scheduled = match target {
                    FailureTarget::Place(place) => self.outages.down(now, *place).is_some(),
                    FailureTarget::Instance(..) => false,
                };
                if up {
                    self.window_repaired(now, fault);
                } else if !scheduled {
                    self.window_drawn(now, fault);
                }
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
}
