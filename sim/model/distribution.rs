//! Distributions of durations (service time, network latency, think time,
//! injected delay), written in milliseconds in scenario files and sampled as
//! integer microseconds.

use crate::engine::{SimDuration, SimRng};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use rand_distr::{Distribution as _, Exp, Normal};
use serde::{Deserialize, Serialize};

/// The largest duration any distribution may produce: one day, so that a
/// heavy tail cannot push an event beyond every limit.
pub const SAMPLE_MS_MAX: f64 = 86_400_000.0;

/// A distribution of durations in milliseconds.
///
/// JSON: `{"kind": "constant", "value_ms": 20}`,
/// `{"kind": "exponential", "mean_ms": 20}`,
/// `{"kind": "lognormal", "median_ms": 20, "sigma": 0.5}`,
/// `{"kind": "uniform", "min_ms": 5, "max_ms": 50}`,
/// `{"kind": "empirical", "quantiles": [[0.0, 5], [0.5, 20], [0.99, 200], [1.0, 400]]}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Always `value_ms`.
    Constant {
        /// The value, `>= 0`.
        value_ms: f64,
    },
    /// Exponential with mean `mean_ms` (memoryless, as in M/M/c).
    Exponential {
        /// The mean, `> 0`.
        mean_ms: f64,
    },
    /// Log-normal with median `median_ms` and shape `sigma` (the standard
    /// deviation of the underlying normal). p99 is `median * e^(2.326 sigma)`.
    Lognormal {
        /// The median, `> 0`.
        median_ms: f64,
        /// The shape, in `[0, 5]`.
        sigma: f64,
    },
    /// Uniform on `[min_ms, max_ms]`.
    Uniform {
        /// The lower bound, `>= 0`.
        min_ms: f64,
        /// The upper bound, `>= min_ms`.
        max_ms: f64,
    },
    /// A table of `[quantile, value_ms]` points, linearly interpolated. The
    /// first quantile must be 0 and the last 1; quantiles increase strictly
    /// and values never decrease.
    Empirical {
        /// The points, at least two.
        quantiles: Vec<(f64, f64)>,
    },
}

impl Distribution {
    /// The constant zero distribution.
    pub fn zero() -> Distribution {
        Distribution::Constant { value_ms: 0.0 }
    }

    /// Checks the parameters; `path` names this distribution in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            Distribution::Constant { value_ms } => {
                check::within_f64(&join(path, "value_ms"), *value_ms, 0.0, SAMPLE_MS_MAX)
            }
            Distribution::Exponential { mean_ms } => {
                check::positive(&join(path, "mean_ms"), *mean_ms)?;
                check::within_f64(&join(path, "mean_ms"), *mean_ms, 0.0, SAMPLE_MS_MAX)
            }
            Distribution::Lognormal { median_ms, sigma } => {
                check::positive(&join(path, "median_ms"), *median_ms)?;
                check::within_f64(&join(path, "median_ms"), *median_ms, 0.0, SAMPLE_MS_MAX)?;
                check::within_f64(&join(path, "sigma"), *sigma, 0.0, 5.0)
            }
            Distribution::Uniform { min_ms, max_ms } => {
                check::within_f64(&join(path, "min_ms"), *min_ms, 0.0, SAMPLE_MS_MAX)?;
                check::within_f64(&join(path, "max_ms"), *max_ms, *min_ms, SAMPLE_MS_MAX)
            }
            Distribution::Empirical { quantiles } => {
                validate_quantiles(&join(path, "quantiles"), quantiles)
            }
        }
    }

    /// The mean in milliseconds, for load estimates and reports.
    pub fn mean_ms(&self) -> f64 {
        match self {
            Distribution::Constant { value_ms } => *value_ms,
            Distribution::Exponential { mean_ms } => *mean_ms,
            Distribution::Lognormal { median_ms, sigma } => median_ms * (sigma * sigma / 2.0).exp(),
            Distribution::Uniform { min_ms, max_ms } => (min_ms + max_ms) / 2.0,
            Distribution::Empirical { quantiles } => quantiles
                .windows(2)
                .map(|pair| (pair[1].0 - pair[0].0) * (pair[0].1 + pair[1].1) / 2.0)
                .sum(),
        }
        .min(SAMPLE_MS_MAX)
    }

    /// Draws one duration. Draws are capped at `SAMPLE_MS_MAX`.
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        self.sampler().sample(rng)
    }

    /// This distribution ready to draw from, its derived parameters (a
    /// log-normal's `ln(median)`, an exponential's rate) computed once: for
    /// the distributions drawn on every call.
    pub fn sampler(&self) -> Sampler<'_> {
        match self {
            Distribution::Constant { value_ms } => Sampler::Constant(*value_ms),
            // Validated > 0, so the rate is finite and positive.
            Distribution::Exponential { mean_ms } => {
                Sampler::Exponential(Exp::new(1.0 / mean_ms).expect("validated exponential mean"))
            }
            // `rand_distr::LogNormal` is this normal's draw through libm's
            // `exp`; here it goes through `model::exp`, inlined, which is
            // glibc's `exp` without FMA bit for bit (see its module doc).
            Distribution::Lognormal { median_ms, sigma } => Sampler::Lognormal(
                Normal::new(median_ms.ln(), *sigma).expect("validated lognormal"),
            ),
            Distribution::Uniform { min_ms, max_ms } => Sampler::Uniform(*min_ms, *max_ms),
            Distribution::Empirical { quantiles } => Sampler::Empirical(quantiles),
        }
    }
}

