//! Latency histograms with fixed memory, whatever the number of samples:
//! HdrHistogram's log-linear buckets (logarithmic buckets, linear
//! sub-buckets), laid out and read exactly as the `hdrhistogram` crate does
//! for values from 1 to `LATENCY_US_MAX` (a property test checks every
//! figure against the crate).
//!
//! Quantiles come from the buckets and are approximate (to the histogram's
//! significant digits). The mean, the minimum and the maximum are exact:
//! beside the buckets each histogram keeps the exact sum of its samples
//! (integer microseconds in a `u128`, which cannot overflow: 2^64 samples
//! of 2^64 µs fit), the exact smallest and the exact largest sample. A
//! bucketed quantile is clamped to the exact `[min, max]`, so p50 never reads
//! above the largest sample, as the bucket's upper edge would.
//!
//! ## Why not the crate itself
//!
//! A run keeps one histogram per window of its time series and resets it at
//! every window's end (1,200 times in a 300 s run of 250 ms windows). The
//! crate's reset clears all of its counts (31 KB at 2 digits) and each
//! quantile scans them from the start; that was 3.5% of a whole run's
//! instructions. These buckets remember the lowest and highest count in
//! use, so a reset clears and a quantile scans only that span, and the four
//! reported quantiles are read in one pass.

use crate::engine::SimDuration;

/// The largest latency tracked exactly: one day in microseconds. Larger
/// values are recorded as this value.
pub const LATENCY_US_MAX: u64 = 86_400_000_000;

/// A latency histogram in microseconds, with exact sum, minimum and maximum.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    buckets: Buckets,
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
            buckets: Buckets::new(digits),
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
    #[inline]
    pub fn record(&mut self, latency: SimDuration) {
        self.buckets.record(latency.0.clamp(1, LATENCY_US_MAX));
        self.sum_us += u128::from(latency.0);
        self.min_us = self.min_us.min(latency.0);
        self.max_us = self.max_us.max(latency.0);
        debug_assert!(self.min_us <= self.max_us);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.total == 0
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
        let [value] = self.quantiles_us([q]);
        value
    }

    /// p50, p90, p99 and p99.9, in microseconds.
    pub fn percentiles(&self) -> [u64; 4] {
        self.quantiles_us(QUANTILES)
    }

    /// `quantile_us` of each of `quantiles` (in increasing order), in one
    /// pass over the counts.
    fn quantiles_us<const N: usize>(&self, quantiles: [f64; N]) -> [u64; N] {
        if self.is_empty() {
            return [0; N];
        }
        let mut scan = self.buckets.scan();
        quantiles.map(|q| scan.value_at(q).clamp(self.min_us, self.max_us))
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
        self.buckets.total
    }

    /// Bytes of counts a histogram of `digits` significant digits keeps,
    /// whatever it records (the memory estimate's base must hold them).
    #[cfg(test)]
    pub(crate) fn counts_bytes(digits: u8) -> u64 {
        Buckets::new(digits).counts.len() as u64 * 8
    }
}

/// HdrHistogram's counts for values in `[1, LATENCY_US_MAX]` (its lowest
/// discernible value 1, so its unit magnitude 0): bucket 0 holds the values
/// below `2 * half` at a resolution of 1, and each bucket `b` after it the
/// values in `[half * 2^b, half * 2^(b+1))` at a resolution of `2^b`, in
/// `half` counts.
#[derive(Clone, Debug)]
struct Buckets {
    counts: Box<[u64]>,
    /// log2 of `half`, the sub-buckets a bucket adds (half its sub-buckets).
    half_magnitude: u32,
    /// Values below `2 * half` are in bucket 0.
    bucket_zero_mask: u64,
    /// Samples counted.
    total: u64,
    /// The lowest and the highest index with a count (`lowest > highest`
    /// when empty): a reset clears and a quantile scans only these.
    lowest: usize,
    highest: usize,
}

