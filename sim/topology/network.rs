//! The network between places: the latency matrix plus the faults that
//! change it over time — partitions (two-way, or one-way so that A reaches
//! B while B cannot answer A), added latency and loss, and cuts between a
//! router's health checkers and a region.
//!
//! Every query takes `now`; randomness comes in as `&mut SimRng`, and a
//! query draws only when something random is configured (a loss above 0, a
//! non-constant distribution), so a topology without faults leaves every
//! random stream where it was.
//!
//! ## Why partitions are directed
//!
//! Real partitions are often asymmetric: a route withdrawn in one direction,
//! a firewall rule on one side, a saturated link one way. The cases that
//! matter to failover are exactly those where the two sides disagree: the
//! health checker's request arrives but its answer does not, or a primary
//! still hears its replicas while they no longer hear it. A two-way
//! partition is two one-way partitions.

use super::{LatencyMatrix, Place, RegionId};
use crate::engine::{SimDuration, SimRng, SimTime};
use crate::model::distribution::Distribution;

/// A window `[start, end)` on the virtual timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First instant inside.
    pub start: SimTime,
    /// First instant after.
    pub end: SimTime,
}

impl Window {
    /// Whether `now` is inside.
    pub fn contains(self, now: SimTime) -> bool {
        self.start <= now && now < self.end
    }
}

/// Packets from `from` to `to` (each a scope: a region, or one zone) are
/// dropped during `window`; with `two_way` the reverse direction too.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// The sending side.
    pub from: Place,
    /// The receiving side.
    pub to: Place,
    /// Both directions, or only `from` to `to`.
    pub two_way: bool,
    /// When.
    pub window: Window,
}

impl Partition {
    /// Whether this partition drops a packet from `from` to `to` at `now`.
    pub fn drops(&self, now: SimTime, from: Place, to: Place) -> bool {
        self.window.contains(now)
            && ((self.from.contains(from) && self.to.contains(to))
                || (self.two_way && self.from.contains(to) && self.to.contains(from)))
    }
}

/// Extra latency and loss on packets between two scopes during `window`
/// (both directions unless `two_way` is false).
#[derive(Clone, Debug, PartialEq)]
pub struct Degradation {
    /// One side.
    pub from: Place,
    /// The other side.
    pub to: Place,
    /// Both directions, or only `from` to `to`.
    pub two_way: bool,
    /// Added one-way latency per packet.
    pub added: Distribution,
    /// Chance that a packet is lost, in `[0, 1]`.
    pub loss: f64,
    /// When.
    pub window: Window,
}

impl Degradation {
    fn applies(&self, now: SimTime, from: Place, to: Place) -> bool {
        self.window.contains(now)
            && ((self.from.contains(from) && self.to.contains(to))
                || (self.two_way && self.from.contains(to) && self.to.contains(from)))
    }
}

/// Health checkers of one router cut off from a region during `window`,
/// while everyone else still reaches it: the false-failover fault.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerCut {
    /// The router's index in `Topology::routers`.
    pub router: usize,
    /// The cut checkers' indices in that router's checker list.
    pub checkers: Vec<usize>,
    /// The region they can no longer probe.
    pub region: RegionId,
    /// When.
    pub window: Window,
}

/// What happens to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It arrives after this one-way delay.
    After(SimDuration),
    /// A partition drops it.
    Partitioned,
    /// Loss drops it.
    Lost,
}

/// The network: a latency matrix and the faults on it.
#[derive(Clone, Debug)]
pub struct Network {
    matrix: LatencyMatrix,
    partitions: Vec<Partition>,
    degradations: Vec<Degradation>,
    checker_cuts: Vec<CheckerCut>,
}

impl Network {
    /// A network with no faults.
    pub fn new(matrix: LatencyMatrix) -> Network {
        Network {
            matrix,
            partitions: Vec::new(),
            degradations: Vec::new(),
            checker_cuts: Vec::new(),
        }
    }

    /// Adds a partition.
    pub fn add_partition(&mut self, partition: Partition) {
        debug_assert!(partition.window.start < partition.window.end);
        self.partitions.push(partition);
    }

    /// Adds added latency and loss.
    pub fn add_degradation(&mut self, degradation: Degradation) {
        debug_assert!((0.0..=1.0).contains(&degradation.loss));
        self.degradations.push(degradation);
    }

    /// Adds a checker cut.
    pub fn add_checker_cut(&mut self, cut: CheckerCut) {
        self.checker_cuts.push(cut);
    }

    /// The latency matrix.
    pub fn matrix(&self) -> &LatencyMatrix {
        &self.matrix
    }

