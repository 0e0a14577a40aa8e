//! Integration tests: one crate, one module per concern.

mod accounting;
mod browser;
mod cli;
mod determinism;
mod golden;
mod policies;
mod policy_cli;
mod properties;
mod queueing;
mod regression;
mod scenarios_latency;
mod scenarios_resilience;
mod slurm;
mod support;
mod sweeps;
mod timeouts;
