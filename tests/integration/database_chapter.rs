//! The chapter's `DatabaseFailover` under a policy timeout: its `catch`
//! resends the query once per attempt whatever became of the first
//! operation (answered with the answer on its way back, or dropped on the
//! way there), and, with `on_timeout: abandon`, the resent write happens at
//! the new primary even though nobody hears its answer.

use crate::support::{run_summary, scenario};
use sim::metrics::database::DatabaseSummary;
use sim::metrics::summary::Summary;
use sim::scenario::Scenario;

fn cluster<'a>(summary: &'a Summary, name: &str) -> &'a DatabaseSummary {
    summary.databases.get(name).expect("the cluster's summary")
}

/// Database calls from three api instances, each only writes, with the
/// chapter's failover and a 1 s timeout (`on_timeout` as given) around the
/// call. The network takes 600 ms each way and a query 10 ms, so every
/// answer is produced at its node at 610 ms and is still on its way back
/// when the timeout fires at 1 s.
fn answers_on_the_way_back(on_timeout: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": 5000,
        "network": {{"latency_ms": {{"kind": "constant", "value_ms": 600}}}},
        "services": [{{"name": "api", "instances": 3, "workers": 1024,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [
                {{"kind": "timeout", "timeout_ms": 1000, "on_timeout": "{on_timeout}"}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 200}}}}}}],
        "databases": [{{"name": "db", "zone_delay_ms": 1,
            "detection": {{"kind": "chapter"}},
            "operation_ms": {{"kind": "constant", "value_ms": 10}},
            "nodes": [{{"name": "a", "region": "r", "zone": "1"}}, {{"name": "b", "region": "r", "zone": "2"}},
                      {{"name": "c", "region": "r", "zone": "3"}}],
            "clients": {{"write_fraction": 1.0}}}}]}}"#
    ))
}

// Every call's first write reaches its node and is answered, but the answer
// arrives after the timeout: the timeout is the error the `catch` sees. It
// fails over (a promotion, or the redundant "promotion" of the node already
// primary) and resends the write once, on the new primary. With abandon
// nobody withdraws the resent write: it is issued there too, although the
// first answer has ended the call before it arrives. Before the fix, an
// attempt whose operation was already answered failed over and sent
// nothing: writes issued were the calls, not twice them.
#[test]
fn a_timeout_while_the_answer_is_on_its_way_back_resends_the_write() {
    let abandon = answers_on_the_way_back("abandon");
    for seed in 1..=3 {
        let (_, summary) = run_summary(&abandon, seed);
        let db = cluster(&summary, "db");
        let calls = summary.attempts - summary.client_attempts;
        assert!(calls > 900, "seed {seed}: {calls} calls");
        // Every call timed out, so every request failed.
        assert_eq!(summary.requests.success, 0, "seed {seed}");
        // One `catch` per attempt, no second failover for it.
        assert_eq!(
            db.failovers_total + db.redundant_promotions,
            calls,
            "seed {seed}"
        );
        assert_eq!(db.failovers_total, 1, "seed {seed}: {db:?}");
        // The first write at its node, and the retry at the new primary.
        assert_eq!(db.writes.issued, 2 * calls, "seed {seed}");
        assert_eq!(
            db.writes.issued,
            db.writes.acknowledged + db.writes.divergent + db.writes.failed + db.writes.pending,
            "seed {seed}"
        );
    }
}

// With `on_timeout: cancel` the same timeouts fail over just as often and
// send the retry, but closing the connection withdraws it on the way: only
// the first writes are issued.
#[test]
fn with_cancel_the_resent_write_is_withdrawn_on_the_way() {
    let cancel = answers_on_the_way_back("cancel");
    for seed in 1..=3 {
        let (_, summary) = run_summary(&cancel, seed);
        let db = cluster(&summary, "db");
        let calls = summary.attempts - summary.client_attempts;
        assert!(calls > 900, "seed {seed}: {calls} calls");
        assert_eq!(
            db.failovers_total + db.redundant_promotions,
            calls,
            "seed {seed}"
        );
        assert_eq!(db.writes.issued, calls, "seed {seed}");
    }
}

/// One api instance in zone a writes to pg-a in zone b through the
/// chapter's failover (1 s timeout, abandon); from 4 s a one-way partition
/// drops every packet from zone a to zone b, so the attempts sent to pg-a
/// from then on never arrive. pg-b (zone c) stays reachable.
fn attempts_dropped_on_the_way() -> Scenario {
    scenario(
        r#"{"description": "d", "duration_ms": 10000, "window_ms": 1000,
        "network": {"latency_ms": {"kind": "constant", "value_ms": 0.5}},
        "services": [{"name": "api", "instances": 1, "workers": 1024,
            "service_time_ms": {"kind": "constant", "value_ms": 1},
            "dependencies": {"calls": [{"database": "db", "policies": [{"kind": "timeout", "timeout_ms": 1000}]}]}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 200}}}],
        "topology": {
            "regions": [{"name": "us-east-1", "zones": ["a", "b", "c"]}],
            "latency": {"preset": "aws-2026-11"},
            "placements": [{"service": "api", "place": "us-east-1/a", "instances": 1}],
            "faults": [{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/b",
                "direction": "one_way", "start_ms": 4000, "end_ms": 10000}]},
        "databases": [{"name": "db",
            "nodes": [{"name": "pg-a", "region": "us-east-1", "zone": "b"},
                      {"name": "pg-b", "region": "us-east-1", "zone": "c"},
                      {"name": "pg-c", "region": "us-east-1", "zone": "c"}],
            "replication": {"mode": "async"},
            "detection": {"kind": "chapter"},
            "clients": {"write_fraction": 1.0},
            "fencing": "none"}]}"#,
    )
}

// An attempt dropped on the way has no operation anywhere: its timeout's
// `catch` fails over to pg-b and resends the write there, once. So every
// call's write is issued exactly once (the first attempt's, or, for the
// dropped ones, the retry's), and there is one `catch` per dropped attempt.
// Before the fix the dropped attempts failed over but sent nothing: their
// writes were never issued.
#[test]
fn an_attempt_dropped_on_the_way_is_resent_after_the_failover() {
    let dropped = attempts_dropped_on_the_way();
    for seed in 1..=3 {
        let (_, summary) = run_summary(&dropped, seed);
        let db = cluster(&summary, "db");
        let calls = summary.attempts - summary.client_attempts;
        assert!(calls > 1_500, "seed {seed}: {calls} calls");
        let catches = db.failovers_total + db.redundant_promotions;
        // About a second of calls (200) is in flight to pg-a when the
        // first timeout fires.
        assert!((100..=300).contains(&catches), "seed {seed}: {catches}");
        assert_eq!(db.failovers_total, 1, "seed {seed}: {db:?}");
        assert_eq!(db.failovers[0].to, "pg-b", "seed {seed}");
        assert_eq!(db.writes.issued, calls, "seed {seed}");
        // Only the calls whose attempt was dropped timed out and failed.
        let failed = summary.requests.issued - summary.requests.success;
        assert_eq!(failed, catches, "seed {seed}");
    }
}
