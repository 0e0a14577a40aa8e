//! How likely is it? The probability that a run fails an assertion, over
//! seeds, with a 95% interval; and, for failures too rare to see in a few
//! thousand runs, fixed-effort multilevel splitting.
//!
//! Both estimators are pure functions of a base seed and a trial function
//! (seed in, pass/fail and a margin out), so `sim explore --estimate` wires
//! them to `model::run` in a few lines and the tests wire them to processes
//! whose answer is known. Trials run on rayon and are reduced in seed order:
//! the result is the same at any thread count.
//!
//! # Monte Carlo with a Wilson interval
//!
//! `monte_carlo` runs seeds `seed(base, 0..n)` and counts failures. The
//! interval is Wilson's score interval, which (unlike the normal "Wald"
//! interval) stays inside `[0, 1]`, is not empty at 0 failures and covers
//! close to 95% down to a handful of failures. Its weakness is rare events:
//! with no failure in `n` runs its upper end is about `3.84 / n`, so 1,000
//! runs can only say `[0, 0.0038]`.
//!
//! # Multilevel splitting
//!
//! A rare failure is usually the end of a chain of less rare steps: the
//! queue passes 100, then 1,000, then times every request out. Splitting
//! (Kahn and Harris 1951; the fixed-effort form of Garvels 2000 and Cérou et
//! al. 2011, as in `rupakm/DesCartes`' `des-explore`) estimates
//! `P(fail) = P(L1) P(L2 | L1) ... P(fail | LK)` one factor at a time, each
//! from `particles` runs, by restarting runs from the states where earlier
//! runs crossed a level. A process gives that restart through `Splittable`
//! (in `sim` a run restarted from a crossing is the same seed replayed up to
//! the crossing's time, then fresh randomness).
//!
//! The estimate is the product of the stage fractions. It is unbiased when
//! every failure crosses every level first (the levels are on a score that
//! a failing run must pass through) and the levels are fixed before the
//! estimation runs (here: given, or chosen by a separate pilot). Its
//! relative variance with `K + 1` stages of `n` particles is about
//! `sum_k (1 - p_k) / (n p_k)` if the stages were independent; with
//! `p_k = p^(1/(K+1))` that is `(K + 1) (p^(-1/(K+1)) - 1) / n`, against
//! `(1 - p) / (n_total p)` for plain Monte Carlo: for `p = 1e-6`, four
//! levels and the same total budget, about 2,000 times fewer runs for the
//! same precision.
//!
//! DesCartes reports that independent-stage interval. The stages are not
//! independent, though: particles restarted from the same ancestor are
//! correlated, so that interval is too narrow when few ancestors survive.
//! We run `replications` independent copies of the whole procedure and give
//! the Student-t interval of their mean, which measures the real spread
//! whatever the correlation; the independent-stage figure is reported
//! beside it for comparison.

pub mod scenario;
pub mod splitting;

use rayon::prelude::*;
use serde::Serialize;

/// The normal 0.975 quantile: the z of a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// One trial: did the run fail, and by how much it passed or failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trial {
    /// The run failed an assertion.
    pub failed: bool,
    /// The smallest relative margin over the assertions: positive while
    /// they hold, negative when one fails.
    pub margin: f64,
}

/// A probability with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Probability {
    /// The estimate.
    pub estimate: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

/// The Wilson score interval at `z` for `failures` out of `trials`
/// (`trials > 0`).
pub fn wilson(failures: u64, trials: u64, z: f64) -> Probability {
    debug_assert!(trials > 0 && failures <= trials);
    let n = trials as f64;
    let p = failures as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let radius = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Probability {
        estimate: p,
        low: (centre - radius).clamp(0.0, 1.0),
        high: (centre + radius).clamp(0.0, 1.0),
    }
}

