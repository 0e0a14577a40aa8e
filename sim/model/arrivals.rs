//! Open-loop arrival times from a rate schedule: a Poisson process (thinned
//! against the schedule's peak rate, which is exact for any schedule) or
//! evenly spaced arrivals.

use crate::engine::{SimDuration, SimRng, SimTime, MICROS_PER_SECOND_F64};
use crate::scenario::{ArrivalKind, RateSchedule};

impl RateSchedule {
    /// Requests per second at `at`.
    pub fn rate_at(&self, at: SimTime) -> f64 {
        let ms = at.as_ms_f64();
        match self {
            RateSchedule::Constant { rps } => *rps,
            RateSchedule::Steps { steps } => {
                let after = steps.partition_point(|step| (step.at_ms as f64) <= ms);
                if after == 0 {
                    0.0
                } else {
                    steps[after - 1].rps
                }
            }
            RateSchedule::Ramp {
                start_ms,
                end_ms,
                from_rps,
                to_rps,
            } => {
                let (start, end) = (*start_ms as f64, *end_ms as f64);
                if ms <= start {
                    *from_rps
                } else if ms >= end {
                    *to_rps
                } else {
                    from_rps + (to_rps - from_rps) * (ms - start) / (end - start)
                }
            }
            RateSchedule::Spike {
                base_rps,
                spike_rps,
                start_ms,
                end_ms,
            } => {
                if ms >= *start_ms as f64 && ms < *end_ms as f64 {
                    *spike_rps
                } else {
                    *base_rps
                }
            }
        }
    }

    /// The highest rate the schedule reaches.
    pub fn rate_max(&self) -> f64 {
        match self {
            RateSchedule::Constant { rps } => *rps,
            RateSchedule::Steps { steps } => steps.iter().map(|step| step.rps).fold(0.0, f64::max),
            RateSchedule::Ramp {
                from_rps, to_rps, ..
            } => from_rps.max(*to_rps),
            RateSchedule::Spike {
                base_rps,
                spike_rps,
                ..
            } => base_rps.max(*spike_rps),
        }
    }

    /// The expected number of requests in `[from, to)`: the rate's integral,
    /// by the midpoint rule on 1000 slices (exact for these piecewise-linear schedules
    /// up to the slice boundaries).
    pub fn requests_between(&self, from: SimTime, to: SimTime) -> f64 {
        if to <= from {
            return 0.0;
        }
        let slices = 1_000u64;
        let width = (to.0 - from.0) as f64 / slices as f64;
        (0..slices)
            .map(|slice| {
                let middle = SimTime(from.0 + (width * (slice as f64 + 0.5)) as u64);
                self.rate_at(middle) * width / MICROS_PER_SECOND_F64
            })
            .sum()
    }
}

/// Generates one client's open-loop arrival times.
pub struct ArrivalProcess {
    kind: ArrivalKind,
    rate: RateSchedule,
    rate_max: f64,
    end: SimTime,
}

impl ArrivalProcess {
    /// Arrivals from `rate` until `end` (exclusive).
    pub fn new(kind: ArrivalKind, rate: RateSchedule, end: SimTime) -> Self {
        let rate_max = rate.rate_max();
        ArrivalProcess {
            kind,
            rate,
            rate_max,
            end,
        }
    }

    /// The first arrival after `now`, or `None` if there is none before the end.
    pub fn next_after(&self, now: SimTime, rng: &mut SimRng) -> Option<SimTime> {
        if self.rate_max <= 0.0 {
            return None;
        }
        match self.kind {
            ArrivalKind::Poisson => {
                // Thinning (Lewis and Shedler): candidates at the peak rate,
                // each kept with probability rate(t) / peak.
                let mut at = now;
                loop {
                    let gap_seconds = -(1.0 - rng.unit()).ln() / self.rate_max;
                    at = at
                        + SimDuration((gap_seconds * MICROS_PER_SECOND_F64).round().max(1.0) as u64);
                    if at >= self.end {
                        return None;
                    }
                    if rng.unit() * self.rate_max < self.rate.rate_at(at) {
                        return Some(at);
                    }
                }
            }
            ArrivalKind::Uniform => {
                // Evenly spaced at the current rate; where the rate is zero,
                // step forward in 1 ms increments until it is not.
                let mut at = now;
                loop {
                    let rate = self.rate.rate_at(at);
                    if rate > 0.0 {
                        let gap =
                            SimDuration(((MICROS_PER_SECOND_F64 / rate).round() as u64).max(1));
                        at = at + gap;
                        return (at < self.end).then_some(at);
                    }
                    at = at + SimDuration::from_ms(1);
                    if at >= self.end {
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::scenario::raw::RateStep;

    fn count(process: &ArrivalProcess, seed: u64) -> u64 {
        let mut rng = RngFactory::new(seed).stream("a");
        let mut at = SimTime::ZERO;
        let mut arrivals = 0;
        while let Some(next) = process.next_after(at, &mut rng) {
            at = next;
            arrivals += 1;
        }
        arrivals
    }

    #[test]
    fn poisson_counts_match_the_rate_integral() {
        let rate = RateSchedule::Ramp {
            start_ms: 10_000,
            end_ms: 50_000,
            from_rps: 100.0,
            to_rps: 900.0,
        };
        let end = SimTime::from_ms(60_000);
        let expected = rate.requests_between(SimTime::ZERO, end);
        assert!((expected - 30_000.0).abs() < 1.0, "integral {expected}");
        let got = count(&ArrivalProcess::new(ArrivalKind::Poisson, rate, end), 9) as f64;
        assert!(
            (got - expected).abs() / expected < 0.02,
            "{got} vs {expected}"
        );
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced_and_respect_zero_rate_steps() {
        let rate = RateSchedule::Steps {
            steps: vec![
                RateStep {
                    at_ms: 1_000,
                    rps: 10.0,
                },
                RateStep {
                    at_ms: 2_000,
                    rps: 0.0,
                },
            ],
        };
        let process = ArrivalProcess::new(ArrivalKind::Uniform, rate, SimTime::from_ms(5_000));
        assert_eq!(count(&process, 1), 10);
    }
}
