//! Failure detection, promotion, proxy routing and database faults: the
//! handlers of `DatabaseEvent`s other than the operations themselves (see
//! the parent module for one database call and the outline of a failover).

use super::*;

impl<'a> World<'a> {
    /// Whether `node` reaches a majority of the DCS members.
    pub(super) fn reaches_dcs(&self, index: usize, node: usize) -> bool {
        let config = &self.scenario.databases[index];
        let site = config.nodes[node].site;
        let reached = config
            .dcs_sites
            .iter()
            .filter(|&&member| reach(self.regions.as_ref(), Some(site), member, self.now))
            .count();
        2 * reached > config.dcs_sites.len()
    }

    /// The replicas the detector may promote, as `Promoter::choose` wants them.
    pub(super) fn choose(
        &self,
        index: usize,
        available: impl Fn(usize) -> bool,
    ) -> Result<usize, crate::database::promotion::NoPromotion> {
        let config = &self.scenario.databases[index];
        let cluster = &self.databases.as_ref().expect("databases").clusters[index];
        let primary = cluster.replication.primary();
        let candidates: Vec<Candidate<'_>> = (0..config.nodes.len())
            .filter(|&node| node != primary)
            .map(|node| Candidate {
                node,
                region: &config.nodes[node].place.region,
                available: cluster.alive(node) && !cluster.detached[node] && available(node),
                received_lsn: cluster.replication.received_lsn(node),
            })
            .collect();
        cluster.promoter.choose(
            self.now,
            &config.nodes[primary].place.region,
            cluster.replication.head_lsn(),
            cluster.replication.committed_lsn(),
            &candidates,
        )
    }

    pub(super) fn lease_loop(&mut self, index: usize) {
        let now = self.now;
        let Detector::Lease(lease) = &self.db().clusters[index].detector else {
            return;
        };
        let (node, at) = lease.next_loop();
        debug_assert_eq!(at, now);
        self.db().clusters[index].replication.advance(now);
        let alive = self.db().clusters[index].alive(node);
        let dcs_reachable = alive && self.reaches_dcs(index, node);
        let cluster = &self.databases.as_ref().expect("databases").clusters[index];
        let eligible = cluster.pending.is_none()
            && node != cluster.replication.primary()
            && self.choose(index, |candidate| self.reaches_dcs(index, candidate)) == Ok(node);
        let cluster = &mut self.db().clusters[index];
        let Detector::Lease(lease) = &mut cluster.detector else {
            unreachable!()
        };
        let action = lease.on_loop(
            now,
            node,
            LoopView {
                alive,
                dcs_reachable,
                eligible,
            },
        );
        let next = lease.next_loop().1;
        match action {
            LeaseAction::Promote => self.decide(index, node),
            LeaseAction::Demote => {
                cluster.fencing.on_lease_lost(node);
                let writable = cluster.fencing.writable_primaries();
                cluster.ledger.set_writable_primaries(now, writable);
            }
            _ => {}
        }
        self.push_db(
            next,
            DatabaseEvent::Lease {
                cluster: index as u32,
            },
        );
    }

    pub(super) fn quorum_probe(&mut self, index: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let Detector::Quorum(quorum) = &self.db().clusters[index].detector else {
            return;
        };
        let (observer, _) = quorum.next_probe();
        let databases = self.databases.as_ref().expect("databases");
        let cluster = &databases.clusters[index];
        let primary = cluster.replication.primary();
        let here = config.observer_sites[observer];
        let reached = cluster.alive(primary)
            && cluster.fencing.admit(primary)
                != Admission::Refused(crate::database::fencing::Refusal::Down)
            && reach(
                self.regions.as_ref(),
                Some(here),
                config.nodes[primary].site,
                now,
            );
        let peers: Vec<bool> = config
            .observer_sites
            .iter()
            .map(|&other| reach(self.regions.as_ref(), Some(here), other, now))
            .collect();
        let busy = cluster.pending.is_some();
        let cluster = &mut self.db().clusters[index];
        let Detector::Quorum(quorum) = &mut cluster.detector else {
            unreachable!()
        };
        let decision = quorum.on_probe(now, observer, reached, &peers);
        let next = quorum.next_probe().1;
        if decision == QuorumDecision::Failover && !busy {
            let choice = self.choose(index, |node| {
                reach(
                    self.regions.as_ref(),
                    Some(here),
                    config.nodes[node].site,
                    now,
                )
            });
            match choice {
                Ok(node) => self.decide(index, node),
                Err(_) => {
                    let cluster = &mut self.db().clusters[index];
                    cluster.promotions_refused += 1;
                    if let Detector::Quorum(quorum) = &mut cluster.detector {
                        quorum.reset(now);
                    }
                }
            }
        }
        self.push_db(
            next,
            DatabaseEvent::Probe {
                cluster: index as u32,
            },
        );
    }

