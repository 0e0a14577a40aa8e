//! The scenario's `topology` section exactly as written: regions and zones,
//! the latency matrix (or a preset), where instances and clients are, the
//! global routers and the region, zone and network faults. Serde types with
//! defaults, no cross-checks; `validate_topology` turns them into a
//! `topology::Topology`. Field docs here are the reference's source.
//!
//! Places are written as strings: `"us-east-1"` for a region, or
//! `"us-east-1/a"` for zone `a` of it.

use crate::model::distribution::Distribution;
use crate::scenario::OutageMode;
use crate::topology::routing::{anycast, dns, priority};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `topology` section. A scenario without it runs as before, in one
/// implicit region.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopology {
    /// The regions, at least one, at most 64.
    pub regions: Vec<RawRegion>,
    /// One-way latencies between regions and zones; default none (every
    /// pair of regions must then be given).
    #[serde(default)]
    pub latency: RawLatency,
    /// Where each service's instances are; a service with none has all of
    /// its instances in the first region.
    #[serde(default)]
    pub placements: Vec<RawPlacement>,
    /// Where each client's users are and which router they ask; a client
    /// with none is in the first region and calls it directly.
    #[serde(default)]
    pub clients: Vec<RawClientPlacement>,
    /// Global routers, referred to by name from `clients`.
    #[serde(default)]
    pub routers: Vec<RawRouter>,
    /// Region, zone and network faults.
    #[serde(default)]
    pub faults: Vec<RawTopologyFault>,
}

/// A region.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    /// Unique name (`us-east-1`).
    pub name: String,
    /// Zone names, unique within the region, at most 16; default none.
    #[serde(default)]
    pub zones: Vec<String>,
}

/// The latency matrix: a preset, then round trips, then one-way entries,
/// each later source overriding the earlier for the pairs it names.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLatency {
    /// A dated preset of published round trips (`aws-2026-11`); default none.
    #[serde(default)]
    pub preset: Option<String>,
    /// Symmetric round trips; each direction gets a constant half.
    #[serde(default)]
    pub round_trips: Vec<RawRoundTrip>,
    /// Directed one-way entries, any distribution.
    #[serde(default)]
    pub one_way: Vec<RawOneWay>,
    /// One-way latency between two zones of one region; default the
    /// preset's (uniform 0.125 to 1.685 ms), or constant 0 without a preset.
    #[serde(default)]
    pub between_zones_ms: Option<Distribution>,
}

/// A round trip between two regions.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoundTrip {
    /// The two regions.
    pub between: [String; 2],
    /// The round trip, in `[0, 10000]` ms.
    pub round_trip_ms: f64,
}

/// One direction between two regions.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOneWay {
    /// The sending region.
    pub from: String,
    /// The receiving region.
    pub to: String,
    /// The one-way latency.
    pub latency_ms: Distribution,
}

/// Instances of a service in one place.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlacement {
    /// The service.
    pub service: String,
    /// A region or a zone.
    pub place: String,
    /// How many, `>= 1`. A service's placements must add up to its `instances`.
    pub instances: u32,
}

/// A client's origin and router.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientPlacement {
    /// The client.
    pub client: String,
    /// Where its users are: a region or a zone.
    pub origin: String,
    /// The router its requests ask; default none (they go to the origin's region).
    #[serde(default)]
    pub router: Option<String>,
    /// The mix of resolver behaviours among its users, for `dns` routers;
    /// shares sum to 1; default all `ttl`.
    #[serde(default = "resolvers_default")]
    pub resolvers: Vec<RawResolverShare>,
}

fn resolvers_default() -> Vec<RawResolverShare> {
    vec![RawResolverShare {
        class: dns::ResolverClass::Ttl,
        share: 1.0,
    }]
}

/// A share of users with one resolver class.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolverShare {
    /// `ttl`, `jvm`, `browser` or `forever`.
    pub class: dns::ResolverClass,
    /// The share, in `[0, 1]`.
    pub share: f64,
}

