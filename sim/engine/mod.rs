//! The deterministic discrete-event core: integer virtual time, an event
//! queue ordered by `(time, insertion sequence)`, and seeded random streams.
//!
//! Nothing in this module knows about clients, services or policies; the
//! model (`crate::model`) drives it.

pub mod clock;
pub mod indexed_queue;
pub mod queue;
pub mod rng;

pub use clock::{SimDuration, SimTime, MICROS_PER_MS, MICROS_PER_SECOND, MICROS_PER_SECOND_F64};
pub use queue::{EventId, EventQueue};
pub use rng::{RngFactory, SimRng};