    pub(super) fn managed_done(&mut self, index: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        let Detector::Managed(managed) = &mut cluster.detector else {
            return;
        };
        if managed.pending() != Some(now) {
            return;
        }
        managed.reset();
        if cluster.failure.is_none() {
            // The primary came back before the failover completed.
            return;
        }
        match self.choose(index, |_| true) {
            Ok(node) => {
                self.decide(index, node);
            }
            Err(_) => self.db().clusters[index].promotions_refused += 1,
        }
    }

    /// A detector chose `node`: promote after its replay.
    pub(super) fn decide(&mut self, index: usize, node: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        if cluster.pending.is_some() {
            return;
        }
        let Some(replay) = cluster.replication.replay_time(node) else {
            cluster.promotions_refused += 1;
            return;
        };
        cluster.pending = Some(Pending {
            node,
            detected_at: now,
        });
        self.push_db(
            now + replay,
            DatabaseEvent::PromotionReady {
                cluster: index as u32,
            },
        );
    }

    pub(super) fn promotion_ready(&mut self, index: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let Some(Pending { node, detected_at }) = self.db().clusters[index].pending.take() else {
            return;
        };
        let old = self.db().clusters[index].replication.primary();
        if !self.db().clusters[index].alive(node) || node == old {
            self.db().clusters[index].promotions_refused += 1;
            return;
        }
        let databases = self.databases.as_mut().expect("databases");
        let device_reaches_old = reach(
            self.regions.as_ref(),
            Some(config.nodes[node].site),
            config.nodes[old].site,
            now,
        );
        let links = links_from(self.regions.as_ref(), config, node, now);
        let old_reachable = reach(
            self.regions.as_ref(),
            Some(config.nodes[node].site),
            config.nodes[old].site,
            now,
        );
        let cluster = &mut databases.clusters[index];
        if cluster.fencing.on_promotion(node, old, device_reaches_old) == Gate::Withheld {
            cluster.promotions_withheld += 1;
            if let Detector::Quorum(quorum) = &mut cluster.detector {
                quorum.reset(now);
            }
            return;
        }
        let promotion = cluster.replication.promote(now, node, &links);
        let (failure_at, lag, false_failover) = match cluster.failure.take() {
            Some((at, lags)) => (at, lags[node], false),
            None => (
                detected_at,
                SimDuration::ZERO,
                cluster.alive(old) && old_reachable,
            ),
        };
        let record = FailoverRecord {
            failure_at,
            detected_at,
            promoted_at: now,
            routed_at: None,
            from_node: old,
            to_node: node,
            lost_writes: 0,
            lost_lsns: None,
            lag_at_failure: lag,
            false_failover,
        };
        cluster.ledger.promoted(now, &promotion, record);
        cluster.counted_lsn = cluster.replication.committed_lsn();
        cluster.promoter.record_failover(now);
        cluster.detached[old] = true;
        match &mut cluster.detector {
            Detector::Quorum(quorum) => quorum.reset(now),
            Detector::Managed(managed) => managed.reset(),
            Detector::Lease(_) | Detector::Chapter => {}
        }
        let writable = cluster.fencing.writable_primaries();
        cluster.ledger.set_writable_primaries(now, writable);
        // Writes waiting on the old primary: those the new primary holds
        // were acknowledged by the promotion; the rest are gone.
        let waiting: Vec<(Lsn, OpKey)> = cluster.waiting.drain(..).collect();
        for (lsn, key) in waiting {
            let reply = if lsn <= promotion.fork_lsn {
                Reply::Success
            } else {
                Reply::Error { retryable: true }
            };
            self.answer(key, reply, false);
        }
        self.schedule_primary_failure(index);
        let cluster = &mut self.db().clusters[index];
        if matches!(cluster.detector, Detector::Chapter) {
            // The instance that failed over reaches the new primary at once.
            cluster.ledger.routed(now);
            return;
        }
        let mut checks = Vec::new();
        // With DNS, callers re-resolve when their caches expire, and see the
        // new primary once the record has changed; `forever` never does.
        let (from, interval) = match config.dns {
            Some(dns) => {
                cluster.record = Some((now + dns.update, old));
                (now + dns.update, dns.cache_for())
            }
            None => (now, Some(config.routing.check_interval)),
        };
        for (caller, state) in cluster.callers.iter_mut().enumerate() {
            state.passes = 0;
            let Some(interval) = interval else {
                continue;
            };
            if !state.checking {
                state.checking = true;
                checks.push((next_check(from, state.phase, interval), caller));
            }
        }
        for (at, caller) in checks {
            self.push_db(
                at,
                DatabaseEvent::RouteCheck {
                    cluster: index as u16,
                    caller: caller as u32,
                },
            );
        }
        if self.db().clusters[index].callers.is_empty() {
            self.db().clusters[index].ledger.routed(now);
        }
    }

