//! Open-loop arrival times from a rate schedule, sampled piecewise.
//!
//! A schedule is cut into segments on which the rate is constant or linear
//! (`RateSchedule::segments`; zero-rate stretches are left out). Arrivals are
//! the instants where the integrated rate `Λ(t)` reaches successive targets:
//! for a Poisson process the targets are sums of exponential draws (mean 1),
//! which is exactly a non-homogeneous Poisson process by time change; for
//! uniform arrivals they are `1, 2, 3, ...`, so the first arrival is one gap
//! after 0 and there are exactly `⌈Λ(end)⌉ − 1` arrivals before `end`.
//!
//! Within a segment the instant of a target is solved for directly:
//! `Λ / rate` on a constant segment, the root of
//! `rate × t + slope × t² / 2 = Λ` on a linear one. A target beyond a
//! segment's integral carries its remainder into the next segment, so a
//! zero-rate stretch costs nothing and the work of a whole run is one step
//! per arrival plus one per segment (`ArrivalProcess::iterations`), however
//! long the schedule and however high its peak.
//!
//! ## Why not thinning, and why not microsecond gaps
//!
//! Thinning against the peak rate draws candidates at the peak everywhere:
//! a 30-day schedule whose only traffic is a 1 ms spike to 10,000,000/s
//! drew 2.6 × 10¹³ candidates for 10,000 arrivals. And whole-microsecond
//! gaps cap every rate at 1,000,000/s and distort rates above about
//! 100,000/s. Here the process keeps its own position (the integrated rate
//! within the current segment, a float) far below a microsecond, and each
//! arrival is scheduled at the microsecond it falls in (`⌊t⌋`): several
//! arrivals may share a microsecond and fire in the order they were drawn,
//! so every allowed rate is exact while `SimTime` stays integer.

use crate::engine::{SimRng, SimTime};
use crate::scenario::{ArrivalKind, RateSchedule};

/// Nanoseconds per second, for segment arithmetic.
const NANOS_PER_SECOND_F64: f64 = 1_000_000_000.0;
/// Nanoseconds per millisecond (schedule boundaries are whole milliseconds).
const NANOS_PER_MS: u64 = 1_000_000;
/// Nanoseconds per microsecond (one `SimTime` tick).
const NANOS_PER_MICRO: u64 = 1_000;

/// One piece of a rate schedule: the rate runs in a straight line from
/// `from_rps` at `start_ns` to `to_rps` at `end_ns` (equal for a constant
/// piece). Times are nanoseconds since the run began.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSegment {
    /// Where the piece starts, inclusive.
    pub start_ns: u64,
    /// Where it ends, exclusive; after `start_ns`.
    pub end_ns: u64,
    /// The rate at `start_ns`, requests per second.
    pub from_rps: f64,
    /// The rate approached at `end_ns`, requests per second.
    pub to_rps: f64,
}

impl RateSegment {
    fn length_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }

    /// The expected number of arrivals in the piece: the rate's integral,
    /// exact for a straight line (the trapezoid).
    pub fn requests(&self) -> f64 {
        // Multiplying before dividing keeps whole counts whole
        // (10,000,000/s for 1,000,000 ns is exactly 10,000).
        let length_ns = self.length_ns() as f64;
        if self.from_rps == self.to_rps {
            self.from_rps * length_ns / NANOS_PER_SECOND_F64
        } else {
            (self.from_rps + self.to_rps) * length_ns / (2.0 * NANOS_PER_SECOND_F64)
        }
    }

    /// The expected number of arrivals in `[start_ns, start_ns + offset_ns)`.
    fn requests_before(&self, offset_ns: u64) -> f64 {
        let offset_ns = offset_ns.min(self.length_ns());
        let seconds = offset_ns as f64 / NANOS_PER_SECOND_F64;
        let rate_there = self.from_rps
            + (self.to_rps - self.from_rps) * (offset_ns as f64 / self.length_ns() as f64);
        (self.from_rps + rate_there) / 2.0 * seconds
    }

    /// The offset in nanoseconds (with fractions) from `start_ns` at which the
    /// integral reaches `amount`, for `0 <= amount <= requests()`.
    fn offset_ns_for(&self, amount: f64) -> f64 {
        if amount <= 0.0 {
            return 0.0;
        }
        if self.from_rps == self.to_rps {
            // Multiplying first keeps exact quotients exact (10000 arrivals at
            // 10,000,000/s end at exactly 1,000,000 ns).
            return amount * NANOS_PER_SECOND_F64 / self.from_rps;
        }
        // rate(t) = a + slope × t (t in seconds), so Λ(t) = a t + slope t² / 2.
        // The root in the stable form 2Λ / (a + √(a² + 2 slope Λ)), which
        // has no cancellation for either sign of the slope; the discriminant
        // is at least to_rps² >= 0 for amount <= requests(), up to rounding.
        let seconds = self.length_ns() as f64 / NANOS_PER_SECOND_F64;
        let a = self.from_rps;
        let slope = (self.to_rps - self.from_rps) / seconds;
        let discriminant = (a * a + 2.0 * slope * amount).max(0.0);
        let denominator = a + discriminant.sqrt();
        if denominator <= 0.0 {
            return 0.0;
        }
        2.0 * amount / denominator * NANOS_PER_SECOND_F64
    }
}

