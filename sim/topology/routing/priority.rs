//! Priority levels with locality weights, modelled on Envoy's load balancer.
//!
//! Endpoints are grouped into priority levels (P0 first); each level holds
//! localities (here, regions) with weights. The load calculation follows
//! Envoy's `LoadBalancerBase::recalculatePerPriorityState`,
//! `recalculatePerPriorityPanic` and `recalculateLoadInTotalPanic`
//! (source/common/upstream/load_balancer_impl.cc) and the architecture
//! overview ("Priority levels", "Overprovisioning factor", "Panic
//! threshold", "Locality weighted load balancing"), in integer percent as
//! Envoy computes it:
//!
//! 1. Each level's health: `min(100, overprovisioning * healthy / total)`
//!    with the overprovisioning factor as a percentage (default 140, i.e.
//!    1.4), integer division; 0 for a level with no hosts.
//! 2. Normalized total health: `min(100, sum of the levels' health)`.
//! 3. Loads: going down the levels, each takes
//!    `min(load left, health * 100 / normalized total)`; whatever rounding
//!    leaves goes to the first level with health above 0. Loads sum to 100.
//! 4. Panic: a level is in panic when the normalized total is below 100 and
//!    its healthy share `100 * healthy / total` (as a float) is below the
//!    panic threshold (default 50%); a panicking level balances over all its
//!    hosts, healthy or not.
//! 5. Total panic, every level in panic: loads go by host count,
//!    `100 * hosts / all hosts` (integer), the remainder to the first level
//!    with hosts. With a panic threshold of 0 and no healthy host anywhere,
//!    P0 takes 100.
//!
//! A level is picked with `hash % 100 + 1` against the running sum of loads
//! (Envoy's `choosePriority`); within it a locality by weight times the
//! locality's availability `min(1, overprovisioning * healthy / total)`
//! (all hosts, by plain weight, in panic). Envoy spreads localities with an
//! EDF schedule; here it is a weighted random draw, the same shares.
//! Degraded hosts, which Envoy also tracks, are not modelled.

use crate::engine::{SimRng, SimTime};
use crate::topology::RegionId;
use serde::Serialize;
use smallvec::SmallVec;

/// Envoy's default overprovisioning factor.
pub const OVERPROVISIONING_FACTOR_DEFAULT: f64 = 1.4;
/// Envoy's default panic threshold, percent.
pub const PANIC_THRESHOLD_PERCENT_DEFAULT: f64 = 50.0;

/// A region in a priority level, with its locality weight (`>= 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locality {
    /// The region.
    pub region: RegionId,
    /// Its weight within the level.
    pub weight: u32,
}

/// Checked settings of a `priority` router. Defaults:
/// `overprovisioning_factor` 1.4, `panic_threshold_percent` 50.
#[derive(Clone, Debug, PartialEq)]
pub struct PrioritySettings {
    /// Levels, P0 first; each has at least one locality.
    pub levels: Vec<Vec<Locality>>,
    /// The overprovisioning factor as a percentage (140 for 1.4).
    pub overprovisioning_percent: u32,
    /// The panic threshold, percent.
    pub panic_threshold_percent: f64,
}

/// The computed loads, as Envoy holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Loads {
    /// Each level's health, percent.
    pub health: Vec<u32>,
    /// Each level's share of requests, percent; sums to 100.
    pub load: Vec<u32>,
    /// Each level's panic mode.
    pub panic: Vec<bool>,
}

/// Where one request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    /// The region.
    pub region: RegionId,
    /// The level it came from.
    pub level: usize,
    /// Whether that level was in panic (hosts picked regardless of health).
    pub panic: bool,
}

/// Envoy-style priority routing over host health per region.
#[derive(Clone, Debug)]
pub struct Priority {
    settings: PrioritySettings,
    /// `(healthy, total)` hosts of each locality, `[level][locality]`.
    hosts: Vec<Vec<(u32, u32)>>,
    loads: Loads,
}

impl Priority {
    /// A router with no hosts anywhere until `set_hosts` is called.
    pub fn new(settings: PrioritySettings) -> Priority {
        let hosts = settings
            .levels
            .iter()
            .map(|level| vec![(0, 0); level.len()])
            .collect();
        let mut router = Priority {
            settings,
            hosts,
            loads: Loads::default(),
        };
        router.recalculate();
        router
    }

    /// Sets the host counts of `region` (in every level it appears in) and
    /// recalculates the loads.
    pub fn set_hosts(&mut self, _now: SimTime, region: RegionId, healthy: u32, total: u32) {
        debug_assert!(healthy <= total);
        for (level, localities) in self.settings.levels.iter().enumerate() {
            for (index, locality) in localities.iter().enumerate() {
                if locality.region == region {
                    self.hosts[level][index] = (healthy, total);
                }
            }
        }
        self.recalculate();
    }

    /// The current loads.
    pub fn loads(&self) -> &Loads {
        &self.loads
    }

