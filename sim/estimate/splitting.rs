//! Fixed-effort multilevel splitting (see the module above for the method,
//! its assumptions and its variance).
//!
//! Each replication runs `particles` runs per stage. Stage 0 starts them
//! from the process's start; stage `k` restarts them from the points where
//! runs of stage `k - 1` crossed `levels[k - 1]`, picked uniformly with
//! replacement; the last stage asks whether the rare event happens. Every
//! seed and every pick comes from `estimate::seed` of the base seed, the
//! replication, the stage and the particle's index, and each stage's runs are
//! collected in index order, so the result does not depend on the thread
//! count.

use super::{seed, Probability, Z_95};
use crate::sweep::stats::t_interval;
use rayon::prelude::*;
use serde::Serialize;

/// What a stage's run must reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The first point where the score is at least this level.
    Level(f64),
    /// The rare event itself (the run fails its assertion).
    Event,
}

/// How a run from a point ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Reached<P> {
    /// It reached the target level at this point (and stopped there).
    Level(P),
    /// It ran to its end without reaching the target level.
    End {
        /// Whether the rare event happened.
        event: bool,
        /// The highest score the run reached after its start point.
        peak: f64,
    },
}

/// A process that can be restarted, with fresh randomness, from a point an
/// earlier run passed through.
pub trait Splittable: Sync {
    /// A point to restart from: the state at a level crossing, or whatever
    /// rebuilds it (in `sim`, the seeds and event counts of the run's prefix).
    type Point: Clone + Send + Sync;
    /// Why a run could not be made.
    type Error: Send;

    /// Runs from `from` (the start when `None`) with randomness `seed`
    /// after that point. For `Target::Level`, stops at the first point at or
    /// above the level (`Reached::Level`), or runs to the end
    /// (`Reached::End`); a run already at or above the level at `from`
    /// returns `from` itself. For `Target::Event`, runs to the end. Whether
    /// the rare event happened is asked at the end of every run that ends,
    /// so a failure that bypasses a level still counts.
    fn run(
        &self,
        from: Option<&Self::Point>,
        seed: u64,
        target: Target,
    ) -> Result<Reached<Self::Point>, Self::Error>;
}

/// How to split.
#[derive(Clone, Debug, PartialEq)]
pub struct SplittingConfig {
    /// Score levels, increasing; the rare event must lie beyond the last.
    pub levels: Vec<f64>,
    /// Runs per stage and replication.
    pub particles: usize,
    /// Independent copies of the whole procedure (at least 2 for the
    /// t-interval).
    pub replications: usize,
}

/// What splitting found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Splitting {
    /// The levels used.
    pub levels: Vec<f64>,
    /// Runs per stage and replication.
    pub particles: usize,
    /// Replications.
    pub replications: usize,
    /// Runs made in all.
    pub runs: u64,
    /// The mean of the replications' estimates, with the Student-t 95%
    /// interval of that mean (clamped to `[0, 1]`).
    pub probability: Probability,
    /// Each replication's estimate, in order.
    pub replication_estimates: Vec<f64>,
    /// Per stage (levels, then the event), the fraction of runs that
    /// reached it, pooled over replications (stages a replication did not
    /// reach are not counted).
    pub stage_fractions: Vec<f64>,
    /// Per level stage, runs that had the rare event without reaching the
    /// next level, pooled over replications: counted in the estimate, and a
    /// sign the score is a poor guide if there are many.
    pub bypasses: Vec<u64>,
    /// The log-normal interval that treats the pooled stages as
    /// independent binomials (what DesCartes reports), for comparison; too
    /// narrow when few ancestors survive a stage.
    pub independent_stages: Probability,
    /// The standard error of `probability.estimate` over the estimate
    /// (`NaN` when the estimate is 0).
    pub relative_error: f64,
}

/// Salt of the stream that picks restart points, apart from the run seeds.
const PICK_SALT: u64 = 0x5EED_0F51_177E;

