//! The metastability verdict of one fault: did the system recover after the
//! trigger was removed, and did the load it saw stay above its pre-fault
//! level while it was still unhealthy (the sign of a sustaining effect, such
//! as a retry storm or a backlog of work nobody waits for)?
//!
//! Everything here is computed from the per-window rows (`WindowRow`), whose
//! number is capped at validation, so the verdict adds no memory that grows
//! with the simulated duration.
//!
//! Why compare the load *during the unhealthy stretch* rather than over the
//! whole rest of the run? A metastable failure is one where, once the trigger
//! is gone, the system stays down *because* of the load it generates itself.
//! A slow recovery with normal load (a restart, a breaker's open period) is
//! not that; a fast recovery has no stretch to measure at all. Comparing the
//! stretch between the trigger's removal and recovery (or the end of the load
//! when there is no recovery) against the calm stretch before the fault
//! separates the two.

use super::summary::RECOVERY_WINDOWS;
use super::WindowRow;
use crate::engine::SimTime;
use serde::Serialize;

/// Attempts per request after the fault must exceed this multiple of the
/// pre-fault figure to count as sustained load.
/// A retry budget of ratio 0.1 (the chapter's, gRPC's default) allows 1.1 by
/// design, so it stays below.
pub const SUSTAINED_AMPLIFICATION_RATIO: f64 = 1.25;
/// The queue depth at the end of the stretch after the fault must exceed
/// this multiple of the pre-fault mean, plus `SUSTAINED_QUEUE_DEPTH_MARGIN`
/// (and must not have shrunk since the stretch began) to count as sustained
/// load.
pub const SUSTAINED_QUEUE_DEPTH_RATIO: f64 = 2.0;
/// Jobs added to the queue-depth threshold, so that noise around an empty
/// queue does not count.
pub const SUSTAINED_QUEUE_DEPTH_MARGIN: f64 = 1.0;
/// The unhealthy stretch must cover at least this many windows (twice as
/// many as a recovery needs healthy ones, so that its first and last
/// `RECOVERY_WINDOWS` do not overlap) for its load to count as sustained.
pub const SUSTAINED_WINDOWS_MIN: usize = 2 * RECOVERY_WINDOWS;

/// Whether the system came back after the trigger was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `RECOVERY_WINDOWS` healthy windows in a row after the fault's end.
    Recovered,
    /// No such run of healthy windows before the run ended.
    NotRecovered,
    /// A later fault began before this one had recovered (or while it was
    /// on) and ended after it, so no recovery of this fault alone can be
    /// seen: the later fault's verdict stands for both (`superseded_by`).
    Superseded,
}

impl Verdict {
    /// The snake_case name used in JSON and the table.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Recovered => "recovered",
            Verdict::NotRecovered => "not_recovered",
            Verdict::Superseded => "superseded",
        }
    }
}

/// The load the services saw over a stretch of windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Load {
    /// Windows in the stretch.
    pub windows: u64,
    /// Start of the stretch, ms.
    pub start_ms: f64,
    /// End of the stretch (exclusive), ms.
    pub end_ms: f64,
    /// Client attempts over requests issued in the stretch (retry
    /// amplification), rounded to 3 decimals; attempts per window when
    /// nothing was issued.
    pub attempts_per_request: f64,
    /// Mean over the windows of the number of calls waiting in the services'
    /// queues at each window's start, rounded to 3 decimals.
    pub queue_depth_mean: f64,
    /// The same mean over the stretch's first `RECOVERY_WINDOWS` windows (all
    /// of them when fewer).
    pub queue_depth_first: f64,
    /// The same mean over the stretch's last `RECOVERY_WINDOWS` windows (all
    /// of them when fewer): the backlog left when the stretch ended.
    pub queue_depth_last: f64,
}

