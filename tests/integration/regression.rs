//! What the committed scenarios demonstrate, pinned as behaviour: if a change
//! makes the thundering herd stop herding, these fail.

use crate::support::run_summary;
use sim::scenario::Scenario;

fn load(name: &str) -> Scenario {
    let path = crate::support::root().join(format!("scenarios/{name}.json"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

/// The largest number of client attempts in a window starting in `[from_s, to_s)`.
fn peak_attempts(rows: &[sim::metrics::WindowRow], from_s: u64, to_s: u64) -> u64 {
    rows.iter()
        .filter(|row| (from_s * 1_000_000..to_s * 1_000_000).contains(&row.start.as_micros()))
        .map(|row| row.attempts)
        .max()
        .unwrap_or(0)
}

// Without jitter, retries after the hang arrive in synchronised waves far above
// the steady retry level, and availability stays down for minutes.
#[test]
fn thundering_herd_waves_delay_recovery_by_minutes() {
    let (output, summary) = run_summary(&load("thundering-herd"), 42);
    let recovery_ms = summary.faults[0]
        .recovery_ms
        .expect("recovers before the end");
    assert!(
        recovery_ms > 60_000.0,
        "recovered after only {recovery_ms} ms"
    );
    // Steady retry storm after the hang: about 1000 attempts per 250 ms window.
    let steady = peak_attempts(&output.rows, 150, 200);
    let waves = peak_attempts(&output.rows, 90, 100);
    assert!(
        waves as f64 > 1.5 * steady as f64,
        "no waves: peak {waves} vs steady {steady}"
    );
    assert!(summary.retry_amplification > 2.0);
}

// Jitter smooths the waves but does not shorten the recovery: the backlog remains.
#[test]
fn jitter_removes_the_waves_but_not_the_backlog() {
    let (herd_output, _) = run_summary(&load("thundering-herd"), 42);
    let (output, summary) = run_summary(&load("thundering-herd-jitter"), 42);
    let recovery_ms = summary.faults[0]
        .recovery_ms
        .expect("recovers before the end");
    assert!(
        recovery_ms > 60_000.0,
        "recovered after only {recovery_ms} ms"
    );
    let jittered = peak_attempts(&output.rows, 91, 100);
    let herd = peak_attempts(&herd_output.rows, 91, 100);
    assert!(
        jittered < herd,
        "jittered peak {jittered} not below the herd's {herd}"
    );
}

// The breaker sheds load during the hang, so the api recovers within seconds.
#[test]
fn breaker_with_jitter_recovers_within_seconds() {
    let (_, summary) = run_summary(&load("thundering-herd-breaker"), 42);
    let recovery_ms = summary.faults[0]
        .recovery_ms
        .expect("recovers before the end");
    assert!(recovery_ms <= 10_000.0, "took {recovery_ms} ms");
    assert!(summary.requests.rejected_breaker > 0);
    assert!(
        summary.services["api"].counters.held < 20_000,
        "held {}",
        summary.services["api"].counters.held
    );
    let opened = summary
        .breaker_transitions
        .iter()
        .filter(|t| t.to == sim::policy::breaker::BreakerStateName::Open)
        .count();
    assert!(opened >= 1);
}

// The chapter's feature flag switches recommendations off during the hang and
// never back on; the recovering variant switches them on again after recovery.
#[test]
fn chapter_flags_never_recover_and_recovering_flags_do() {
    let (_, none) = run_summary(&load("feature-flags-none"), 42);
    let (_, chapter) = run_summary(&load("feature-flags-chapter"), 42);
    let (_, recovering) = run_summary(&load("feature-flags-recovering"), 42);
    assert!(
        none.availability < 0.8,
        "without flags {}",
        none.availability
    );
    assert!(
        chapter.availability > 0.98,
        "chapter {}",
        chapter.availability
    );
    assert_eq!(chapter.flag_transitions.len(), 1);
    assert!(!chapter.flag_transitions[0].enabled);
    assert_eq!(recovering.flag_transitions.len(), 2);
    assert!(recovering.flag_transitions[1].enabled);
    assert!(recovering.flag_transitions[1].at_ms > 122_500.0);
    // Skipped calls: about 60 s of pages while off for the recovering flag, the rest of the run for the chapter's.
    assert!(
        chapter.services["web"].counters.calls_skipped
            > 2 * recovering.services["web"].counters.calls_skipped
    );
}

// Every request is served during the outage: the cache answers popular keys, the default the rest.
#[test]
fn fallback_chain_serves_everything_mostly_from_cache() {
    let (_, summary) = run_summary(&load("fallback-cache"), 42);
    assert_eq!(summary.availability_served, 1.0);
    let counters = &summary.policies["client/users"][0].counters;
    assert!(
        counters["from_cache"] > 10 * counters["from_default"],
        "{counters:?}"
    );
    assert_eq!(counters["fallbacks"], summary.requests.fallback);
}

// Shedding stale work keeps goodput up through a spike and avoids the metastable collapse.
#[test]
fn load_shedding_prevents_the_overload_collapse() {
    let (_, without) = run_summary(&load("overload-no-shedding"), 42);
    let (_, with) = run_summary(&load("load-shedding"), 42);
    assert!(
        without.availability < 0.5,
        "without shedding {}",
        without.availability
    );
    assert!(
        with.availability > 0.85,
        "with shedding {}",
        with.availability
    );
    assert!(with.services["api"].counters.shed > 0);
}

// Draining loses no call; killing the instance at once cuts off what it was running.
#[test]
fn graceful_rolling_restart_loses_nothing_and_abrupt_one_does() {
    let (_, graceful) = run_summary(&load("rolling-restart-graceful"), 42);
    let (_, abrupt) = run_summary(&load("rolling-restart-abrupt"), 42);
    assert_eq!(graceful.requests.success, graceful.requests.issued);
    assert_eq!(graceful.services["api"].counters.cut, 0);
    assert!(abrupt.services["api"].counters.cut > 100);
    assert_eq!(abrupt.requests.error, abrupt.services["api"].counters.cut);
}

// Health checks cut the errors of a crashed instance by an order of magnitude.
#[test]
fn health_checks_hide_a_crashed_instance() {
    let (_, without) = run_summary(&load("crash-without-health-checks"), 42);
    let (_, with) = run_summary(&load("health-checks"), 42);
    assert!(without.requests.error > 10 * with.requests.error.max(1));
    assert_eq!(with.services["api"].counters.rotation_removals, 1);
}

// Without a bulkhead slow checkouts take every worker and page views fail too;
// with one, page views keep about 70% of the traffic available.
#[test]
fn bulkhead_keeps_unrelated_requests_available() {
    let (none_output, _) = run_summary(&load("bulkhead-none"), 42);
    let (bulkhead_output, _) = run_summary(&load("bulkhead"), 42);
    let during = |rows: &[sim::metrics::WindowRow]| -> f64 {
        let rows: Vec<_> = rows
            .iter()
            .filter(|row| (70_000_000..115_000_000).contains(&row.start.as_micros()))
            .collect();
        let success: u64 = rows
            .iter()
            .map(|row| row.outcomes.get(sim::metrics::Outcome::Success))
            .sum();
        let finished: u64 = rows.iter().map(|row| row.finished()).sum();
        success as f64 / finished as f64
    };
    assert!(
        during(&none_output.rows) < 0.05,
        "without: {}",
        during(&none_output.rows)
    );
    let with = during(&bulkhead_output.rows);
    assert!((0.6..0.8).contains(&with), "with: {with}");
}