/// Appends the piece `[start_ns, end_ns)` going from `from_rps` to `to_rps`,
/// cut at `limit_ns`; zero-rate and empty pieces are left out.
fn push_segment(
    segments: &mut Vec<RateSegment>,
    (start_ns, end_ns): (u64, u64),
    (from_rps, to_rps): (f64, f64),
    limit_ns: u64,
) {
    let cut_ns = end_ns.min(limit_ns);
    if cut_ns <= start_ns || (from_rps <= 0.0 && to_rps <= 0.0) {
        return;
    }
    let to_rps = if cut_ns == end_ns || from_rps == to_rps {
        to_rps
    } else {
        let fraction = (cut_ns - start_ns) as f64 / (end_ns - start_ns) as f64;
        from_rps + (to_rps - from_rps) * fraction
    };
    segments.push(RateSegment {
        start_ns,
        end_ns: cut_ns,
        from_rps,
        to_rps,
    });
}

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

    /// The schedule on `[0, end)` as constant and linear pieces in time
    /// order, zero-rate stretches left out. There are at most as many pieces
    /// as the schedule has steps, plus two.
    pub fn segments(&self, end: SimTime) -> Vec<RateSegment> {
        let limit_ns = end.as_micros().saturating_mul(NANOS_PER_MICRO);
        let ns = |ms: u64| ms.saturating_mul(NANOS_PER_MS);
        let mut segments = Vec::new();
        match self {
            RateSchedule::Constant { rps } => {
                push_segment(&mut segments, (0, limit_ns), (*rps, *rps), limit_ns);
            }
            RateSchedule::Steps { steps } => {
                // Validation keeps `at_ms` strictly increasing; before the
                // first step the rate is zero.
                for (index, step) in steps.iter().enumerate() {
                    let next_ns = steps.get(index + 1).map_or(limit_ns, |next| ns(next.at_ms));
                    push_segment(
                        &mut segments,
                        (ns(step.at_ms), next_ns),
                        (step.rps, step.rps),
                        limit_ns,
                    );
                }
            }
            RateSchedule::Ramp {
                start_ms,
                end_ms,
                from_rps,
                to_rps,
            } => {
                let (start_ns, end_ns) = (ns(*start_ms), ns(*end_ms));
                push_segment(
                    &mut segments,
                    (0, start_ns),
                    (*from_rps, *from_rps),
                    limit_ns,
                );
                push_segment(
                    &mut segments,
                    (start_ns, end_ns),
                    (*from_rps, *to_rps),
                    limit_ns,
                );
                push_segment(
                    &mut segments,
                    (end_ns, limit_ns),
                    (*to_rps, *to_rps),
                    limit_ns,
                );
            }
            RateSchedule::Spike {
                base_rps,
                spike_rps,
                start_ms,
                end_ms,
            } => {
                let (start_ns, end_ns) = (ns(*start_ms), ns(*end_ms));
                push_segment(
                    &mut segments,
                    (0, start_ns),
                    (*base_rps, *base_rps),
                    limit_ns,
                );
                push_segment(
                    &mut segments,
                    (start_ns, end_ns),
                    (*spike_rps, *spike_rps),
                    limit_ns,
                );
                push_segment(
                    &mut segments,
                    (end_ns, limit_ns),
                    (*base_rps, *base_rps),
                    limit_ns,
                );
            }
        }
        debug_assert!(segments
            .windows(2)
            .all(|pair| pair[0].end_ns <= pair[1].start_ns));
        segments
    }

    /// The expected number of requests in `[from, to)`: the rate's integral,
    /// exact for these piecewise-linear schedules (up to float rounding).
    pub fn requests_between(&self, from: SimTime, to: SimTime) -> f64 {
        if to <= from {
            return 0.0;
        }
        let from_ns = from.as_micros().saturating_mul(NANOS_PER_MICRO);
        self.segments(to)
            .iter()
            .filter(|segment| segment.end_ns > from_ns)
            .map(|segment| {
                let skipped = from_ns.saturating_sub(segment.start_ns);
                segment.requests() - segment.requests_before(skipped)
            })
            .sum()
    }
}

