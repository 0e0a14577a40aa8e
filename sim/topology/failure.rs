//! Random failures: a unit (an instance, a zone, a region) alternates
//! between up and down, with exponential time to failure (mean MTTF) and
//! time to repair (mean MTTR), drawn from its own named random stream.
//! `FailureProcess` is a pure generator of `(fail_at, repair_at)` windows;
//! the closed forms below are what its long-run availability must match,
//! and the tests check that it does, within a 95% confidence interval over
//! seeds.
//!
//! ## The closed forms
//!
//! - One unit: `A = MTTF / (MTTF + MTTR)` (an alternating renewal process).
//! - Active-passive with failover: each failure of the active unit costs
//!   `detect + failover + route` (time to notice, to promote the standby, and
//!   for traffic to move) instead of MTTR, because the standby takes over
//!   while the failed unit repairs: `A = MTTF / (MTTF + detect + failover + route)`.
//!   It assumes the standby is up when needed (MTTR much less than MTTF);
//!   when it is not, the real availability is a little lower.
//! - Independent units of availability `a`, at least `k` of `n` up:
//!   `A = sum over j = k..n of C(n, j) a^j (1 - a)^(n - j)`;
//!   1-of-n is `1 - (1 - a)^n`.

use crate::engine::{SimDuration, SimRng, SimTime};
use rand_distr::{Distribution as _, Exp};

/// What a failure process takes down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureTarget {
    /// One instance of a service: `(service index, instance index)`.
    Instance(usize, u32),
    /// A region or a zone (every instance placed there).
    Place(super::Place),
}

/// An MTTF/MTTR process for one unit, up at `start`.
#[derive(Clone, Debug)]
pub struct FailureProcess {
    mttf: Exp<f64>,
    mttr: Exp<f64>,
    rng: SimRng,
    /// When the unit is next up (the end of the last repair, or the start).
    up_since: SimTime,
}

impl FailureProcess {
    /// A process with means `mttf_ms` and `mttr_ms` (both `> 0`, validated),
    /// drawing from `rng` (a stream named after the unit, such as
    /// `failures/region/us-east-1`), with the unit up at `start`.
    pub fn new(mttf_ms: f64, mttr_ms: f64, rng: SimRng, start: SimTime) -> FailureProcess {
        debug_assert!(mttf_ms > 0.0 && mttr_ms > 0.0);
        FailureProcess {
            mttf: Exp::new(1.0 / mttf_ms).expect("validated mttf"),
            mttr: Exp::new(1.0 / mttr_ms).expect("validated mttr"),
            rng,
            up_since: start,
        }
    }

    /// The next down window `(fail_at, repair_at)`, after the previous one.
    /// Each draw is at least one microsecond, so windows never overlap or
    /// stand still.
    pub fn next_window(&mut self) -> (SimTime, SimTime) {
        let up = draw_ms(&self.mttf, &mut self.rng);
        let down = draw_ms(&self.mttr, &mut self.rng);
        let fail_at = self.up_since + up;
        let repair_at = fail_at + down;
        debug_assert!(self.up_since < fail_at && fail_at < repair_at);
        self.up_since = repair_at;
        (fail_at, repair_at)
    }
}

fn draw_ms(exp: &Exp<f64>, rng: &mut SimRng) -> SimDuration {
    SimDuration::from_ms_f64(exp.sample(rng.raw())).max(SimDuration(1))
}

/// A single unit's long-run availability, `MTTF / (MTTF + MTTR)`.
pub fn availability(mttf_ms: f64, mttr_ms: f64) -> f64 {
    mttf_ms / (mttf_ms + mttr_ms)
}

/// Active-passive availability: `MTTF / (MTTF + detect + failover + route)`.
pub fn availability_active_passive(
    mttf_ms: f64,
    detect_ms: f64,
    failover_ms: f64,
    route_ms: f64,
) -> f64 {
    mttf_ms / (mttf_ms + detect_ms + failover_ms + route_ms)
}

/// At least `k` of `n` independent units up, each with availability `unit`.
pub fn availability_k_of_n(k: u32, n: u32, unit: f64) -> f64 {
    debug_assert!(k <= n && (0.0..=1.0).contains(&unit));
    (k..=n)
        .map(|j| binomial(n, j) * unit.powi(j as i32) * (1.0 - unit).powi((n - j) as i32))
        .sum()
}

