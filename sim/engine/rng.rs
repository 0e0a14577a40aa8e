//! Seeded randomness. Every component draws from its own ChaCha stream whose
//! key is derived from the run's seed and the component's stable name
//! (`"client/users"`, `"service/api"`), so adding a client or changing one
//! service's parameters leaves every other component's draws unchanged.
//!
//! ## Reseeding (for splitting)
//!
//! `RngFactory::reseed(salt)` gives every stream the factory handed out, at
//! once, fresh randomness: from its next draw each stream is a new ChaCha
//! stream keyed by its original key and `salt`. Rare-event splitting
//! (`estimate::scenario`) replays a run with its seed up to a level
//! crossing and reseeds there, so the continuation is a fresh, independent
//! draw of the future from the same state. The streams learn of it through
//! one shared cell rather than a list of fields to walk, so a stream a new
//! module adds is reseeded too. Without a reseed nothing changes: the draws
//! are the same as before reseeding existed.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Hands out independent random streams for one run.
#[derive(Clone, Debug)]
pub struct RngFactory {
    seed: u64,
    /// The salt every stream of this factory is keyed with now (0: none,
    /// the original streams). Shared with the streams.
    salt: Arc<AtomicU64>,
}

impl RngFactory {
    /// A factory for the run with this seed.
    pub fn new(seed: u64) -> Self {
        RngFactory {
            seed,
            salt: Arc::new(AtomicU64::new(0)),
        }
    }

    /// From their next draw on, every stream this factory made (and makes)
    /// draws from a fresh stream keyed by its own key and `salt`; a salt of
    /// 0 goes back to the original streams. Deterministic: the same salt
    /// gives the same fresh streams.
    pub fn reseed(&self, salt: u64) {
        self.salt.store(salt, Ordering::Relaxed);
    }

    /// The stream for the component called `name`. Asking twice for the same
    /// name gives two identical streams.
    pub fn stream(&self, name: &str) -> SimRng {
        let mut hasher = Sha256::new();
        hasher.update(b"sim.rng.v1\0");
        hasher.update(self.seed.to_le_bytes());
        hasher.update(name.as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        let mut rng = SimRng {
            rng: ChaCha8Rng::from_seed(key),
            origin: key,
            keyed_with: 0,
            salt: Some(Arc::clone(&self.salt)),
        };
        rng.fresh();
        rng
    }
}

/// One component's random stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    rng: ChaCha8Rng,
    /// The key derived from the seed and the name.
    origin: [u8; 32],
    /// The salt `rng` is keyed with (0: the original key).
    keyed_with: u64,
    /// The factory's current salt.
    salt: Option<Arc<AtomicU64>>,
}

impl SimRng {
    /// The generator, rekeyed first if the factory was reseeded since the
    /// last draw.
    #[inline(always)]
    fn fresh(&mut self) -> &mut ChaCha8Rng {
        if let Some(salt) = &self.salt {
            let salt = salt.load(Ordering::Relaxed);
            if salt != self.keyed_with {
                self.rekey(salt);
            }
        }
        &mut self.rng
    }

    /// Rekeys the stream for `salt`; out of line, as it runs once per
    /// reseed and never in a plain run.
    #[cold]
    #[inline(never)]
    fn rekey(&mut self, salt: u64) {
        self.keyed_with = salt;
        self.rng = if salt == 0 {
            ChaCha8Rng::from_seed(self.origin)
        } else {
            let mut hasher = Sha256::new();
            hasher.update(b"sim.rng.reseed.v1\0");
            hasher.update(self.origin);
            hasher.update(salt.to_le_bytes());
            ChaCha8Rng::from_seed(hasher.finalize().into())
        };
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.fresh().random::<f64>()
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
            self.fresh().random_range(low..=high)
        }
    }

    /// A uniform index in `[0, len)`; `len` must be positive.
    pub fn index(&mut self, len: usize) -> usize {
        debug_assert!(len > 0);
        self.fresh().random_range(0..len)
    }

    /// The underlying generator, for `rand_distr` samplers.
    pub fn raw(&mut self) -> &mut impl RngCore {
        self.fresh()
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
    fn reseeding_gives_every_stream_fresh_deterministic_draws() {
        let factory = RngFactory::new(42);
        let mut a = factory.stream("client/users");
        let mut b = factory.stream("service/api");
        let before: Vec<f64> = (0..3).map(|_| a.unit()).collect();
        factory.reseed(7);
        let mut late = factory.stream("client/users");
        let after_a: Vec<f64> = (0..3).map(|_| a.unit()).collect();
        let after_late: Vec<f64> = (0..3).map(|_| late.unit()).collect();
        // A stream made after the reseed draws the same as one made before.
        assert_eq!(after_a, after_late);
        assert_ne!(after_a[..], before[..]);
        let after_b = b.unit();
        // The same salt on another factory with the same seed: same draws.
        let other = RngFactory::new(42);
        let mut a2 = other.stream("client/users");
        let mut b2 = other.stream("service/api");
        other.reseed(7);
        assert_eq!((0..3).map(|_| a2.unit()).collect::<Vec<_>>(), after_a);
        assert_eq!(b2.unit(), after_b);
        // Another salt, other draws; salt 0 is the original stream again.
        other.reseed(8);
        assert_ne!(a2.unit(), after_a[0]);
        other.reseed(0);
        let mut original = RngFactory::new(42).stream("client/users");
        assert_eq!(a2.unit(), original.unit());
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
