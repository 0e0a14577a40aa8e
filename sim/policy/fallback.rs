//! Fallback (the chapter's `FallbackService`, section 8.7): when the inner
//! call fails, answer from a last-good cache, with a default value, or with
//! a degraded response, in that order. Fallback answers are counted apart
//! from successes everywhere; the layer's counters say which kind answered.

use super::{Ctx, Layer, Reply, ReplyKind, Step};
use crate::engine::{SimDuration, SimRng, SimTime};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use rand_distr::{Distribution as _, Zipf};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fallback settings. Defaults: fall back on every failure, no cache, a
/// default answer, no degraded answer.
///
/// JSON: `{"kind": "fallback", "cache": {"ttl_ms": 3600000, "keys": 1000},
/// "default": true, "degraded": false}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Which failed replies get the fallback; default all of `error`,
    /// `timeout`, `breaker_open`, `queue_full`, `bulkhead_full`.
    #[serde(default = "on_default")]
    pub on: Vec<ReplyKind>,
    /// A last-good cache, tried first: the last successful answer for the
    /// request's key, if younger than `ttl_ms`. Default none.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Answer with a default value when the cache has nothing; default true.
    #[serde(default = "yes")]
    pub default: bool,
    /// Answer with a degraded response when there is no default (the
    /// chapter's third fallback, reached only when `default` is false);
    /// default false.
    #[serde(default)]
    pub degraded: bool,
}

/// The last-good cache of a fallback chain.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a cached answer may be served, in `[1, 86400000]` ms;
    /// default 3600000 (the chapter's `cache.set(key, result, 3600)`).
    #[serde(default = "ttl_default")]
    pub ttl_ms: u64,
    /// How many distinct request keys there are, in `[1, 1000000]`; default 1000.
    #[serde(default = "keys_default")]
    pub keys: u32,
    /// How skewed key popularity is: 0 is uniform, larger values follow a
    /// Zipf law with this exponent, in `[0, 5]`; default 0.
    #[serde(default)]
    pub key_skew: f64,
}

fn yes() -> bool {
    true
}

fn ttl_default() -> u64 {
    3_600_000
}

fn keys_default() -> u32 {
    1_000
}

fn on_default() -> Vec<ReplyKind> {
    vec![
        ReplyKind::Error,
        ReplyKind::Timeout,
        ReplyKind::BreakerOpen,
        ReplyKind::QueueFull,
        ReplyKind::BulkheadFull,
    ]
}

impl FallbackConfig {
    /// Checks the ranges and that only failure kinds are listed; `path`
    /// names this policy.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        validate_failure_kinds(&join(path, "on"), &self.on)?;
        if let Some(cache) = &self.cache {
            let path = join(path, "cache");
            check::within(&join(&path, "ttl_ms"), cache.ttl_ms, 1, 86_400_000)?;
            check::within(&join(&path, "keys"), cache.keys, 1, 1_000_000)?;
            check::within_f64(&join(&path, "key_skew"), cache.key_skew, 0.0, 5.0)?;
        }
        Ok(())
    }
}

/// Checks that a list of reply kinds names only failures.
pub fn validate_failure_kinds(path: &str, kinds: &[ReplyKind]) -> Result<(), Invalid> {
    for (index, kind) in kinds.iter().enumerate() {
        if matches!(kind, ReplyKind::Success | ReplyKind::Fallback) {
            return Err(Invalid::new(
                format!("{path}[{index}]"),
                "must be one of error, timeout, breaker_open, queue_full, bulkhead_full",
            ));
        }
    }
    Ok(())
}

/// A last-good cache: for each key, when its last successful answer came.
///
/// Only keys that have been stored take memory (an ordered map, about 48
/// bytes per key at most), so a cache of a million keys that sees a thousand
/// costs kilobytes, not megabytes; `scenario::memory` counts every key as
/// the upper bound.
#[derive(Clone, Debug)]
pub struct LastGoodCache {
    ttl: SimDuration,
    keys: u64,
    stored_at: BTreeMap<u64, SimTime>,
    key_skew: f64,
}