/// A `Distribution` ready to draw from (`Distribution::sampler`): the same
/// draws from the same stream, without recomputing its parameters.
#[derive(Clone, Copy, Debug)]
pub enum Sampler<'a> {
    /// Always this many milliseconds.
    Constant(f64),
    /// Exponential, at rate `1 / mean_ms`.
    Exponential(Exp<f64>),
    /// Log-normal: `exp` of a normal of mean `ln(median_ms)`.
    Lognormal(Normal<f64>),
    /// Uniform between a minimum and a maximum.
    Uniform(f64, f64),
    /// A table of `[quantile, value_ms]` points.
    Empirical(&'a [(f64, f64)]),
}

impl Sampler<'_> {
    /// Draws one duration. Draws are capped at `SAMPLE_MS_MAX`.
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        let ms = match *self {
            Sampler::Constant(value_ms) => value_ms,
            Sampler::Exponential(exp) => exp.sample(rng.raw()),
            Sampler::Lognormal(normal) => super::exp::exp(normal.sample(rng.raw())),
            Sampler::Uniform(min_ms, max_ms) => min_ms + (max_ms - min_ms) * rng.unit(),
            Sampler::Empirical(quantiles) => interpolate(quantiles, rng.unit()),
        };
        SimDuration::from_ms_f64(ms.min(SAMPLE_MS_MAX))
    }
}

fn validate_quantiles(path: &str, quantiles: &[(f64, f64)]) -> Result<(), Invalid> {
    if quantiles.len() < 2 {
        return Err(Invalid::new(
            path,
            "must have at least two [quantile, value_ms] points",
        ));
    }
    for (index, &(quantile, value)) in quantiles.iter().enumerate() {
        let here = check::item(path, index);
        check::probability(&here, quantile)?;
        check::within_f64(&here, value, 0.0, SAMPLE_MS_MAX)?;
        if index > 0 {
            let (quantile_before, value_before) = quantiles[index - 1];
            if quantile <= quantile_before {
                return Err(Invalid::new(
                    here,
                    format!(
                        "quantiles must increase strictly (got {quantile} after {quantile_before})"
                    ),
                ));
            }
            if value < value_before {
                return Err(Invalid::new(
                    here,
                    format!("values must not decrease (got {value} after {value_before})"),
                ));
            }
        }
    }
    if quantiles[0].0 != 0.0 || quantiles[quantiles.len() - 1].0 != 1.0 {
        return Err(Invalid::new(
            path,
            "the first quantile must be 0 and the last 1",
        ));
    }
    Ok(())
}

/// The value at quantile `u` of a validated table, by linear interpolation.
fn interpolate(quantiles: &[(f64, f64)], u: f64) -> f64 {
    let upper = quantiles
        .partition_point(|&(quantile, _)| quantile < u)
        .max(1);
    let (q0, v0) = quantiles[upper - 1];
    let (q1, v1) = quantiles[upper.min(quantiles.len() - 1)];
    if q1 <= q0 {
        v1
    } else {
        v0 + (v1 - v0) * (u - q0) / (q1 - q0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;

    fn mean_of(distribution: &Distribution, draws: usize) -> f64 {
        let mut rng = RngFactory::new(3).stream("test");
        let total: f64 = (0..draws)
            .map(|_| distribution.sample(&mut rng).as_ms_f64())
            .sum();
        total / draws as f64
    }

    #[test]
    fn sample_means_match_declared_means() {
        let cases = [
            Distribution::Constant { value_ms: 7.0 },
            Distribution::Exponential { mean_ms: 20.0 },
            Distribution::Lognormal {
                median_ms: 10.0,
                sigma: 0.5,
            },
            Distribution::Uniform {
                min_ms: 5.0,
                max_ms: 15.0,
            },
            Distribution::Empirical {
                quantiles: vec![(0.0, 0.0), (0.5, 10.0), (1.0, 30.0)],
            },
        ];
        for distribution in cases {
            let expected = distribution.mean_ms();
            let got = mean_of(&distribution, 200_000);
            assert!(
                (got - expected).abs() / expected < 0.02,
                "{distribution:?}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn empirical_interpolates_between_points() {
        let table = vec![(0.0, 0.0), (0.5, 10.0), (1.0, 30.0)];
        assert_eq!(interpolate(&table, 0.0), 0.0);
        assert_eq!(interpolate(&table, 0.25), 5.0);
        assert_eq!(interpolate(&table, 0.75), 20.0);
    }

    #[test]
    fn bad_tables_are_rejected_with_their_path() {
        let table = Distribution::Empirical {
            quantiles: vec![(0.0, 5.0), (0.5, 4.0), (1.0, 9.0)],
        };
        let err = table.validate("services[0].service_time_ms").unwrap_err();
        assert_eq!(err.path, "services[0].service_time_ms.quantiles[1]");
        let lognormal = Distribution::Lognormal {
            median_ms: -1.0,
            sigma: 0.5,
        };
        assert_eq!(lognormal.validate("x").unwrap_err().path, "x.median_ms");
    }
}