    /// Whether a packet sent from `from` to `to` at `now` gets through the
    /// partitions (loss aside). One-way: `reachable(a, b)` says nothing
    /// about `reachable(b, a)`.
    pub fn reachable(&self, now: SimTime, from: Place, to: Place) -> bool {
        !self
            .partitions
            .iter()
            .any(|partition| partition.drops(now, from, to))
    }

    /// Whether a request from `from` to `to` and its answer both get through
    /// at `now` (a call needs both directions).
    pub fn round_trip_reachable(&self, now: SimTime, from: Place, to: Place) -> bool {
        self.reachable(now, from, to) && self.reachable(now, to, from)
    }

    /// Whether checker `checker` of router `router`, standing at `place`,
    /// can probe `region` and hear back at `now`.
    pub fn probe_reachable(
        &self,
        now: SimTime,
        router: usize,
        checker: usize,
        place: Place,
        region: RegionId,
    ) -> bool {
        let cut = self.checker_cuts.iter().any(|cut| {
            cut.router == router
                && cut.region == region
                && cut.window.contains(now)
                && cut.checkers.contains(&checker)
        });
        !cut && self.round_trip_reachable(now, place, Place::region(region))
    }

    /// Whether degradation loss drops a packet from `from` to `to` at `now`
    /// (partitions aside). Draws from `rng` only when a lossy degradation
    /// applies, so a network without loss leaves the stream untouched.
    pub fn lost(&self, now: SimTime, from: Place, to: Place, rng: &mut SimRng) -> bool {
        self.degradations.iter().any(|degradation| {
            degradation.loss > 0.0
                && degradation.applies(now, from, to)
                && rng.chance(degradation.loss)
        })
    }

    /// Whether a health probe of checker `checker` of router `router`,
    /// standing at `place`, gets to `region` and its answer back at `now`:
    /// `probe_reachable`, and neither packet lost to a degradation (a lossy
    /// link fails probes as it fails calls).
    pub fn probe_delivered(
        &self,
        now: SimTime,
        (router, checker): (usize, usize),
        place: Place,
        region: RegionId,
        rng: &mut SimRng,
    ) -> bool {
        let to = Place::region(region);
        self.probe_reachable(now, router, checker, place, region)
            && !self.lost(now, place, to, rng)
            && !self.lost(now, to, place, rng)
    }

    /// One-way latency from `from` to `to` at `now`: the matrix entry plus
    /// any added latency in force. Draws only from non-constant entries.
    pub fn latency(&self, now: SimTime, from: Place, to: Place, rng: &mut SimRng) -> SimDuration {
        let base = self
            .matrix
            .one_way(from, to)
            .map_or(SimDuration::ZERO, |distribution| distribution.sample(rng));
        self.degradations
            .iter()
            .filter(|degradation| degradation.applies(now, from, to))
            .fold(base, |total, degradation| {
                total + degradation.added.sample(rng)
            })
    }

