//! Databases in full runs (phase 2): each database scenario pins what it
//! shows over seeds, and the fidelity tests compare full runs with their
//! closed forms: Patroni's crash RTO bounds, lost writes against write rate
//! x shipping lag, and sync replication losing nothing under random faults.

use crate::support::{run_summary, scenario};
use proptest::prelude::*;
use sim::metrics::database::DatabaseSummary;
use sim::metrics::summary::Summary;
use sim::scenario::Scenario;
use std::path::Path;

fn load(name: &str) -> Scenario {
    Scenario::load(Path::new(&format!("scenarios/{name}.json")))
        .unwrap_or_else(|error| panic!("{error}"))
}

fn cluster<'a>(summary: &'a Summary, name: &str) -> &'a DatabaseSummary {
    summary.databases.get(name).expect("the cluster's summary")
}

/// The ledger's identities hold in every summary.
fn assert_ledger_adds_up(database: &DatabaseSummary) {
    let writes = &database.writes;
    assert_eq!(
        writes.issued,
        writes.acknowledged + writes.divergent + writes.failed + writes.pending,
        "{writes:?}"
    );
    assert_eq!(writes.acknowledged, writes.surviving + writes.lost);
    assert!(database.reads.stale <= database.reads.total);
}

const SEEDS: std::ops::RangeInclusive<u64> = 1..=5;

// Patroni, async, primary crash: the recovery time falls inside Patroni's
// window (ttl - loop_wait to ttl + loop_wait, plus the replay and two proxy
// checks), and at most a handful of writes are lost.
#[test]
fn db_async_lease_crash_recovers_inside_patronis_window() {
    let scenario = load("db-async-lease-crash");
    let mut rto_total = 0.0;
    for seed in SEEDS {
        let (_, summary) = run_summary(&scenario, seed);
        let orders = cluster(&summary, "orders");
        assert_ledger_adds_up(orders);
        assert_eq!(orders.failovers.len(), 1, "seed {seed}");
        let failover = &orders.failovers[0];
        assert_eq!(failover.failure_ms, 90_000.0);
        assert!(!failover.false_failover && !failover.cross_region);
        assert!(
            (20_000.0..=40_000.0).contains(&failover.detection_ms),
            "seed {seed}: {failover:?}"
        );
        assert!(failover.routing_ms.expect("routed") <= 6_000.0);
        assert!(failover.rto_ms <= 46_000.0 + failover.promotion_ms);
        assert!(failover.lost_writes <= 12, "seed {seed}: {failover:?}");
        assert_eq!(orders.split_brain_seconds, 0.0);
        rto_total += failover.rto_ms;
    }
    let mean_s = rto_total / 5.0 / 1_000.0;
    assert!((25.0..=40.0).contains(&mean_s), "mean RTO {mean_s} s");
}

// Sync replication: the same crash loses no acknowledged write, and writes
// pay a round trip to the standby (the run's p99 rises).
#[test]
fn db_sync_lease_crash_loses_nothing_and_writes_pay_a_round_trip() {
    let sync = load("db-sync-lease-crash");
    let asynchronous = load("db-async-lease-crash");
    for seed in SEEDS {
        let (_, summary) = run_summary(&sync, seed);
        let orders = cluster(&summary, "orders");
        assert_ledger_adds_up(orders);
        assert_eq!(orders.writes.lost, 0, "seed {seed}");
        assert_eq!(orders.failovers.len(), 1);
        let (_, baseline) = run_summary(&asynchronous, seed);
        assert!(
            summary.latency_ms.p99 > baseline.latency_ms.p99 + 1.0,
            "sync p99 {} vs async {}",
            summary.latency_ms.p99,
            baseline.latency_ms.p99
        );
    }
}

// Semi-sync with its only replica paused: it falls back to async 10 s after
// the pause, and the crash then loses every write acknowledged since.
#[test]
fn db_semi_sync_fallback_then_crash_loses_the_unreplicated_writes() {
    let scenario = load("db-semi-sync-fallback");
    for seed in SEEDS {
        let (_, summary) = run_summary(&scenario, seed);
        let orders = cluster(&summary, "orders");
        assert_ledger_adds_up(orders);
        // Once during the pause, and once more on the new primary, which has
        // no live replica to wait for.
        assert_eq!(orders.semi_sync_fallbacks, 2, "seed {seed}");
        let failover = &orders.failovers[0];
        // Everything acknowledged from 60 s to the crash at 80 s: ~200/s x 20 s,
        // minus the writes whose callers timed out before the fallback.
        assert!(failover.lost_writes > 1_000, "seed {seed}: {failover:?}");
        assert!(failover.rpo_lag_ms >= 19_000.0, "{failover:?}");
    }
}