impl Load {
    /// The load over `rows`; `None` when there are none.
    fn of(rows: &[WindowRow], window_ms: f64) -> Option<Load> {
        let first = rows.first()?;
        let last = rows.last()?;
        let issued: u64 = rows.iter().map(|row| row.issued).sum();
        let attempts: u64 = rows.iter().map(|row| row.attempts).sum();
        let depth: u64 = rows.iter().map(|row| row.queue_depth).sum();
        let windows = rows.len() as u64;
        let depth_mean = |rows: &[WindowRow]| {
            let depth: u64 = rows.iter().map(|row| row.queue_depth).sum();
            round3(depth as f64 / rows.len() as f64)
        };
        let first_rows = &rows[..rows.len().min(RECOVERY_WINDOWS)];
        let last_rows = &rows[rows.len().saturating_sub(RECOVERY_WINDOWS)..];
        let attempts_per_request = if issued == 0 {
            attempts as f64 / windows as f64
        } else {
            attempts as f64 / issued as f64
        };
        Some(Load {
            windows,
            start_ms: first.start.as_ms_f64(),
            end_ms: last.start.as_ms_f64() + window_ms,
            attempts_per_request: round3(attempts_per_request),
            queue_depth_mean: round3(depth as f64 / windows as f64),
            queue_depth_first: depth_mean(first_rows),
            queue_depth_last: depth_mean(last_rows),
        })
    }

    /// Whether this (after the fault) load is above `before`: more attempts
    /// per request over the whole stretch, or a deeper queue at its end that
    /// has not shrunk since its start. The queue is judged at the end, and
    /// against its start, because any fault leaves a backlog behind (calls
    /// held by a hang are released at once); only a backlog that does not
    /// drain sustains the failure.
    fn above(&self, before: &Load) -> bool {
        let amplified =
            self.attempts_per_request > before.attempts_per_request * SUSTAINED_AMPLIFICATION_RATIO;
        let queued = self.queue_depth_last
            > before.queue_depth_mean * SUSTAINED_QUEUE_DEPTH_RATIO + SUSTAINED_QUEUE_DEPTH_MARGIN
            && self.queue_depth_last >= self.queue_depth_first;
        amplified || queued
    }
}

/// One fault's metastability verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metastability {
    /// Recovered (`recovery_ms` is a number) or not.
    pub verdict: Verdict,
    /// When not recovered: how long after the fault's end the run ended
    /// (still failing all that time); `None` when recovered.
    pub still_failing_ms: Option<f64>,
    /// The load after the fault stayed above the load before it.
    pub sustained_load: bool,
    /// The load over the calm stretch before the fault; `None` when no whole
    /// window fits there.
    pub load_before: Option<Load>,
    /// The load from the fault's end until recovery (or the end of the load);
    /// `None` when no whole window fits there (recovered at once).
    pub load_after: Option<Load>,
}

/// Where one fault sits among the others, in time.
#[derive(Clone, Copy, Debug)]
pub struct FaultWindow {
    /// The fault's start.
    pub start: SimTime,
    /// The fault's end (the trigger is removed).
    pub end: SimTime,
    /// The latest end of the other faults that ended at or before `start`
    /// (zero when none): the calm stretch starts there.
    pub calm_since: SimTime,
    /// The earliest start of the other faults that start at or after `end`
    /// (or the end of the load): the stretch after the fault stops there.
    pub next_trigger: SimTime,
}

impl FaultWindow {
    /// Fault `index` of `windows` (each `(start, end)`), with load ending at
    /// `end_of_load`.
    pub fn among(windows: &[(SimTime, SimTime)], index: usize, end_of_load: SimTime) -> Self {
        let (start, end) = windows[index];
        let others = || {
            windows
                .iter()
                .enumerate()
                .filter(move |(other, _)| *other != index)
                .map(|(_, window)| *window)
        };
        let calm_since = others()
            .filter(|(_, other_end)| *other_end <= start)
            .map(|(_, other_end)| other_end)
            .max()
            .unwrap_or(SimTime::ZERO);
        let next_trigger = others()
            .filter(|(other_start, _)| *other_start >= end)
            .map(|(other_start, _)| other_start)
            .fold(end_of_load, SimTime::min);
        FaultWindow {
            start,
            end,
            calm_since,
            next_trigger,
        }
    }
}

