//! Virtual time. One tick is one microsecond; nothing here reads a wall clock.
//!
//! Instants (`SimTime`) and lengths (`SimDuration`) are separate types so that
//! adding two instants is a compile error. Arithmetic saturates: virtual time
//! never wraps, and the engine's limits stop a run long before `u64::MAX`.

use serde::Serialize;
use std::fmt;
use std::ops::{Add, Sub};

/// Microseconds per millisecond.
pub const MICROS_PER_MS: u64 = 1_000;
/// Microseconds per second.
pub const MICROS_PER_SECOND: u64 = 1_000_000;
/// Microseconds per second, as a float for rate arithmetic.
pub const MICROS_PER_SECOND_F64: f64 = 1_000_000.0;

/// An instant on the virtual timeline, in microseconds since the run began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SimTime(pub u64);

/// A length of virtual time, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SimDuration(pub u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);

    /// The instant `ms` milliseconds after the start.
    pub const fn from_ms(ms: u64) -> SimTime {
        SimTime(ms.saturating_mul(MICROS_PER_MS))
    }

    /// Microseconds since the start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the start, as a float for reporting only.
    pub fn as_ms_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_MS as f64
    }

    /// Seconds since the start, as a float for reporting only.
    pub fn as_seconds_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_SECOND as f64
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

/// 2^53: below it every integer is an `f64`, and every `f64` with a
/// fraction has its whole part and its fraction exact.
const EXACT_INTEGERS_MAX: f64 = 9_007_199_254_740_992.0;

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);

    /// `ms` whole milliseconds.
    pub const fn from_ms(ms: u64) -> SimDuration {
        SimDuration(ms.saturating_mul(MICROS_PER_MS))
    }

    /// A duration from fractional milliseconds, rounded to the nearest
    /// microsecond. Negative and NaN inputs give zero; validation rejects them
    /// before they get here.
    pub fn from_ms_f64(ms: f64) -> SimDuration {
        let micros = ms * MICROS_PER_MS as f64;
        if micros > 0.0 && micros < EXACT_INTEGERS_MAX {
            // What `round` gives (half away from zero), without its library
            // call: below 2^53 the truncation and the rest `micros - whole`
            // are exact, so the rest says which way to round. Through `i64`,
            // the same values in range: x86-64 converts between floats and
            // signed integers in one instruction, and takes several for
            // unsigned ones.
            let whole = micros as i64;
            let rest = micros - whole as f64;
            return SimDuration(whole as u64 + u64::from(rest >= 0.5));
        }
        // `as` saturates: NaN and negatives give 0, beyond `u64` its largest.
        SimDuration(micros.round() as u64)
    }

    /// Microseconds in this duration.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds, as a float for reporting and policy arithmetic.
    pub fn as_ms_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_MS as f64
    }

    /// `self * factor`, saturating.
    pub fn saturating_mul(self, factor: u64) -> SimDuration {
        SimDuration(self.0.saturating_mul(factor))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, rhs: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(rhs.0))
    }
}

impl Sub for SimDuration {
    type Output = SimDuration;
    fn sub(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_seconds_f64())
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.as_ms_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_milliseconds_round_to_microseconds() {
        assert_eq!(SimDuration::from_ms_f64(1.2345), SimDuration(1_235));
        assert_eq!(SimDuration::from_ms_f64(-3.0), SimDuration::ZERO);
        assert_eq!(SimDuration::from_ms_f64(f64::NAN), SimDuration::ZERO);
        assert_eq!(
            SimDuration::from_ms_f64(f64::INFINITY),
            SimDuration(u64::MAX)
        );
    }

    /// `round`, then the saturating cast: what the fast path must match.
    fn by_round(ms: f64) -> SimDuration {
        SimDuration((ms * MICROS_PER_MS as f64).round() as u64)
    }

    #[test]
    fn halves_round_away_from_zero_like_round() {
        let below_half = 0.5 - f64::EPSILON / 4.0;
        for micros in [
            0.5,
            below_half,
            1.5,
            2.5,
            1.0 - f64::EPSILON / 2.0,
            4_503_599_627_370_495.5,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            f64::MIN_POSITIVE,
            1e300,
        ] {
            let ms = micros / 1_000.0;
            assert_eq!(SimDuration::from_ms_f64(ms), by_round(ms), "{micros}");
        }
        assert_eq!(SimDuration::from_ms_f64(0.0025), SimDuration(3));
        assert_eq!(
            SimDuration::from_ms_f64(below_half / 1_000.0),
            SimDuration(0)
        );
    }

    proptest::proptest! {
        #[test]
        fn rounds_exactly_as_round(bits in proptest::prelude::any::<u64>(), ms in 0.0..1e12f64) {
            let any = f64::from_bits(bits);
            proptest::prop_assert_eq!(SimDuration::from_ms_f64(any), by_round(any));
            proptest::prop_assert_eq!(SimDuration::from_ms_f64(ms), by_round(ms));
        }

        #[test]
        fn rounds_halves_as_round(whole in 0u64..1 << 52, scale in 0u32..4) {
            // Halves up to 2^52 microseconds (`scale` 1: at or next to a tie
            // once multiplied back; the others, other fractions).
            let ms = (whole as f64 + 0.5) / 1_000f64.powi(scale as i32);
            proptest::prop_assert_eq!(SimDuration::from_ms_f64(ms), by_round(ms));
        }
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(SimTime(u64::MAX) + SimDuration(5), SimTime(u64::MAX));
        assert_eq!(SimTime(3).saturating_since(SimTime(10)), SimDuration::ZERO);
        assert_eq!(SimDuration(3) - SimDuration(10), SimDuration::ZERO);
    }
}
