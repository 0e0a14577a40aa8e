//! Integration tests: one crate, one module per concern.

mod accounting;
mod cli;
mod determinism;
mod golden;
mod policies;
mod policy_cli;
mod properties;
mod queueing;
mod regression;
mod support;
mod timeouts;