    /// What happens to a packet from `from` to `to` sent at `now`: dropped
    /// by a partition, lost, or delivered after a one-way latency.
    pub fn deliver(&self, now: SimTime, from: Place, to: Place, rng: &mut SimRng) -> Delivery {
        if !self.reachable(now, from, to) {
            return Delivery::Partitioned;
        }
        for degradation in &self.degradations {
            if degradation.loss > 0.0
                && degradation.applies(now, from, to)
                && rng.chance(degradation.loss)
            {
                return Delivery::Lost;
            }
        }
        Delivery::After(self.latency(now, from, to, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::topology::routing::tests::matrix;
    use proptest::prelude::*;

    fn window(start_ms: u64, end_ms: u64) -> Window {
        Window {
            start: SimTime::from_ms(start_ms),
            end: SimTime::from_ms(end_ms),
        }
    }

    const A: Place = Place::region(0);
    const B: Place = Place::region(1);
    const C: Place = Place::region(2);

    // A one-way partition from B to A: A reaches B, B cannot answer A, so no
    // call between them completes; C is untouched; the window ends it.
    #[test]
    fn one_way_partition_lets_a_reach_b_but_not_hear_back() {
        let mut network = Network::new(matrix());
        network.add_partition(Partition {
            from: B,
            to: A,
            two_way: false,
            window: window(1_000, 2_000),
        });
        let during = SimTime::from_ms(1_500);
        assert!(network.reachable(during, A, B));
        assert!(!network.reachable(during, B, A));
        assert!(!network.round_trip_reachable(during, A, B));
        assert!(network.round_trip_reachable(during, A, C));
        assert!(network.reachable(SimTime::from_ms(2_000), B, A));
        assert!(network.reachable(SimTime::from_ms(999), B, A));
    }

    // A partition of one zone leaves the region's other zones connected.
    #[test]
    fn zone_partition_cuts_only_that_zone() {
        let mut network = Network::new(matrix());
        network.add_partition(Partition {
            from: Place::zone(0, 1),
            to: B,
            two_way: true,
            window: window(0, 10),
        });
        let now = SimTime::from_ms(5);
        assert!(!network.reachable(now, Place::zone(0, 1), Place::zone(1, 0)));
        assert!(!network.reachable(now, B, Place::zone(0, 1)));
        assert!(network.round_trip_reachable(now, Place::zone(0, 0), B));
    }

    // Cut checkers cannot probe a region that clients still reach.
    #[test]
    fn checker_cut_hides_a_healthy_region_from_its_checkers_only() {
        let mut network = Network::new(matrix());
        network.add_checker_cut(CheckerCut {
            router: 0,
            checkers: vec![0, 1],
            region: 0,
            window: window(0, 100),
        });
        let now = SimTime::from_ms(50);
        assert!(!network.probe_reachable(now, 0, 0, B, 0));
        assert!(!network.probe_reachable(now, 0, 1, C, 0));
        assert!(network.probe_reachable(now, 0, 2, C, 0));
        assert!(network.probe_reachable(now, 1, 0, B, 0));
        assert!(network.round_trip_reachable(now, B, A));
    }

    // Added latency adds to the matrix; loss drops about its share of packets.
    #[test]
    fn added_latency_and_loss_apply_in_their_window() {
        let mut network = Network::new(matrix());
        network.add_degradation(Degradation {
            from: A,
            to: B,
            two_way: true,
            added: Distribution::Constant { value_ms: 25.0 },
            loss: 0.2,
            window: window(0, 1_000),
        });
        let mut rng = RngFactory::new(1).stream("test");
        let now = SimTime::from_ms(10);
        assert_eq!(
            network.latency(now, B, A, &mut rng),
            SimDuration::from_ms(65)
        );
        assert_eq!(
            network.latency(SimTime::from_ms(1_000), B, A, &mut rng),
            SimDuration::from_ms(40)
        );
        let lost = (0..10_000)
            .filter(|_| network.deliver(now, A, B, &mut rng) == Delivery::Lost)
            .count();
        assert!((1_800..2_200).contains(&lost), "{lost}");
        assert_eq!(
            network.deliver(now, A, C, &mut rng),
            Delivery::After(SimDuration::from_ms(100))
        );
    }

    // A lossy link fails about its share of probes each way; without loss
    // a probe draws nothing.
    #[test]
    fn probes_see_loss_on_either_leg() {
        let mut network = Network::new(matrix());
        network.add_degradation(Degradation {
            from: B,
            to: A,
            two_way: false,
            added: Distribution::Constant { value_ms: 0.0 },
            loss: 0.5,
            window: window(0, 1_000),
        });
        let mut rng = RngFactory::new(7).stream("probes");
        let now = SimTime::from_ms(10);
        // Checker in B probing A: the answer from A to B is not lossy, the
        // probe from B to A is.
        let failed = (0..10_000)
            .filter(|_| !network.probe_delivered(now, (0, 0), B, 0, &mut rng))
            .count();
        assert!((4_700..5_300).contains(&failed), "{failed}");
        // Checker in A probing B: now the answer takes the lossy leg.
        let failed = (0..10_000)
            .filter(|_| !network.probe_delivered(now, (0, 0), A, 1, &mut rng))
            .count();
        assert!((4_700..5_300).contains(&failed), "{failed}");
        let mut untouched = RngFactory::new(7).stream("probes");
        let before = untouched.clone().unit();
        assert!(network.probe_delivered(now, (0, 0), C, 0, &mut untouched));
        assert!(network.probe_delivered(SimTime::from_ms(1_000), (0, 0), B, 0, &mut untouched));
        assert_eq!(untouched.unit(), before);
    }

    proptest! {
        // A one-way partition is one-way: it never drops the reverse
        // direction, and a two-way partition drops both.
        #[test]
        fn a_one_way_partition_is_one_way(
            from in 0usize..3, to in 0usize..3, at_ms in 0u64..3_000, two_way: bool
        ) {
            prop_assume!(from != to);
            let mut network = Network::new(matrix());
            network.add_partition(Partition {
                from: Place::region(from),
                to: Place::region(to),
                two_way,
                window: window(1_000, 2_000),
            });
            let now = SimTime::from_ms(at_ms);
            let inside = (1_000..2_000).contains(&at_ms);
            prop_assert_eq!(network.reachable(now, Place::region(from), Place::region(to)), !inside);
            prop_assert_eq!(
                network.reachable(now, Place::region(to), Place::region(from)),
                !(inside && two_way)
            );
            for other in 0..3 {
                if other != from && other != to {
                    prop_assert!(network.round_trip_reachable(now, Place::region(other), Place::region(to)));
                }
            }
        }
    }
}