// GitHub 2018-10-21: a cross-region promotion during the 43 s partition,
// writes stranded on the old primary (lost), writes in both places
// (divergent), and East callers paying the cross-country round trip after.
#[test]
fn db_github_2018_10_21_strands_writes_and_splits_brain() {
    let scenario = load("db-github-2018-10-21");
    for seed in SEEDS {
        let (_, summary) = run_summary(&scenario, seed);
        let mysql = cluster(&summary, "mysql-cluster");
        assert_ledger_adds_up(mysql);
        assert_eq!(mysql.failovers.len(), 1, "seed {seed}");
        let failover = &mysql.failovers[0];
        assert!(failover.cross_region);
        assert!(failover.detection_ms < 43_000.0);
        assert!(failover.lost_writes > 100, "{failover:?}");
        assert!(failover.divergent_writes > 100, "{failover:?}");
        // Split brain from the promotion to the heal at 163 s.
        let overlap_s = 43.0 - failover.detection_ms / 1_000.0;
        assert!((failover.split_brain_seconds - overlap_s).abs() < 1.0);
        assert!(failover.latency_penalty_ms.expect("calls before and after") > 20.0);
    }
}

// A partition isolating the primary with one of three callers: without
// fencing, split brain lasts from the promotion to the heal and the isolated
// caller's writes diverge; with fencing tokens they fail instead.
#[test]
fn db_partition_fencing_tokens_stop_the_split_brain_that_no_fencing_allows() {
    let none = load("db-partition-no-fencing");
    let tokens = load("db-partition-fencing-tokens");
    for seed in SEEDS {
        let (_, without) = run_summary(&none, seed);
        let (_, with) = run_summary(&tokens, seed);
        let without = cluster(&without, "orders");
        let with = cluster(&with, "orders");
        assert_ledger_adds_up(without);
        assert_ledger_adds_up(with);
        let detection_s = without.failovers[0].detection_ms / 1_000.0;
        assert!(
            (without.split_brain_seconds - (60.0 - detection_s)).abs() < 1.0,
            "seed {seed}: {without:?}"
        );
        assert!(without.writes.divergent > 1_000);
        assert_eq!(with.split_brain_seconds, 0.0);
        assert_eq!(with.writes.divergent, 0);
        // The writes that diverged without fencing fail with it.
        assert!(with.writes.failed >= without.writes.failed + without.writes.divergent / 2);
    }
}

// The chapter's failover: a client error promotes a replica (a false
// failover), the old primary is never fenced, other instances keep writing
// to it (split brain, divergent writes), and later errors re-promote the
// node that is already primary.
#[test]
fn db_chapter_failover_promotes_on_a_client_error_and_splits_brain() {
    let scenario = load("db-chapter-failover");
    for seed in SEEDS {
        let (_, summary) = run_summary(&scenario, seed);
        let orders = cluster(&summary, "orders");
        assert_ledger_adds_up(orders);
        assert!(orders.failovers[0].false_failover, "seed {seed}");
        assert!(orders.split_brain_seconds > 10.0);
        assert!(orders.writes.divergent > 0);
        assert!(orders.redundant_promotions > 0);
    }
}

/// A single-region cluster without a topology: replicas `zone_delay_ms`
/// behind, Patroni's defaults, 200 writes/s, the primary crashes at 20 s.
fn crash_scenario(zone_delay_ms: f64, mode: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": 80000,
        "services": [{{"name": "api", "instances": 2, "workers": 64,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 1000}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1000}}}}}}],
        "databases": [{{"name": "db", "zone_delay_ms": {zone_delay_ms},
            "replication": {{"mode": "{mode}"}},
            "nodes": [{{"name": "a", "region": "r", "zone": "1"}}, {{"name": "b", "region": "r", "zone": "2"}},
                      {{"name": "c", "region": "r", "zone": "3"}}],
            "clients": {{"write_fraction": 0.2}}}}],
        "faults": [{{"kind": "database_crash", "database": "db", "node": "a", "at_ms": 20000}}]}}"#
    ))
}