/// Estimates the probability of `process`'s rare event by fixed-effort
/// multilevel splitting, from the base seed `base`.
pub fn splitting<P: Splittable>(
    process: &P,
    config: &SplittingConfig,
    base: u64,
) -> Result<Splitting, P::Error> {
    debug_assert!(config.particles > 0 && config.replications > 0);
    debug_assert!(config.levels.windows(2).all(|pair| pair[0] < pair[1]));
    let stages = config.levels.len() + 1;
    let mut reached = vec![0u64; stages];
    let mut tried = vec![0u64; stages];
    let mut bypasses = vec![0u64; config.levels.len()];
    let mut estimates = Vec::with_capacity(config.replications);
    let mut runs = 0u64;
    for replication in 0..config.replications as u64 {
        let replication_seed = seed(base, replication);
        let mut starts: Vec<Option<P::Point>> = vec![None; config.particles];
        // The product of the stage fractions so far (the estimate of
        // P(reach this stage's start)), and the sum over stages of that
        // product times the fraction of the stage's runs that had the event
        // without reaching the next level: each term is an unbiased
        // estimate, so the sum is too, even for failures that bypass a level.
        let mut reach = 1.0;
        let mut estimate = 0.0;
        for stage in 0..stages {
            let target = config
                .levels
                .get(stage)
                .map_or(Target::Event, |level| Target::Level(*level));
            let stage_seed = seed(replication_seed, stage as u64);
            let results: Vec<Result<Reached<P::Point>, P::Error>> = starts
                .par_iter()
                .enumerate()
                .map(|(index, start)| {
                    process.run(start.as_ref(), seed(stage_seed, index as u64), target)
                })
                .collect();
            runs += results.len() as u64;
            let mut survivors = Vec::new();
            let mut events = 0u64;
            for result in results {
                match result? {
                    Reached::Level(point) => {
                        if target == Target::Event {
                            events += 1;
                        } else {
                            survivors.push(point);
                        }
                    }
                    Reached::End { event, .. } => events += u64::from(event),
                }
            }
            let particles = config.particles as f64;
            tried[stage] += config.particles as u64;
            estimate += reach * events as f64 / particles;
            if target == Target::Event {
                reached[stage] += events;
                break;
            }
            bypasses[stage] += events;
            reached[stage] += survivors.len() as u64;
            reach *= survivors.len() as f64 / particles;
            if survivors.is_empty() {
                break;
            }
            starts = restart_points(&survivors, config.particles, stage_seed);
        }
        estimates.push(estimate);
    }
    let stage_fractions: Vec<f64> = reached
        .iter()
        .zip(&tried)
        .map(|(reached, tried)| {
            if *tried == 0 {
                0.0
            } else {
                *reached as f64 / *tried as f64
            }
        })
        .collect();
    // One replication has no spread to measure: the interval is all of [0, 1].
    let interval = t_interval(&estimates).expect("at least one replication");
    let mean = interval.mean;
    let standard_error = interval.sd / (interval.n as f64).sqrt();
    let particles_total = (config.particles * config.replications) as f64;
    Ok(Splitting {
        levels: config.levels.clone(),
        particles: config.particles,
        replications: config.replications,
        runs,
        probability: Probability {
            estimate: mean,
            low: interval.low.map_or(0.0, |low| low.clamp(0.0, 1.0)),
            high: interval.high.map_or(1.0, |high| high.clamp(0.0, 1.0)),
        },
        replication_estimates: estimates,
        independent_stages: independent_stages(&stage_fractions, particles_total),
        relative_error: standard_error / mean,
        stage_fractions,
        bypasses,
    })
}

/// How `choose_levels` picks levels.
#[derive(Clone, Debug, PartialEq)]
pub struct PilotConfig {
    /// Runs per pilot stage.
    pub particles: usize,
    /// The fraction of a stage's runs that should reach the next level
    /// (each level is the `1 - survival` quantile of the runs' peaks).
    pub survival: f64,
    /// Stop adding levels once this fraction of a stage's runs has the
    /// event: it is no longer rare from there.
    pub event_fraction: f64,
    /// At most this many levels.
    pub levels_max: usize,
}

impl Default for PilotConfig {
    /// 100 runs a stage, survival 0.2, stop at 10% events, 12 levels.
    fn default() -> Self {
        PilotConfig {
            particles: 100,
            survival: 0.2,
            event_fraction: 0.1,
            levels_max: 12,
        }
    }
}

/// What the pilot found: the levels, and the runs it cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pilot {
    /// Increasing score levels.
    pub levels: Vec<f64>,
    /// Runs made.
    pub runs: u64,
}

/// Salt of the pilot's seeds, apart from the estimation's.
const PILOT_SALT: u64 = 0xA11C_E5E7_7E1E_7E15;

