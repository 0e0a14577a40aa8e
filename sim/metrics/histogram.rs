//! Latency histograms with fixed memory, whatever the number of samples
//! (HdrHistogram: logarithmic buckets, linear sub-buckets).
//!
//! Quantiles come from the buckets and are approximate (to the histogram's
//! significant digits). The mean, the minimum and the maximum are exact:
//! beside the buckets each histogram keeps the exact sum of its samples
//! (integer microseconds in a `u128`, which cannot overflow: 2^64 samples
//! of 2^64 µs fit), the exact smallest and the exact largest sample. A
//! bucketed quantile is clamped to the exact `[min, max]`, so p50 never reads
//! above the largest sample, as the bucket's upper edge would.

use crate::engine::SimDuration;
use hdrhistogram::Histogram;

/// The largest latency tracked exactly: one day in microseconds. Larger
/// values are recorded as this value.
pub const LATENCY_US_MAX: u64 = 86_400_000_000;

/// A latency histogram in microseconds, with exact sum, minimum and maximum.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    buckets: Histogram<u64>,
    /// The exact sum of every sample, in microseconds (not clamped).
    sum_us: u128,
    /// The exact smallest sample, in microseconds; `u64::MAX` when empty.
    min_us: u64,
    /// The exact largest sample, in microseconds; 0 when empty.
    max_us: u64,
}

/// The quantiles reported everywhere: p50, p90, p99, p99.9.
pub const QUANTILES: [f64; 4] = [0.50, 0.90, 0.99, 0.999];

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// A histogram with 3 significant digits (0.1% relative error), for whole-run totals.
    pub fn new() -> Self {
        Self::with_digits(3)
    }

    fn with_digits(digits: u8) -> Self {
        LatencyHistogram {
            buckets: Histogram::new_with_bounds(1, LATENCY_US_MAX, digits)
                .expect("static histogram bounds"),
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    /// A smaller histogram with 2 significant digits (1% relative error), for
    /// windows and per-client totals.
    pub fn new_coarse() -> Self {
        Self::with_digits(2)
    }

    /// Adds one latency. The buckets clamp it to `[1, LATENCY_US_MAX]`; the
    /// exact sum, minimum and maximum take it as it is.
    pub fn record(&mut self, latency: SimDuration) {
        self.buckets
            .saturating_record(latency.0.clamp(1, LATENCY_US_MAX));
        self.sum_us += u128::from(latency.0);
        self.min_us = self.min_us.min(latency.0);
        self.max_us = self.max_us.max(latency.0);
        debug_assert!(self.min_us <= self.max_us);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Forgets every sample, keeping the memory.
    pub fn reset(&mut self) {
        self.buckets.reset();
        self.sum_us = 0;
        self.min_us = u64::MAX;
        self.max_us = 0;
    }

    /// The value at quantile `q` in `[0, 1]`, in microseconds: the bucket's
    /// value (within the significant digits), clamped to the exact
    /// `[min, max]`. 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.buckets
            .value_at_quantile(q)
            .clamp(self.min_us, self.max_us)
    }

    /// p50, p90, p99 and p99.9, in microseconds.
    pub fn percentiles(&self) -> [u64; 4] {
        QUANTILES.map(|q| self.quantile_us(q))
    }

    /// The exact largest sample, in microseconds; 0 when empty.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The exact smallest sample, in microseconds; 0 when empty.
    pub fn min_us(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.min_us
        }
    }

    /// The exact sum of the samples, in microseconds.
    pub fn sum_us(&self) -> u128 {
        self.sum_us
    }

    /// The mean, in microseconds: the exact sum over the count, rounded
    /// once (to the nearest f64); 0 when empty.
    pub fn mean_us(&self) -> f64 {
        match self.len() {
            0 => 0.0,
            count => self.sum_us as f64 / count as f64,
        }
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_precision_promised() {
        let mut histogram = LatencyHistogram::new();
        for micros in 1..=100_000u64 {
            histogram.record(SimDuration(micros));
        }
        let [p50, p90, p99, p999] = histogram.percentiles();
        for (got, want) in [
            (p50, 50_000.0),
            (p90, 90_000.0),
            (p99, 99_000.0),
            (p999, 99_900.0),
        ] {
            assert!((got as f64 - want).abs() / want < 0.001, "{got} vs {want}");
        }
    }

    #[test]
    fn memory_does_not_grow_with_samples() {
        let mut histogram = LatencyHistogram::new_coarse();
        let before = histogram.buckets.distinct_values();
        for micros in 0..1_000_000u64 {
            histogram.record(SimDuration(micros * 997 % LATENCY_US_MAX));
        }
        assert_eq!(histogram.buckets.distinct_values(), before);
        histogram.record(SimDuration(u64::MAX));
        assert_eq!(
            histogram.quantile_us(1.0),
            histogram.buckets.highest_equivalent(LATENCY_US_MAX)
        );
        assert_eq!(histogram.max_us(), u64::MAX);
    }

    // Issue 6: every sample at 1,234.567 ms read mean 1,234.432 and max
    // 1,234.943 from the buckets; the exact figures are the sample itself.
    #[test]
    fn regression_mean_and_max_are_exact_for_one_repeated_value() {
        for mut histogram in [LatencyHistogram::new(), LatencyHistogram::new_coarse()] {
            for _ in 0..1_000 {
                histogram.record(SimDuration(1_234_567));
            }
            assert_eq!(histogram.mean_us(), 1_234_567.0);
            assert_eq!(histogram.max_us(), 1_234_567);
            assert_eq!(histogram.min_us(), 1_234_567);
            assert_eq!(histogram.sum_us(), 1_234_567_000);
            // Quantiles are clamped into the exact range, so here exact too.
            assert_eq!(histogram.percentiles(), [1_234_567; 4]);
        }
    }

    // The mean of mixed values is the exact sum over the count, and the sum
    // does not overflow where a u64 would.
    #[test]
    fn mean_is_the_exact_sum_over_the_count() {
        let mut histogram = LatencyHistogram::new();
        for micros in [1u64, 2, 3, 1_000_003] {
            histogram.record(SimDuration(micros));
        }
        assert_eq!(histogram.mean_us(), 1_000_009.0 / 4.0);
        assert_eq!(histogram.min_us(), 1);
        let mut huge = LatencyHistogram::new_coarse();
        huge.record(SimDuration(u64::MAX));
        huge.record(SimDuration(u64::MAX));
        assert_eq!(huge.sum_us(), 2 * u128::from(u64::MAX));
    }

    // An empty histogram reads 0 everywhere, and a reset forgets the exact
    // figures as well as the buckets.
    #[test]
    fn empty_and_reset_histograms_read_zero() {
        let mut histogram = LatencyHistogram::new();
        assert_eq!(
            (histogram.mean_us(), histogram.max_us(), histogram.min_us()),
            (0.0, 0, 0)
        );
        assert_eq!(histogram.percentiles(), [0; 4]);
        histogram.record(SimDuration(7));
        histogram.reset();
        assert_eq!(
            (histogram.mean_us(), histogram.max_us(), histogram.min_us()),
            (0.0, 0, 0)
        );
        assert_eq!(histogram.sum_us(), 0);
    }
}
