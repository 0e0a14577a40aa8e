//! Helpers shared by the crate's own unit tests (compiled only under `cfg(test)`).
//!
//! The counterexample tests of the chapter's variants (breaker, database
//! failover, regions routing) all ask proptest the same question: "find a
//! value that breaks this property, shrunk". They pin the shrunk value, so
//! they must all use the same deterministic runner: proptest's fixed ChaCha
//! seed, 256 cases, no regression files. Users get the seeded equivalent,
//! `sim::testing::search`.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

pub(crate) use proptest::test_runner::TestCaseError;

/// Runs `property` over 256 values of `strategy` with proptest's
/// deterministic runner and returns the first failing value, shrunk; `None`
/// when every case passes. Panics if proptest aborts (too many rejects).
pub(crate) fn counterexample<S: Strategy>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Option<S::Value> {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    match runner.run(&strategy, property) {
        Ok(()) => None,
        Err(TestError::Fail(_, value)) => Some(value),
        Err(error) => panic!("{error}"),
    }
}

/// [`counterexample`] for a property that reports its violation as a string.
pub(crate) fn counterexample_of<S: Strategy>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), String>,
) -> Option<S::Value> {
    counterexample(strategy, |value| {
        property(value).map_err(TestCaseError::fail)
    })
}
