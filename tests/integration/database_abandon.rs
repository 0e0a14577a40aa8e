//! Abandoned database calls: a timeout with `on_timeout: abandon` around a
//! database call stops waiting, but the operation still runs at its node
//! (a write still commits) and the chapter's failover still retries. Since
//! the caller's transport frame is freed once none of its operations is
//! out, instead of staying until an answer that may never come, these
//! tests pin that the database does exactly what it did before, and that
//! the frames no longer pile up.

use crate::support::{run_summary, scenario};
use sim::scenario::Scenario;

/// Two api instances (zones a and c) call `orders` (primary pg-a in zone
/// b) 500 times a second through a 50 ms timeout that abandons, with a
/// network of 0 to 40 ms each way and operations of 1 to 30 ms, so that
/// about two calls in three time out: with their operation on its way,
/// waiting at the node, or answered with the answer on its way back. A
/// partition cuts zone a from pg-a from 5 s to 10 s (operations dropped on
/// the way), another cuts pg-a from its replicas from 15 s to 20 s (sync
/// writes wait for acknowledgements). `limits.in_flight_max` is 1,000:
/// before abandoned database frames were freed, the lease runs stopped at
/// that limit (at 15.4 s with async, 10.3 s with sync).
fn abandoning(detection: &str, replication: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "abandoned database calls through partitions",
        "duration_ms": 30000, "window_ms": 1000,
        "network": {{"latency_ms": {{"kind": "uniform", "min_ms": 0, "max_ms": 40}}}},
        "services": [{{"name": "api", "instances": 2, "workers": 1024,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "orders", "policies": [
                {{"kind": "timeout", "timeout_ms": 50, "on_timeout": "abandon"}}]}}]}}}}],
        "clients": [{{"name": "users", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 500}}}}}}],
        "topology": {{
            "regions": [{{"name": "us-east-1", "zones": ["a", "b", "c"]}}],
            "latency": {{"preset": "aws-2026-11"}},
            "placements": [{{"service": "api", "place": "us-east-1/a", "instances": 1}},
                           {{"service": "api", "place": "us-east-1/c", "instances": 1}}],
            "faults": [
                {{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/b", "start_ms": 5000, "end_ms": 10000}},
                {{"kind": "partition", "from": "us-east-1/b", "to": "us-east-1/c", "start_ms": 15000, "end_ms": 20000}}]}},
        "databases": [{{"name": "orders",
            "nodes": [{{"name": "pg-a", "region": "us-east-1", "zone": "b"}},
                      {{"name": "pg-b", "region": "us-east-1", "zone": "c"}},
                      {{"name": "pg-c", "region": "us-east-1", "zone": "c"}}],
            "replication": {{"mode": "{replication}"}},
            "detection": {{"kind": "{detection}"}},
            "operation_ms": {{"kind": "uniform", "min_ms": 1, "max_ms": 30}},
            "clients": {{"write_fraction": 0.5, "reads": "any"}},
            "fencing": "none"}}],
        "limits": {{"in_flight_max": 1000}}}}"#
    ))
}

// Seed 1's figures, taken from the code before the fix (with the default
// in-flight limit): events, requests succeeded and failed, writes issued,
// acknowledged, divergent, failed and pending, reads and stale reads, and
// the chapter's failovers and redundant promotions. The abandoned writes
// still commit (the chapter's retries too: about twice the lease's writes
// are issued), the same events run and the same figures come out; and the
// lease runs, which stopped at the in-flight limit then, now finish.
#[test]
fn abandoned_database_calls_do_what_they_did_before_their_frames_were_freed() {
    let pinned: [(&str, &str, [u64; 12]); 4] = [
        (
            "lease",
            "async",
            [95470, 4729, 10045, 6092, 6092, 0, 0, 0, 7045, 4948, 0, 0],
        ),
        (
            "lease",
            "sync",
            [106900, 4341, 10433, 6128, 6128, 0, 0, 0, 6977, 9, 0, 0],
        ),
        (
            "chapter",
            "async",
            [
                111099, 5290, 9484, 12033, 12025, 8, 0, 0, 11822, 4513, 1, 9483,
            ],
        ),
        (
            "chapter",
            "sync",
            [
                123001, 5303, 9471, 11944, 11936, 8, 0, 0, 11891, 4512, 1, 9470,
            ],
        ),
    ];
    for (detection, replication, expected) in pinned {
        let (_, summary) = run_summary(&abandoning(detection, replication), 1);
        let db = summary
            .databases
            .get("orders")
            .expect("the cluster's summary");
        let got = [
            summary.events,
            summary.requests.success,
            summary.requests.error,
            db.writes.issued,
            db.writes.acknowledged,
            db.writes.divergent,
            db.writes.failed,
            db.writes.pending,
            db.reads.total,
            db.reads.stale,
            db.failovers_total,
            db.redundant_promotions,
        ];
        assert_eq!(got, expected, "{detection} {replication}");
        assert_eq!(
            db.writes.issued,
            db.writes.acknowledged + db.writes.divergent + db.writes.failed + db.writes.pending,
            "{detection} {replication}"
        );
        assert_eq!(
            summary.requests.success + summary.requests.error,
            summary.requests.issued,
            "{detection} {replication}"
        );
    }
}