/// Chooses splitting levels by a pilot (adaptive multilevel splitting with
/// a fixed survival fraction, Cérou and Guyader 2007): runs `particles`
/// runs to their end, puts the next level at the score that the best
/// `survival` of them reached, reruns those (same seed, so the same path)
/// to their crossing points and restarts the next stage from them; until a
/// stage sees enough events, no run gets above the last level, or
/// `levels_max` levels. The pilot's seeds are apart from the estimation's,
/// so the levels are fixed before (and independent of) the runs that
/// estimate: that keeps fixed-effort splitting unbiased.
pub fn choose_levels<P: Splittable>(
    process: &P,
    config: &PilotConfig,
    base: u64,
) -> Result<Pilot, P::Error> {
    debug_assert!(config.particles > 0);
    debug_assert!(config.survival > 0.0 && config.survival < 1.0);
    let pilot_seed = seed(base ^ PILOT_SALT, 0);
    let mut levels: Vec<f64> = Vec::new();
    let mut runs = 0u64;
    let mut starts: Vec<Option<P::Point>> = vec![None; config.particles];
    for stage in 0..=config.levels_max {
        let stage_seed = seed(pilot_seed, stage as u64);
        let seeds: Vec<u64> = (0..config.particles as u64)
            .map(|index| seed(stage_seed, index))
            .collect();
        let results: Vec<Result<Reached<P::Point>, P::Error>> = starts
            .par_iter()
            .zip(&seeds)
            .map(|(start, seed)| process.run(start.as_ref(), *seed, Target::Level(f64::INFINITY)))
            .collect();
        runs += results.len() as u64;
        let mut peaks = Vec::with_capacity(results.len());
        let mut events = 0usize;
        for result in results {
            match result? {
                Reached::End { event, peak } => {
                    events += usize::from(event);
                    peaks.push(peak);
                }
                // Only a start already above every level: never here.
                Reached::Level(_) => peaks.push(f64::INFINITY),
            }
        }
        if stage == config.levels_max
            || events as f64 >= config.event_fraction * config.particles as f64
        {
            break;
        }
        // A level every run reaches does not split anything: it must lie
        // above the lowest peak (and above the last level).
        let lowest = peaks.iter().copied().fold(f64::INFINITY, f64::min);
        let last = levels
            .last()
            .copied()
            .unwrap_or(f64::NEG_INFINITY)
            .max(lowest);
        let mut sorted: Vec<f64> = peaks.iter().copied().filter(|peak| *peak > last).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let Some(&lowest_above) = sorted.last() else {
            break;
        };
        let keep = ((config.survival * config.particles as f64).ceil() as usize).max(1);
        let level = sorted.get(keep - 1).copied().unwrap_or(lowest_above);
        if !level.is_finite() {
            break;
        }
        levels.push(level);
        let chosen: Vec<usize> = (0..peaks.len()).filter(|i| peaks[*i] >= level).collect();
        let rerun: Vec<Result<Reached<P::Point>, P::Error>> = chosen
            .par_iter()
            .map(|i| process.run(starts[*i].as_ref(), seeds[*i], Target::Level(level)))
            .collect();
        runs += rerun.len() as u64;
        let mut survivors = Vec::with_capacity(rerun.len());
        for result in rerun {
            if let Reached::Level(point) = result? {
                survivors.push(point);
            }
        }
        debug_assert_eq!(survivors.len(), chosen.len(), "a rerun takes the same path");
        if survivors.is_empty() {
            break;
        }
        starts = restart_points(&survivors, config.particles, stage_seed);
    }
    Ok(Pilot { levels, runs })
}

/// The next stage's `particles` starts, drawn uniformly with replacement
/// from the points where this stage's survivors crossed its level, by a
/// stream apart from the runs' seeds.
fn restart_points<T: Clone>(survivors: &[T], particles: usize, stage_seed: u64) -> Vec<Option<T>> {
    let pick_seed = seed(stage_seed ^ PICK_SALT, 0);
    (0..particles as u64)
        .map(|index| {
            let pick = seed(pick_seed, index) % survivors.len() as u64;
            Some(survivors[pick as usize].clone())
        })
        .collect()
}

