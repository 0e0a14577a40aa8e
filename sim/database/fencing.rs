//! Fencing: what stops an old primary from accepting writes after another
//! node was promoted. A pure state machine over the nodes' roles and epochs:
//! promotions, lost leases, crashes and restarts in; which nodes accept a
//! write out. Modes:
//!
//! - `none`: nothing stops the old primary. If it is alive (a partition, a
//!   false failover, the chapter's client-side failover) it keeps accepting
//!   writes: split brain, and every write it accepts diverges.
//! - `self_demote` (Patroni): the old primary demotes itself when it loses
//!   its lease (`on_lease_lost`, from the lease detector's `Demote`); until
//!   then it accepts writes. Patroni's `ttl >= loop_wait + 2 x retry_timeout`
//!   makes that happen before the key expires, so with the lease detector
//!   there is no overlap.
//! - `stonith` ("shoot the other node in the head", Pacemaker): before the
//!   new primary takes writes, the old one is powered off through a fencing
//!   device. If the device cannot reach the old primary (it sits across the
//!   partition), the promotion is withheld, as Pacemaker refuses to promote
//!   without a confirmed fence: safety over availability.
//! - `fencing_tokens` (Kleppmann, "How to do distributed locking"): every
//!   promotion starts a higher epoch, every write carries its writer's
//!   epoch, and the storage rejects an epoch lower than the highest it has
//!   seen. The old primary stays up but every write it attempts fails.
//!
//! A restarted node comes back as a replica in every mode except `none`,
//! where a restarted old primary that nobody told otherwise comes back as a
//! primary (as a bare PostgreSQL or MySQL does).

use serde::{Deserialize, Serialize};

/// How an old primary is stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FencingMode {
    /// Nothing stops it.
    #[default]
    None,
    /// It demotes itself when it loses its lease.
    SelfDemote,
    /// It is powered off before the promotion completes.
    Stonith,
    /// The storage rejects writes from an old epoch.
    FencingTokens,
}

impl FencingMode {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FencingMode::None => "none",
            FencingMode::SelfDemote => "self_demote",
            FencingMode::Stonith => "stonith",
            FencingMode::FencingTokens => "fencing_tokens",
        }
    }
}

/// Why a node refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It is a replica (or demoted).
    NotPrimary,
    /// It is down or powered off.
    Down,
    /// Its epoch is older than the storage's (`fencing_tokens`).
    StaleEpoch {
        /// The writer's epoch.
        epoch: u64,
        /// The storage's epoch.
        storage_epoch: u64,
    },
}

/// The answer to "may node n take this write?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Accepted, in this epoch.
    Accepted {
        /// The writer's epoch.
        epoch: u64,
    },
    /// Refused.
    Refused(Refusal),
}

/// What happened to a promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The new primary takes writes now; `fenced` says whether the old one
    /// was powered off for it.
    Proceed {
        /// The old primary was powered off (`stonith`).
        fenced: bool,
    },
    /// `stonith` could not reach the old primary: no promotion.
    Withheld,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeRole {
    primary: bool,
    alive: bool,
    powered_off: bool,
    epoch: u64,
}

/// Roles and epochs of one cluster's nodes under one fencing mode.
#[derive(Clone, Debug)]
pub struct Fencing {
    mode: FencingMode,
    nodes: Vec<NodeRole>,
    epoch: u64,
    storage_epoch: u64,
}

impl Fencing {
    /// `nodes` nodes, all up, `primary` the primary in epoch 0.
    pub fn new(mode: FencingMode, nodes: usize, primary: usize) -> Fencing {
        debug_assert!(primary < nodes);
        Fencing {
            mode,
            nodes: (0..nodes)
                .map(|index| NodeRole {
                    primary: index == primary,
                    alive: true,
                    powered_off: false,
                    epoch: 0,
                })
                .collect(),
            epoch: 0,
            storage_epoch: 0,
        }
    }

    /// The mode.
    pub fn mode(&self) -> FencingMode {
        self.mode
    }