/// At least one of `n` up: `1 - (1 - unit)^n`.
pub fn availability_1_of_n(n: u32, unit: f64) -> f64 {
    1.0 - (1.0 - unit).powi(n as i32)
}

/// `C(n, k)` as a float (exact for the small `n` of a topology).
pub fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |product, i| {
        product * f64::from(n - i) / f64::from(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use proptest::prelude::*;

    /// Mean and 95% half-width of `samples` (normal approximation).
    fn confidence(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, 1.96 * (variance / n).sqrt())
    }

    /// Down windows of one unit over `[0, horizon)`.
    fn windows(process: &mut FailureProcess, horizon: SimTime) -> Vec<(SimTime, SimTime)> {
        let mut out = Vec::new();
        loop {
            let (fail_at, repair_at) = process.next_window();
            if fail_at >= horizon {
                return out;
            }
            out.push((fail_at, repair_at.min(horizon)));
        }
    }

    fn up_fraction(downs: &[(SimTime, SimTime)], horizon: SimTime) -> f64 {
        let down: u64 = downs
            .iter()
            .map(|(a, b)| b.saturating_since(*a).as_micros())
            .sum();
        1.0 - down as f64 / horizon.as_micros() as f64
    }

    const SEEDS: u64 = 30;

    // Windows follow each other without overlap and have the declared means.
    #[test]
    fn windows_alternate_with_the_declared_means() {
        let mut process = FailureProcess::new(
            1_000.0,
            100.0,
            RngFactory::new(1).stream("unit"),
            SimTime::ZERO,
        );
        let (mut up_total, mut down_total, mut last) = (0.0, 0.0, SimTime::ZERO);
        for _ in 0..20_000 {
            let (fail_at, repair_at) = process.next_window();
            assert!(fail_at > last && repair_at > fail_at);
            up_total += fail_at.saturating_since(last).as_ms_f64();
            down_total += repair_at.saturating_since(fail_at).as_ms_f64();
            last = repair_at;
        }
        assert!((up_total / 20_000.0 - 1_000.0).abs() < 30.0);
        assert!((down_total / 20_000.0 - 100.0).abs() < 3.0);
    }

    // One unit's long-run availability: MTTF / (MTTF + MTTR) lies inside the
    // 95% confidence interval of the simulated availability over 30 seeds.
    #[test]
    fn single_unit_availability_matches_the_closed_form() {
        let (mttf, mttr) = (3_600_000.0, 600_000.0);
        let horizon = SimTime::from_ms(2_000 * 3_600_000);
        let samples: Vec<f64> = (0..SEEDS)
            .map(|seed| {
                let rng = RngFactory::new(seed).stream("failures/instance/api[0]");
                let mut process = FailureProcess::new(mttf, mttr, rng, SimTime::ZERO);
                up_fraction(&windows(&mut process, horizon), horizon)
            })
            .collect();
        let (mean, half_width) = confidence(&samples);
        let expected = availability(mttf, mttr);
        assert!(
            (mean - expected).abs() <= half_width,
            "{mean} ± {half_width} vs {expected}"
        );
        assert!(half_width < 0.01, "the interval is tight: {half_width}");
    }

    // Active-passive: the active unit fails (MTTF), the service is down for
    // detect + failover + route, then the standby serves while the failed
    // unit repairs (MTTR much smaller than MTTF). The closed form lies inside
    // the 95% interval.
    #[test]
    fn active_passive_availability_matches_the_closed_form() {
        let (mttf, mttr) = (86_400_000.0, 60_000.0);
        let (detect, failover, route) = (90_000.0, 30_000.0, 60_000.0);
        let switch = SimDuration::from_ms_f64(detect + failover + route);
        let horizon = SimTime::from_ms(1_000 * 86_400_000);
        let samples: Vec<f64> = (0..SEEDS)
            .map(|seed| {
                let factory = RngFactory::new(seed);
                let mut units = [
                    FailureProcess::new(mttf, mttr, factory.stream("unit/0"), SimTime::ZERO),
                    FailureProcess::new(mttf, mttr, factory.stream("unit/1"), SimTime::ZERO),
                ];
                let mut next = [units[0].next_window(), units[1].next_window()];
                let (mut active, mut down_micros, mut now) = (0usize, 0u64, SimTime::ZERO);
                while now < horizon {
                    // Skip the standby's failures that end before the active one fails.
                    let standby = 1 - active;
                    let (fail_at, _) = next[active];
                    if fail_at >= horizon {
                        break;
                    }
                    while next[standby].1 <= fail_at + switch {
                        next[standby] = units[standby].next_window();
                    }
                    // Down until the switch completes, or longer if the
                    // standby is itself down then: until it is repaired.
                    let (standby_fail, standby_repair) = next[standby];
                    let mut back = fail_at + switch;
                    if standby_fail <= back {
                        // The standby's repair ends this window: its next
                        // failure is the one after.
                        back = standby_repair.max(back);
                        next[standby] = units[standby].next_window();
                    }
                    down_micros += back.min(horizon).saturating_since(fail_at).as_micros();
                    // The failed unit repairs and becomes the standby.
                    next[active] = units[active].next_window();
                    active = standby;
                    now = back;
                }
                1.0 - down_micros as f64 / horizon.as_micros() as f64
            })
            .collect();
        let (mean, half_width) = confidence(&samples);
        let expected = availability_active_passive(mttf, detect, failover, route);
        assert!(
            (mean - expected).abs() <= half_width,
            "{mean} ± {half_width} vs {expected}"
        );
    }

    // k of n independent regions: the binomial closed form lies inside the
    // 95% interval, for 1-of-3 and 2-of-3.
    #[test]
    fn k_of_n_availability_matches_the_binomial() {
        let (mttf, mttr) = (1_000_000.0, 250_000.0);
        let horizon = SimTime::from_ms(3_000 * 1_000_000);
        for k in [1u32, 2] {
            let samples: Vec<f64> = (0..SEEDS)
                .map(|seed| {
                    let factory = RngFactory::new(seed);
                    // Every up/down edge of three regions, merged in time order.
                    let mut edges: Vec<(SimTime, i32)> = Vec::new();
                    for region in 0..3 {
                        let rng = factory.stream(&format!("failures/region/{region}"));
                        let mut process = FailureProcess::new(mttf, mttr, rng, SimTime::ZERO);
                        for (fail_at, repair_at) in windows(&mut process, horizon) {
                            edges.push((fail_at, -1));
                            edges.push((repair_at, 1));
                        }
                    }
                    edges.sort();
                    let (mut up, mut last, mut good_micros) = (3i32, SimTime::ZERO, 0u64);
                    for (at, change) in edges {
                        if up >= k as i32 {
                            good_micros += at.saturating_since(last).as_micros();
                        }
                        up += change;
                        last = at;
                    }
                    if up >= k as i32 {
                        good_micros += horizon.saturating_since(last).as_micros();
                    }
                    good_micros as f64 / horizon.as_micros() as f64
                })
                .collect();
            let (mean, half_width) = confidence(&samples);
            let expected = availability_k_of_n(k, 3, availability(mttf, mttr));
            assert!(
                (mean - expected).abs() <= half_width,
                "{k} of 3: {mean} ± {half_width} vs {expected}"
            );
        }
    }

    // The closed forms agree with each other at their edges.
    #[test]
    fn closed_forms_agree_at_their_edges() {
        let a = availability(900.0, 100.0);
        assert!((a - 0.9).abs() < 1e-12);
        assert!((availability_k_of_n(1, 3, a) - availability_1_of_n(3, a)).abs() < 1e-12);
        assert!((availability_k_of_n(3, 3, a) - a.powi(3)).abs() < 1e-12);
        assert!((availability_k_of_n(0, 4, a) - 1.0).abs() < 1e-12);
        assert_eq!(binomial(5, 2), 10.0);
        assert!((availability_active_passive(1_000.0, 0.0, 0.0, 0.0) - 1.0).abs() < 1e-12);
    }

    proptest! {
        // Windows of any process follow each other: each failure comes after
        // the previous repair, and each repair after its failure.
        #[test]
        fn failure_windows_never_overlap(mttf_ms in 0.001f64..1e9, mttr_ms in 0.001f64..1e9, seed: u64) {
            let rng = RngFactory::new(seed).stream("failures/x");
            let mut process = FailureProcess::new(mttf_ms, mttr_ms, rng, SimTime::from_ms(5));
            let mut last = SimTime::from_ms(5);
            for _ in 0..50 {
                let (fail_at, repair_at) = process.next_window();
                prop_assert!(fail_at > last);
                prop_assert!(repair_at > fail_at);
                last = repair_at;
            }
        }
    }
}
