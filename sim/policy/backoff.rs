//! Backoff schedules: how long a retry waits before the next attempt.
//!
//! `fixed` is the chapter's simple retry (a constant delay, 1000 ms in the
//! chapter). `exponential` is `initial_ms * factor^(n-1)`, capped at `max_ms`,
//! then jittered:
//!
//! | jitter | delay for retry n, with d = the capped exponential |
//! |---|---|
//! | `none` | `d` (every client that failed together retries together) |
//! | `full` | uniform in `[0, d]` (AWS "full jitter") |
//! | `equal` | `d/2 + uniform[0, d/2]`, the chapter's `delay * (0.5 + random * 0.5)` in microseconds, not floored |
//! | `decorrelated` | `min(max, uniform[initial, 3 * previous])` (AWS "decorrelated jitter") |
//!
//! `chapter` is the chapter's `ExponentialBackoff.calculateDelay`, decision
//! for decision: `Math.floor(min(initial * factor^(n-1), max) * (0.5 +
//! Math.random() * 0.5))` with jitter (its default), `Math.floor(min(...))`
//! without, in **whole milliseconds**. With `b` the capped delay in whole
//! milliseconds, a jittered delay lies in `[floor(b/2), b - 1]` and never
//! equals `b` (nor the cap), unlike `equal`, which keeps microseconds and can
//! reach `d`. `Math.random()` is V8's: 52 random bits, so at most `1 -
//! 2^-52`, which keeps the product below `b`.

use crate::engine::{SimDuration, SimRng};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// The longest delay a backoff may be configured with: one hour.
pub const DELAY_MS_MAX: f64 = 3_600_000.0;

/// How retries are spread out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// No randomness.
    #[default]
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// `d/2` plus uniform in `[0, d/2]`.
    Equal,
    /// Uniform in `[initial, 3 * previous]`, capped.
    Decorrelated,
}

/// A backoff schedule. JSON: `{"kind": "fixed", "delay_ms": 1000}` or
/// `{"kind": "exponential", "initial_ms": 100, "factor": 2, "max_ms": 10000, "jitter": "full"}`.
///
/// ```
/// use sim::engine::{RngFactory, SimDuration};
/// use sim::policy::backoff::{Backoff, Jitter};
///
/// let mut rng = RngFactory::new(42).stream("backoff");
/// let plain = Backoff::Exponential { initial_ms: 100.0, factor: 2.0, max_ms: 1_000.0, jitter: Jitter::None };
/// let delays_ms: Vec<u64> = (1..=5)
///     .map(|retry| plain.delay(retry, SimDuration::ZERO, &mut rng).as_micros() / 1_000)
///     .collect();
/// assert_eq!(delays_ms, [100, 200, 400, 800, 1_000]);
///
/// // Full jitter draws from [0, capped delay], from the seeded stream only.
/// let full = Backoff::Exponential { initial_ms: 100.0, factor: 2.0, max_ms: 1_000.0, jitter: Jitter::Full };
/// let (floor, ceiling) = full.bounds(3);
/// let delay = full.delay(3, SimDuration::ZERO, &mut rng);
/// assert!(floor <= delay && delay <= ceiling && ceiling == SimDuration::from_ms(400));
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// The delay, in `[0, 3600000]`.
        delay_ms: f64,
    },
    /// Exponentially growing delays.
    Exponential {
        /// The first delay, in `(0, 3600000]`.
        initial_ms: f64,
        /// The growth factor, in `[1, 100]`; default 2.
        #[serde(default = "factor_default")]
        factor: f64,
        /// The cap, in `[initial_ms, 3600000]`; default 30000 (the chapter's).
        #[serde(default = "max_default")]
        max_ms: f64,
        /// The jitter mode; default `none`.
        #[serde(default)]
        jitter: Jitter,
    },
    /// The chapter's `ExponentialBackoff.calculateDelay`: whole milliseconds,
    /// floored (see the module doc).
    Chapter {
        /// The first delay (`initialDelay`), in `(0, 3600000]`; default 1000.
        #[serde(default = "chapter_initial_default")]
        initial_ms: f64,
        /// The growth factor (`factor`), in `[1, 100]`; default 2.
        #[serde(default = "factor_default")]
        factor: f64,
        /// The cap (`maxDelay`), in `[initial_ms, 3600000]`; default 30000.
        #[serde(default = "max_default")]
        max_ms: f64,
        /// Whether to jitter (`jitter`); default `true`, as in the chapter.
        #[serde(default = "chapter_jitter_default")]
        jitter: bool,
    },
}

fn chapter_initial_default() -> f64 {
    1_000.0
}

fn chapter_jitter_default() -> bool {
    true
}

