//! Region and zone faults in checked form, and the pure queries the world's
//! adapter will ask: is this place down now, and how (fail fast or hang)?
//! Network faults (partitions, added latency and loss, checker cuts) are
//! gathered into a `network::Network`; random failure processes are
//! expanded by `failure::FailureProcess`.

use super::failure::FailureTarget;
use super::network::{CheckerCut, Degradation, Network, Partition, Window};
use super::{LatencyMatrix, Place};
use crate::engine::SimTime;
use crate::scenario::OutageMode;

/// One checked fault of the `topology.faults` list.
#[derive(Clone, Debug, PartialEq)]
pub enum TopologyFault {
    /// Every instance in a region (or one zone) is down in `window`:
    /// `fail_fast` refuses calls at once, `hang` never answers them.
    Outage {
        /// The region, or one of its zones.
        scope: Place,
        /// When.
        window: Window,
        /// How the outage shows.
        mode: OutageMode,
    },
    /// Packets dropped between two scopes, one way or both.
    Partition(Partition),
    /// Added latency and loss between two scopes.
    Degradation(Degradation),
    /// A router's checkers cut off from a region that is otherwise reachable.
    CheckerCut(CheckerCut),
    /// A random failure process: exponential time to failure and to repair.
    Failures {
        /// What fails.
        target: FailureTarget,
        /// Mean time to failure, ms.
        mttf_ms: f64,
        /// Mean time to repair, ms.
        mttr_ms: f64,
        /// How an outage from this process shows.
        mode: OutageMode,
    },
}

impl TopologyFault {
    /// When a scheduled fault is in effect; `None` for a `failures`
    /// process, whose windows are drawn during the run.
    pub fn window(&self) -> Option<Window> {
        match self {
            TopologyFault::Outage { window, .. } => Some(*window),
            TopologyFault::Partition(partition) => Some(partition.window),
            TopologyFault::Degradation(degradation) => Some(degradation.window),
            TopologyFault::CheckerCut(cut) => Some(cut.window),
            TopologyFault::Failures { .. } => None,
        }
    }
}

/// Builds the network: the matrix plus every network fault, in file order.
pub fn network(matrix: LatencyMatrix, faults: &[TopologyFault]) -> Network {
    let mut network = Network::new(matrix);
    for fault in faults {
        match fault {
            TopologyFault::Partition(partition) => network.add_partition(partition.clone()),
            TopologyFault::Degradation(degradation) => network.add_degradation(degradation.clone()),
            TopologyFault::CheckerCut(cut) => network.add_checker_cut(cut.clone()),
            TopologyFault::Outage { .. } | TopologyFault::Failures { .. } => {}
        }
    }
    network
}

/// The scripted outages of a topology, asked by place and time.
#[derive(Clone, Debug, Default)]
pub struct Outages {
    windows: Vec<(Place, Window, OutageMode)>,
}

impl Outages {
    /// The scripted outages among `faults`.
    pub fn new(faults: &[TopologyFault]) -> Outages {
        let windows = faults
            .iter()
            .filter_map(|fault| match fault {
                TopologyFault::Outage {
                    scope,
                    window,
                    mode,
                } => Some((*scope, *window, *mode)),
                _ => None,
            })
            .collect();
        Outages { windows }
    }

    /// How `place` is down at `now`, if it is: the first outage in file
    /// order that covers it. A zone outage covers only places in that zone;
    /// a region outage covers every zone.
    pub fn down(&self, now: SimTime, place: Place) -> Option<OutageMode> {
        self.windows
            .iter()
            .find(|(scope, window, _)| window.contains(now) && scope.contains(place))
            .map(|&(_, _, mode)| mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(scope: Place, start_ms: u64, end_ms: u64, mode: OutageMode) -> TopologyFault {
        TopologyFault::Outage {
            scope,
            window: Window {
                start: SimTime::from_ms(start_ms),
                end: SimTime::from_ms(end_ms),
            },
            mode,
        }
    }

    // A zone outage downs that zone only; a region outage downs all its zones.
    #[test]
    fn zone_and_region_outages_cover_their_places() {
        let outages = Outages::new(&[
            outage(Place::zone(0, 1), 0, 100, OutageMode::Hang),
            outage(Place::region(1), 50, 100, OutageMode::FailFast),
        ]);
        let now = SimTime::from_ms(60);
        assert_eq!(outages.down(now, Place::zone(0, 1)), Some(OutageMode::Hang));
        assert_eq!(outages.down(now, Place::zone(0, 0)), None);
        assert_eq!(
            outages.down(now, Place::zone(1, 2)),
            Some(OutageMode::FailFast)
        );
        assert_eq!(outages.down(SimTime::from_ms(40), Place::region(1)), None);
        assert_eq!(outages.down(SimTime::from_ms(100), Place::zone(0, 1)), None);
    }
}