/// Generates one client's open-loop arrival times, in order.
pub struct ArrivalProcess {
    kind: ArrivalKind,
    segments: Vec<RateSegment>,
    /// The segment the last arrival fell in (`segments.len()` once done).
    index: usize,
    /// The integrated rate from that segment's start to the last arrival.
    consumed: f64,
    end: SimTime,
    iterations: u64,
}

impl ArrivalProcess {
    /// Arrivals from `rate` in `[0, end)`.
    pub fn new(kind: ArrivalKind, rate: &RateSchedule, end: SimTime) -> Self {
        ArrivalProcess {
            kind,
            segments: rate.segments(end),
            index: 0,
            consumed: 0.0,
            end,
            iterations: 0,
        }
    }

    /// The next arrival (at or after the previous one), or `None` once there
    /// are no more before the end. Several arrivals may fall in one
    /// microsecond; `None` is final.
    pub fn next(&mut self, rng: &mut SimRng) -> Option<SimTime> {
        if self.index >= self.segments.len() {
            return None;
        }
        let step = match self.kind {
            // An exponential draw with mean 1; `1 - unit` is in (0, 1].
            ArrivalKind::Poisson => -(1.0 - rng.unit()).ln(),
            ArrivalKind::Uniform => 1.0,
        };
        let mut target = self.consumed + step;
        while let Some(segment) = self.segments.get(self.index) {
            self.iterations += 1;
            let total = segment.requests();
            if target <= total {
                self.consumed = target;
                let offset_ns = (segment.offset_ns_for(target) as u64).min(segment.length_ns());
                let at = SimTime((segment.start_ns + offset_ns) / NANOS_PER_MICRO);
                if at >= self.end {
                    break;
                }
                return Some(at);
            }
            // Past this segment: the remainder of the target carries over.
            target -= total;
            self.index += 1;
            self.consumed = 0.0;
        }
        self.index = self.segments.len();
        None
    }

    /// How many sampling steps the process has taken so far: at most one per
    /// arrival returned plus one per segment plus one, whatever the schedule.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// How many constant or linear pieces the schedule has before the end.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::scenario::raw::RateStep;

    /// Runs `process` to the end: (arrivals, every arrival in order).
    fn drain(process: &mut ArrivalProcess, seed: u64) -> Vec<SimTime> {
        let mut rng = RngFactory::new(seed).stream("a");
        let mut times = Vec::new();
        while let Some(next) = process.next(&mut rng) {
            times.push(next);
        }
        times
    }

