//! `sim`: a deterministic discrete-event simulator for reliability policies.
//!
//! A scenario file (`scenario`) describes clients, services, policies and
//! faults; `model::run` plays it on a virtual clock (`engine`) with seeded
//! randomness; `metrics` records every request's outcome; `report` writes the
//! summary, time series and charts. See ARCHITECTURE.md for the map.

#![warn(missing_docs)]

pub mod cli;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod sweep;
