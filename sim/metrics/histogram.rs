//! Latency histograms with fixed memory, whatever the number of samples
//! (HdrHistogram: logarithmic buckets, linear sub-buckets).

use crate::engine::SimDuration;
use hdrhistogram::Histogram;

/// The largest latency tracked exactly: one day in microseconds. Larger
/// values are recorded as this value.
pub const LATENCY_US_MAX: u64 = 86_400_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Histogram<u64>);

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
        LatencyHistogram(
            Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds"),
        )
    }

    /// A smaller histogram with 2 significant digits (1% relative error), for
    /// windows and per-client totals.
    pub fn new_coarse() -> Self {
        LatencyHistogram(
            Histogram::new_with_bounds(1, LATENCY_US_MAX, 2).expect("static histogram bounds"),
        )
    }

    /// Adds one latency.
    pub fn record(&mut self, latency: SimDuration) {
        self.0.saturating_record(latency.0.clamp(1, LATENCY_US_MAX));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets every sample, keeping the memory.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The value at quantile `q` in `[0, 1]`, in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    /// p50, p90, p99 and p99.9, in microseconds.
    pub fn percentiles(&self) -> [u64; 4] {
        QUANTILES.map(|q| self.quantile_us(q))
    }

    /// The largest sample, in microseconds.
    pub fn max_us(&self) -> u64 {
        self.0.max()
    }

    /// The mean, in microseconds.
    pub fn mean_us(&self) -> f64 {
        self.0.mean()
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
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
        let before = histogram.0.distinct_values();
        for micros in 0..1_000_000u64 {
            histogram.record(SimDuration(micros * 997 % LATENCY_US_MAX));
        }
        assert_eq!(histogram.0.distinct_values(), before);
        histogram.record(SimDuration(u64::MAX));
        assert_eq!(
            histogram.max_us(),
            histogram.0.highest_equivalent(LATENCY_US_MAX)
        );
    }
}
