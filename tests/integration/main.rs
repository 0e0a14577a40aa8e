//! Integration tests: one crate, one module per concern.

mod accounting;
mod bounded;
mod browser;
mod cli;
mod databases;
mod determinism;
mod explore;
mod fuzz;
mod golden;
mod library;
mod memory;
mod output;
mod policies;
mod policy_cli;
mod properties;
mod queueing;
mod regions;
mod regression;
mod scenarios_latency;
mod scenarios_resilience;
mod slurm;
mod support;
mod sweeps;
mod timeouts;
mod verdict;
