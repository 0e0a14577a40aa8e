//! Seeded randomness. Every component draws from its own ChaCha stream whose
//! key is derived from the run's seed and the component's stable name
//! (`"client/users"`, `"service/api"`), so adding a client or changing one
//! service's parameters leaves every other component's draws unchanged.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Hands out independent random streams for one run.
#[derive(Clone, Debug)]
pub struct RngFactory {
    seed: u64,
}

impl RngFactory {
    /// A factory for the run with this seed.
    pub fn new(seed: u64) -> Self {
        RngFactory { seed }
    }

    /// The stream for the component called `name`. Asking twice for the same
    /// name gives two identical streams.
    pub fn stream(&self, name: &str) -> SimRng {
        let mut hasher = Sha256::new();
        hasher.update(b"sim.rng.v1\0");
        hasher.update(self.seed.to_le_bytes());
        hasher.update(name.as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        SimRng(ChaCha8Rng::from_seed(key))
    }
}

/// One component's random stream.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }

    /// A uniform integer in `[low, high]`; `low` if `high < low`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            low
        } else {
            self.0.random_range(low..=high)
        }
    }

    /// A uniform index in `[0, len)`; `len` must be positive.
    pub fn index(&mut self, len: usize) -> usize {
        debug_assert!(len > 0);
        self.0.random_range(0..len)
    }

    /// The underlying generator, for `rand_distr` samplers.
    pub fn raw(&mut self) -> &mut impl RngCore {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_stream_other_name_other_stream() {
        let factory = RngFactory::new(42);
        let mut a = factory.stream("client/users");
        let mut b = factory.stream("client/users");
        let mut c = factory.stream("client/batch");
        let draws_a: Vec<f64> = (0..4).map(|_| a.unit()).collect();
        let draws_b: Vec<f64> = (0..4).map(|_| b.unit()).collect();
        let draws_c: Vec<f64> = (0..4).map(|_| c.unit()).collect();
        assert_eq!(draws_a, draws_b);
        assert_ne!(draws_a, draws_c);
    }

    #[test]
    fn seed_changes_every_stream() {
        let mut a = RngFactory::new(1).stream("x");
        let mut b = RngFactory::new(2).stream("x");
        assert_ne!(a.unit(), b.unit());
    }

    #[test]
    fn between_is_inclusive_and_tolerates_empty_ranges() {
        let mut rng = RngFactory::new(7).stream("t");
        for _ in 0..1000 {
            let x = rng.between(3, 5);
            assert!((3..=5).contains(&x));
        }
        assert_eq!(rng.between(9, 2), 9);
    }
}