    /// The newest epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// May node `node` accept a write now?
    pub fn admit(&self, node: usize) -> Admission {
        let role = self.nodes[node];
        if !role.alive || role.powered_off {
            return Admission::Refused(Refusal::Down);
        }
        if !role.primary {
            return Admission::Refused(Refusal::NotPrimary);
        }
        if self.mode == FencingMode::FencingTokens && role.epoch < self.storage_epoch {
            return Admission::Refused(Refusal::StaleEpoch {
                epoch: role.epoch,
                storage_epoch: self.storage_epoch,
            });
        }
        Admission::Accepted { epoch: role.epoch }
    }

    /// Nodes that would accept a write now: more than one is split brain.
    pub fn writable_primaries(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&node| matches!(self.admit(node), Admission::Accepted { .. }))
            .count()
    }

    /// Node `new_primary` is being promoted over `old_primary`;
    /// `device_reaches_old` says whether a `stonith` device can reach the
    /// old primary. Returns whether the promotion proceeds.
    pub fn on_promotion(
        &mut self,
        new_primary: usize,
        old_primary: usize,
        device_reaches_old: bool,
    ) -> Gate {
        debug_assert_ne!(new_primary, old_primary);
        let mut fenced = false;
        if self.mode == FencingMode::Stonith {
            let old = &mut self.nodes[old_primary];
            let already_down = !old.alive || old.powered_off;
            if !already_down && !device_reaches_old {
                return Gate::Withheld;
            }
            if !already_down {
                old.powered_off = true;
                fenced = true;
            }
            old.primary = false;
        }
        self.epoch += 1;
        if self.mode == FencingMode::FencingTokens {
            // The new primary's first write carries the new token.
            self.storage_epoch = self.epoch;
        }
        let new = &mut self.nodes[new_primary];
        new.primary = true;
        new.epoch = self.epoch;
        debug_assert!(self.mode != FencingMode::Stonith || self.writable_primaries() <= 1);
        Gate::Proceed { fenced }
    }

    /// Node `node` lost its lease (the lease detector's `Demote`). Only
    /// `self_demote` acts on it; returns whether the node stopped being primary.
    pub fn on_lease_lost(&mut self, node: usize) -> bool {
        let role = &mut self.nodes[node];
        if self.mode == FencingMode::SelfDemote && role.primary {
            role.primary = false;
            return true;
        }
        false
    }

    /// Node `node` crashed.
    pub fn on_crash(&mut self, node: usize) {
        self.nodes[node].alive = false;
    }

    /// Node `node` restarted (a powered-off node stays off until an operator
    /// powers it on: `power_on`).
    pub fn on_restart(&mut self, node: usize) {
        let newest = self.epoch;
        let mode = self.mode;
        let role = &mut self.nodes[node];
        role.alive = true;
        if mode != FencingMode::None && role.epoch < newest {
            role.primary = false;
        }
    }

    /// An operator powers a fenced node back on; it returns as a replica.
    pub fn power_on(&mut self, node: usize) {
        let role = &mut self.nodes[node];
        role.powered_off = false;
        role.primary = false;
    }

    /// An old primary rejoins as a replica of the current one.
    pub fn rejoin(&mut self, node: usize) {
        let epoch = self.epoch;
        let role = &mut self.nodes[node];
        role.primary = false;
        role.epoch = epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Without fencing, a live old primary keeps accepting writes: two primaries.
    #[test]
    fn none_leaves_two_writable_primaries() {
        let mut fencing = Fencing::new(FencingMode::None, 3, 0);
        assert_eq!(
            fencing.on_promotion(1, 0, true),
            Gate::Proceed { fenced: false }
        );
        assert_eq!(fencing.admit(0), Admission::Accepted { epoch: 0 });
        assert_eq!(fencing.admit(1), Admission::Accepted { epoch: 1 });
        assert_eq!(fencing.writable_primaries(), 2);
        // Losing a lease changes nothing, and a restart comes back as primary.
        assert!(!fencing.on_lease_lost(0));
        fencing.on_crash(0);
        fencing.on_restart(0);
        assert_eq!(fencing.writable_primaries(), 2);
    }

    // Self-demotion ends the overlap when the old primary loses its lease.
    #[test]
    fn self_demote_ends_split_brain_at_lease_loss() {
        let mut fencing = Fencing::new(FencingMode::SelfDemote, 2, 0);
        fencing.on_promotion(1, 0, false);
        assert_eq!(fencing.writable_primaries(), 2);
        assert!(fencing.on_lease_lost(0));
        assert_eq!(fencing.admit(0), Admission::Refused(Refusal::NotPrimary));
        assert_eq!(fencing.writable_primaries(), 1);
    }

    // STONITH powers the old primary off first, or withholds the promotion.
    #[test]
    fn stonith_fences_or_withholds() {
        let mut fencing = Fencing::new(FencingMode::Stonith, 2, 0);
        assert_eq!(fencing.on_promotion(1, 0, false), Gate::Withheld);
        assert_eq!(fencing.writable_primaries(), 1);
        assert_eq!(fencing.admit(1), Admission::Refused(Refusal::NotPrimary));
        assert_eq!(
            fencing.on_promotion(1, 0, true),
            Gate::Proceed { fenced: true }
        );
        assert_eq!(fencing.admit(0), Admission::Refused(Refusal::Down));
        fencing.on_restart(0);
        assert_eq!(fencing.admit(0), Admission::Refused(Refusal::Down));
        fencing.power_on(0);
        assert_eq!(fencing.admit(0), Admission::Refused(Refusal::NotPrimary));
        // A crashed old primary needs no device.
        let mut fencing = Fencing::new(FencingMode::Stonith, 2, 0);
        fencing.on_crash(0);
        assert_eq!(
            fencing.on_promotion(1, 0, false),
            Gate::Proceed { fenced: false }
        );
    }

    // Fencing tokens: the old primary is up and believes it leads, but the
    // storage rejects its stale epoch.
    #[test]
    fn fencing_tokens_reject_the_stale_epoch() {
        let mut fencing = Fencing::new(FencingMode::FencingTokens, 2, 0);
        fencing.on_promotion(1, 0, false);
        assert_eq!(
            fencing.admit(0),
            Admission::Refused(Refusal::StaleEpoch {
                epoch: 0,
                storage_epoch: 1
            })
        );
        assert_eq!(fencing.admit(1), Admission::Accepted { epoch: 1 });
        assert_eq!(fencing.writable_primaries(), 1);
        fencing.rejoin(0);
        assert_eq!(fencing.admit(0), Admission::Refused(Refusal::NotPrimary));
    }

    #[derive(Clone, Debug)]
    enum Move {
        Promote(usize, bool),
        LeaseLost(usize),
        Crash(usize),
        Restart(usize),
    }

    fn moves() -> impl Strategy<Value = Vec<Move>> {
        proptest::collection::vec(
            prop_oneof![
                ((0usize..3), any::<bool>()).prop_map(|(n, d)| Move::Promote(n, d)),
                (0usize..3).prop_map(Move::LeaseLost),
                (0usize..3).prop_map(Move::Crash),
                (0usize..3).prop_map(Move::Restart),
            ],
            0..40,
        )
    }

    fn play(mode: FencingMode, moves: &[Move]) -> usize {
        let mut fencing = Fencing::new(mode, 3, 0);
        let mut primary = 0;
        let mut most = 1;
        for step in moves {
            match *step {
                Move::Promote(node, reaches) => {
                    if node != primary {
                        if let Gate::Proceed { .. } = fencing.on_promotion(node, primary, reaches) {
                            primary = node;
                        }
                    }
                }
                Move::LeaseLost(node) => {
                    if node != primary {
                        fencing.on_lease_lost(node);
                    }
                }
                Move::Crash(node) => fencing.on_crash(node),
                Move::Restart(node) => fencing.on_restart(node),
            }
            most = most.max(fencing.writable_primaries());
        }
        most
    }

    proptest! {
        // STONITH and fencing tokens never leave two writable primaries.
        #[test]
        fn stonith_and_tokens_never_split_the_brain(schedule in moves()) {
            prop_assert!(play(FencingMode::Stonith, &schedule) <= 1);
            prop_assert!(play(FencingMode::FencingTokens, &schedule) <= 1);
        }
    }

    // Without fencing one promotion of a live primary is enough for two.
    #[test]
    fn without_fencing_one_promotion_splits_the_brain() {
        assert_eq!(play(FencingMode::None, &[Move::Promote(1, true)]), 2);
        assert_eq!(
            play(
                FencingMode::SelfDemote,
                &[Move::Promote(1, true), Move::LeaseLost(0)]
            ),
            2
        );
    }
}