fn factor_default() -> f64 {
    2.0
}

fn max_default() -> f64 {
    30_000.0
}

impl Default for Backoff {
    /// The chapter's `ExponentialBackoff` defaults without jitter.
    fn default() -> Self {
        Backoff::Exponential {
            initial_ms: 1_000.0,
            factor: 2.0,
            max_ms: 30_000.0,
            jitter: Jitter::None,
        }
    }
}

impl Backoff {
    /// Checks the parameters; `path` names this backoff in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            Backoff::Fixed { delay_ms } => {
                check::within_f64(&join(path, "delay_ms"), *delay_ms, 0.0, DELAY_MS_MAX)
            }
            Backoff::Exponential {
                initial_ms,
                factor,
                max_ms,
                ..
            }
            | Backoff::Chapter {
                initial_ms,
                factor,
                max_ms,
                ..
            } => {
                check::positive(&join(path, "initial_ms"), *initial_ms)?;
                check::within_f64(&join(path, "initial_ms"), *initial_ms, 0.0, DELAY_MS_MAX)?;
                check::within_f64(&join(path, "factor"), *factor, 1.0, 100.0)?;
                check::within_f64(&join(path, "max_ms"), *max_ms, *initial_ms, DELAY_MS_MAX)
            }
        }
    }

    /// The delay before retry number `retry` (1 for the first retry, after the
    /// first failed attempt). `previous` is the delay chosen before this one
    /// (zero before the first retry); only decorrelated jitter reads it.
    pub fn delay(&self, retry: u32, previous: SimDuration, rng: &mut SimRng) -> SimDuration {
        debug_assert!(retry >= 1);
        match *self {
            Backoff::Fixed { delay_ms } => SimDuration::from_ms_f64(delay_ms),
            Backoff::Exponential {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let initial = SimDuration::from_ms_f64(initial_ms);
                let cap = SimDuration::from_ms_f64(max_ms);
                // f64 powers saturate to infinity, which `min` then caps.
                let capped = capped_exponential(initial_ms, factor, max_ms, retry);
                let delay = match jitter {
                    Jitter::None => capped,
                    Jitter::Full => SimDuration(rng.between(0, capped.0)),
                    Jitter::Equal => {
                        let half = capped.0 / 2;
                        SimDuration(half + rng.between(0, capped.0 - half))
                    }
                    Jitter::Decorrelated => {
                        let previous = previous.max(initial);
                        SimDuration(rng.between(initial.0, previous.0.saturating_mul(3)))
                    }
                };
                let delay = delay.min(cap);
                debug_assert!(delay <= cap);
                delay
            }
            Backoff::Chapter {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let delay_ms = chapter_capped_ms(initial_ms, factor, max_ms, retry);
                let delay_ms = if jitter {
                    delay_ms * (0.5 + math_random(rng) * 0.5)
                } else {
                    delay_ms
                };
                // `Math.floor`: whole milliseconds. The cap is at most an
                // hour, so the cast is exact.
                let delay = SimDuration::from_ms(delay_ms.floor() as u64);
                debug_assert!(delay <= SimDuration::from_ms_f64(max_ms));
                delay
            }
        }
    }

    /// The smallest and largest delay retry `retry` can get, before jitter
    /// for the lower bound: `(floor, ceiling)`. Used by property tests and
    /// documentation.
    pub fn bounds(&self, retry: u32) -> (SimDuration, SimDuration) {
        match *self {
            Backoff::Fixed { delay_ms } => {
                let delay = SimDuration::from_ms_f64(delay_ms);
                (delay, delay)
            }
            Backoff::Exponential {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let capped = capped_exponential(initial_ms, factor, max_ms, retry);
                let cap = SimDuration::from_ms_f64(max_ms);
                match jitter {
                    Jitter::None => (capped, capped),
                    Jitter::Full => (SimDuration::ZERO, capped),
                    Jitter::Equal => (SimDuration(capped.0 / 2), capped),
                    Jitter::Decorrelated => (SimDuration::from_ms_f64(initial_ms).min(cap), cap),
                }
            }
            Backoff::Chapter {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let capped_ms = chapter_capped_ms(initial_ms, factor, max_ms, retry);
                if jitter {
                    // floor(b/2) up to the last whole millisecond below b.
                    let ceiling_ms = (capped_ms.ceil() - 1.0).max(0.0);
                    (
                        SimDuration::from_ms((capped_ms * 0.5).floor() as u64),
                        SimDuration::from_ms(ceiling_ms as u64),
                    )
                } else {
                    let delay = SimDuration::from_ms(capped_ms.floor() as u64);
                    (delay, delay)
                }
            }
        }
    }
}

