//! Failures and failovers in the regions adapter: the state of each MTTF/MTTR
//! failure process, and the failover records (`FailoverRecord`) that a
//! region outage, a failure, a checker partition or a partition that cuts a
//! region off from its clients opens; a router's detection fills them (with
//! the DNS resolvers to count down), the fault's end closes them. At most
//! `FAILOVERS_KEPT_MAX` records are kept per run; the rest are counted.

use crate::engine::SimTime;
use crate::topology::failure::FailureProcess;
use crate::topology::faults::TopologyFault;
use crate::topology::{Place, RegionId};
use serde::Serialize;

use super::report::CapacityVerdict;
use super::routing::RouterState;
use super::Regions;

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
    pub(super) region_id: RegionId,
    /// The index of the topology fault that opened it.
    #[serde(skip)]
    pub(super) fault_index: usize,
    #[serde(skip)]
    pub(super) started: SimTime,
    #[serde(skip)]
    pub(super) tail: Option<Tail>,
    /// Indices of `recovery_clients` (empty: all clients).
    #[serde(skip)]
    pub(super) clients: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Tail {
    /// The router whose resolvers are counted.
    pub(super) router: usize,
    /// Resolvers on the failed region at the routing change.
    pub(super) initial: u32,
    /// Of those, still on it.
    pub(super) remaining: u32,
    /// When the count first fell to at most 1%.
    pub(super) ended: Option<SimTime>,
}

pub(super) struct Failure {
    pub(super) fault: usize,
    pub(super) process: FailureProcess,
    /// The repair time of the window drawn last.
    pub(super) repair_at: SimTime,
}

/// At most this many failover records are kept per run (the first ones);
/// `failovers_not_kept` in the summary counts the rest.
pub const FAILOVERS_KEPT_MAX: usize = 1_000;

impl<'a> Regions<'a> {
    pub(super) fn fault_edge(&mut self, now: SimTime, fault: usize, begin: bool) {
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

    pub(super) fn open_failover(
        &mut self,
        now: SimTime,
        fault: usize,
        region: RegionId,
        kind: &str,
    ) {
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

    pub(super) fn close_failover(&mut self, now: SimTime, fault: usize) {
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
    pub(super) fn detected(&mut self, now: SimTime, region: RegionId, routed_at: SimTime) {
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