/// The verdict of the fault in `fault`, from the run's `rows` (of
/// `window_ms`), with `recovery` its `recovery_ms` (see
/// `summary::recovery_ms`) and `run_end` the time the run ended.
pub fn metastability(
    rows: &[WindowRow],
    window_ms: f64,
    fault: FaultWindow,
    recovery: Option<f64>,
    run_end: SimTime,
) -> Metastability {
    let window_us = (window_ms * 1_000.0).round() as u64;
    let whole_in = |row: &WindowRow, from: SimTime, to: SimTime| {
        row.start >= from && row.start.0.saturating_add(window_us) <= to.0
    };
    let before: Vec<WindowRow> = rows
        .iter()
        .filter(|row| whole_in(row, fault.calm_since, fault.start))
        .cloned()
        .collect();
    // The unhealthy stretch ends where recovery starts, or at the end of the
    // load, and never runs into the next fault.
    let healthy_from = match recovery {
        Some(ms) => SimTime(fault.end.0.saturating_add((ms * 1_000.0).round() as u64)),
        None => fault.next_trigger,
    };
    let after_end = healthy_from.min(fault.next_trigger);
    let after: Vec<WindowRow> = rows
        .iter()
        .filter(|row| whole_in(row, fault.end, after_end))
        .cloned()
        .collect();
    let load_before = Load::of(&before, window_ms);
    let load_after = Load::of(&after, window_ms);
    let sustained_load = match (&load_before, &load_after) {
        (Some(before), Some(after)) => {
            after.windows as usize >= SUSTAINED_WINDOWS_MIN && after.above(before)
        }
        _ => false,
    };
    let verdict = if recovery.is_some() {
        Verdict::Recovered
    } else {
        Verdict::NotRecovered
    };
    Metastability {
        verdict,
        still_failing_ms: recovery
            .is_none()
            .then(|| run_end.saturating_since(fault.end).as_ms_f64()),
        sustained_load,
        load_before,
        load_after,
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::recovery_ms;
    use crate::metrics::{Outcome, OutcomeCounts};

    /// The verdict of a fault from `start_s` to `end_s` with load until
    /// `load_end_s`, a pre-fault availability of 1 and the run ending at
    /// `run_end_ms`.
    fn verdict_of(
        rows: &[WindowRow],
        (start_s, end_s, load_end_s): (u64, u64, u64),
        run_end_ms: u64,
    ) -> (Option<f64>, Metastability) {
        let window = fault(start_s, end_s, load_end_s);
        let recovery = recovery_ms(rows, window.end, 1.0);
        let verdict = metastability(
            rows,
            1_000.0,
            window,
            recovery,
            SimTime::from_ms(run_end_ms),
        );
        (recovery, verdict)
    }

    /// A one-second window with `issued` requests, `success` and `error`
    /// outcomes, `attempts` client attempts and `queue_depth` queued calls.
    fn row(start_s: u64, success: u64, error: u64, attempts: u64, queue_depth: u64) -> WindowRow {
        let mut outcomes = OutcomeCounts::default();
        (0..success).for_each(|_| outcomes.add(Outcome::Success));
        (0..error).for_each(|_| outcomes.add(Outcome::Error));
        WindowRow {
            start: SimTime::from_ms(start_s * 1_000),
            issued: 100,
            outcomes,
            attempts,
            latency_us: None,
            queue_depth,
        }
    }

    fn fault(start_s: u64, end_s: u64, load_end_s: u64) -> FaultWindow {
        let windows = [(
            SimTime::from_ms(start_s * 1_000),
            SimTime::from_ms(end_s * 1_000),
        )];
        FaultWindow::among(&windows, 0, SimTime::from_ms(load_end_s * 1_000))
    }

    #[test]
    fn a_storm_that_outlives_its_trigger_is_not_recovered_with_sustained_load() {
        // Calm for 10 s (one attempt per request), a fault from 10 s to 15 s,
        // then failing with four attempts per request until the end at 40 s.
        let rows: Vec<WindowRow> = (0..40)
            .map(|second| {
                if second < 10 {
                    row(second, 100, 0, 100, 0)
                } else {
                    row(second, 0, 100, 400, 500)
                }
            })
            .collect();
        let (recovery, verdict) = verdict_of(&rows, (10, 15, 40), 40_500);
        assert_eq!(verdict.verdict, Verdict::NotRecovered);
        assert_eq!(recovery, None);
        assert_eq!(verdict.still_failing_ms, Some(25_500.0));
        assert!(verdict.sustained_load);
        let before = verdict.load_before.unwrap();
        let after = verdict.load_after.unwrap();
        assert_eq!((before.windows, before.attempts_per_request), (10, 1.0));
        assert_eq!((after.windows, after.attempts_per_request), (25, 4.0));
        assert_eq!(
            (before.queue_depth_mean, after.queue_depth_mean),
            (0.0, 500.0)
        );
        assert_eq!(after.queue_depth_last, 500.0);
        assert_eq!((after.start_ms, after.end_ms), (15_000.0, 40_000.0));
    }

    #[test]
    fn a_quick_recovery_has_no_stretch_to_sustain_load() {
        // Healthy again in the window where the fault ended; the retries of
        // the fault's last second land after it, and do not count.
        let rows: Vec<WindowRow> = (0..40)
            .map(|second| {
                if (10..15).contains(&second) {
                    row(second, 0, 100, 500, 0)
                } else if second == 15 {
                    row(second, 100, 0, 300, 0)
                } else {
                    row(second, 100, 0, 102, 0)
                }
            })
            .collect();
        let (recovery, verdict) = verdict_of(&rows, (10, 15, 40), 40_000);
        assert_eq!(verdict.verdict, Verdict::Recovered);
        assert_eq!(recovery, Some(0.0));
        assert_eq!(verdict.still_failing_ms, None);
        assert!(!verdict.sustained_load);
        assert_eq!(verdict.load_after, None);
        assert_eq!(verdict.load_before.unwrap().attempts_per_request, 1.02);
    }

    #[test]
    fn a_slow_recovery_under_normal_load_is_not_sustained() {
        // Failing for 10 s after the fault, but with the calm load: a slow
        // restart, not a storm.
        let rows: Vec<WindowRow> = (0..40)
            .map(|second| {
                if (10..25).contains(&second) {
                    row(second, 0, 100, 100, 1)
                } else {
                    row(second, 100, 0, 100, 0)
                }
            })
            .collect();
        let (recovery, verdict) = verdict_of(&rows, (10, 15, 40), 40_000);
        assert_eq!(verdict.verdict, Verdict::Recovered);
        assert_eq!(recovery, Some(10_000.0));
        assert_eq!(verdict.load_after.as_ref().unwrap().windows, 10);
        assert!(!verdict.sustained_load);
    }

    #[test]
    fn a_backlog_left_by_the_fault_that_drains_is_not_sustained_load() {
        // A queue that is empty for the stretch's last five windows is not
        // sustained load, however deep it was at first.
        let drained: Vec<WindowRow> = (0..40)
            .map(|second| match second {
                15..=19 => row(second, 0, 100, 100, 1_000),
                10..=24 => row(second, 0, 100, 100, 0),
                _ => row(second, 100, 0, 100, 0),
            })
            .collect();
        let (recovery, verdict) = verdict_of(&drained, (10, 15, 40), 40_000);
        assert_eq!(recovery, Some(10_000.0));
        let after = verdict.load_after.as_ref().unwrap();
        assert_eq!(
            (after.queue_depth_mean, after.queue_depth_last),
            (500.0, 0.0)
        );
        assert!(!verdict.sustained_load);
        // Nor is one that is still draining when availability comes back.
        let draining: Vec<WindowRow> = (0..40)
            .map(|second| match second {
                15..=24 => row(second, 0, 100, 100, (25 - second) * 100),
                10..=14 => row(second, 0, 100, 100, 0),
                _ => row(second, 100, 0, 100, 0),
            })
            .collect();
        let (_, verdict) = verdict_of(&draining, (10, 15, 40), 40_000);
        let after = verdict.load_after.as_ref().unwrap();
        assert_eq!(
            (after.queue_depth_first, after.queue_depth_last),
            (800.0, 300.0)
        );
        assert!(!verdict.sustained_load);
        // A backlog that stays is.
        let staying: Vec<WindowRow> = (0..40)
            .map(|second| match second {
                10.. => row(second, 0, 100, 100, 1_000),
                _ => row(second, 100, 0, 100, 0),
            })
            .collect();
        let (recovery, verdict) = verdict_of(&staying, (10, 15, 40), 40_000);
        assert_eq!(recovery, None);
        assert!(verdict.sustained_load);
    }

    #[test]
    fn the_stretches_stop_at_the_neighbouring_faults() {
        let windows = [
            (SimTime::from_ms(5_000), SimTime::from_ms(8_000)),
            (SimTime::from_ms(10_000), SimTime::from_ms(15_000)),
            (SimTime::from_ms(30_000), SimTime::from_ms(31_000)),
        ];
        let middle = FaultWindow::among(&windows, 1, SimTime::from_ms(60_000));
        assert_eq!(middle.calm_since, SimTime::from_ms(8_000));
        assert_eq!(middle.next_trigger, SimTime::from_ms(30_000));
        let last = FaultWindow::among(&windows, 2, SimTime::from_ms(60_000));
        assert_eq!(last.calm_since, SimTime::from_ms(15_000));
        assert_eq!(last.next_trigger, SimTime::from_ms(60_000));
    }
}