/// A global router.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawRouter {
    /// Route 53 style DNS.
    Dns {
        /// Unique name.
        name: String,
        /// The regions it answers with; default every region, in order.
        #[serde(default)]
        endpoints: Option<Vec<String>>,
        /// Where the health checkers stand, 1 to 64 places; default one per region.
        #[serde(default)]
        checkers: Option<Vec<String>>,
        /// Probe interval: 10000 or 30000 ms; default 30000.
        #[serde(default = "dns_interval_default")]
        interval_ms: u64,
        /// Consecutive probes to change a checker's view, 1 to 10; default 3.
        #[serde(default = "dns_threshold_default")]
        failure_threshold: u32,
        /// Healthy when more than this share of checkers say so, in
        /// `[0, 1)`; default 0.18.
        #[serde(default = "healthy_fraction_default")]
        healthy_fraction_min: f64,
        /// The record TTL, in `[0, 86400000]` ms; default 60000.
        #[serde(default = "ttl_default")]
        ttl_ms: u64,
        /// How answers are picked; default `failover` in endpoint order, with failback.
        #[serde(default)]
        policy: Option<RawPolicy>,
        /// Recursive resolvers that stretch short TTLs; default none.
        #[serde(default)]
        stretching_resolvers: Option<RawStretch>,
    },
    /// Global Accelerator style anycast.
    Anycast {
        /// Unique name.
        name: String,
        /// The regions it sends traffic to; default every region, in order.
        #[serde(default)]
        endpoints: Option<Vec<String>>,
        /// Where each endpoint's checker stands, one per endpoint; default
        /// the endpoint's own region.
        #[serde(default)]
        checkers: Option<Vec<String>>,
        /// Health check interval: 10000 or 30000 ms; default 30000.
        #[serde(default = "anycast_interval_default")]
        interval_ms: u64,
        /// Consecutive checks to change state, 1 to 10; default 3.
        #[serde(default = "anycast_threshold_default")]
        threshold: u32,
        /// From a state change to the edge routing by it, in `[0, 600000]`
        /// ms; default 0.
        #[serde(default)]
        shift_ms: u64,
        /// How traffic is split; default `nearest`.
        #[serde(default)]
        policy: Option<RawPolicy>,
    },
    /// Envoy style priority levels.
    Priority {
        /// Unique name.
        name: String,
        /// Levels, P0 first, 1 to 8, each with 1 to 64 localities; a region
        /// appears at most once in all.
        levels: Vec<Vec<RawLocality>>,
        /// In `[1, 10]`; default 1.4.
        #[serde(default = "overprovisioning_default")]
        overprovisioning_factor: f64,
        /// In `[0, 100]`; default 50.
        #[serde(default = "panic_default")]
        panic_threshold_percent: f64,
    },
    /// The chapter's `ActiveActiveDeployment`.
    ChapterActiveActive {
        /// Unique name.
        name: String,
        /// The regions, in order; the first takes unknown origins.
        regions: Vec<String>,
    },
    /// The chapter's `ActivePassiveDeployment`.
    ChapterActivePassive {
        /// Unique name.
        name: String,
        /// The primary region.
        primary: String,
        /// The secondary region, another one.
        secondary: String,
    },
}

impl RawRouter {
    /// The router's name.
    pub fn name(&self) -> &str {
        match self {
            RawRouter::Dns { name, .. }
            | RawRouter::Anycast { name, .. }
            | RawRouter::Priority { name, .. }
            | RawRouter::ChapterActiveActive { name, .. }
            | RawRouter::ChapterActivePassive { name, .. } => name,
        }
    }
}

fn dns_interval_default() -> u64 {
    dns::INTERVAL_MS_DEFAULT
}

fn dns_threshold_default() -> u32 {
    dns::FAILURE_THRESHOLD_DEFAULT
}

fn healthy_fraction_default() -> f64 {
    dns::HEALTHY_FRACTION_MIN
}

fn ttl_default() -> u64 {
    dns::TTL_MS_DEFAULT
}

fn anycast_interval_default() -> u64 {
    anycast::INTERVAL_MS_DEFAULT
}

fn anycast_threshold_default() -> u32 {
    anycast::THRESHOLD_DEFAULT
}

fn overprovisioning_default() -> f64 {
    priority::OVERPROVISIONING_FACTOR_DEFAULT
}

fn panic_default() -> f64 {
    priority::PANIC_THRESHOLD_PERCENT_DEFAULT
}

/// Resolvers that stretch short TTLs.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStretch {
    /// The share of clients behind one, in `[0, 1]`.
    pub fraction: f64,
    /// The least TTL they use, in `[0, 86400000]` ms; default 300000.
    #[serde(default = "stretch_default")]
    pub ttl_ms_min: u64,
}

fn stretch_default() -> u64 {
    dns::STRETCH_TTL_MS_MIN_DEFAULT
}