    fn recalculate(&mut self) {
        let level_hosts: Vec<(u32, u32)> = self
            .hosts
            .iter()
            .map(|localities| {
                localities
                    .iter()
                    .fold((0, 0), |(h, t), &(healthy, total)| (h + healthy, t + total))
            })
            .collect();
        self.loads = loads(
            &level_hosts,
            self.settings.overprovisioning_percent,
            self.settings.panic_threshold_percent,
        );
        debug_assert_eq!(self.loads.load.iter().sum::<u32>(), 100);
    }

    /// Picks the region for one request.
    pub fn route(&self, rng: &mut SimRng) -> Pick {
        let hash = rng.between(1, 100) as u32;
        let mut sum = 0;
        let mut level = self.loads.load.len() - 1;
        for (index, &load) in self.loads.load.iter().enumerate() {
            sum += load;
            if hash <= sum {
                level = index;
                break;
            }
        }
        let panic = self.loads.panic[level];
        let overprovisioning = f64::from(self.settings.overprovisioning_percent) / 100.0;
        // On the stack: a router picks once per request.
        let weights: SmallVec<[f64; 8]> = self.settings.levels[level]
            .iter()
            .zip(&self.hosts[level])
            .map(|(locality, &(healthy, total))| {
                let weight = f64::from(locality.weight);
                if total == 0 {
                    0.0
                } else if panic {
                    weight
                } else {
                    weight * (overprovisioning * f64::from(healthy) / f64::from(total)).min(1.0)
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let localities = &self.settings.levels[level];
        let index = if total <= 0.0 {
            0
        } else {
            let mut ticket = rng.unit() * total;
            let mut chosen = localities.len() - 1;
            for (index, weight) in weights.iter().enumerate() {
                if ticket < *weight {
                    chosen = index;
                    break;
                }
                ticket -= weight;
            }
            chosen
        };
        Pick {
            region: localities[index].region,
            level,
            panic,
        }
    }
}

/// Envoy's load calculation over `(healthy, total)` hosts per level.
pub fn loads(levels: &[(u32, u32)], overprovisioning_percent: u32, panic_percent: f64) -> Loads {
    debug_assert!(!levels.is_empty());
    let health: Vec<u32> = levels
        .iter()
        .map(|&(healthy, total)| {
            if total == 0 {
                0
            } else {
                let scaled =
                    u64::from(overprovisioning_percent) * u64::from(healthy) / u64::from(total);
                scaled.min(100) as u32
            }
        })
        .collect();
    let normalized_total = health.iter().sum::<u32>().min(100);
    let mut load = vec![0u32; levels.len()];
    // With no health anywhere Envoy computes nothing here: the panic rules
    // below decide.
    let mut left = 100u32;
    let mut first_available = None;
    for (level, &level_health) in health.iter().enumerate() {
        if let Some(share) = (level_health * 100).checked_div(normalized_total) {
            if first_available.is_none() && level_health > 0 {
                first_available = Some(level);
            }
            load[level] = left.min(share);
            left -= load[level];
        }
    }
    if let (Some(first), true) = (first_available, left > 0) {
        load[first] += left;
    }
    if panic_percent == 0.0 && normalized_total == 0 {
        load[0] = 100;
        return Loads {
            health,
            load,
            panic: vec![false; levels.len()],
        };
    }
    let panic: Vec<bool> = levels
        .iter()
        .map(|&(healthy, total)| {
            let healthy_percent = if total == 0 {
                0.0
            } else {
                100.0 * f64::from(healthy) / f64::from(total)
            };
            normalized_total < 100 && healthy_percent < panic_percent
        })
        .collect();
    if panic.iter().all(|&p| p) {
        let all_hosts: u32 = levels.iter().map(|&(_, total)| total).sum();
        load = vec![0; levels.len()];
        // An empty backend still needs its load somewhere: P0.
        let mut left = 100u32;
        for (level, &(_, total)) in levels.iter().enumerate() {
            load[level] = (100 * total).checked_div(all_hosts).unwrap_or(0);
            left -= load[level];
        }
        let first = levels.iter().position(|&(_, total)| total > 0).unwrap_or(0);
        load[first] += left;
    }
    Loads {
        health,
        load,
        panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use proptest::prelude::*;

    fn two_levels(p0: (u32, u32), p1: (u32, u32)) -> Loads {
        loads(&[p0, p1], 140, 50.0)
    }

    // Envoy's documented table (architecture overview, "Priority levels"):
    // P0 healthy share against traffic to P0 and P1, with P1 fully healthy.
    #[test]
    fn loads_follow_envoys_priority_table() {
        assert_eq!(two_levels((100, 100), (100, 100)).load, vec![100, 0]);
        assert_eq!(two_levels((72, 100), (100, 100)).load, vec![100, 0]);
        assert_eq!(two_levels((71, 100), (100, 100)).load, vec![99, 1]);
        assert_eq!(two_levels((50, 100), (100, 100)).load, vec![70, 30]);
        assert_eq!(two_levels((25, 100), (100, 100)).load, vec![35, 65]);
        assert_eq!(two_levels((0, 100), (100, 100)).load, vec![0, 100]);
    }

    // Normalized total below 100 scales the loads; levels under 50% panic,
    // and both in panic distribute by host count.
    #[test]
    fn degraded_totals_scale_and_panic() {
        // 20% and 20%: health 28 each, total 56, loads 50/50, both in panic
        // (total panic): by host count, still 50/50.
        let both = two_levels((20, 100), (20, 100));
        assert_eq!(both.health, vec![28, 28]);
        assert_eq!(both.panic, vec![true, true]);
        assert_eq!(both.load, vec![50, 50]);
        // Total panic with unequal host counts: by hosts, 25/75.
        assert_eq!(two_levels((1, 10), (3, 30)).load, vec![25, 75]);
        // 5% and 65%: health 7 and 91, total 98: 7 and 92 and the rounding
        // remainder to P0; only P0 panics.
        let uneven = two_levels((5, 100), (65, 100));
        assert_eq!(uneven.load, vec![8, 92]);
        assert_eq!(uneven.panic, vec![true, false]);
        // Normalized total of 100: no panic even for a nearly empty P0.
        assert_eq!(two_levels((10, 100), (100, 100)).panic, vec![false, false]);
        // No hosts at all: P0 takes it all.
        assert_eq!(two_levels((0, 0), (0, 0)).load, vec![100, 0]);
        assert_eq!(loads(&[(0, 4), (0, 4)], 140, 0.0).load, vec![100, 0]);
    }

    // Locality weights split a level's traffic; a locality losing hosts
    // loses weight only below 1/1.4 healthy.
    #[test]
    fn locality_weights_scale_with_availability() {
        let mut router = Priority::new(PrioritySettings {
            levels: vec![vec![
                Locality {
                    region: 0,
                    weight: 1,
                },
                Locality {
                    region: 1,
                    weight: 2,
                },
            ]],
            overprovisioning_percent: 140,
            panic_threshold_percent: 50.0,
        });
        let now = SimTime::ZERO;
        router.set_hosts(now, 0, 10, 10);
        router.set_hosts(now, 1, 10, 10);
        let share = |router: &Priority| {
            let mut rng = RngFactory::new(3).stream("t");
            (0..30_000)
                .filter(|_| router.route(&mut rng).region == 0)
                .count() as f64
                / 30_000.0
        };
        assert!((share(&router) - 1.0 / 3.0).abs() < 0.015);
        router.set_hosts(now, 1, 8, 10);
        assert!(
            (share(&router) - 1.0 / 3.0).abs() < 0.015,
            "80% healthy keeps full weight"
        );
        router.set_hosts(now, 1, 5, 10);
        // Region 1's weight becomes 2 * 0.7 = 1.4: region 0 gets 1 / 2.4.
        assert!((share(&router) - 1.0 / 2.4).abs() < 0.015);
    }

    // Active-passive with priority levels: P1 takes over as P0 loses its
    // hosts, and P0 takes everything back when they recover (failback).
    #[test]
    fn levels_fail_over_and_back() {
        let mut router = Priority::new(PrioritySettings {
            levels: vec![
                vec![Locality {
                    region: 0,
                    weight: 1,
                }],
                vec![Locality {
                    region: 1,
                    weight: 1,
                }],
            ],
            overprovisioning_percent: 140,
            panic_threshold_percent: 50.0,
        });
        let now = SimTime::ZERO;
        router.set_hosts(now, 0, 4, 4);
        router.set_hosts(now, 1, 4, 4);
        assert_eq!(router.loads().load, vec![100, 0]);
        router.set_hosts(now, 0, 0, 4);
        assert_eq!(router.loads().load, vec![0, 100]);
        let mut rng = RngFactory::new(1).stream("t");
        assert_eq!(router.route(&mut rng).region, 1);
        router.set_hosts(now, 0, 4, 4);
        assert_eq!(router.loads().load, vec![100, 0]);
    }

    proptest! {
        // Loads always sum to 100, whatever the host counts, factor and threshold.
        #[test]
        fn priority_loads_sum_to_100(
            levels in prop::collection::vec((0u32..50, 0u32..50), 1..6),
            overprovisioning in 100u32..300,
            panic in 0.0f64..100.0,
        ) {
            let levels: Vec<(u32, u32)> = levels.into_iter().map(|(h, extra)| (h, h + extra)).collect();
            let computed = loads(&levels, overprovisioning, panic);
            prop_assert_eq!(computed.load.iter().sum::<u32>(), 100);
            prop_assert!(computed.health.iter().all(|&h| h <= 100));
            // No panic anywhere while the levels together have enough health.
            let total: u32 = computed.health.iter().sum();
            if total >= 100 {
                prop_assert!(computed.panic.iter().all(|&p| !p));
            }
        }
    }
}
