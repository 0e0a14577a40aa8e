//! The simulated system: clients, services with worker pools and queues,
//! load balancers, network latency, faults, and the policy stacks that calls
//! go through. `world::World` owns all of it and handles every event.

pub mod arrivals;
pub mod check_driver;
pub mod distribution;
mod exp;
pub mod flags;
pub mod health;
pub mod regions;
pub mod world;

pub use world::{
    run, run_observed, Control, DatabaseReport, DatabaseSample, DrawnFault, Observer, Probe,
    RunError, RunOutput, DRAWN_FAULTS_KEPT_MAX,
};