impl Buckets {
    /// Counts at `digits` significant digits: single-unit resolution up to
    /// `2 * 10^digits`, rounded up to a power of two sub-buckets.
    fn new(digits: u8) -> Buckets {
        let sub_buckets = (2 * 10u64.pow(u32::from(digits))).next_power_of_two();
        let count_magnitude = sub_buckets.trailing_zeros();
        // Buckets to cover `LATENCY_US_MAX`, as the crate counts them.
        let mut buckets = 1u64;
        let mut untrackable = sub_buckets;
        while untrackable <= LATENCY_US_MAX {
            untrackable <<= 1;
            buckets += 1;
        }
        let half = sub_buckets / 2;
        Buckets {
            counts: vec![0; ((buckets + 1) * half) as usize].into_boxed_slice(),
            half_magnitude: count_magnitude - 1,
            bucket_zero_mask: sub_buckets - 1,
            total: 0,
            lowest: usize::MAX,
            highest: 0,
        }
    }

    /// The bucket of `value`: how many doublings it is above bucket 0.
    #[inline(always)]
    fn bucket_of(&self, value: u64) -> u32 {
        (63 - self.half_magnitude) - (value | self.bucket_zero_mask).leading_zeros()
    }

    /// The index of the count for `value`, in `[1, LATENCY_US_MAX]`.
    #[inline(always)]
    fn index_of(&self, value: u64) -> usize {
        let bucket = self.bucket_of(value);
        let sub_bucket = (value >> bucket) as usize;
        ((bucket as usize + 1) << self.half_magnitude) + sub_bucket - (1 << self.half_magnitude)
    }

    /// The lowest value counted at `index` (the crate's `value_for`).
    fn lowest_value_at(&self, index: usize) -> u64 {
        let half = 1usize << self.half_magnitude;
        let (bucket, sub_bucket) = match (index >> self.half_magnitude).checked_sub(1) {
            Some(bucket) => (bucket, (index & (half - 1)) + half),
            None => (0, index),
        };
        (sub_bucket as u64) << bucket
    }

    /// The highest value counted at `index` (the crate's
    /// `highest_equivalent(value_for(index))`).
    fn highest_value_at(&self, index: usize) -> u64 {
        let lowest = self.lowest_value_at(index);
        lowest + (1u64 << self.bucket_of(lowest)) - 1
    }

    #[inline(always)]
    fn record(&mut self, value: u64) {
        let index = self.index_of(value);
        self.counts[index] += 1;
        self.total += 1;
        self.lowest = self.lowest.min(index);
        self.highest = self.highest.max(index);
    }

    fn reset(&mut self) {
        if self.lowest <= self.highest {
            self.counts[self.lowest..=self.highest].fill(0);
        }
        self.total = 0;
        self.lowest = usize::MAX;
        self.highest = 0;
    }

    /// A reader of quantiles in increasing order, each continuing the scan
    /// where the one before stopped.
    fn scan(&self) -> Scan<'_> {
        Scan {
            buckets: self,
            index: self.lowest,
            below: 0,
        }
    }
}

/// One pass over a histogram's counts, from the lowest in use.
struct Scan<'a> {
    buckets: &'a Buckets,
    /// The index the scan is at, its count not yet added to `below`.
    index: usize,
    /// Samples at indices before `index`.
    below: u64,
}

