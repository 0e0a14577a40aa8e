//! Databases: replication, failure detection, promotion, fencing and the
//! write ledger, each a pure state machine.
pub mod chapter;
pub mod detection;
pub mod fencing;
pub mod ledger;
pub mod promotion;
pub mod replication;
