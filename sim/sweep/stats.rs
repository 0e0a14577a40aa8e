//! Statistics over seeds: mean and 95% Student-t interval, paired
//! differences, a seeded percentile bootstrap, and the number of seeds needed
//! to separate two designs.
//!
//! The t quantiles come from a small exact table (two-sided 95%, df 1-30)
//! and, above 30 degrees of freedom, from the Cornish-Fisher expansion of
//! the t quantile around the normal one, which is within 1e-5 of the exact
//! value there. No crate is needed for that.
//!
//! Every sum runs over values in (point, seed) order, never in the order
//! threads finished, so results are the same bytes at any thread count.

use crate::engine::rng::RngFactory;

/// The two-sided 95% t quantile (0.975) for 1..=30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
    2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
    2.048407, 2.045230, 2.042272,
];

/// The normal 0.975 quantile.
const Z_975: f64 = 1.959964;

/// Resamples of the bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df >= 1`).
pub fn t_975(df: usize) -> f64 {
    debug_assert!(df >= 1);
    if df <= 30 {
        return T_975[df.max(1) - 1];
    }
    let (z, n) = (Z_975, df as f64);
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * n)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * n * n * n)
}

/// Mean and 95% confidence interval of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub sd: f64,
    /// Lower end of the 95% interval; `None` with fewer than two values.
    pub low: Option<f64>,
    /// Upper end.
    pub high: Option<f64>,
}

/// Mean and 95% t-interval of `values`; `None` when empty.
pub fn t_interval(values: &[f64]) -> Option<Interval> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Interval {
            n,
            mean,
            sd: 0.0,
            low: None,
            high: None,
        });
    }
    let variance = values
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    let sd = variance.sqrt();
    let half = t_975(n - 1) * sd / (n as f64).sqrt();
    Some(Interval {
        n,
        mean,
        sd,
        low: Some(mean - half),
        high: Some(mean + half),
    })
}

/// A seeded percentile bootstrap of the mean of `values`: the 2.5% and 97.5%
/// quantiles of `BOOTSTRAP_RESAMPLES` resampled means. `stream` names the
/// random stream, so each metric draws its own.
pub fn bootstrap_mean(values: &[f64], seed: u64, stream: &str) -> Option<Interval> {
    let mut interval = t_interval(values)?;
    if values.len() < 2 {
        return Some(interval);
    }
    let mut rng = RngFactory::new(seed).stream(stream);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let sum: f64 = (0..values.len())
                .map(|_| values[rng.index(values.len())])
                .sum();
            sum / values.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| {
        means
            [((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round() as usize).min(BOOTSTRAP_RESAMPLES - 1)]
    };
    interval.low = Some(at(0.025));
    interval.high = Some(at(0.975));
    Some(interval)
}

/// The seeds needed for a 95% interval of a paired difference with this
/// mean and standard deviation to exclude zero (about `(t sd / mean)^2`);
/// `None` when the mean difference is zero.
pub fn seeds_needed(mean: f64, sd: f64) -> Option<u64> {
    if mean == 0.0 || !mean.is_finite() || !sd.is_finite() {
        return None;
    }
    let ratio = sd / mean.abs();
    // The normal estimate is a lower bound (t > z); walk up to the smallest
    // n whose own t quantile is enough. t approaches z fast, so the walk is
    // short; it is capped all the same.
    let start = ((Z_975 * ratio).powi(2)).ceil().clamp(2.0, 1e12) as u64;
    let enough = |n: u64| (t_975((n - 1) as usize) * ratio).powi(2) <= n as f64;
    Some(
        (start..start + 10_000)
            .find(|n| enough(*n))
            .unwrap_or(start + 10_000),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expansion joins the exact table smoothly and tends to the normal.
    #[test]
    fn t_quantiles_match_published_values() {
        assert_eq!(t_975(1), 12.706205);
        assert_eq!(t_975(9), 2.262157);
        // Published: df 40 2.021075, df 60 2.000298, df 120 1.979930.
        assert!((t_975(40) - 2.021075).abs() < 1e-5);
        assert!((t_975(60) - 2.000298).abs() < 1e-5);
        assert!((t_975(120) - 1.979930).abs() < 1e-5);
        assert!(t_975(31) < t_975(30));
    }

    // The interval of 1..=10 is 5.5 +- 2.262157 * sd / sqrt(10).
    #[test]
    fn t_interval_of_a_known_sample() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let interval = t_interval(&values).unwrap();
        assert_eq!(interval.mean, 5.5);
        let half = 2.262157 * (55.0f64 / 6.0).sqrt() / 10f64.sqrt();
        assert!((interval.low.unwrap() - (5.5 - half)).abs() < 1e-12);
        assert!((interval.high.unwrap() - (5.5 + half)).abs() < 1e-12);
        assert!(t_interval(&[]).is_none());
        assert_eq!(t_interval(&[3.0]).unwrap().low, None);
    }

    // The bootstrap is seeded (same interval twice) and brackets the mean.
    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let values = [1.0, 2.0, 2.5, 3.0, 10.0, 4.0, 3.5, 2.0];
        let first = bootstrap_mean(&values, 1, "m").unwrap();
        assert_eq!(Some(first), bootstrap_mean(&values, 1, "m"));
        assert!(first.low.unwrap() < first.mean && first.mean < first.high.unwrap());
        // The interval of the mean is much narrower than the data's range.
        assert!(
            first.low.unwrap() > 1.5 && first.high.unwrap() < 6.0,
            "{first:?}"
        );
    }

    // A difference of one standard deviation needs about 7 seeds to show.
    #[test]
    fn seeds_needed_grows_with_noise() {
        assert_eq!(seeds_needed(0.0, 1.0), None);
        // n = 7: t(6) = 2.447 and 2.447^2 = 5.99 <= 7, while t(5)^2 = 6.61 > 6.
        assert_eq!(seeds_needed(1.0, 1.0), Some(7));
        assert!(seeds_needed(0.1, 1.0).unwrap() > 300);
    }
}