impl LastGoodCache {
    /// An empty cache for `config`.
    pub fn new(config: &CacheConfig) -> Self {
        LastGoodCache {
            ttl: SimDuration::from_ms(config.ttl_ms),
            keys: u64::from(config.keys),
            stored_at: BTreeMap::new(),
            key_skew: config.key_skew,
        }
    }

    /// Draws the key of a new request: uniform, or Zipf-distributed.
    pub fn draw_key(&self, rng: &mut SimRng) -> u64 {
        let keys = self.keys as usize;
        if self.key_skew <= 0.0 {
            rng.index(keys) as u64
        } else {
            // Validated: keys >= 1 and 0 < skew <= 5.
            let zipf = Zipf::new(keys as f64, self.key_skew).expect("validated zipf");
            (zipf.sample(rng.raw()) as u64)
                .saturating_sub(1)
                .min(keys as u64 - 1)
        }
    }

    /// Records a successful answer for `key` at `now`.
    pub fn store(&mut self, key: u64, now: SimTime) {
        debug_assert!(key < self.keys);
        self.stored_at.insert(key, now);
    }

    /// Whether `key` has an answer younger than the TTL at `now`.
    pub fn fresh(&self, key: u64, now: SimTime) -> bool {
        self.stored_at
            .get(&key)
            .is_some_and(|&at| now.saturating_since(at) < self.ttl)
    }

    /// How many keys have an answer stored (fresh or not).
    pub fn stored(&self) -> usize {
        self.stored_at.len()
    }
}

/// The fallback as a stack layer: the chapter's chain of cache, default
/// value and degraded response.
pub struct FallbackLayer {
    config: FallbackConfig,
    cache: Option<LastGoodCache>,
    calls: u64,
    from_cache: u64,
    from_default: u64,
    degraded: u64,
    unanswered: u64,
}

impl FallbackLayer {
    /// A fallback layer with an empty cache.
    pub fn new(config: &FallbackConfig) -> Self {
        FallbackLayer {
            config: config.clone(),
            cache: config.cache.as_ref().map(LastGoodCache::new),
            calls: 0,
            from_cache: 0,
            from_default: 0,
            degraded: 0,
            unanswered: 0,
        }
    }
}