    /// A DNS caller's cache expired: it resolves the record again (the
    /// node the record names now) and keeps it for its cache time.
    pub(super) fn dns_resolve(&mut self, index: usize, caller: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let dns = config.dns.expect("dns routing");
        let cluster = &mut self.db().clusters[index];
        let primary = cluster.replication.primary();
        let answer = match cluster.record {
            Some((changes_at, before)) if now < changes_at => before,
            _ => primary,
        };
        if answer == primary {
            cluster.caller_routed(caller, primary, now);
            return;
        }
        let state = &mut cluster.callers[caller];
        state.routed = answer;
        let Some(cache) = dns.cache_for() else {
            state.checking = false;
            return;
        };
        self.push_db(
            now + cache,
            DatabaseEvent::RouteCheck {
                cluster: index as u16,
                caller: caller as u32,
            },
        );
    }

    /// Draws when the current primary fails (its role taken now) and
    /// replaces any failure already due; nothing after the load ends.
    pub(super) fn schedule_primary_failure(&mut self, index: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        let Some(failures) = &mut cluster.failures else {
            return;
        };
        let at = failures.next_failure(now);
        let previous = cluster.failure_due.take();
        if let Some(id) = previous {
            self.queue.cancel(id);
        }
        if !self.keeps_running(at) {
            return;
        }
        let id = self.push_db(
            at,
            DatabaseEvent::PrimaryFailure {
                cluster: index as u32,
            },
        );
        self.db().clusters[index].failure_due = Some(id);
    }

    /// The crash process takes the primary down and draws its repair. A
    /// primary already down or cut off is left alone; the next failure is
    /// drawn when a primary takes the role.
    pub(super) fn primary_failure(&mut self, index: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        cluster.failure_due = None;
        let primary = cluster.replication.primary();
        if !cluster.alive(primary) || cluster.failure.is_some() {
            return;
        }
        let repair = cluster
            .failures
            .as_mut()
            .expect("a crash process")
            .repair(now);
        self.db().clusters[index].fault_drawn(PRIMARY_FAILURE, primary, now);
        self.node_down(index, primary);
        self.settle(index);
        self.check_primary(index);
        self.push_db(
            repair,
            DatabaseEvent::NodeRepair {
                cluster: index as u16,
                node: primary as u16,
            },
        );
    }

