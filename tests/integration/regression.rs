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
        summary.services["api"].held < 20_000,
        "held {}",
        summary.services["api"].held
    );
    let opened = summary
        .breaker_transitions
        .iter()
        .filter(|t| t.to == sim::policy::breaker::BreakerStateName::Open)
        .count();
    assert!(opened >= 1);
}