// Fidelity: lost acknowledged writes against write rate x shipping lag. The
// writes a crash loses are those of the last link delay: Poisson with mean
// 200/s x 20 ms = 4; the mean over 30 seeds is inside its 99.9% interval.
// Every seed also recovers inside Patroni's window.
#[test]
fn lost_writes_match_write_rate_times_shipping_lag() {
    let scenario = crash_scenario(20.0, "async");
    let runs = 30;
    let mut lost = 0;
    for seed in 0..runs {
        let (_, summary) = run_summary(&scenario, seed);
        let db = cluster(&summary, "db");
        assert_ledger_adds_up(db);
        let failover = &db.failovers[0];
        assert!((20_000.0..=40_000.0).contains(&failover.detection_ms));
        assert!(failover.rto_ms <= 40_000.0 + failover.promotion_ms + 6_000.0);
        assert!(failover.rto_ms >= 20_000.0);
        lost += failover.lost_writes;
    }
    let mean = lost as f64 / runs as f64;
    let expected = 200.0 * 0.020;
    let half_width = 3.29 * (expected / runs as f64).sqrt();
    assert!(
        (mean - expected).abs() < half_width,
        "mean lost {mean}, expected {expected} +- {half_width}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    // Fidelity: sync replication loses no acknowledged write, whatever the
    // faults: crashes (with or without restart) of any node, paused and slow
    // replicas, full disks, at random times.
    #[test]
    fn sync_replication_loses_nothing_under_random_faults(
        faults in proptest::collection::vec(
            (0usize..5, 0usize..3, 1u64..30_000, 1u64..20_000), 1..5),
        seed in 0u64..1_000,
    ) {
        let nodes = ["a", "b", "c"];
        let entries: Vec<String> = faults
            .iter()
            .map(|&(kind, node, start, length)| {
                let node = nodes[node];
                let end = start + length;
                match kind {
                    0 => format!(r#"{{"kind": "database_crash", "database": "db", "node": "{node}", "at_ms": {start}}}"#),
                    1 => format!(r#"{{"kind": "database_crash", "database": "db", "node": "{node}", "at_ms": {start}, "restart_after_ms": {length}}}"#),
                    2 => format!(r#"{{"kind": "replication_pause", "database": "db", "node": "{node}", "start_ms": {start}, "end_ms": {end}}}"#),
                    3 => format!(r#"{{"kind": "slow_replica", "database": "db", "node": "{node}", "start_ms": {start}, "end_ms": {end}, "apply_rate_per_second": 50}}"#),
                    _ => format!(r#"{{"kind": "disk_full", "database": "db", "node": "{node}", "start_ms": {start}, "end_ms": {end}}}"#),
                }
            })
            .collect();
        let text = format!(
            r#"{{"description": "d", "duration_ms": 40000,
            "services": [{{"name": "api", "instances": 2, "workers": 64,
                "service_time_ms": {{"kind": "constant", "value_ms": 1}},
                "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 500}}]}}]}}}}],
            "clients": [{{"name": "c", "target": "api",
                "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 300}}}}}}],
            "databases": [{{"name": "db", "zone_delay_ms": 2,
                "replication": {{"mode": "sync"}},
                "detection": {{"kind": "lease", "ttl_ms": 3000, "loop_wait_ms": 1000, "retry_timeout_ms": 1000}},
                "nodes": [{{"name": "a", "region": "r", "zone": "1"}}, {{"name": "b", "region": "r", "zone": "2"}},
                          {{"name": "c", "region": "r", "zone": "3"}}],
                "clients": {{"write_fraction": 0.5}}}}],
            "faults": [{}]}}"#,
            entries.join(", ")
        );
        let scenario = scenario(&text);
        let (_, summary) = run_summary(&scenario, seed);
        let db = cluster(&summary, "db");
        assert_ledger_adds_up(db);
        prop_assert_eq!(db.writes.lost, 0, "{}", text);
        prop_assert_eq!(db.writes.divergent, 0);
    }
}

/// The primary pg-a in us-east-1, replicas pg-b and pg-c in us-west-2, where
/// the api runs; us-east-1 fails at random (MTTF 120 s, MTTR 300 s) over a
/// 600 s run. Patroni's defaults.
fn primary_region_failures() -> Scenario {
    scenario(
        r#"{"description": "d", "duration_ms": 600000, "window_ms": 1000,
        "services": [{"name": "api", "instances": 2, "workers": 64,
            "service_time_ms": {"kind": "constant", "value_ms": 1},
            "dependencies": {"calls": [{"database": "db", "policies": [{"kind": "timeout", "timeout_ms": 1000}]}]}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 200}}}],
        "topology": {
            "regions": [{"name": "us-east-1", "zones": ["a"]}, {"name": "us-west-2", "zones": ["a", "b"]}],
            "latency": {"preset": "aws-2026-11"},
            "placements": [{"service": "api", "place": "us-west-2", "instances": 2}],
            "clients": [{"client": "c", "origin": "us-west-2"}],
            "faults": [{"kind": "failures", "place": "us-east-1", "mttf_ms": 120000, "mttr_ms": 300000}]},
        "databases": [{"name": "db",
            "nodes": [{"name": "pg-a", "region": "us-east-1", "zone": "a"},
                      {"name": "pg-b", "region": "us-west-2", "zone": "a"},
                      {"name": "pg-c", "region": "us-west-2", "zone": "b"}],
            "clients": {"write_fraction": 0.5}}]}"#,
    )
}

// A topology failure process reaches the database: when us-east-1 fails
// from its MTTF process, the primary placed there goes down with it (as in
// a scripted region outage), Patroni's lease expires, a replica in
// us-west-2 is promoted and the callers move; the failover's failure
// instant is the region's failure. At the repair pg-a comes back as a
// replica. Later failures of us-east-1 hit only a replica: no failover.
#[test]
fn a_region_failure_process_crashes_the_primary_placed_there_and_fails_over() {
    use sim::model::world::{ROLE_DOWN, ROLE_REPLICA};
    let failing = primary_region_failures();
    let mut failed_over = 0;
    for seed in SEEDS {
        let (output, summary) = run_summary(&failing, seed);
        let regions = summary.regions.as_ref().expect("a topology");
        let first = regions
            .failovers
            .iter()
            .find(|record| record.fault == "failures")
            .expect("us-east-1 fails within 600 s");
        assert_eq!(first.region, "us-east-1");
        let db = cluster(&summary, "db");
        assert_ledger_adds_up(db);
        let down_ms = first.fault_end_ms.unwrap_or(600_000.0) - first.fault_ms;
        // Patroni's defaults: the lease (30 s) expires at most a loop (10 s)
        // after the crash, then the replica replays and takes the role.
        if down_ms < 45_000.0 {
            continue;
        }
        failed_over += 1;
        assert_eq!(db.failovers.len(), 1, "seed {seed}: {:?}", db.failovers);
        let failover = &db.failovers[0];
        assert_eq!(failover.from, "pg-a", "seed {seed}");
        assert!(
            ["pg-b", "pg-c"].contains(&failover.to.as_str()),
            "seed {seed}"
        );
        assert!(failover.cross_region, "seed {seed}");
        assert_eq!(failover.failure_ms, first.fault_ms, "seed {seed}");
        assert!(!failover.false_failover, "seed {seed}");
        assert!(
            (20_000.0..=40_000.0).contains(&failover.detection_ms),
            "seed {seed}: {failover:?}"
        );
        // The writes pg-a acknowledged and had not shipped are lost, and
        // RTO runs from the region's failure to the callers' move.
        assert_eq!(failover.lost_writes, db.writes.lost, "seed {seed}");
        let routing_ms = failover.routing_ms.expect("the callers move");
        assert!(
            (failover.rto_ms - (failover.detection_ms + failover.promotion_ms + routing_ms)).abs()
                < 1.0,
            "seed {seed}: {failover:?}"
        );
        // The node is down while its region is, and a replica after.
        let samples = &output.databases[0].samples;
        let window = |ms: f64| (ms / 1_000.0) as usize;
        assert_eq!(samples[window(first.fault_ms) + 1].roles[0], ROLE_DOWN);
        if let Some(end_ms) = first.fault_end_ms {
            if let Some(after) = samples.get(window(end_ms) + 1) {
                assert_eq!(after.roles[0], ROLE_REPLICA, "seed {seed}");
            }
        }
    }
    assert!(failed_over >= 3, "{failed_over} of 5 seeds failed over");
}
