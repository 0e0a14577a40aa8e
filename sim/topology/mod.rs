//! Regions, the network between them and global routing, as pure state
//! machines the world will call through a thin adapter (phase 2 of issue 7;
//! `docs/regions-integration.md` is the plan).
//!
//! - this file: the checked `Topology` (regions, optional zones, placed
//!   instances, client origins), the directed `LatencyMatrix` and its dated
//!   AWS preset;
//! - `network`: partitions (two-way and one-way), added latency and loss, and
//!   the checker cuts that make a false failover expressible;
//! - `routing`: DNS (Route 53), anycast (Global Accelerator), priority levels
//!   (Envoy), the chapter's two deployments, and the active-active and
//!   active-passive policies they share;
//! - `faults`: region and zone outages, in checked form, with a pure query;
//! - `failure`: MTTF/MTTR failure processes and the closed forms they must match;
//! - `driver`: `sim policy router`, one router driven alone through timed events.
//!
//! Nothing here reads a clock or does I/O: `now` and randomness
//! (`&mut SimRng`) are arguments, as in `policy/`.
//!
//! ## One-way latency from a round trip
//!
//! Published inter-region figures are round trips (ping). A round trip is
//! the sum of the two directions, and with no other information the two are
//! taken as equal: one way = round trip / 2. Where a path is known to be
//! asymmetric, a scenario writes both directions (`latency.one_way`), which
//! is why the matrix is directed.

pub mod driver;
pub mod failure;
pub mod faults;
pub mod network;
pub mod routing;

use crate::model::distribution::Distribution;

/// A region's index in `Topology::regions`.
pub type RegionId = usize;

/// A place in the topology: a region, and optionally one of its zones
/// (an index into that region's `zones`). Instances, clients, health
/// checkers and, later, database nodes all have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The region.
    pub region: RegionId,
    /// The zone within the region, if the region has zones and one was named.
    pub zone: Option<usize>,
}

impl Place {
    /// The region as a whole (no zone).
    pub const fn region(region: RegionId) -> Place {
        Place { region, zone: None }
    }

    /// Zone `zone` of `region`.
    pub const fn zone(region: RegionId, zone: usize) -> Place {
        Place {
            region,
            zone: Some(zone),
        }
    }

    /// Whether `self`, taken as a scope (a whole region when it has no
    /// zone), contains `other`.
    pub fn contains(self, other: Place) -> bool {
        self.region == other.region && (self.zone.is_none() || self.zone == other.zone)
    }
}

/// A region and its zones.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Unique name (`us-east-1`).
    pub name: String,
    /// Zone names, unique within the region; may be empty.
    pub zones: Vec<String>,
}

/// One-way latencies between places. Directed: the entry from A to B may
/// differ from the one from B to A.
///
/// - between two regions: the matrix entry `[from][to]`;
/// - between two zones of one region: `between_zones`;
/// - within one zone, or when either side names no zone: nothing (zero).
///   The scenario's `network.latency_ms` still applies to every hop, as it
///   does today; the matrix adds the distance.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyMatrix {
    regions: usize,
    /// Row-major `[from * regions + to]`; the diagonal is unused (zero).
    one_way: Vec<Distribution>,
    between_zones: Distribution,
}

impl LatencyMatrix {
    /// A matrix over `regions` regions from row-major one-way entries.
    pub fn new(regions: usize, one_way: Vec<Distribution>, between_zones: Distribution) -> Self {
        assert_eq!(one_way.len(), regions * regions, "a full square matrix");
        LatencyMatrix {
            regions,
            one_way,
            between_zones,
        }
    }

    /// How many regions the matrix covers.
    pub fn regions(&self) -> usize {
        self.regions
    }

    /// The one-way latency from `from` to `to`, or `None` when they are in
    /// the same zone (or the same region with no zones named).
    pub fn one_way(&self, from: Place, to: Place) -> Option<&Distribution> {
        debug_assert!(from.region < self.regions && to.region < self.regions);
        if from.region != to.region {
            Some(&self.one_way[from.region * self.regions + to.region])
        } else {
            match (from.zone, to.zone) {
                (Some(a), Some(b)) if a != b => Some(&self.between_zones),
                _ => None,
            }
        }
    }