/// The seed of trial `index` from `base` (SplitMix64 of their sum), so that
/// nearby bases give unrelated seeds.
pub fn seed(base: u64, index: u64) -> u64 {
    let mut x = base.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What `monte_carlo` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonteCarlo {
    /// Runs made.
    pub trials: u64,
    /// Runs that failed.
    pub failures: u64,
    /// Failure probability with its Wilson 95% interval.
    pub probability: Probability,
    /// The seeds of the first failing runs, in seed order (at most
    /// `FAILING_SEEDS_KEPT`), to replay with `sim run --seed`.
    pub failing_seeds: Vec<u64>,
    /// The smallest finite margin seen and its seed (the first in seed
    /// order on a tie).
    pub worst_margin: Option<(f64, u64)>,
}

/// Failing seeds kept in a `MonteCarlo` report.
pub const FAILING_SEEDS_KEPT: usize = 10;

/// Runs `trial` on the seeds `seed(base, 0..trials)` in parallel and counts
/// failures; an error of any trial (the first in seed order) is returned.
pub fn monte_carlo<E, F>(base: u64, trials: u64, trial: F) -> Result<MonteCarlo, E>
where
    E: Send,
    F: Fn(u64) -> Result<Trial, E> + Sync,
{
    debug_assert!(trials > 0);
    let results: Vec<(u64, Result<Trial, E>)> = (0..trials)
        .into_par_iter()
        .map(|index| {
            let seed = seed(base, index);
            (seed, trial(seed))
        })
        .collect();
    // `collect` keeps index order, so everything below is in seed order.
    let mut failures = 0;
    let mut failing_seeds = Vec::new();
    let mut worst_margin: Option<(f64, u64)> = None;
    for (seed, result) in results {
        let trial = result?;
        if trial.failed {
            failures += 1;
            if failing_seeds.len() < FAILING_SEEDS_KEPT {
                failing_seeds.push(seed);
            }
        }
        if trial.margin.is_finite() && worst_margin.is_none_or(|(margin, _)| trial.margin < margin)
        {
            worst_margin = Some((trial.margin, seed));
        }
    }
    Ok(MonteCarlo {
        trials,
        failures,
        probability: wilson(failures, trials, Z_95),
        failing_seeds,
        worst_margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81 of 263 gives [0.2553, 0.3662];
        // 0 of 10 gives [0, 0.2775].
        let interval = wilson(81, 263, Z_95);
        assert!((interval.low - 0.2553).abs() < 1e-4, "{interval:?}");
        assert!((interval.high - 0.3662).abs() < 1e-4, "{interval:?}");
        let interval = wilson(0, 10, Z_95);
        assert_eq!(interval.low, 0.0);
        assert!((interval.high - 0.2775).abs() < 1e-4, "{interval:?}");
        // The rule of three, nearly: no failure in 1,000 runs.
        let interval = wilson(0, 1_000, Z_95);
        assert!((interval.high - 0.00383).abs() < 1e-5, "{interval:?}");
    }

    #[test]
    fn seeds_differ_and_repeat() {
        assert_eq!(seed(42, 7), seed(42, 7));
        assert_ne!(seed(42, 7), seed(42, 8));
        assert_ne!(seed(42, 7), seed(43, 7));
    }

    /// A trial that fails with probability `p`, from the seed alone.
    fn bernoulli(p: f64) -> impl Fn(u64) -> Result<Trial, ()> + Sync {
        move |seed| {
            let draw = RngFactory::new(seed).stream("trial").unit();
            Ok(Trial {
                failed: draw < p,
                margin: draw - p,
            })
        }
    }

    #[test]
    fn monte_carlo_covers_a_known_probability() {
        // Twenty independent estimates of p = 0.05 from 2,000 runs each:
        // a 95% interval misses about one time in twenty, so at least 17
        // of 20 must cover it (here 19: base 7 saw 121 failures, 6.05%).
        let mut covered = 0;
        for base in 0..20 {
            let estimate = monte_carlo(base, 2_000, bernoulli(0.05)).unwrap();
            let interval = estimate.probability;
            covered += u32::from(interval.low <= 0.05 && 0.05 <= interval.high);
            assert!(estimate.failures > 0);
            assert!(estimate.worst_margin.unwrap().0 < 0.0);
        }
        assert!(covered >= 17, "covered {covered} of 20");
    }

    #[test]
    fn monte_carlo_is_the_same_at_any_thread_count() {
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| monte_carlo(9, 500, bernoulli(0.1)).unwrap())
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn the_first_error_in_seed_order_is_returned() {
        let result = monte_carlo(1, 100, |seed| {
            if seed == super::seed(1, 40) || seed == super::seed(1, 70) {
                Err(seed)
            } else {
                Ok(Trial {
                    failed: false,
                    margin: 1.0,
                })
            }
        });
        assert_eq!(result, Err(seed(1, 40)));
    }
}