impl Layer for FallbackLayer {
    fn kind(&self) -> &'static str {
        "fallback"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        self.calls += 1;
        if let Some(cache) = &self.cache {
            ctx.call.key = cache.draw_key(ctx.rng) as u32;
        }
        Step::Forward
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        if reply == Reply::Success {
            if let Some(cache) = &mut self.cache {
                cache.store(u64::from(ctx.call.key), ctx.now);
            }
            return Step::Complete(reply);
        }
        if !self.config.on.contains(&reply.kind()) {
            return Step::Complete(reply);
        }
        // The chapter's order: cached data, then the default value, then the
        // degraded response; with none of them the failure goes on up.
        if self
            .cache
            .as_ref()
            .is_some_and(|cache| cache.fresh(u64::from(ctx.call.key), ctx.now))
        {
            self.from_cache += 1;
        } else if self.config.default {
            self.from_default += 1;
        } else if self.config.degraded {
            self.degraded += 1;
        } else {
            self.unanswered += 1;
            return Step::Complete(reply);
        }
        Step::Complete(Reply::Fallback)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("calls", self.calls),
            (
                "fallbacks",
                self.from_cache + self.from_default + self.degraded,
            ),
            ("from_cache", self.from_cache),
            ("from_default", self.from_default),
            ("degraded", self.degraded),
            ("unanswered", self.unanswered),
        ]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "on": self.config.on,
            "cache_keys": self.cache.as_ref().map(|cache| cache.stored_at.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::policy::{CallId, CallState};

    // A cache of a million keys holds only the keys stored so far: its
    // memory grows with use, not with its configured size.
    #[test]
    fn cache_memory_grows_only_with_stored_keys() {
        let mut cache = LastGoodCache::new(&CacheConfig {
            ttl_ms: 1_000,
            keys: 1_000_000,
            key_skew: 0.0,
        });
        assert_eq!(cache.stored(), 0);
        let mut rng = RngFactory::new(7).stream("keys");
        let keys: Vec<u64> = (0..3).map(|_| cache.draw_key(&mut rng)).collect();
        assert!(keys.iter().all(|&key| key < 1_000_000));
        for &key in &keys {
            cache.store(key, SimTime::from_ms(10));
        }
        let distinct: std::collections::BTreeSet<u64> = keys.iter().copied().collect();
        assert_eq!(cache.stored(), distinct.len());
        assert!(cache.fresh(keys[0], SimTime::from_ms(1_009)));
        assert!(!cache.fresh(keys[0], SimTime::from_ms(1_010)));
        assert!(!cache.fresh(999_999, SimTime::from_ms(10)) || distinct.contains(&999_999));
    }

    fn run(layer: &mut FallbackLayer, now_ms: u64, key: u32, reply: Reply) -> Step {
        let mut call = CallState {
            key,
            ..CallState::default()
        };
        let mut rng = RngFactory::new(1).stream("f");
        let (mut notes, mut wake) = (Vec::new(), Vec::new());
        let mut ctx = Ctx {
            now: SimTime::from_ms(now_ms),
            id: CallId(0),
            call: &mut call,
            rng: &mut rng,
            notes: &mut notes,
            wake: &mut wake,
        };
        layer.on_result(&mut ctx, reply)
    }

    fn config(cache: bool, default: bool, degraded: bool) -> FallbackConfig {
        FallbackConfig {
            on: on_default(),
            cache: cache.then_some(CacheConfig {
                ttl_ms: 1_000,
                keys: 10,
                key_skew: 0.0,
            }),
            default,
            degraded,
        }
    }

    const ERROR: Reply = Reply::Error { retryable: true };

    // The chain tries the cache, then the default, then the degraded answer.
    #[test]
    fn chain_prefers_fresh_cache_then_default_then_degraded() {
        let mut layer = FallbackLayer::new(&config(true, true, true));
        assert_eq!(
            run(&mut layer, 0, 3, Reply::Success),
            Step::Complete(Reply::Success)
        );
        assert_eq!(
            run(&mut layer, 500, 3, ERROR),
            Step::Complete(Reply::Fallback)
        );
        assert_eq!(
            run(&mut layer, 500, 4, ERROR),
            Step::Complete(Reply::Fallback)
        );
        // Past the TTL the cache no longer answers.
        assert_eq!(
            run(&mut layer, 1_000, 3, ERROR),
            Step::Complete(Reply::Fallback)
        );
        let counters: Vec<_> = layer.counters();
        assert!(counters.contains(&("from_cache", 1)));
        assert!(counters.contains(&("from_default", 2)));
        assert!(counters.contains(&("degraded", 0)));
    }

    // As in the chapter, a degraded response is reached only without a default value.
    #[test]
    fn degraded_answers_only_without_a_default() {
        let mut layer = FallbackLayer::new(&config(false, false, true));
        assert_eq!(
            run(&mut layer, 0, 0, ERROR),
            Step::Complete(Reply::Fallback)
        );
        assert!(layer.counters().contains(&("degraded", 1)));
        let mut none = FallbackLayer::new(&config(false, false, false));
        assert_eq!(run(&mut none, 0, 0, ERROR), Step::Complete(ERROR));
    }

    // Zipf keys favour low ranks; uniform keys do not.
    #[test]
    fn skewed_keys_concentrate_on_popular_ones() {
        let mut rng = RngFactory::new(2).stream("k");
        let skewed = LastGoodCache::new(&CacheConfig {
            ttl_ms: 1,
            keys: 100,
            key_skew: 1.2,
        });
        let uniform = LastGoodCache::new(&CacheConfig {
            ttl_ms: 1,
            keys: 100,
            key_skew: 0.0,
        });
        let top = |cache: &LastGoodCache, rng: &mut SimRng| {
            (0..10_000).filter(|_| cache.draw_key(rng) < 10).count()
        };
        assert!(top(&skewed, &mut rng) > 5_000);
        let uniform_top = top(&uniform, &mut rng);
        assert!((800..1_200).contains(&uniform_top), "{uniform_top}");
    }
}