    fn count(kind: ArrivalKind, rate: &RateSchedule, end: SimTime, seed: u64) -> u64 {
        drain(&mut ArrivalProcess::new(kind, rate, end), seed).len() as u64
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
        assert!((expected - 30_000.0).abs() < 1e-6, "integral {expected}");
        let got = count(ArrivalKind::Poisson, &rate, end, 9) as f64;
        // Four standard deviations of a Poisson count.
        assert!(
            (got - expected).abs() < 4.0 * expected.sqrt(),
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
        let times = drain(
            &mut ArrivalProcess::new(ArrivalKind::Uniform, &rate, SimTime::from_ms(5_000)),
            1,
        );
        let expected: Vec<SimTime> = (1..=10)
            .map(|n| SimTime::from_ms(1_000 + n * 100))
            .collect();
        assert_eq!(times, expected);
    }

    // A ramp's uniform arrivals sit where the integrated rate crosses each
    // whole number: from 0 to 20/s over 1 s, Λ(t) = 10 t², so n at √(n/10) s.
    #[test]
    fn uniform_arrivals_on_a_ramp_invert_the_integral() {
        let rate = RateSchedule::Ramp {
            start_ms: 0,
            end_ms: 1_000,
            from_rps: 0.0,
            to_rps: 20.0,
        };
        let times = drain(
            &mut ArrivalProcess::new(ArrivalKind::Uniform, &rate, SimTime::from_ms(1_000)),
            1,
        );
        let expected: Vec<SimTime> = (1..10u64)
            .map(|n| SimTime(((n as f64 / 10.0).sqrt() * 1e6).floor() as u64))
            .collect();
        assert_eq!(times, expected);
    }

    // A falling ramp has the same integral as its mirror image, so the same
    // number of uniform arrivals, placed with the other root's form.
    #[test]
    fn uniform_arrivals_on_a_falling_ramp_match_the_integral() {
        let rate = RateSchedule::Ramp {
            start_ms: 0,
            end_ms: 1_000,
            from_rps: 20.0,
            to_rps: 0.0,
        };
        let times = drain(
            &mut ArrivalProcess::new(ArrivalKind::Uniform, &rate, SimTime::from_ms(1_000)),
            1,
        );
        // Λ(t) = 20 t − 10 t², so n at 1 − √(1 − n/10) s; the 10th is at 1 s.
        let expected: Vec<SimTime> = (1..10u64)
            .map(|n| SimTime(((1.0 - (1.0 - n as f64 / 10.0).sqrt()) * 1e6).floor() as u64))
            .collect();
        assert_eq!(times.len(), expected.len());
        for (got, want) in times.iter().zip(&expected) {
            assert!(got.0.abs_diff(want.0) <= 1, "{got:?} vs {want:?}");
        }
    }

    // The segments of each kind of schedule, cut at the end and without
    // zero-rate stretches.
    #[test]
    fn schedules_become_constant_and_linear_pieces() {
        let ms = |value: u64| value * NANOS_PER_MS;
        let spike = RateSchedule::Spike {
            base_rps: 0.0,
            spike_rps: 5.0,
            start_ms: 10,
            end_ms: 20,
        };
        assert_eq!(
            spike.segments(SimTime::from_ms(100)),
            vec![RateSegment {
                start_ns: ms(10),
                end_ns: ms(20),
                from_rps: 5.0,
                to_rps: 5.0
            }]
        );
        let ramp = RateSchedule::Ramp {
            start_ms: 10,
            end_ms: 30,
            from_rps: 10.0,
            to_rps: 30.0,
        };
        assert_eq!(
            ramp.segments(SimTime::from_ms(20)),
            vec![
                RateSegment {
                    start_ns: 0,
                    end_ns: ms(10),
                    from_rps: 10.0,
                    to_rps: 10.0
                },
                RateSegment {
                    start_ns: ms(10),
                    end_ns: ms(20),
                    from_rps: 10.0,
                    to_rps: 20.0
                },
            ]
        );
        let steps = RateSchedule::Steps {
            steps: vec![
                RateStep { at_ms: 0, rps: 1.0 },
                RateStep { at_ms: 5, rps: 0.0 },
                RateStep { at_ms: 7, rps: 2.0 },
                RateStep {
                    at_ms: 500,
                    rps: 3.0,
                },
            ],
        };
        assert_eq!(
            steps.segments(SimTime::from_ms(9)),
            vec![
                RateSegment {
                    start_ns: 0,
                    end_ns: ms(5),
                    from_rps: 1.0,
                    to_rps: 1.0
                },
                RateSegment {
                    start_ns: ms(7),
                    end_ns: ms(9),
                    from_rps: 2.0,
                    to_rps: 2.0
                },
            ]
        );
    }

    // The integral is exact, also for a 1 ms spike at the end of 30 days
    // that a sampled integral would miss.
    #[test]
    fn requests_between_is_the_exact_integral() {
        let day_ms = 86_400_000;
        let rate = RateSchedule::Spike {
            base_rps: 0.0,
            spike_rps: 10_000_000.0,
            start_ms: 30 * day_ms - 1,
            end_ms: 30 * day_ms,
        };
        let end = SimTime::from_ms(30 * day_ms);
        assert_eq!(rate.requests_between(SimTime::ZERO, end), 10_000.0);
        assert_eq!(
            rate.requests_between(SimTime::from_ms(day_ms), end),
            10_000.0
        );
        let ramp = RateSchedule::Ramp {
            start_ms: 0,
            end_ms: 1_000,
            from_rps: 0.0,
            to_rps: 100.0,
        };
        let half = ramp.requests_between(SimTime::from_ms(500), SimTime::from_ms(1_000));
        assert!((half - 37.5).abs() < 1e-9, "{half}");
    }

    /// Every rate, from the smallest to the validation maximum, achieves its
    /// expected count: exactly for uniform arrivals (`⌈Λ⌉ − 1` before the
    /// end), within five standard deviations for Poisson ones.
    #[test]
    fn every_allowed_rate_is_exact() {
        let rps_max = crate::scenario::RPS_MAX;
        let mut rps = 0.5;
        let mut checked = 0;
        while rps <= rps_max {
            // Long enough for about 100,000 arrivals (at least 1 ms, at most 200 s).
            let duration_ms = ((100_000.0 / rps * 1_000.0) as u64).clamp(1, 200_000);
            let end = SimTime::from_ms(duration_ms);
            let rate = RateSchedule::Constant { rps };
            let expected = rps * duration_ms as f64 / 1_000.0;
            let integral = rate.requests_between(SimTime::ZERO, end);
            assert!(
                (integral - expected).abs() <= 1e-9 * expected,
                "{integral} vs {expected}"
            );
            let uniform = count(ArrivalKind::Uniform, &rate, end, 1);
            assert_eq!(
                uniform as f64,
                expected.ceil() - 1.0,
                "uniform at {rps}/s over {duration_ms} ms"
            );
            let poisson = count(ArrivalKind::Poisson, &rate, end, rps as u64) as f64;
            assert!(
                (poisson - expected).abs() <= 5.0 * expected.sqrt(),
                "poisson at {rps}/s over {duration_ms} ms: {poisson} vs {expected}"
            );
            checked += 1;
            rps *= 3.0;
        }
        // And the maximum itself, which a power of three does not hit.
        let end = SimTime::from_ms(10);
        let rate = RateSchedule::Constant { rps: rps_max };
        assert_eq!(count(ArrivalKind::Uniform, &rate, end, 1), 99_999);
        let poisson = count(ArrivalKind::Poisson, &rate, end, 2) as f64;
        assert!(
            (poisson - 100_000.0).abs() <= 5.0 * 100_000f64.sqrt(),
            "{poisson}"
        );
        assert!(checked >= 15);
    }

    // At 10,000,000/s the process puts ten arrivals in each microsecond,
    // in order: the rate is not capped at one per microsecond.
    #[test]
    fn several_arrivals_share_a_microsecond_at_high_rates() {
        let rate = RateSchedule::Constant { rps: 10_000_000.0 };
        let times = drain(
            &mut ArrivalProcess::new(ArrivalKind::Uniform, &rate, SimTime(3)),
            1,
        );
        let mut expected = vec![SimTime(0); 9];
        expected.extend(vec![SimTime(1); 10]);
        expected.extend(vec![SimTime(2); 10]);
        assert_eq!(times, expected);
    }

    // The regression of issue 6: a 30-day schedule whose only traffic is a
    // 1 ms spike to 10,000,000/s at the very end took about 2.6 × 10¹³
    // thinning steps; now the work is its arrivals plus its segments.
    #[test]
    fn regression_spike_at_the_end_of_30_days_costs_its_arrivals_only() {
        let day_ms = 86_400_000;
        let rate = RateSchedule::Spike {
            base_rps: 0.0,
            spike_rps: 10_000_000.0,
            start_ms: 30 * day_ms - 1,
            end_ms: 30 * day_ms,
        };
        let end = SimTime::from_ms(30 * day_ms);
        for kind in [ArrivalKind::Poisson, ArrivalKind::Uniform] {
            let mut process = ArrivalProcess::new(kind, &rate, end);
            let times = drain(&mut process, 7);
            assert!(
                times.len() > 9_000 && times.len() < 11_000,
                "{}",
                times.len()
            );
            assert!(times
                .iter()
                .all(|at| *at >= SimTime::from_ms(30 * day_ms - 1)));
            assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
            assert_eq!(process.segment_count(), 1);
            assert!(
                process.iterations() <= times.len() as u64 + process.segment_count() as u64 + 1,
                "{} iterations for {} arrivals",
                process.iterations(),
                times.len()
            );
        }
    }

    // The regression of issue 6: uniform arrivals stepped through zero-rate
    // stretches 1 ms at a time (2.6 × 10⁹ steps for 30 days); now a zero
    // schedule has no segments and ends at once.
    #[test]
    fn regression_zero_rate_for_30_days_takes_no_steps() {
        let end = SimTime::from_ms(30 * 86_400_000);
        let rate = RateSchedule::Steps {
            steps: vec![RateStep { at_ms: 0, rps: 0.0 }],
        };
        let mut process = ArrivalProcess::new(ArrivalKind::Uniform, &rate, end);
        assert_eq!(drain(&mut process, 1), Vec::<SimTime>::new());
        assert_eq!(process.iterations(), 0);
        // Many steps, mostly at zero: one iteration per arrival and segment.
        let steps: Vec<RateStep> = (0..1_000)
            .map(|index| RateStep {
                at_ms: index * 86_400,
                rps: if index % 100 == 0 { 0.001 } else { 0.0 },
            })
            .collect();
        let rate = RateSchedule::Steps { steps };
        for kind in [ArrivalKind::Poisson, ArrivalKind::Uniform] {
            let mut process = ArrivalProcess::new(kind, &rate, end);
            let arrivals = drain(&mut process, 3).len() as u64;
            assert_eq!(process.segment_count(), 10);
            assert!(process.iterations() <= arrivals + 10 + 1);
        }
    }

    proptest::proptest! {
        // The work bound holds for any schedule: iterations <= arrivals +
        // segments + 1, and arrivals never go back in time.
        #[test]
        fn work_is_arrivals_plus_segments(
            raw_steps in proptest::collection::vec((1u64..5_000, 0.0f64..500.0, proptest::bool::ANY), 1..20),
            ramp in (0u64..5_000, 1u64..5_000, 0.0f64..5_000.0, 0.0f64..5_000.0),
            seed in 0u64..1_000,
            uniform in proptest::bool::ANY,
        ) {
            let kind = if uniform { ArrivalKind::Uniform } else { ArrivalKind::Poisson };
            let mut at_ms = 0;
            let steps: Vec<RateStep> = raw_steps
                .iter()
                .map(|&(gap_ms, rps, zero)| {
                    at_ms += gap_ms;
                    RateStep { at_ms, rps: if zero { 0.0 } else { rps } }
                })
                .collect();
            let (start_ms, length_ms, from_rps, to_rps) = ramp;
            let schedules = [
                RateSchedule::Steps { steps },
                RateSchedule::Ramp { start_ms, end_ms: start_ms + length_ms, from_rps, to_rps },
            ];
            for rate in &schedules {
                let end = SimTime::from_ms(20_000);
                let mut process = ArrivalProcess::new(kind, rate, end);
                let times = drain(&mut process, seed);
                proptest::prop_assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
                proptest::prop_assert!(times.iter().all(|at| *at < end));
                proptest::prop_assert!(
                    process.iterations() <= times.len() as u64 + process.segment_count() as u64 + 1
                );
                if uniform {
                    // Exact up to float rounding at an integral Λ.
                    let expected = rate.requests_between(SimTime::ZERO, end);
                    let got = times.len() as f64;
                    proptest::prop_assert!(
                        got >= expected.ceil() - 2.0 && got <= expected.ceil(),
                        "{} arrivals for an integral of {}", got, expected
                    );
                }
            }
        }
    }
}