    /// The mean one-way latency in ms from `from` to `to` (0 within a zone):
    /// what latency-based routing ranks by.
    pub fn mean_ms(&self, from: Place, to: Place) -> f64 {
        self.one_way(from, to).map_or(0.0, Distribution::mean_ms)
    }
}

/// A preset of published round trips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    /// The name used in scenario files.
    pub name: &'static str,
    /// Round trips in ms between region pairs (symmetric).
    pub round_trips_ms: &'static [(&'static str, &'static str, f64)],
    /// The range of round trips between zones of one region, in ms.
    pub between_zones_round_trip_ms: (f64, f64),
}

/// `aws-2026-11`: AWS inter-region round trips, recorded in November 2026.
///
/// Sources: the inter-region round trips published with issue 7
/// (us-east-1 to us-west-2 87 ms, to eu-west-1 81 ms, to ap-southeast-1
/// 217 ms; eu-west-1 to eu-central-1 20 ms), which match the public
/// region-to-region ping tables (cloudping-style medians); between zones
/// 0.25 to 3.37 ms, the best-of-50 pings between every pair of AZs measured
/// by Kyle Anderson ("Measuring AWS Region and AZ Latency", xkyle.com).
/// Only these pairs are in the preset: a scenario that uses a region pair it
/// lacks must give that pair itself (`latency.round_trips` or
/// `latency.one_way`), and validation says so. Each one-way entry is a
/// constant, half the round trip; zones get a uniform one-way draw in
/// `[0.125, 1.685]` ms.
pub const AWS_2026_11: Preset = Preset {
    name: "aws-2026-11",
    round_trips_ms: &[
        ("us-east-1", "us-west-2", 87.0),
        ("us-east-1", "eu-west-1", 81.0),
        ("us-east-1", "ap-southeast-1", 217.0),
        ("eu-west-1", "eu-central-1", 20.0),
    ],
    between_zones_round_trip_ms: (0.25, 3.37),
};

/// Every preset, by name.
pub const PRESETS: &[Preset] = &[AWS_2026_11];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

impl Preset {
    /// The round trip between `a` and `b` in ms, in either order.
    pub fn round_trip_ms(&self, a: &str, b: &str) -> Option<f64> {
        self.round_trips_ms
            .iter()
            .find(|(x, y, _)| (*x == a && *y == b) || (*x == b && *y == a))
            .map(|&(_, _, ms)| ms)
    }

    /// The one-way distribution between zones: uniform on half the round-trip range.
    pub fn between_zones(&self) -> Distribution {
        let (low, high) = self.between_zones_round_trip_ms;
        Distribution::Uniform {
            min_ms: low / 2.0,
            max_ms: high / 2.0,
        }
    }
}

/// The one-way constant for a round trip: half of it (see the module doc).
pub fn one_way_from_round_trip(round_trip_ms: f64) -> Distribution {
    Distribution::Constant {
        value_ms: round_trip_ms / 2.0,
    }
}

/// Instances of one service placed in one place.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The service's index in the scenario.
    pub service: usize,
    /// Where.
    pub place: Place,
    /// How many instances, `>= 1`. A service's placements, in file order,
    /// take its instance indices in order: the first `instances` are the
    /// first placement's, and so on.
    pub instances: u32,
}

/// Where a client's requests start and how they find a region.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientPlacement {
    /// The client's index in the scenario.
    pub client: usize,
    /// Where its users are.
    pub origin: Place,
    /// The router its requests ask, an index into `Topology::routers`;
    /// `None` sends every request to the origin region.
    pub router: Option<usize>,
    /// The mix of DNS resolver behaviours among its users (used by `dns`
    /// routers), shares summing to 1.
    pub resolvers: Vec<(routing::dns::ResolverClass, f64)>,
}

