//! Integration tests: one crate, one module per concern.

mod accounting;
mod cli;
mod determinism;
mod golden;
mod policies;
mod properties;
mod queueing;
mod support;