    pub(super) fn route_check(&mut self, index: usize, caller: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        if config.dns.is_some() {
            return self.dns_resolve(index, caller);
        }
        let databases = self.databases.as_mut().expect("databases");
        let cluster = &databases.clusters[index];
        let primary = cluster.replication.primary();
        let site = cluster.callers[caller].site;
        let passes = cluster.alive(primary)
            && reach(self.regions.as_ref(), site, config.nodes[primary].site, now);
        let cluster = &mut databases.clusters[index];
        let state = &mut cluster.callers[caller];
        if state.routed == primary {
            state.checking = false;
            return;
        }
        state.passes = if passes { state.passes + 1 } else { 0 };
        if state.passes >= config.routing.rise {
            cluster.caller_routed(caller, primary, now);
            return;
        }
        self.push_db(
            now + config.routing.check_interval,
            DatabaseEvent::RouteCheck {
                cluster: index as u16,
                caller: caller as u32,
            },
        );
    }

    pub(super) fn database_fault(&mut self, index: usize, fault: usize, begin: bool) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let entry = &config.faults[fault];
        let node = entry.node();
        let base_rate = config.nodes[node].apply_rate_per_second;
        let cluster = &mut self.db().clusters[index];
        match entry {
            DatabaseFault::Crash { .. } => {
                if begin {
                    self.node_down(index, node);
                } else {
                    self.node_up(index, node);
                }
            }
            DatabaseFault::ReplicationPause { .. } => {
                cluster.replication.set_paused(now, node, begin);
            }
            DatabaseFault::SlowReplica {
                apply_rate_per_second,
                ..
            } => {
                let rate = if begin {
                    *apply_rate_per_second
                } else {
                    base_rate
                };
                cluster.replication.set_apply_rate(now, node, rate);
            }
            DatabaseFault::DiskFull { .. } => {
                if begin {
                    cluster.disk_full[node] += 1;
                } else {
                    cluster.disk_full[node] -= 1;
                }
            }
        }
        self.settle(index);
        self.check_primary(index);
    }

    pub(super) fn node_down(&mut self, index: usize, node: usize) {
        let now = self.now;
        let cluster = &mut self.db().clusters[index];
        cluster.down[node] += 1;
        if cluster.down[node] > 1 {
            return;
        }
        cluster.replication.crash(now, node);
        cluster.fencing.on_crash(node);
        let writable = cluster.fencing.writable_primaries();
        cluster.ledger.set_writable_primaries(now, writable);
        if node == cluster.replication.primary() {
            // Its clients' connections reset; what it had not acknowledged
            // is settled by the promotion.
            let waiting: Vec<(Lsn, OpKey)> = cluster.waiting.drain(..).collect();
            for (_, key) in waiting {
                self.answer(key, Reply::Error { retryable: true }, false);
            }
        }
    }

    pub(super) fn node_up(&mut self, index: usize, node: usize) {
        let now = self.now;
        let manages = !matches!(
            self.scenario.databases[index].detection,
            DetectionConfig::Chapter
        );
        let cluster = &mut self.db().clusters[index];
        debug_assert!(cluster.down[node] > 0);
        cluster.down[node] -= 1;
        if cluster.down[node] > 0 {
            return;
        }
        cluster.replication.restart(now, node);
        cluster.fencing.on_restart(node);
        if let Detector::Lease(lease) = &cluster.detector {
            if !lease.leading(node) {
                // Patroni starts a node that no longer holds the leader key
                // as a replica: it cannot resume writing.
                cluster.fencing.on_lease_lost(node);
            }
        }
        if cluster.detached[node]
            && manages
            && !matches!(cluster.fencing.admit(node), Admission::Accepted { .. })
        {
            cluster.replication.rejoin(now, node);
            cluster.fencing.rejoin(node);
            cluster.detached[node] = false;
        }
        let writable = cluster.fencing.writable_primaries();
        cluster.ledger.set_writable_primaries(now, writable);
    }

    /// A topology fault window began or ended.
    pub(super) fn network_changed(&mut self, index: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        for node in 0..config.nodes.len() {
            let site = config.nodes[node].site;
            let out = self
                .regions
                .as_ref()
                .is_some_and(|regions| regions.down(now, site).is_some());
            // A down window a `failures` process drew (not a scheduled
            // outage, which the scenario lists) is a fault of the run.
            let drawn = out
                && self
                    .regions
                    .as_ref()
                    .is_some_and(|regions| regions.down_by_failures(now, site));
            let cluster = &mut self.db().clusters[index];
            // An outage counts as one extra reason to be down.
            let was_out = cluster.outage[node];
            if out && !was_out {
                cluster.outage[node] = true;
                if drawn {
                    cluster.fault_drawn(PLACE_FAILURE, node, now);
                }
                self.node_down(index, node);
            } else if !out && was_out {
                cluster.outage[node] = false;
                cluster.fault_repaired(PLACE_FAILURE, node, now);
                self.node_up(index, node);
            }
        }
        let databases = self.databases.as_mut().expect("databases");
        let primary = databases.clusters[index].replication.primary();
        let links = links_from(self.regions.as_ref(), config, primary, now);
        let manages = !matches!(config.detection, DetectionConfig::Chapter);
        let rejoin: Vec<usize> = (0..config.nodes.len())
            .filter(|&node| {
                manages
                    && databases.clusters[index].detached[node]
                    && databases.clusters[index].alive(node)
                    && reach(
                        self.regions.as_ref(),
                        Some(config.nodes[primary].site),
                        config.nodes[node].site,
                        now,
                    )
            })
            .collect();
        let cluster = &mut databases.clusters[index];
        for (node, link) in links.into_iter().enumerate() {
            if node != primary {
                cluster.replication.set_link(now, node, link);
            }
        }
        for node in rejoin {
            // Patroni (pg_rewind) and Sentinel turn a returning old primary
            // into a replica of the new one; its writes above the fork go.
            cluster.replication.rejoin(now, node);
            cluster.fencing.rejoin(node);
            cluster.detached[node] = false;
        }
        let writable = cluster.fencing.writable_primaries();
        cluster.ledger.set_writable_primaries(now, writable);
        self.settle(index);
        self.check_primary(index);
    }

    /// Notes when the primary fails or is cut off from its detectors (the
    /// failure instant of the next failover), and clears it when it is back.
    pub(super) fn check_primary(&mut self, index: usize) {
        let now = self.now;
        let config = &self.scenario.databases[index];
        let databases = self.databases.as_ref().expect("databases");
        let cluster = &databases.clusters[index];
        let primary = cluster.replication.primary();
        let site = config.nodes[primary].site;
        let majority = |places: &[Place]| {
            let reached = places
                .iter()
                .filter(|&&place| reach(self.regions.as_ref(), Some(site), place, now))
                .count();
            2 * reached > places.len()
        };
        let cut_off = !cluster.alive(primary)
            || match &config.detection {
                DetectionConfig::Lease(_) => !majority(&config.dcs_sites),
                DetectionConfig::Quorum { .. } => !majority(&config.observer_sites),
                DetectionConfig::Managed { .. } | DetectionConfig::Chapter => {
                    (0..config.nodes.len())
                        .filter(|&node| node != primary)
                        .all(|node| {
                            !reach(
                                self.regions.as_ref(),
                                Some(site),
                                config.nodes[node].site,
                                now,
                            )
                        })
                }
            };
        let cluster = &mut self.db().clusters[index];
        match (cut_off, cluster.failure.is_some()) {
            (true, false) => {
                cluster.replication.advance(now);
                let lags = (0..config.nodes.len())
                    .map(|node| cluster.replication.receive_lag(node))
                    .collect();
                cluster.failure = Some((now, lags));
                if let Detector::Managed(managed) = &mut cluster.detector {
                    let at = managed.on_primary_failure(now, &mut cluster.managed_rng);
                    self.push_db(
                        at,
                        DatabaseEvent::Managed {
                            cluster: index as u32,
                        },
                    );
                }
            }
            (false, true) if cluster.pending.is_none() => {
                cluster.failure = None;
                if let Detector::Managed(managed) = &mut cluster.detector {
                    managed.reset();
                }
            }
            _ => {}
        }
    }
}