/// A checked topology: the scenario's `topology` section.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Regions, in file order; indices are `RegionId`s.
    pub regions: Vec<Region>,
    /// One-way latencies between places.
    pub latency: LatencyMatrix,
    /// Placed instances, in file order.
    pub placements: Vec<Placement>,
    /// Client origins and routers.
    pub clients: Vec<ClientPlacement>,
    /// Global routers, by index; `routing::RouterSpec::name` names each.
    pub routers: Vec<routing::RouterSpec>,
    /// Region, zone and network faults.
    pub faults: Vec<faults::TopologyFault>,
}

impl Topology {
    /// The index of the region called `name`.
    pub fn region_id(&self, name: &str) -> Option<RegionId> {
        self.regions.iter().position(|region| region.name == name)
    }

    /// How many instances of `service` are placed in `region` (any zone).
    pub fn instances_in(&self, service: usize, region: RegionId) -> u32 {
        self.placements
            .iter()
            .filter(|placement| placement.service == service && placement.place.region == region)
            .map(|placement| placement.instances)
            .sum()
    }

    /// The place of instance `index` of `service`, if the service is placed.
    pub fn instance_place(&self, service: usize, index: u32) -> Option<Place> {
        let mut first = 0u32;
        for placement in self.placements.iter().filter(|p| p.service == service) {
            if index < first + placement.instances {
                return Some(placement.place);
            }
            first += placement.instances;
        }
        None
    }

    /// A readable name for a place: `us-east-1` or `us-east-1/a`.
    pub fn place_name(&self, place: Place) -> String {
        let region = &self.regions[place.region];
        match place.zone {
            Some(zone) => format!("{}/{}", region.name, region.zones[zone]),
            None => region.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(value_ms: f64) -> Distribution {
        Distribution::Constant { value_ms }
    }

    // The matrix is directed, zones of one region use the zone entry, and one
    // zone (or a region without zones) costs nothing.
    #[test]
    fn latency_is_directed_and_zone_aware() {
        let matrix = LatencyMatrix::new(
            2,
            vec![constant(0.0), constant(40.0), constant(45.0), constant(0.0)],
            constant(1.0),
        );
        assert_eq!(matrix.mean_ms(Place::region(0), Place::region(1)), 40.0);
        assert_eq!(matrix.mean_ms(Place::region(1), Place::region(0)), 45.0);
        assert_eq!(matrix.mean_ms(Place::zone(0, 0), Place::zone(0, 1)), 1.0);
        assert_eq!(matrix.one_way(Place::zone(0, 1), Place::zone(0, 1)), None);
        assert_eq!(matrix.one_way(Place::region(0), Place::zone(0, 1)), None);
    }

    // The preset's pairs are symmetric round trips halved into one-way constants.
    #[test]
    fn preset_round_trips_halve_into_one_way_latency() {
        let aws = preset("aws-2026-11").unwrap();
        assert_eq!(aws.round_trip_ms("us-west-2", "us-east-1"), Some(87.0));
        assert_eq!(aws.round_trip_ms("eu-central-1", "eu-west-1"), Some(20.0));
        assert_eq!(aws.round_trip_ms("us-west-2", "eu-west-1"), None);
        assert_eq!(one_way_from_round_trip(217.0).mean_ms(), 108.5);
        assert_eq!(aws.between_zones().mean_ms(), (0.125 + 1.685) / 2.0);
        assert!(preset("aws-1999").is_none());
    }

    // A zone scope contains only its zone; a region scope contains all of them.
    #[test]
    fn scopes_contain_their_places() {
        assert!(Place::region(1).contains(Place::zone(1, 2)));
        assert!(Place::zone(1, 2).contains(Place::zone(1, 2)));
        assert!(!Place::zone(1, 2).contains(Place::zone(1, 0)));
        assert!(!Place::zone(1, 2).contains(Place::region(1)));
        assert!(!Place::region(0).contains(Place::region(1)));
    }
}
