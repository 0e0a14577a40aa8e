//! Databases, phase 3: clients that find the primary through DNS (cached
//! answers keep writes on the old primary until they expire), the
//! chapter's failover caught by a policy timeout, active-passive
//! availability against its closed form under a crash process on the
//! primary, the metastability verdict of database faults, and the bad
//! inputs of the new fields.

use crate::support::{bad_fixture, crashing_managed_cluster, run_summary, scenario};
use sim::metrics::database::DatabaseSummary;
use sim::metrics::summary::Summary;
use sim::metrics::verdict::Verdict;
use sim::scenario::Scenario;
use sim::topology::failure::availability_active_passive;

fn cluster<'a>(summary: &'a Summary, name: &str) -> &'a DatabaseSummary {
    summary.databases.get(name).expect("the cluster's summary")
}

/// Three nodes without a topology, Patroni's defaults, 200 writes/s from
/// two api instances, the primary crashes at 20 s and stays down; `routing`
/// is the cluster's `routing` object.
fn crash_with_routing(routing: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": 120000,
        "services": [{{"name": "api", "instances": 2, "workers": 64,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 1000}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1000}}}}}}],
        "databases": [{{"name": "db", "zone_delay_ms": 1,
            "routing": {routing},
            "nodes": [{{"name": "a", "region": "r", "zone": "1"}}, {{"name": "b", "region": "r", "zone": "2"}},
                      {{"name": "c", "region": "r", "zone": "3"}}],
            "clients": {{"write_fraction": 0.2}}}}],
        "faults": [{{"kind": "database_crash", "database": "db", "node": "a", "at_ms": 20000}}]}}"#
    ))
}

