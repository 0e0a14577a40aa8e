//! What the resilience scenarios demonstrate, pinned as behaviour: the
//! sliding-window breakers trip on a dependency failing four calls in five
//! while the chapter's breaker never does, the half-open probe limit spares a
//! hung dependency, and retry budgets cap the retries of an outage while
//! still retrying the occasional failure. If a change breaks one of those
//! stories, these fail.

use crate::support::run_summary;
use sim::metrics::summary::Summary;
use sim::metrics::{Outcome, WindowRow};
use sim::policy::breaker::BreakerStateName;
use sim::scenario::Scenario;

/// The breaker scenarios' crash windows (instances 1 to 4 of recs down), in seconds.
const CRASH_WINDOWS_S: [(u64, u64); 3] = [(30, 50), (60, 80), (90, 110)];
/// The breaker scenarios' hang of recs, in seconds.
const HANG_S: (u64, u64) = (150, 180);
/// The retry scenarios' fail-fast outage of api, in seconds.
const OUTAGE_S: (u64, u64) = (60, 90);
/// The seeds the main contrasts are checked on, so that they are not the luck of one.
const SEEDS: [u64; 4] = [1, 2, 3, 42];

fn load(name: &str) -> Scenario {
    let path = crate::support::root().join(format!("scenarios/{name}.json"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

/// Requests issued, client attempts and successes over the windows starting in `[from_s, to_s)`.
#[derive(Debug)]
struct Totals {
    issued: u64,
    attempts: u64,
    success: u64,
}

impl Totals {
    fn of(rows: &[WindowRow], from_s: u64, to_s: u64) -> Totals {
        let rows: Vec<&WindowRow> = rows
            .iter()
            .filter(|row| (from_s * 1_000_000..to_s * 1_000_000).contains(&row.start.as_micros()))
            .collect();
        Totals {
            issued: rows.iter().map(|row| row.issued).sum(),
            attempts: rows.iter().map(|row| row.attempts).sum(),
            success: rows
                .iter()
                .map(|row| row.outcomes.get(Outcome::Success))
                .sum(),
        }
    }

    /// Attempts beyond the first try of each request: the retries.
    fn extra_attempts(&self) -> i64 {
        self.attempts as i64 - self.issued as i64
    }
}

/// The largest number of client attempts in one window starting in `[from_s, to_s)`.
fn peak_attempts(rows: &[WindowRow], from_s: u64, to_s: u64) -> u64 {
    rows.iter()
        .filter(|row| (from_s * 1_000_000..to_s * 1_000_000).contains(&row.start.as_micros()))
        .map(|row| row.attempts)
        .max()
        .unwrap_or(0)
}

/// The times, in ms, at which a breaker moved to `state` in `[from_s, to_s)`.
fn transitions_to(summary: &Summary, state: BreakerStateName, from_s: u64, to_s: u64) -> Vec<f64> {
    summary
        .breaker_transitions
        .iter()
        .filter(|transition| transition.to == state)
        .map(|transition| transition.at_ms)
        .filter(|at_ms| (from_s as f64 * 1000.0..to_s as f64 * 1000.0).contains(at_ms))
        .collect()
}

// Four dead instances out of five behind round robin fail the calls four in
// five, in order: the chapter's consecutive count is reset by every fifth
// call and never reaches 5, so the breaker stays closed through all three
// crash windows and every call still goes to recs.
#[test]
fn chapter_breaker_never_trips_on_four_failures_in_five() {
    let scenario = load("breaker-flapping-chapter");
    for seed in SEEDS {
        let (output, summary) = run_summary(&scenario, seed);
        let opened = transitions_to(&summary, BreakerStateName::Open, 0, HANG_S.0);
        assert!(
            opened.is_empty(),
            "seed {seed}: the chapter breaker opened before the hang, at {opened:?} ms"
        );
        for (from_s, to_s) in CRASH_WINDOWS_S {
            let totals = Totals::of(&output.rows, from_s, to_s);
            assert_eq!(
                totals.attempts, totals.issued,
                "seed {seed}, crash window {from_s}-{to_s} s: every request should reach recs: {totals:?}"
            );
            let success_share = totals.success as f64 / totals.issued as f64;
            assert!(
                (0.19..=0.21).contains(&success_share),
                "seed {seed}, crash window {from_s}-{to_s} s: one call in five should succeed, got {success_share}"
            );
        }
    }
}

// The same failure opens a count-window breaker (50% of the last 20 results)
// within a fraction of a second of each crash, and it keeps recs at the
// half-open probes until the crash ends, then closes.
#[test]
fn count_window_breaker_trips_on_a_dependency_the_chapter_breaker_never_trips_on() {
    let chapter = load("breaker-flapping-chapter");
    let count_window = load("breaker-flapping-count-window");
    for seed in SEEDS {
        let (chapter_output, _) = run_summary(&chapter, seed);
        let (output, summary) = run_summary(&count_window, seed);
        for (from_s, to_s) in CRASH_WINDOWS_S {
            let opened = transitions_to(&summary, BreakerStateName::Open, from_s, to_s);
            let first_ms = opened.first().copied().unwrap_or(f64::INFINITY);
            assert!(
                first_ms < from_s as f64 * 1000.0 + 500.0,
                "seed {seed}: the count-window breaker should open within 0.5 s of the crash at {from_s} s, opened at {opened:?} ms"
            );
            let closed = transitions_to(&summary, BreakerStateName::Closed, from_s, to_s + 6);
            assert!(
                closed.len() == 1 && closed[0] >= to_s as f64 * 1000.0,
                "seed {seed}: it should close once, within 6 s after the crash window ends at {to_s} s, closed at {closed:?} ms"
            );
            let shed = Totals::of(&output.rows, from_s, to_s);
            let flooded = Totals::of(&chapter_output.rows, from_s, to_s);
            assert!(
                shed.attempts * 20 < shed.issued,
                "seed {seed}, crash window {from_s}-{to_s} s: the open breaker should keep attempts under 5% of requests: {shed:?}"
            );
            assert!(
                flooded.attempts > 50 * shed.attempts,
                "seed {seed}, crash window {from_s}-{to_s} s: chapter attempts {} not far above count-window attempts {}",
                flooded.attempts,
                shed.attempts
            );
        }
    }
}

// A time-window breaker (50% of the last 2 s) trips too, about a second into
// each crash: its window still holds the healthy second before it.
#[test]
fn time_window_breaker_trips_a_second_into_each_crash_window() {
    let scenario = load("breaker-flapping-time-window");
    for seed in SEEDS {
        let (output, summary) = run_summary(&scenario, seed);
        for (from_s, to_s) in CRASH_WINDOWS_S {
            let opened = transitions_to(&summary, BreakerStateName::Open, from_s, to_s);
            let first_ms = opened.first().copied().unwrap_or(f64::INFINITY);
            let from_ms = from_s as f64 * 1000.0;
            assert!(
                (from_ms + 500.0..from_ms + 2000.0).contains(&first_ms),
                "seed {seed}: the time-window breaker should open 0.5 to 2 s after the crash at {from_s} s, opened at {opened:?} ms"
            );
            let totals = Totals::of(&output.rows, from_s, to_s);
            assert!(
                totals.attempts * 10 < totals.issued,
                "seed {seed}, crash window {from_s}-{to_s} s: attempts should stay under 10% of requests: {totals:?}"
            );
        }
    }
}

// The fallback answers whatever the breakers reject or the dependency fails:
// every request is served in all three variants. The price of the open
// sliding-window breakers is that they also turn away the one call in five
// that would have succeeded.
#[test]
fn fallback_serves_every_request_whatever_the_breaker_does() {
    for name in [
        "breaker-flapping-chapter",
        "breaker-flapping-count-window",
        "breaker-flapping-time-window",
    ] {
        let (output, summary) = run_summary(&load(name), 42);
        assert_eq!(
            summary.availability_served, 1.0,
            "{name}: not every request was served: {:?}",
            summary.requests
        );
        if name != "breaker-flapping-chapter" {
            // From the second second of each window on, when both breakers are open.
            for (from_s, to_s) in CRASH_WINDOWS_S {
                let totals = Totals::of(&output.rows, from_s + 2, to_s);
                assert!(
                    totals.success * 50 < totals.issued,
                    "{name}, crash window {from_s}-{to_s} s: successes should fall under 2% while open: {totals:?}"
                );
            }
        }
    }
}

// In the hang, the chapter's half-open state admits every call until the
// first one times out, so each half-open period floods recs with a second of
// the full load; the sliding-window breakers admit their 5 probes and no more.
#[test]
fn half_open_probe_limit_spares_a_hung_dependency_the_chapter_breaker_floods() {
    let (hang_from_s, hang_to_s) = HANG_S;
    // After the first trip, about a second into the hang.
    let after_trip_s = hang_from_s + 2;
    let (chapter_output, chapter) = run_summary(&load("breaker-flapping-chapter"), 42);
    let flood = Totals::of(&chapter_output.rows, after_trip_s, hang_to_s);
    let flood_peak = peak_attempts(&chapter_output.rows, after_trip_s, hang_to_s);
    assert!(
        flood.attempts >= 300,
        "the chapter breaker's half-open periods should let through hundreds of calls: {flood:?}"
    );
    assert!(
        flood_peak >= 90,
        "a chapter half-open should admit a full second of load (100 calls), peak {flood_peak}"
    );
    for name in [
        "breaker-flapping-count-window",
        "breaker-flapping-time-window",
    ] {
        let (output, summary) = run_summary(&load(name), 42);
        let probes = Totals::of(&output.rows, after_trip_s, hang_to_s);
        let peak = peak_attempts(&output.rows, after_trip_s, hang_to_s);
        assert!(
            peak <= 5,
            "{name}: a half-open period should admit at most its 5 probes, peak {peak} attempts in a window"
        );
        assert!(
            flood.attempts > 10 * probes.attempts,
            "{name}: {} attempts in the hang, not far below the chapter breaker's {}",
            probes.attempts,
            flood.attempts
        );
        let held = summary.services["recs"].counters.held;
        let chapter_held = chapter.services["recs"].counters.held;
        assert!(
            chapter_held > 3 * held,
            "{name}: recs held {held} calls, the chapter breaker's run {chapter_held}"
        );
    }
}

// Without a budget every request makes all 5 attempts against the down api:
// five times the offered load for the whole outage.
#[test]
fn plain_retries_multiply_the_load_five_times_during_an_outage() {
    let (from_s, to_s) = OUTAGE_S;
    for seed in SEEDS {
        let (output, summary) = run_summary(&load("retry-storm-no-budget"), seed);
        // From the second second of the outage, when every attempt fails.
        let outage = Totals::of(&output.rows, from_s + 1, to_s);
        let ratio = outage.attempts as f64 / outage.issued as f64;
        assert!(
            ratio > 4.5,
            "seed {seed}: attempts per request during the outage {ratio}, expected about 5"
        );
        assert!(
            summary.retry_amplification > 1.5,
            "seed {seed}: retry amplification {}",
            summary.retry_amplification
        );
    }
}

// gRPC's token bucket allows its burst of retries when the outage starts and
// then none: attempts stay at the offered load, a handful of retries instead
// of tens of thousands, for the same availability.
#[test]
fn token_bucket_caps_retry_amplification_during_an_outage() {
    let (from_s, to_s) = OUTAGE_S;
    for seed in SEEDS {
        let (plain_output, plain) = run_summary(&load("retry-storm-no-budget"), seed);
        let (output, summary) = run_summary(&load("retry-budget-token-bucket"), seed);
        let retries = Totals::of(&output.rows, from_s, to_s).extra_attempts();
        let plain_retries = Totals::of(&plain_output.rows, from_s, to_s).extra_attempts();
        assert!(
            retries <= 10,
            "seed {seed}: the token bucket let {retries} retries through the outage, expected at most its burst"
        );
        assert!(
            plain_retries > 20_000,
            "seed {seed}: plain retries sent only {plain_retries} retries in the outage"
        );
        assert!(
            summary.retry_amplification < 1.05,
            "seed {seed}: retry amplification {} with the token bucket",
            summary.retry_amplification
        );
        assert!(
            plain.availability - summary.availability < 0.01,
            "seed {seed}: the budget should cost less than a point of availability: {} against {}",
            summary.availability,
            plain.availability
        );
    }
}

// The chapter's budget saves up 10% of a minute's requests in calm
// operation and spends it in the first seconds of the outage, then retries
// about as little as the token bucket.
#[test]
fn chapter_budget_spends_its_saved_headroom_at_the_start_of_an_outage() {
    let (from_s, to_s) = OUTAGE_S;
    let (output, summary) = run_summary(&load("retry-budget-chapter"), 42);
    let burst = Totals::of(&output.rows, from_s, from_s + 2);
    let rest = Totals::of(&output.rows, from_s + 2, to_s);
    assert!(
        burst.extra_attempts() > 500,
        "the saved headroom should be spent at the start of the outage: {burst:?}"
    );
    assert!(
        rest.extra_attempts() * 10 < rest.issued as i64,
        "after the burst retries should stay under 10% of requests: {rest:?}"
    );
    assert!(
        (1.02..1.1).contains(&summary.retry_amplification),
        "retry amplification {}",
        summary.retry_amplification
    );
}

// Before the outage api fails 2% of calls; with or without a budget those
// failures are retried and no request fails.
#[test]
fn budgets_still_retry_the_occasional_failure_in_normal_operation() {
    let calm_s = (0, OUTAGE_S.0);
    for name in [
        "retry-storm-no-budget",
        "retry-budget-token-bucket",
        "retry-budget-chapter",
    ] {
        let (output, summary) = run_summary(&load(name), 42);
        let calm = Totals::of(&output.rows, calm_s.0, calm_s.1);
        assert!(
            calm.extra_attempts() > 150,
            "{name}: about 2% of the {} requests before the outage should be retried, got {} retries",
            calm.issued,
            calm.extra_attempts()
        );
        let finished: u64 = output
            .rows
            .iter()
            .filter(|row| row.start.as_micros() < calm_s.1 * 1_000_000)
            .map(|row| row.finished())
            .sum();
        assert_eq!(
            calm.success, finished,
            "{name}: a request failed before the outage although its failures could be retried"
        );
        assert!(summary.services["api"].counters.failed > 150);
    }
}
