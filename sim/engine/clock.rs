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
        let micros = (ms * MICROS_PER_MS as f64).round();
        if micros.is_nan() || micros <= 0.0 {
            SimDuration::ZERO
        } else if micros >= u64::MAX as f64 {
            SimDuration(u64::MAX)
        } else {
            SimDuration(micros as u64)
        }
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

    #[test]
    fn time_arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(SimTime(u64::MAX) + SimDuration(5), SimTime(u64::MAX));
        assert_eq!(SimTime(3).saturating_since(SimTime(10)), SimDuration::ZERO);
        assert_eq!(SimDuration(3) - SimDuration(10), SimDuration::ZERO);
    }
}