// DNS routing: after the promotion, callers whose cached answer has not
// expired keep writing to the crashed old primary (the writes fail), so
// routing, and RTO, last until every cache has expired: up to the cache
// time (a JVM keeps a 5 s record 35 s) after the promotion, against two
// proxy checks (at most 6 s) with a proxy.
#[test]
fn dns_callers_keep_writing_to_the_old_primary_until_their_caches_expire() {
    let proxy = crash_with_routing(r#"{"kind": "proxy"}"#);
    let dns = crash_with_routing(r#"{"kind": "dns", "ttl_ms": 5000, "resolver": "jvm"}"#);
    let mut routing_total_ms = 0.0;
    let (mut failed_proxy, mut failed_dns) = (0, 0);
    for seed in 1..=5 {
        let (_, with_proxy) = run_summary(&proxy, seed);
        let (_, with_dns) = run_summary(&dns, seed);
        let with_proxy = cluster(&with_proxy, "db");
        let with_dns = cluster(&with_dns, "db");
        let (by_proxy, by_dns) = (&with_proxy.failovers[0], &with_dns.failovers[0]);
        // The same detection and promotion: only routing differs.
        assert_eq!(by_proxy.detection_ms, by_dns.detection_ms, "seed {seed}");
        assert!(by_proxy.routing_ms.expect("routed") <= 6_000.0);
        let routing_ms = by_dns.routing_ms.expect("every cache expires");
        assert!(routing_ms <= 35_000.0, "seed {seed}: {by_dns:?}");
        assert!(
            (by_dns.rto_ms - (by_dns.detection_ms + by_dns.promotion_ms + routing_ms)).abs() < 1.0,
            "RTO includes routing: {by_dns:?}"
        );
        failed_proxy += with_proxy.writes.failed;
        failed_dns += with_dns.writes.failed;
        routing_total_ms += routing_ms;
    }
    // Two callers, each re-resolving a uniform time into its 35 s cache:
    // the later of the two is 23 s on average.
    assert!(routing_total_ms / 5.0 > 10_000.0, "{routing_total_ms}");
    // The writes sent to the old primary meanwhile failed: more than while
    // the proxies wait for their two checks (a caller whose cache happens
    // to expire early can move sooner than its proxy would, so this holds
    // over the seeds, not on each).
    assert!(failed_dns > failed_proxy, "{failed_dns} vs {failed_proxy}");
}

// A resolver that never re-resolves never finds the new primary: routing
// never completes, and the crash's verdict is "not recovered", still
// failing when the run ends. With the proxy the same crash recovers.
#[test]
fn a_forever_cache_never_routes_and_the_crash_verdict_is_not_recovered() {
    let forever = crash_with_routing(r#"{"kind": "dns", "resolver": "forever"}"#);
    let proxy = crash_with_routing(r#"{"kind": "proxy"}"#);
    let (_, stuck) = run_summary(&forever, 1);
    let (_, recovered) = run_summary(&proxy, 1);
    let failover = &cluster(&stuck, "db").failovers[0];
    assert_eq!(failover.routing_ms, None);
    // One fault: the database crash, judged like a service fault.
    assert_eq!(stuck.faults.len(), 1);
    let fault = &stuck.faults[0];
    assert_eq!(fault.label, "database_crash db/a");
    assert_eq!(fault.start_ms, 20_000.0);
    assert_eq!(fault.metastability.verdict, Verdict::NotRecovered);
    assert!(fault.metastability.still_failing_ms.expect("still failing") >= 90_000.0);
    let fault = &recovered.faults[0];
    assert_eq!(fault.metastability.verdict, Verdict::Recovered);
    assert!(fault.metastability.still_failing_ms.is_none());
    // Recovery is the failover's RTO, to the window.
    let rto_ms = cluster(&recovered, "db").failovers[0].rto_ms;
    let recovery_ms = fault.recovery_ms.expect("recovered");
    assert!(
        (recovery_ms - rto_ms).abs() <= 6_000.0,
        "{recovery_ms} vs {rto_ms}"
    );
}

// The chapter's `catch (error)` catches a timeout too: a primary that is
// merely slow (every query takes 2 s, the call's timeout is 1 s) is failed
// over by the first timeout, with no error from the database at all, and
// the old primary, never fenced, keeps taking the other instances' writes.
// Before this, only errors the database returned promoted.
#[test]
fn chapter_failover_promotes_on_a_policy_timeout() {
    let slow = scenario(
        r#"{"description": "d", "duration_ms": 30000,
        "services": [{"name": "api", "instances": 3, "workers": 64,
            "service_time_ms": {"kind": "constant", "value_ms": 1},
            "dependencies": {"calls": [{"database": "db", "policies": [{"kind": "timeout", "timeout_ms": 1000}]}]}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 50}}}],
        "databases": [{"name": "db", "zone_delay_ms": 1,
            "detection": {"kind": "chapter"},
            "operation_ms": {"kind": "constant", "value_ms": 2000},
            "nodes": [{"name": "a", "region": "r", "zone": "1"}, {"name": "b", "region": "r", "zone": "2"},
                      {"name": "c", "region": "r", "zone": "3"}],
            "clients": {"write_fraction": 0.5}}]}"#,
    );
    for seed in 1..=3 {
        let (_, summary) = run_summary(&slow, seed);
        let db = cluster(&summary, "db");
        assert!(!db.failovers.is_empty(), "seed {seed}: no promotion");
        // Nothing failed: the primary was only slow.
        assert!(db.failovers[0].false_failover, "{:?}", db.failovers[0]);
        assert!(db.split_brain_seconds > 0.0, "seed {seed}");
        // The next timeout walks the list from the start again and
        // "promotes" the node that is already primary.
        assert!(db.redundant_promotions > 0, "seed {seed}");
    }
}

// Fidelity: active-passive availability. The primary fails with MTTF
// 2,000 s (drawn from when it took the role) and is repaired after 200 s on
// average; a managed failover takes 10 s, replay is instant at this write
// rate, and the one caller's proxy moves after a uniform wait for its next
// check plus one more (1.5 s + 3 s). Over 20 seeds of 20,000 s, the
// request availability's 95% confidence interval holds
// MTTF / (MTTF + detect + promote + route). The closed form assumes the
// standby always takes over: a primary repaired before the failover
// completes (the real managed service then keeps it) is down for less; at
// MTTR 20 x the failover time that is 5% of failures, a bias of about 3% of
// the unavailability, well inside the interval.
#[test]
fn active_passive_availability_matches_its_closed_form() {
    let crashing = crashing_managed_cluster(20_000_000, 2_000_000, 200_000);
    let seeds = 20;
    let mut failovers = 0;
    let availabilities: Vec<f64> = (1..=seeds)
        .map(|seed| {
            let (_, summary) = run_summary(&crashing, seed);
            failovers += cluster(&summary, "db").failovers.len();
            summary.availability
        })
        .collect();
    // About 20,000 / 2,014.5 = 10 failures per run.
    assert!((100..=300).contains(&failovers), "{failovers}");
    let n = seeds as f64;
    let mean = availabilities.iter().sum::<f64>() / n;
    let variance = availabilities
        .iter()
        .map(|a| (a - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    // Student's t for 19 degrees of freedom, two-sided 95%.
    let half_width = 2.093 * (variance / n).sqrt();
    let expected = availability_active_passive(2_000_000.0, 10_000.0, 0.0, 4_500.0);
    assert!(
        (mean - expected).abs() <= half_width,
        "mean {mean:.5} +- {half_width:.5}, closed form {expected:.5}"
    );
    // The interval is narrow enough to mean something: narrower than the
    // unavailability the closed form predicts (0.0072; it is about 0.004).
    assert!(
        half_width < 1.0 - expected,
        "mean {mean:.5} +- {half_width:.5}, closed form {expected:.5}"
    );
}

// Bad input for the new fields: one line with file, path and what is allowed.
#[test]
fn invalid_dns_routing_and_primary_failures_name_file_path_and_allowed_values() {
    bad_fixture(
        "database-dns-ttl",
        "databases[0].routing.ttl_ms: must be in [1, 86400000] (got 0)",
    );
    bad_fixture(
        "database-primary-failures",
        "databases[0].primary_failures.mttf_ms: must be a finite number in [1, 1000000000000] (got 0)",
    );
}

// The chapter's failover on a timeout finds the timed-out attempt's
// operation through the adapter's frame-to-operation index. With hundreds
// of operations in flight at once, every one slow enough to time out, each
// timed-out first attempt fails over exactly once (a promotion, or a
// redundant "promotion" of the node already primary) and sends exactly one
// retry: an index out of step would miss operations (no retry sent, writes
// issued fall short) or find another frame's retry (no failover).
#[test]
fn chapter_failover_runs_once_per_timed_out_attempt_with_many_in_flight() {
    let slow = scenario(
        r#"{"description": "d", "duration_ms": 5000,
        "network": {"latency_ms": {"kind": "constant", "value_ms": 1500}},
        "services": [{"name": "api", "instances": 3, "workers": 1024,
            "service_time_ms": {"kind": "constant", "value_ms": 1},
            "dependencies": {"calls": [{"database": "db", "policies": [{"kind": "timeout", "timeout_ms": 1000}]}]}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 400}}}],
        "databases": [{"name": "db", "zone_delay_ms": 1,
            "detection": {"kind": "chapter"},
            "operation_ms": {"kind": "constant", "value_ms": 10},
            "nodes": [{"name": "a", "region": "r", "zone": "1"}, {"name": "b", "region": "r", "zone": "2"},
                      {"name": "c", "region": "r", "zone": "3"}],
            "clients": {"write_fraction": 1.0}}]}"#,
    );
    for seed in 1..=3 {
        let (_, summary) = run_summary(&slow, seed);
        let db = cluster(&summary, "db");
        let calls = summary.attempts - summary.client_attempts;
        assert!(calls > 1_500, "seed {seed}: {calls} calls");
        assert_eq!(
            db.failovers_total + db.redundant_promotions,
            calls,
            "seed {seed}"
        );
        assert_eq!(db.writes.issued, 2 * calls, "seed {seed}");
    }
}

