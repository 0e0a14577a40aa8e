//! The primary's crash process (`primary_failures` in a scenario): the node
//! that holds the primary role crashes an exponential time after it took
//! the role, and is repaired an exponential time after its crash. A pure
//! generator of instants; the world's adapter crashes and restarts the nodes.
//!
//! Why draw from the promotion and not from the last repair (as
//! `topology::failure::FailureProcess` does for one unit)? The role, not a
//! node, is what fails over: while the old primary repairs, the promoted
//! replica already serves and can fail. Exponential times are memoryless,
//! so drawing at the promotion is the same as a clock that ran all along,
//! and the long-run availability is the renewal-reward ratio
//! `MTTF / (MTTF + detect + promote + route)`
//! (`topology::failure::availability_active_passive`), as long as a
//! replica is up when the primary fails (MTTR much less than MTTF).

use crate::engine::{SimDuration, SimRng, SimTime};
use rand_distr::{Distribution as _, Exp};

/// Draws failure and repair instants with means `mttf_ms` and `mttr_ms`.
#[derive(Clone, Debug)]
pub struct PrimaryFailures {
    mttf: Exp<f64>,
    mttr: Exp<f64>,
    rng: SimRng,
}

impl PrimaryFailures {
    /// A process with means `mttf_ms` and `mttr_ms` (both `>= 1`,
    /// validated), drawing from `rng` (`database/<name>/failures`).
    pub fn new(mttf_ms: f64, mttr_ms: f64, rng: SimRng) -> PrimaryFailures {
        debug_assert!(mttf_ms >= 1.0 && mttr_ms >= 1.0);
        PrimaryFailures {
            mttf: Exp::new(1.0 / mttf_ms).expect("validated mttf"),
            mttr: Exp::new(1.0 / mttr_ms).expect("validated mttr"),
            rng,
        }
    }

    /// When a primary that holds the role from `since` crashes.
    pub fn next_failure(&mut self, since: SimTime) -> SimTime {
        since + draw(&self.mttf, &mut self.rng)
    }

    /// When a node that crashed at `at` is repaired.
    pub fn repair(&mut self, at: SimTime) -> SimTime {
        at + draw(&self.mttr, &mut self.rng)
    }
}

/// An exponential draw, at least one microsecond (never at the same instant).
fn draw(exp: &Exp<f64>, rng: &mut SimRng) -> SimDuration {
    SimDuration::from_ms_f64(exp.sample(rng.raw())).max(SimDuration(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;

    #[test]
    fn draws_are_later_and_average_their_means() {
        let mut failures =
            PrimaryFailures::new(60_000.0, 5_000.0, RngFactory::new(7).stream("failures"));
        let since = SimTime::from_ms(1_000);
        let draws = 20_000;
        let (mut up_ms, mut down_ms) = (0.0, 0.0);
        for _ in 0..draws {
            let fail_at = failures.next_failure(since);
            let repair_at = failures.repair(fail_at);
            assert!(since < fail_at && fail_at < repair_at);
            up_ms += fail_at.saturating_since(since).as_ms_f64();
            down_ms += repair_at.saturating_since(fail_at).as_ms_f64();
        }
        // Exponential: standard error mean / sqrt(n), under 1% here; 3% is
        // over four standard errors.
        let up_mean = up_ms / draws as f64;
        let down_mean = down_ms / draws as f64;
        assert!((up_mean / 60_000.0 - 1.0).abs() < 0.03, "{up_mean}");
        assert!((down_mean / 5_000.0 - 1.0).abs() < 0.03, "{down_mean}");
    }
}