impl Scan<'_> {
    /// The crate's `value_at_quantile(q)`: the highest value of the first
    /// count at which `ceil(q * total)` samples (at least one) are reached,
    /// or its lowest value for `q = 0`. Quantiles must come in increasing
    /// order; the histogram must not be empty.
    fn value_at(&mut self, q: f64) -> u64 {
        let buckets = self.buckets;
        // As the crate: above 1 is 1; below 0 (or NaN) reaches the first sample.
        let q = if q > 1.0 { 1.0 } else { q };
        let target = ((q * buckets.total as f64).ceil() as u64).max(1);
        // Reached at the index before `index` if the last call stopped there.
        while self.below < target && self.index <= buckets.highest {
            self.below += buckets.counts[self.index];
            self.index += 1;
        }
        let index = self.index - 1;
        if q == 0.0 {
            buckets.lowest_value_at(index)
        } else {
            buckets.highest_value_at(index)
        }
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
        let before = histogram.buckets.counts.len();
        for micros in 0..1_000_000u64 {
            histogram.record(SimDuration(micros * 997 % LATENCY_US_MAX));
        }
        assert_eq!(histogram.buckets.counts.len(), before);
        histogram.record(SimDuration(u64::MAX));
        let crate_histogram =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 2).expect("bounds");
        assert_eq!(
            histogram.quantile_us(1.0),
            crate_histogram.highest_equivalent(LATENCY_US_MAX)
        );
        assert_eq!(histogram.max_us(), u64::MAX);
    }

    /// The crate's histogram fed the same samples, as `LatencyHistogram`
    /// fed them before it kept its own counts.
    fn crate_reference(digits: u8, samples: &[u64]) -> hdrhistogram::Histogram<u64> {
        let mut reference =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, digits)
                .expect("bounds");
        for &sample in samples {
            reference.saturating_record(sample.clamp(1, LATENCY_US_MAX));
        }
        reference
    }

    // The counts are the crate's: as many, and every value in the counts
    // of the same lowest and highest value.
    #[test]
    fn buckets_are_laid_out_as_the_crate_lays_them_out() {
        for digits in [2, 3] {
            let reference = crate_reference(digits, &[]);
            let buckets = Buckets::new(digits);
            assert_eq!(buckets.counts.len(), reference.distinct_values());
            assert_eq!(
                LatencyHistogram::counts_bytes(digits),
                reference.distinct_values() as u64 * 8
            );
            let edges = (0..buckets.counts.len()).flat_map(|index| {
                let lowest = buckets.lowest_value_at(index);
                [lowest, buckets.highest_value_at(index)]
            });
            for value in edges.filter(|&value| (1..=LATENCY_US_MAX).contains(&value)) {
                let index = buckets.index_of(value);
                assert_eq!(
                    buckets.lowest_value_at(index),
                    reference.lowest_equivalent(value),
                    "{digits} digits, {value}"
                );
                assert_eq!(
                    buckets.highest_value_at(index),
                    reference.highest_equivalent(value),
                    "{digits} digits, {value}"
                );
            }
        }
    }

    proptest::proptest! {
        // Every quantile, read alone or four in one pass, and after resets,
        // is the crate's (clamped to the exact range, as before).
        #[test]
        fn quantiles_are_the_crates(
            coarse in proptest::prelude::any::<bool>(),
            windows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        0u64..100,
                        0u64..5_000,
                        0u64..100_000_000,
                        proptest::prelude::any::<u64>(),
                    ],
                    0..60,
                ),
                1..4,
            ),
            q in 0.0..=1.0f64,
        ) {
            let digits = if coarse { 2 } else { 3 };
            let mut histogram = LatencyHistogram::with_digits(digits);
            for samples in &windows {
                histogram.reset();
                for &sample in samples {
                    histogram.record(SimDuration(sample));
                }
                let reference = crate_reference(digits, samples);
                let clamp = |value: u64| value.clamp(histogram.min_us, histogram.max_us);
                let expected = if samples.is_empty() {
                    [0; 4]
                } else {
                    QUANTILES.map(|q| clamp(reference.value_at_quantile(q)))
                };
                proptest::prop_assert_eq!(histogram.percentiles(), expected);
                let alone = if samples.is_empty() { 0 } else { clamp(reference.value_at_quantile(q)) };
                proptest::prop_assert_eq!(histogram.quantile_us(q), alone);
                if !samples.is_empty() {
                    proptest::prop_assert_eq!(
                        histogram.quantile_us(0.0),
                        clamp(reference.value_at_quantile(0.0))
                    );
                }
                proptest::prop_assert_eq!(histogram.len(), reference.len());
            }
        }
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
