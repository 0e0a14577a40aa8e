//! What the latency-pattern scenarios demonstrate, pinned as behaviour:
//! adaptive timeouts against a hang and a slowdown, hedged requests against a
//! slow tail, an adaptive concurrency limit against a brownout, and the
//! chapter's HystrixCommand abandoning or cancelling its timed-out calls.
//! Each contrast is checked at the golden seed 42 and at seeds 1, 2 and 3, so
//! that it is not the luck of one seed.

use crate::support::run_summary;
use sim::metrics::summary::Summary;
use sim::metrics::{Outcome, WindowRow};
use sim::model::RunOutput;
use sim::policy::breaker::BreakerStateName;
use sim::scenario::Scenario;

/// The seeds every contrast is checked at.
const SEEDS: [u64; 4] = [42, 1, 2, 3];

fn load(name: &str) -> Scenario {
    let path = crate::support::root().join(format!("scenarios/{name}.json"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

fn run(name: &str, seed: u64) -> (RunOutput, Summary) {
    run_summary(&load(name), seed)
}

/// The windows that start in `[from_s, to_s)`.
fn windows(rows: &[WindowRow], from_s: u64, to_s: u64) -> Vec<&WindowRow> {
    rows.iter()
        .filter(|row| (from_s * 1_000_000..to_s * 1_000_000).contains(&row.start.as_micros()))
        .collect()
}

/// Requests that ended as `outcome` in the windows starting in `[from_s, to_s)`.
fn count(rows: &[WindowRow], from_s: u64, to_s: u64, outcome: Outcome) -> u64 {
    windows(rows, from_s, to_s)
        .iter()
        .map(|row| row.outcomes.get(outcome))
        .sum()
}

/// Successes over finished requests in the windows starting in `[from_s, to_s)`.
fn availability(rows: &[WindowRow], from_s: u64, to_s: u64) -> f64 {
    let finished: u64 = windows(rows, from_s, to_s)
        .iter()
        .map(|row| row.finished())
        .sum();
    assert!(finished > 0, "nothing finished in [{from_s} s, {to_s} s)");
    count(rows, from_s, to_s, Outcome::Success) as f64 / finished as f64
}

/// One latency percentile (0: p50, 1: p90, 2: p99, 3: p99.9) in ms of each
/// window starting in `[from_s, to_s)` in which something finished.
fn percentile_ms(rows: &[WindowRow], from_s: u64, to_s: u64, index: usize) -> Vec<f64> {
    windows(rows, from_s, to_s)
        .iter()
        .filter_map(|row| row.latency_us.map(|latency| latency[index] as f64 / 1000.0))
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn largest(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

// During the hang (60 s to 105 s) the chapter variant records each timeout's
// deadline as a latency, so the deadline, which every timed-out request waits
// out, climbs a staircase from 500 ms to the 10 s maximum. The variant that
// ignores timeouts stays at 500 ms and a fixed timeout at 1 s.
#[test]
fn chapter_adaptive_timeout_ratchets_to_its_maximum_during_a_hang() {
    for seed in SEEDS {
        let (chapter, chapter_summary) = run("adaptive-timeout-chapter", seed);
        let staircase = percentile_ms(&chapter.rows, 60, 105, 0);
        assert!(
            staircase.windows(2).all(|pair| pair[0] <= pair[1]),
            "seed {seed}: the hang's timeouts do not climb: {staircase:?}"
        );
        assert!(
            staircase[0] < 510.0,
            "seed {seed}: first deadline {} ms",
            staircase[0]
        );
        let top = percentile_ms(&chapter.rows, 95, 105, 0);
        assert!(
            top.iter().all(|&p50| p50 >= 9_900.0),
            "seed {seed}: deadlines at the end of the hang {top:?}, not 10 s"
        );
        assert_eq!(count(&chapter.rows, 61, 105, Outcome::Success), 0);
        assert!(chapter_summary.latency_ms.max >= 9_990.0);

        let (ignore, ignore_summary) = run("adaptive-timeout-ignore-timeouts", seed);
        let flat = percentile_ms(&ignore.rows, 60, 105, 3);
        assert!(
            flat.iter().all(|&p999| p999 < 510.0),
            "seed {seed}: ignore_timeouts waited longer than 500 ms: {flat:?}"
        );
        assert!(ignore_summary.latency_ms.max < 510.0);

        let (_, fixed_summary) = run("adaptive-timeout-fixed", seed);
        assert!(fixed_summary.latency_ms.max < 1_010.0);
        assert!(fixed_summary.latency_ms.max > 990.0);
    }
}

// The slowdown (150 s to 210 s) pushes every answer to about 750 ms, past the
// 500 ms healthy deadline. Ignoring timeouts records nothing, so its deadline
// never grows and every request of the minute times out; the chapter
// variant's ratchet lets the slow answers through after about 2 s, as does a
// fixed 1 s timeout.
#[test]
fn ignoring_timeouts_fails_a_slowdown_that_the_chapter_variant_rides_out() {
    for seed in SEEDS {
        let (ignore, _) = run("adaptive-timeout-ignore-timeouts", seed);
        assert_eq!(
            count(&ignore.rows, 151, 210, Outcome::Success),
            0,
            "seed {seed}: ignore_timeouts let a slow answer through"
        );
        assert!(count(&ignore.rows, 151, 210, Outcome::Timeout) > 10_000);
        let (chapter, _) = run("adaptive-timeout-chapter", seed);
        let during = availability(&chapter.rows, 153, 210);
        assert!(during > 0.999, "seed {seed}: chapter {during}");
        let (fixed, _) = run("adaptive-timeout-fixed", seed);
        let during = availability(&fixed.rows, 151, 210);
        assert!(during > 0.999, "seed {seed}: fixed {during}");
    }
}

// One call in twenty is slowed by 1 s from 60 s to 120 s. Hedging after 50 ms
// (about the p95) cuts that minute's p99 from about 1,030 ms to under 100 ms
// for 5% more attempts then (1.8% over the run), each hedge's loser cancelled.
#[test]
fn hedging_after_the_p95_cuts_the_p99_for_a_few_percent_more_attempts() {
    for seed in SEEDS {
        let (none, none_summary) = run("hedging-none", seed);
        let (hedged, hedged_summary) = run("hedging", seed);
        let none_p99 = median(&percentile_ms(&none.rows, 61, 120, 2));
        let hedged_p99 = median(&percentile_ms(&hedged.rows, 61, 120, 2));
        assert!(
            none_p99 > 1_000.0,
            "seed {seed}: without hedging {none_p99}"
        );
        assert!(hedged_p99 < 100.0, "seed {seed}: hedged {hedged_p99}");
        assert!(none_summary.latency_ms.p99 > 1_000.0);
        assert!(hedged_summary.latency_ms.p99 < 100.0);
        // The median is untouched either way.
        assert!(
            (none_summary.latency_ms.p50 - hedged_summary.latency_ms.p50).abs() < 1.0,
            "seed {seed}: p50 {} vs {}",
            none_summary.latency_ms.p50,
            hedged_summary.latency_ms.p50
        );

        assert_eq!(none_summary.retry_amplification, 1.0);
        let amplification = hedged_summary.retry_amplification;
        assert!(
            (1.01..1.03).contains(&amplification),
            "seed {seed}: amplification {amplification}"
        );
        let slow = windows(&hedged.rows, 61, 120);
        let attempts: u64 = slow.iter().map(|row| row.attempts).sum();
        let issued: u64 = slow.iter().map(|row| row.issued).sum();
        let slow_amplification = attempts as f64 / issued as f64;
        assert!(
            (1.03..1.08).contains(&slow_amplification),
            "seed {seed}: {slow_amplification} attempts per request in the slow minute"
        );

        let hedge = &hedged_summary.policies["client/users"][1];
        assert_eq!(hedge.kind, "hedge");
        assert_eq!(
            hedge.counters["hedges"],
            hedged_summary.client_attempts - hedged_summary.requests.issued
        );
        assert_eq!(hedge.counters["cancelled_losers"], hedge.counters["hedges"]);
        assert_eq!(none_summary.availability, 1.0);
        assert_eq!(hedged_summary.availability, 1.0);
    }
}

// In the brownout (60 s to 120 s, every inventory call 8 times slower) the
// fixed bulkhead's 10 slots pass about 62 calls/s and its queue of 100 makes
// each wait about 1.6 s: every admitted call times out (and still runs), and
// the rest is rejected at once.
#[test]
fn fixed_bulkhead_times_out_every_admitted_call_of_the_brownout() {
    for seed in SEEDS {
        let (fixed, fixed_summary) = run("brownout-fixed-bulkhead", seed);
        assert_eq!(
            count(&fixed.rows, 62, 120, Outcome::Success),
            0,
            "seed {seed}: a call got through the brownout"
        );
        let timeouts = count(&fixed.rows, 62, 120, Outcome::Timeout);
        assert!(
            (50 * 58..70 * 58).contains(&timeouts),
            "seed {seed}: {timeouts} timeouts, not about 62/s"
        );
        let rejected = count(&fixed.rows, 62, 120, Outcome::RejectedBulkhead);
        assert!(rejected > 2 * timeouts, "seed {seed}: {rejected} rejected");
        let late = percentile_ms(&fixed.rows, 62, 120, 2);
        assert!(
            late.iter().all(|&p99| p99 >= 495.0),
            "seed {seed}: p99 under the timeout in the brownout: {late:?}"
        );
        // Sized for normal conditions: nothing is lost outside the brownout.
        assert_eq!(availability(&fixed.rows, 0, 60), 1.0);
        assert_eq!(availability(&fixed.rows, 122, 180), 1.0);
        assert_eq!(fixed_summary.services["inventory"].counters.withdrawn, 0);
    }
}

// The AIMD limit, without a queue, rejects the brownout's excess at once and
// keeps inventory serving about 103 calls/s, well above the fixed bulkhead's
// 62 (all of which time out): about 41% availability instead of 0%, no
// timeout, every answer under the 500 ms timeout, and no rejection outside
// the brownout.
#[test]
fn aimd_limit_sheds_the_brownout_excess_at_once_and_keeps_serving() {
    for seed in SEEDS {
        let (aimd, aimd_summary) = run("brownout-aimd", seed);
        let during = availability(&aimd.rows, 62, 120);
        assert!(
            (0.3..0.55).contains(&during),
            "seed {seed}: availability {during} in the brownout"
        );
        let served = count(&aimd.rows, 62, 120, Outcome::Success);
        assert!(
            served > 90 * 58,
            "seed {seed}: only {served} successes in the brownout"
        );
        assert_eq!(aimd_summary.requests.timeout, 0, "seed {seed}");
        assert!(count(&aimd.rows, 62, 120, Outcome::RejectedBulkhead) > 5_000);
        let slowest = largest(&percentile_ms(&aimd.rows, 60, 122, 3));
        assert!(slowest < 480.0, "seed {seed}: p99.9 {slowest} ms");
        assert_eq!(count(&aimd.rows, 0, 60, Outcome::RejectedBulkhead), 0);
        assert_eq!(count(&aimd.rows, 122, 180, Outcome::RejectedBulkhead), 0);

        let limit = &aimd_summary.policies["client/shop"][1];
        assert_eq!(limit.kind, "concurrency_limit");
        assert!(limit.counters["limit_decreases"] > 100);
        assert_eq!(limit.counters["drops"], 0, "no call fails; slow ones count");

        let (_, fixed_summary) = run("brownout-fixed-bulkhead", seed);
        assert!(
            aimd_summary.availability > fixed_summary.availability + 0.1,
            "seed {seed}: aimd {} vs fixed {}",
            aimd_summary.availability,
            fixed_summary.availability
        );
    }
}

// HystrixCommand with on_timeout abandon against a 30 s hang: the held calls
// still run when it ends, those that overflow the queues come back as late
// queue_full failures that trip the breaker just as the service recovers, and
// the queued ones keep new requests timing out for about 15 s more. The
// breaker counts a success for every call the service ran, timed out or not.
#[test]
fn hystrix_abandon_runs_timed_out_calls_and_their_late_failures_trip_the_breaker() {
    for seed in SEEDS {
        let (abandon, summary) = run("hystrix-abandon", seed);
        let ratings = &summary.services["ratings"].counters;
        let breaker = &summary.policies["client/pages"][2];
        assert_eq!(breaker.kind, "circuit_breaker");
        assert_eq!(ratings.withdrawn, 0);
        assert!(ratings.held > 14_000, "seed {seed}: held {}", ratings.held);
        assert!(ratings.rejected_queue_full > 3_000);
        // Late results reach the breaker: all the service's answers, and
        // only those.
        assert_eq!(breaker.counters["successes"], ratings.succeeded);
        assert_eq!(breaker.counters["failures"], ratings.rejected_queue_full);
        // Every timed-out call whose attempt was not refused (queue full)
        // ran anyway: over 10,000 of them.
        let timeouts = summary.policies["client/pages"][1].counters["timeouts"];
        assert!(
            timeouts > ratings.rejected_queue_full + 10_000,
            "seed {seed}: {timeouts} timeouts, {} refused",
            ratings.rejected_queue_full
        );
        let opened: Vec<f64> = summary
            .breaker_transitions
            .iter()
            .filter(|transition| transition.to == BreakerStateName::Open)
            .map(|transition| transition.at_ms)
            .collect();
        assert_eq!(opened.len(), 1, "seed {seed}: opened at {opened:?}");
        assert!(
            (90_000.0..90_100.0).contains(&opened[0]),
            "seed {seed}: opened at {} ms, not as the hang ended",
            opened[0]
        );
        let recovery_ms = summary.faults[0].recovery_ms.expect("recovers");
        assert!(
            recovery_ms >= 10_000.0,
            "seed {seed}: recovery {recovery_ms}"
        );
        assert_eq!(count(&abandon.rows, 91, 104, Outcome::Success), 0);
        assert_eq!(summary.availability_served, 1.0);
    }
}

// With on_timeout cancel every held call is withdrawn at its timeout, so the
// hang leaves no backlog: no late failure, no trip, success back within a
// second. During the hang itself cancelling changes nothing: no success, and
// the breaker inside the timeout still sees nothing.
#[test]
fn hystrix_cancel_withdraws_timed_out_calls_and_recovers_at_once() {
    for seed in SEEDS {
        let (cancel, summary) = run("hystrix-cancel", seed);
        let ratings = &summary.services["ratings"].counters;
        let breaker = &summary.policies["client/pages"][2];
        assert!(
            ratings.withdrawn as f64 > 0.95 * ratings.held as f64,
            "seed {seed}: withdrew {} of {} held",
            ratings.withdrawn,
            ratings.held
        );
        assert!(ratings.withdrawn > 14_000);
        assert_eq!(ratings.started + ratings.withdrawn, ratings.arrivals);
        assert_eq!(ratings.rejected_queue_full, 0);
        assert_eq!(breaker.counters["failures"], 0);
        assert_eq!(breaker.counters["trips"], 0);
        assert!(summary.breaker_transitions.is_empty());
        let recovery_ms = summary.faults[0].recovery_ms.expect("recovers");
        assert!(
            recovery_ms <= 1_000.0,
            "seed {seed}: recovery {recovery_ms}"
        );
        assert_eq!(count(&cancel.rows, 61, 90, Outcome::Success), 0);
        assert_eq!(summary.availability_served, 1.0);

        let (_, abandon) = run("hystrix-abandon", seed);
        assert!(
            summary.availability > abandon.availability + 0.05,
            "seed {seed}: cancel {} vs abandon {}",
            summary.availability,
            abandon.availability
        );
    }
}
