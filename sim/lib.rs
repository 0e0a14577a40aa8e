//! `sim`: a deterministic discrete-event simulator for reliability policies.
//!
//! A scenario file (`scenario`) describes clients, services, policies and
//! faults; `model::run` plays it on a virtual clock (`engine`) with seeded
//! randomness; `metrics` records every request's outcome; `report` writes the
//! summary, time series and charts. See ARCHITECTURE.md for the map.
//!
//! # Using `sim` as a library
//!
//! Add it with the `proptest` feature to get the property-testing kit too:
//!
//! ```toml
//! [dev-dependencies]
//! sim = { git = "…", features = ["proptest"] }
//! proptest = "1.5"
//! ```
//!
//! What to import for what:
//!
//! | to … | use |
//! |---|---|
//! | build a scenario in code, and write it as a file `sim run` replays | [`scenario::builder`] (`ScenarioBuilder`, `ServiceBuilder`, `ClientBuilder`, `FaultBuilder`) |
//! | read a scenario file | [`scenario::Scenario::load`] |
//! | run it | [`run`] (`model::run`), then [`Summary::new`] for `summary.json` |
//! | drive the chapter's breaker by hand | [`policy::breaker::ChapterBreaker`] |
//! | drive the `count_window` and `time_window` breakers | [`policy::sliding_breaker::SlidingBreaker`] |
//! | drive retry budgets; backoff delays | [`policy::budget::RetryBudget`]; [`policy::backoff::Backoff`] |
//! | drive a bulkhead | [`policy::bulkhead::Bulkhead`] |
//! | drive any policy, timeouts included, through timed events | [`policy::driver::drive`] (what `sim policy` does) |
//! | name times and durations | [`engine::SimTime`], [`engine::SimDuration`] (integer microseconds) |
//! | seeded randomness for a policy | [`engine::RngFactory`] (`stream(name)`) |
//! | generate call plans, fault schedules and scenarios; replay; search and shrink | `testing` (feature `proptest`) |
//!
//! Every policy is a pure state machine: `now` is an argument, outcomes are
//! values, randomness comes from a seeded stream, so the same inputs always
//! give the same decisions. Policy configs are the scenario file's
//! `policies` entries; `serde_json::from_value` makes one from JSON.
//!
//! # Example: build, run, read the summary
//!
//! ```
//! use sim::model::distribution::Distribution;
//! use sim::scenario::builder::{ClientBuilder, FaultBuilder, ScenarioBuilder, ServiceBuilder};
//! use sim::scenario::OutageMode;
//! use sim::Summary;
//!
//! let builder = ScenarioBuilder::new("retry-storm", "a retrying client through a 2 s outage")
//!     .duration_ms(10_000)
//!     .service(ServiceBuilder::new("api", Distribution::Exponential { mean_ms: 20.0 }).workers(4))
//!     .client(
//!         ClientBuilder::open_loop("users", "api", 50.0)
//!             .policy_json(serde_json::json!({"kind": "retry", "attempts_max": 3})),
//!     )
//!     .fault(FaultBuilder::outage("api", 3_000, 5_000, OutageMode::FailFast));
//! let scenario = builder.build()?;
//! let output = sim::run(&scenario, 42).expect("within its limits");
//! let summary = Summary::new(&scenario, 42, &output);
//! assert_eq!(summary.requests.total(), summary.requests.issued); // one outcome per request
//! assert!(summary.retry_amplification > 1.0); // the outage was retried
//! // The same scenario as a file: `sim run retry-storm.json --seed 42` gives this summary.
//! let _file_text: String = builder.to_json();
//! # Ok::<(), sim::scenario::ScenarioError>(())
//! ```
//!
//! # Determinism
//!
//! A run is a pure function of the scenario and the seed: integer virtual
//! time, one named random stream per component, no wall clock and no hash
//! map iteration. The same holds for the `testing` search, whose cases come
//! from a seeded ChaCha stream.

#![warn(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links)]

pub mod cli;
pub mod database;
pub mod engine;
pub mod error;
pub mod estimate;
pub mod explore;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod sweep;
#[cfg(test)]
mod test_support;
#[cfg(feature = "proptest")]
pub mod testing;
pub mod topology;

pub use metrics::summary::Summary;
pub use model::run;