/// A locality of a priority level.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocality {
    /// The region.
    pub region: String,
    /// Its weight, in `[1, 1000000]`; default 1.
    #[serde(default = "weight_default")]
    pub weight: u32,
}

fn weight_default() -> u32 {
    1
}

/// How a `dns` or `anycast` router picks among healthy endpoints.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawPolicy {
    /// Active-active by weight.
    Weighted {
        /// One weight per endpoint, each in `[0, 1000000]`, summing to more than 0.
        weights: Vec<u32>,
    },
    /// Active-active, lowest latency from the client's origin.
    Nearest,
    /// Active-active by origin region.
    Geo {
        /// Origin region to endpoint region.
        by_origin: BTreeMap<String, String>,
        /// The endpoint for other origins.
        default: String,
    },
    /// Active-passive.
    Failover {
        /// Endpoint regions, primary first; default the endpoints in order.
        #[serde(default)]
        order: Option<Vec<String>>,
        /// Whether traffic returns to a recovered primary; default true.
        #[serde(default = "failback_default")]
        failback: bool,
    },
}

fn failback_default() -> bool {
    true
}

/// Whether a network fault cuts both directions or one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both directions.
    #[default]
    TwoWay,
    /// Only packets from `from` to `to`.
    OneWay,
}

/// A region, zone or network fault.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTopologyFault {
    /// Every instance in a region is down in `[start_ms, end_ms)`.
    RegionOutage {
        /// The region.
        region: String,
        /// Start, ms, before `duration_ms`.
        start_ms: u64,
        /// End, ms, after `start_ms`.
        end_ms: u64,
        /// `fail_fast` (default) or `hang`.
        #[serde(default)]
        mode: OutageMode,
    },
    /// Every instance in one zone is down.
    ZoneOutage {
        /// The zone, as `region/zone`.
        zone: String,
        /// Start, ms, before `duration_ms`.
        start_ms: u64,
        /// End, ms, after `start_ms`.
        end_ms: u64,
        /// `fail_fast` (default) or `hang`.
        #[serde(default)]
        mode: OutageMode,
    },
    /// Packets from `from` to `to` are dropped (and back, if `two_way`).
    /// "A reaches B but B cannot answer A" is a `one_way` partition from B to A.
    Partition {
        /// A region or zone.
        from: String,
        /// A region or zone.
        to: String,
        /// `two_way` (default) or `one_way`.
        #[serde(default)]
        direction: Direction,
        /// Start, ms, before `duration_ms`.
        start_ms: u64,
        /// End, ms, after `start_ms`.
        end_ms: u64,
    },
    /// A router's health checkers cannot reach `region`, which everyone else
    /// still reaches.
    CheckerPartition {
        /// A `dns` or `anycast` router.
        router: String,
        /// The region the checkers lose.
        region: String,
        /// Checker indices; default all of the router's checkers.
        #[serde(default)]
        checkers: Option<Vec<usize>>,
        /// Start, ms, before `duration_ms`.
        start_ms: u64,
        /// End, ms, after `start_ms`.
        end_ms: u64,
    },
    /// Added latency and loss between two places.
    Degradation {
        /// A region or zone.
        from: String,
        /// A region or zone.
        to: String,
        /// `two_way` (default) or `one_way`.
        #[serde(default)]
        direction: Direction,
        /// Added one-way latency per packet; default constant 0.
        #[serde(default = "Distribution::zero")]
        added_latency_ms: Distribution,
        /// Chance a packet is lost, in `[0, 1]`; default 0.
        #[serde(default)]
        loss: f64,
        /// Start, ms, before `duration_ms`.
        start_ms: u64,
        /// End, ms, after `start_ms`.
        end_ms: u64,
    },
    /// A random failure process over the whole run: up for an exponential
    /// time (mean `mttf_ms`), down for an exponential time (mean `mttr_ms`),
    /// and so on. Give `place` (a region or zone), or `service` and `instance`.
    Failures {
        /// A region or zone.
        #[serde(default)]
        place: Option<String>,
        /// A service (with `instance`).
        #[serde(default)]
        service: Option<String>,
        /// The instance index (with `service`).
        #[serde(default)]
        instance: Option<u32>,
        /// Mean time to failure, `> 0` ms.
        mttf_ms: f64,
        /// Mean time to repair, `> 0` ms.
        mttr_ms: f64,
        /// `fail_fast` (default) or `hang`.
        #[serde(default)]
        mode: OutageMode,
    },
}