/// The log-normal 95% interval of a product of stage fractions, each from
/// `particles` independent trials: `Var(log p) ~ sum (1 - p_k) / (n p_k)`.
pub fn independent_stages(fractions: &[f64], particles: f64) -> Probability {
    let estimate: f64 = fractions.iter().product();
    if fractions.iter().any(|fraction| *fraction <= 0.0) {
        return Probability {
            estimate: 0.0,
            low: 0.0,
            high: 0.0,
        };
    }
    let variance: f64 = fractions
        .iter()
        .map(|fraction| (1.0 - fraction) / (particles * fraction))
        .sum();
    let half = Z_95 * variance.sqrt();
    Probability {
        estimate,
        low: (estimate.ln() - half).exp().clamp(0.0, 1.0),
        high: (estimate.ln() + half).exp().clamp(0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::estimate::{monte_carlo, Trial};

    /// The gambler's ruin: a walk on `0..=top` starting at 1 that steps up
    /// with probability `up` and down otherwise, until it hits 0 or `top`.
    /// The rare event is hitting `top`; its probability is known exactly:
    /// `(r - 1) / (r^top - 1)` with `r = (1 - up) / up`. It is also the
    /// chance that an M/M/1 queue with load `up / (1 - up)` reaches `top`
    /// customers in a busy period.
    struct Ruin {
        up: f64,
        top: u32,
    }

    impl Ruin {
        fn exact(&self) -> f64 {
            let r = (1.0 - self.up) / self.up;
            (r - 1.0) / (r.powi(self.top as i32) - 1.0)
        }
    }

    impl Splittable for Ruin {
        type Point = u32;
        type Error = ();

        fn run(&self, from: Option<&u32>, seed: u64, target: Target) -> Result<Reached<u32>, ()> {
            let goal = match target {
                Target::Level(level) if level.is_finite() => (level.ceil() as u32).min(self.top),
                Target::Level(_) | Target::Event => self.top,
            };
            let mut position = from.copied().unwrap_or(1);
            let mut peak = position;
            let mut rng = RngFactory::new(seed).stream("walk");
            while position > 0 && position < goal {
                if rng.chance(self.up) {
                    position += 1;
                } else {
                    position -= 1;
                }
                peak = peak.max(position);
            }
            Ok(match target {
                Target::Level(level) if f64::from(position) >= level => Reached::Level(position),
                _ => Reached::End {
                    event: position >= self.top,
                    peak: f64::from(peak),
                },
            })
        }
    }

    #[test]
    fn splitting_finds_a_one_in_a_million_event_that_monte_carlo_cannot() {
        // Up with probability 1/3, to 21: p = 1 / (2^21 - 1) = 4.77e-7.
        let ruin = Ruin {
            up: 1.0 / 3.0,
            top: 21,
        };
        let exact = ruin.exact();
        assert!((exact - 1.0 / f64::from((1u32 << 21) - 1)).abs() < 1e-15);
        let config = SplittingConfig {
            levels: (1..=9).map(|level| f64::from(level * 2 + 1)).collect(),
            particles: 200,
            replications: 10,
        };
        let estimate = splitting(&ruin, &config, 42).unwrap();
        let interval = estimate.probability;
        assert!(
            interval.low <= exact && exact <= interval.high,
            "exact {exact:e} outside {interval:?}"
        );
        // Within 25% of the truth, from 20,000 runs.
        assert!(
            ((interval.estimate - exact) / exact).abs() < 0.25,
            "{estimate:?}"
        );
        assert!(estimate.relative_error < 0.15, "{estimate:?}");
        assert_eq!(estimate.runs, 20_000);
        // The same budget of plain Monte Carlo sees nothing and can only say
        // "below 1.9e-4", 400 times the truth.
        let plain = monte_carlo(42, estimate.runs, |seed| {
            let hit = matches!(
                ruin.run(None, seed, Target::Event)?,
                Reached::End { event: true, .. }
            );
            Ok::<_, ()>(Trial {
                failed: hit,
                margin: if hit { -1.0 } else { 1.0 },
            })
        })
        .unwrap();
        assert_eq!(plain.failures, 0);
        assert!(plain.probability.high > 1e-4);
    }

    #[test]
    fn splitting_matches_the_exact_answer_across_bases() {
        // A milder case, p = 1 / (2^11 - 1) = 4.9e-4, repeated from 20 base
        // seeds: the intervals should cover the truth about 95% of the
        // time (at least 17 of 20 here), and the mean of the 20 estimates
        // (each with a relative error of about 15%, so the mean's is about
        // 3.5%) should be within 10% of it: no bias beyond the noise (here
        // it is 6.5% low).
        let ruin = Ruin {
            up: 1.0 / 3.0,
            top: 11,
        };
        let exact = ruin.exact();
        let config = SplittingConfig {
            levels: vec![3.0, 5.0, 7.0, 9.0],
            particles: 100,
            replications: 5,
        };
        let mut covered = 0;
        let mut sum = 0.0;
        for base in 0..20 {
            let estimate = splitting(&ruin, &config, base).unwrap();
            let interval = estimate.probability;
            covered += u32::from(interval.low <= exact && exact <= interval.high);
            sum += interval.estimate;
        }
        assert!(covered >= 17, "covered {covered} of 20");
        let mean = sum / 20.0;
        assert!(
            ((mean - exact) / exact).abs() < 0.10,
            "mean {mean:e}, exact {exact:e}"
        );
    }

    #[test]
    fn splitting_is_the_same_at_any_thread_count() {
        let ruin = Ruin { up: 0.4, top: 12 };
        let config = SplittingConfig {
            levels: vec![4.0, 8.0],
            particles: 50,
            replications: 3,
        };
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| splitting(&ruin, &config, 5).unwrap())
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn levels_from_a_pilot_give_an_interval_that_covers_the_truth() {
        // p = 1 / (2^16 - 1) = 1.5e-5, levels unknown: the pilot finds them.
        let ruin = Ruin {
            up: 1.0 / 3.0,
            top: 16,
        };
        let exact = ruin.exact();
        let pilot = choose_levels(&ruin, &PilotConfig::default(), 3).unwrap();
        assert!(pilot.levels.len() >= 3, "{pilot:?}");
        assert!(pilot.levels.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(*pilot.levels.last().unwrap() < 16.0, "{pilot:?}");
        let config = SplittingConfig {
            levels: pilot.levels.clone(),
            particles: 100,
            replications: 10,
        };
        let estimate = splitting(&ruin, &config, 3).unwrap();
        let interval = estimate.probability;
        assert!(
            interval.low <= exact && exact <= interval.high && interval.low > 0.0,
            "exact {exact:e} outside {estimate:?}"
        );
        assert!(
            pilot.runs + estimate.runs < 20_000,
            "{pilot:?} {estimate:?}"
        );
    }

    /// The ruin, plus a failure that skips every level: a run from the start
    /// fails at once with probability `leak`.
    struct Leaky {
        ruin: Ruin,
        leak: f64,
    }

    impl Splittable for Leaky {
        type Point = u32;
        type Error = ();

        fn run(&self, from: Option<&u32>, seed: u64, target: Target) -> Result<Reached<u32>, ()> {
            if from.is_none() && RngFactory::new(seed).stream("leak").chance(self.leak) {
                return Ok(Reached::End {
                    event: true,
                    peak: 1.0,
                });
            }
            self.ruin.run(from, seed, target)
        }
    }

    #[test]
    fn a_failure_that_bypasses_the_levels_still_counts() {
        // P = leak + (1 - leak) p_ruin = 0.002 + 0.998 / 2047 = 2.49e-3:
        // four fifths of the failures never cross a level. A product of
        // stage fractions alone would say 4.9e-4.
        let leaky = Leaky {
            ruin: Ruin {
                up: 1.0 / 3.0,
                top: 11,
            },
            leak: 0.002,
        };
        let exact = leaky.leak + (1.0 - leaky.leak) * leaky.ruin.exact();
        let config = SplittingConfig {
            levels: vec![3.0, 5.0, 7.0, 9.0],
            particles: 1_000,
            replications: 10,
        };
        let estimate = splitting(&leaky, &config, 11).unwrap();
        let interval = estimate.probability;
        assert!(
            interval.low <= exact && exact <= interval.high,
            "exact {exact:e} outside {estimate:?}"
        );
        assert!(estimate.bypasses[0] > 0, "{estimate:?}");
    }

    #[test]
    fn the_independent_stage_interval_is_the_product_of_the_fractions() {
        let interval = independent_stages(&[0.5, 0.1], 100.0);
        assert!((interval.estimate - 0.05).abs() < 1e-12);
        // Var(log) = 0.5 / 50 + 0.9 / 10 = 0.1.
        let half = Z_95 * 0.1f64.sqrt();
        assert!((interval.high - 0.05 * half.exp()).abs() < 1e-12);
        assert_eq!(independent_stages(&[0.5, 0.0], 100.0).high, 0.0);
    }
}