/// A partition from 30 s to 90 s cuts zone a (the primary pg-a, and one of
/// the three Sentinel-style observers) off from zones b and c, but not from
/// zone d. The api has one instance in zone b and one in zone d; callers
/// find the primary through DNS (`routing` is the cluster's `routing`
/// object); no fencing. The observers in b and c promote pg-b while pg-a,
/// alive, still takes the writes of whoever can reach it.
fn live_old_primary_with_routing(routing: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": 120000, "window_ms": 1000,
        "network": {{"latency_ms": {{"kind": "constant", "value_ms": 0.5}}}},
        "services": [{{"name": "api", "instances": 2, "workers": 64,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 1000}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 500}}}}}}],
        "topology": {{
            "regions": [{{"name": "us-east-1", "zones": ["a", "b", "c", "d"]}}],
            "latency": {{"preset": "aws-2026-11"}},
            "placements": [{{"service": "api", "place": "us-east-1/b", "instances": 1}},
                           {{"service": "api", "place": "us-east-1/d", "instances": 1}}],
            "faults": [
                {{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/b", "start_ms": 30000, "end_ms": 90000}},
                {{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/c", "start_ms": 30000, "end_ms": 90000}}]}},
        "databases": [{{"name": "db",
            "routing": {routing},
            "nodes": [{{"name": "pg-a", "region": "us-east-1", "zone": "a"}},
                      {{"name": "pg-b", "region": "us-east-1", "zone": "b"}},
                      {{"name": "pg-c", "region": "us-east-1", "zone": "c"}}],
            "replication": {{"mode": "async"}},
            "detection": {{"kind": "quorum", "quorum": 2, "down_after_ms": 5000,
                "observers": [{{"region": "us-east-1", "zone": "a"}}, {{"region": "us-east-1", "zone": "b"}},
                              {{"region": "us-east-1", "zone": "c"}}]}},
            "clients": {{"write_fraction": 0.5}},
            "fencing": "none"}}]}}"#
    ))
}

/// The windows (their start, ms) in which the old primary acknowledged
/// divergent writes, and the promotion instant, ms.
fn divergent_windows(scenario: &Scenario, seed: u64) -> (Vec<f64>, f64, DatabaseSummary) {
    let (output, summary) = run_summary(scenario, seed);
    let db = cluster(&summary, "db").clone();
    let failover = &db.failovers[0];
    let promoted_ms = failover.failure_ms + failover.detection_ms + failover.promotion_ms;
    let windows = output.databases[0]
        .windows
        .iter()
        .enumerate()
        .filter(|(_, counts)| counts.divergent > 0)
        .map(|(index, _)| index as f64 * 1_000.0)
        .collect();
    (windows, promoted_ms, db)
}

// Split brain under DNS routing with a live old primary and no fencing:
// after the promotion, the caller in zone d, whose cached answer still names
// pg-a and which can still reach it, keeps writing there; pg-a acknowledges
// (nobody stopped it) and every such write is divergent, counted as such.
// They stop once the caller's cache expires (at most the TTL after the
// record changes, `update_ms` after the promotion): it resolves pg-b. A
// `forever` cache never moves: divergent writes go on until the partition
// heals at 90 s and pg-a rejoins as a replica (Sentinel's and Patroni's
// managers rewind it), well after any TTL.
#[test]
fn dns_callers_split_brain_on_a_live_old_primary_until_their_caches_expire() {
    let ttl = live_old_primary_with_routing(
        r#"{"kind": "dns", "ttl_ms": 5000, "update_ms": 1000, "resolver": "ttl"}"#,
    );
    let forever = live_old_primary_with_routing(r#"{"kind": "dns", "resolver": "forever"}"#);
    let mut divergent_total = 0;
    for seed in 1..=5 {
        let (windows, promoted_ms, db) = divergent_windows(&ttl, seed);
        assert_eq!(db.failovers.len(), 1, "seed {seed}: {:?}", db.failovers);
        let failover = &db.failovers[0];
        assert_eq!(
            (failover.from.as_str(), failover.to.as_str()),
            ("pg-a", "pg-b")
        );
        // pg-a was cut off from the observers' majority at the partition.
        assert_eq!(failover.failure_ms, 30_000.0, "seed {seed}");
        assert!(!failover.false_failover, "seed {seed}");
        // pg-a stays writable until it rejoins at the heal: two writable
        // primaries from the promotion to 90 s, whoever writes to it.
        assert!(
            (db.split_brain_seconds - (90_000.0 - promoted_ms) / 1_000.0).abs() < 1.0,
            "seed {seed}: {} s from {promoted_ms} ms",
            db.split_brain_seconds
        );
        // Every divergent write is counted, in the failover and in total.
        assert_eq!(
            failover.divergent_writes, db.writes.divergent,
            "seed {seed}"
        );
        divergent_total += db.writes.divergent;
        // None before the promotion, none after the cache expired: the
        // record changes 1 s after the promotion, the cache holds 5 s.
        if let (Some(&first), Some(&last)) = (windows.first(), windows.last()) {
            assert!(
                first + 1_000.0 > promoted_ms,
                "seed {seed}: {first} vs {promoted_ms}"
            );
            assert!(
                last <= promoted_ms + 1_000.0 + 5_000.0,
                "seed {seed}: divergent writes in the window at {last} ms, promoted at {promoted_ms} ms"
            );
        }
        // At most the zone-d instance's writes over that time: 250 calls/s,
        // half writes, for 6 s.
        assert!(
            db.writes.divergent <= 125 * 6 + 50,
            "seed {seed}: {}",
            db.writes.divergent
        );
        // The ledger adds up.
        let writes = &db.writes;
        assert_eq!(
            writes.issued,
            writes.acknowledged + writes.divergent + writes.failed + writes.pending,
            "seed {seed}: {writes:?}"
        );
        // Once every cache moved, routing is done.
        let routing_ms = failover.routing_ms.expect("every cache expires");
        assert!(routing_ms <= 6_000.0, "seed {seed}: {routing_ms}");
    }
    // The caller in zone d re-resolves a uniform time into its cache, so
    // over five seeds it wrote to pg-a for a while.
    assert!(divergent_total > 100, "{divergent_total}");
    let (windows, promoted_ms, db) = divergent_windows(&forever, 1);
    assert_eq!(db.failovers[0].routing_ms, None);
    assert!(windows
        .first()
        .is_some_and(|&first| first + 1_000.0 > promoted_ms));
    assert_eq!(windows.last(), Some(&89_000.0), "{windows:?}");
    // Half of zone d's 250 calls/s for the ~54 s from promotion to heal.
    assert!(db.writes.divergent > 125 * 50, "{}", db.writes.divergent);
}