/// `Math.min(initialDelay * Math.pow(factor, attempt - 1), maxDelay)`, in
/// fractional milliseconds, as the chapter computes it.
fn chapter_capped_ms(initial_ms: f64, factor: f64, max_ms: f64, retry: u32) -> f64 {
    (initial_ms * factor.powf(f64::from(retry) - 1.0)).min(max_ms)
}

/// V8's `Math.random()`: a uniform float in `[0, 1)` with 52 random bits
/// (multiples of 2^-52), so at most `1 - 2^-52`.
fn math_random(rng: &mut SimRng) -> f64 {
    use rand::RngCore;
    (rng.raw().next_u64() >> 12) as f64 * f64::powi(2.0, -52)
}

/// `initial_ms * factor^(retry - 1)`, capped at `max_ms`. The f64 power
/// saturates to infinity, which the cap then bounds.
fn capped_exponential(initial_ms: f64, factor: f64, max_ms: f64, retry: u32) -> SimDuration {
    let exponent = i32::try_from(retry - 1).unwrap_or(i32::MAX);
    SimDuration::from_ms_f64((initial_ms * factor.powi(exponent)).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use proptest::prelude::*;

    fn exponential(jitter: Jitter) -> Backoff {
        Backoff::Exponential {
            initial_ms: 100.0,
            factor: 2.0,
            max_ms: 1_000.0,
            jitter,
        }
    }

    #[test]
    fn exponential_without_jitter_doubles_then_caps() {
        let mut rng = RngFactory::new(1).stream("b");
        let delays: Vec<u64> = (1..=6)
            .map(|retry| {
                exponential(Jitter::None)
                    .delay(retry, SimDuration::ZERO, &mut rng)
                    .0
                    / 1_000
            })
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn huge_retry_numbers_saturate_at_the_cap() {
        let mut rng = RngFactory::new(1).stream("b");
        let delay = exponential(Jitter::None).delay(u32::MAX, SimDuration::ZERO, &mut rng);
        assert_eq!(delay, SimDuration::from_ms(1_000));
    }

    #[test]
    fn fixed_is_constant() {
        let mut rng = RngFactory::new(1).stream("b");
        let fixed = Backoff::Fixed { delay_ms: 1_000.0 };
        assert_eq!(
            fixed.delay(1, SimDuration::ZERO, &mut rng),
            SimDuration::from_ms(1_000)
        );
        assert_eq!(
            fixed.delay(9, SimDuration::ZERO, &mut rng),
            SimDuration::from_ms(1_000)
        );
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        let mut rng = RngFactory::new(5).stream("b");
        let draws: Vec<u64> = (0..2_000)
            .map(|_| {
                exponential(Jitter::Full)
                    .delay(4, SimDuration::ZERO, &mut rng)
                    .0
            })
            .collect();
        let min = *draws.iter().min().unwrap();
        let max = *draws.iter().max().unwrap();
        assert!(
            min < 20_000,
            "full jitter should reach near 0, min was {min}"
        );
        assert!(
            max > 780_000,
            "full jitter should reach near 800 ms, max was {max}"
        );
    }

    fn any_jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated)
        ]
    }

    fn chapter(initial_ms: f64, max_ms: f64, jitter: bool) -> Backoff {
        Backoff::Chapter {
            initial_ms,
            factor: 2.0,
            max_ms,
            jitter,
        }
    }

    /// The chapter's `calculateDelay`, transliterated line by line, with
    /// `random` standing for `Math.random()`.
    fn chapter_code(
        initial: f64,
        factor: f64,
        max: f64,
        jitter: bool,
        attempt: u32,
        random: f64,
    ) -> f64 {
        let mut delay = initial * factor.powf(f64::from(attempt) - 1.0);
        delay = delay.min(max);
        if jitter {
            delay *= 0.5 + random * 0.5;
        }
        delay.floor()
    }

    // The chapter's defaults parse from `{"kind": "chapter"}`, and without
    // jitter give its comment's schedule: 1s, 2s, 4s, 8s, 16s, then the cap.
    #[test]
    fn chapter_backoff_defaults_are_the_chapters() {
        let backoff: Backoff = serde_json::from_str(r#"{"kind": "chapter"}"#).unwrap();
        assert_eq!(backoff, chapter(1_000.0, 30_000.0, true));
        let mut rng = RngFactory::new(1).stream("b");
        let delays: Vec<u64> = (1..=7)
            .map(|retry| {
                chapter(1_000.0, 30_000.0, false)
                    .delay(retry, SimDuration::ZERO, &mut rng)
                    .0
            })
            .collect();
        let ms = |values: [u64; 7]| values.map(|value| value * 1_000).to_vec();
        assert_eq!(
            delays,
            ms([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000])
        );
    }

    // Issue 6: the chapter floors to whole milliseconds, so a fractional
    // delay loses its fraction and a jittered one never reaches b.
    #[test]
    fn regression_chapter_backoff_floors_to_whole_milliseconds() {
        let mut rng = RngFactory::new(1).stream("b");
        let unjittered = chapter(1.5, 100.0, false);
        assert_eq!(
            unjittered.delay(1, SimDuration::ZERO, &mut rng),
            SimDuration::from_ms(1)
        );
        assert_eq!(
            unjittered.delay(2, SimDuration::ZERO, &mut rng),
            SimDuration::from_ms(3)
        );
        // b = 3 ms: floor(3 * [0.5, 1)) is 1 or 2, never 3.
        let jittered = chapter(3.0, 100.0, true);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1_000 {
            seen.insert(jittered.delay(1, SimDuration::ZERO, &mut rng).0);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1_000, 2_000]);
        assert_eq!(
            jittered.bounds(1),
            (SimDuration::from_ms(1), SimDuration::from_ms(2))
        );
    }

    // At the extreme of Math.random() (1 - 2^-52) the delay is still b - 1,
    // for every whole b up to the largest cap.
    #[test]
    fn chapter_jitter_at_the_largest_random_stays_below_b() {
        let random_max = 1.0 - f64::powi(2.0, -52);
        for b in (1..=3_600_000u64).step_by(997).chain([1 << 20, 3_600_000]) {
            let delay = chapter_code(b as f64, 2.0, 3_600_000.0, true, 1, random_max);
            assert_eq!(delay, (b - 1) as f64, "b = {b}");
        }
    }

    proptest! {
        // The chapter backoff decides as the chapter's code, draw for draw:
        // the same Math.random() values give the same whole milliseconds.
        #[test]
        fn chapter_backoff_decides_as_the_chapter_code(
            initial_ms in 0.001f64..5_000.0,
            factor in 1.0f64..10.0,
            extra_ms in 0.0f64..60_000.0,
            jitter in any::<bool>(),
            retries in 1u32..40,
            seed in any::<u64>(),
        ) {
            let max_ms = initial_ms + extra_ms;
            let backoff = Backoff::Chapter { initial_ms, factor, max_ms, jitter };
            let mut rng = RngFactory::new(seed).stream("b");
            let mut mirror = RngFactory::new(seed).stream("b");
            for retry in 1..=retries {
                let delay = backoff.delay(retry, SimDuration::ZERO, &mut rng);
                let random = if jitter { math_random(&mut mirror) } else { 0.0 };
                let expected = chapter_code(initial_ms, factor, max_ms, jitter, retry, random);
                prop_assert_eq!(delay, SimDuration::from_ms(expected as u64));
                let (floor, ceiling) = backoff.bounds(retry);
                prop_assert!(floor <= delay && delay <= ceiling, "{:?} not in [{:?}, {:?}]", delay, floor, ceiling);
            }
        }
    }

    proptest! {
        // Every delay stays within the floor and ceiling its jitter mode promises,
        // and never above the cap.
        #[test]
        fn delays_stay_within_their_jitter_bounds(
            jitter in any_jitter(),
            initial_ms in 1.0f64..5_000.0,
            factor in 1.0f64..10.0,
            extra_ms in 0.0f64..60_000.0,
            retries in 1u32..40,
            seed in any::<u64>(),
        ) {
            let backoff = Backoff::Exponential { initial_ms, factor, max_ms: initial_ms + extra_ms, jitter };
            let mut rng = RngFactory::new(seed).stream("b");
            let mut previous = SimDuration::ZERO;
            for retry in 1..=retries {
                let delay = backoff.delay(retry, previous, &mut rng);
                let (floor, ceiling) = backoff.bounds(retry);
                prop_assert!(delay >= floor, "retry {}: {:?} < floor {:?}", retry, delay, floor);
                prop_assert!(delay <= ceiling, "retry {}: {:?} > ceiling {:?}", retry, delay, ceiling);
                previous = delay;
            }
        }

        // Without jitter the schedule never decreases.
        #[test]
        fn unjittered_delays_never_decrease(initial_ms in 1.0f64..5_000.0, factor in 1.0f64..10.0) {
            let backoff = Backoff::Exponential { initial_ms, factor, max_ms: 120_000.0, jitter: Jitter::None };
            let mut rng = RngFactory::new(0).stream("b");
            let delays: Vec<SimDuration> = (1..30).map(|n| backoff.delay(n, SimDuration::ZERO, &mut rng)).collect();
            prop_assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
        }
    }
}
