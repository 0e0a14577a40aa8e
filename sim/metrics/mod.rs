//! What a run measured: every request's outcome, per-window time series and
//! whole-run totals. The `Recorder` is fed in virtual-time order by the model
//! and turned into a `Summary` and `WindowRow`s at the end.
//!
//! Memory is fixed per run: histograms have fixed bucket arrays (HdrHistogram,
//! reset at every window), each window leaves one fixed-size row, and the
//! number of windows is capped at validation. Nothing is kept per request.

pub mod database;
pub mod histogram;
pub mod summary;
pub mod topology;
pub mod verdict;

use crate::engine::{SimDuration, SimTime};
use crate::policy::breaker::BreakerStateName;
use crate::policy::Reply;
use histogram::LatencyHistogram;
use serde::Serialize;

/// Whether a count is zero: `skip_serializing_if` for counters written
/// only when something happened (`failovers_not_kept`,
/// `drawn_faults_not_kept`).
pub(crate) fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// How one request ended. Every request ends in exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The service answered.
    Success,
    /// A fallback answered.
    Fallback,
    /// It failed with an error.
    Error,
    /// It timed out.
    Timeout,
    /// A circuit breaker rejected it.
    RejectedBreaker,
    /// A full queue rejected it.
    RejectedQueue,
    /// A client-side concurrency limit (bulkhead) rejected it.
    RejectedBulkhead,
    /// It was still in flight when the run's drain period ended.
    Unfinished,
}

impl Outcome {
    /// Every outcome, in column order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Success,
        Outcome::Fallback,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::RejectedBreaker,
        Outcome::RejectedQueue,
        Outcome::RejectedBulkhead,
        Outcome::Unfinished,
    ];

    /// The final reply's outcome.
    pub fn of(reply: Reply) -> Outcome {
        match reply {
            Reply::Success => Outcome::Success,
            Reply::Fallback => Outcome::Fallback,
            Reply::Error { .. } => Outcome::Error,
            Reply::Timeout => Outcome::Timeout,
            Reply::BreakerOpen => Outcome::RejectedBreaker,
            Reply::QueueFull => Outcome::RejectedQueue,
            Reply::BulkheadFull => Outcome::RejectedBulkhead,
        }
    }

    /// The snake_case name used in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Fallback => "fallback",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::RejectedBreaker => "rejected_breaker",
            Outcome::RejectedQueue => "rejected_queue",
            Outcome::RejectedBulkhead => "rejected_bulkhead",
            Outcome::Unfinished => "unfinished",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts([u64; 8]);

impl OutcomeCounts {
    /// Adds one `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        self.0[outcome.index()] += 1;
    }

    /// How many ended as `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0[outcome.index()]
    }

    /// All outcomes together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// One time-series window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window start.
    pub start: SimTime,
    /// Requests issued in the window.
    pub issued: u64,
    /// Requests that finished in the window, by outcome.
    pub outcomes: OutcomeCounts,
    /// Attempts sent by clients in the window (first tries and retries).
    pub attempts: u64,
    /// Latency percentiles of requests finished in the window, all outcomes,
    /// in microseconds, within 1%: p50, p90, p99, p99.9. `None` when none finished.
    pub latency_us: Option<[u64; 4]>,
    /// Calls waiting in the services' queues (all instances) at the window's
    /// first event, before it is handled: the depth at the window's start.
    /// 0 in a window with no event.
    pub queue_depth: u64,
}

impl WindowRow {
    /// Requests finished in the window.
    pub fn finished(&self) -> u64 {
        self.outcomes.total()
    }

    /// Successes over finished requests; `None` when none finished.
    pub fn availability(&self) -> Option<f64> {
        let finished = self.finished();
        (finished > 0).then(|| self.outcomes.get(Outcome::Success) as f64 / finished as f64)
    }
}

/// A recorded breaker state change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransitionRecord {
    /// When, in ms.
    pub at_ms: f64,
    /// The policy stack (`client/users`, `service/api[0]->db`).
    pub stack: String,
    /// State left.
    pub from: BreakerStateName,
    /// State entered.
    pub to: BreakerStateName,
}

/// The most breaker transitions kept for the report; later ones are counted only.
pub const TRANSITIONS_KEPT_MAX: usize = 100_000;

/// A service's counters, as written in `summary.json` (but for the two
/// queue-wait sums, which the summary turns into a probability and a mean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceCounters {
    /// Calls that reached the service.
    pub arrivals: u64,
    /// Calls refused at once by a fail-fast outage or a crashed instance.
    pub refused: u64,
    /// Calls held by a hang outage until it ended.
    pub held: u64,
    /// Calls rejected because the chosen instance's queue was full.
    pub rejected_queue_full: u64,
    /// Calls that started on a worker.
    pub started: u64,
    /// Of those, calls that waited in the queue first.
    #[serde(skip)]
    pub waited: u64,
    /// Total queue wait of started calls, in microseconds.
    #[serde(skip)]
    pub wait_total_us: u128,
    /// Calls answered successfully.
    pub succeeded: u64,
    /// Calls answered with an error (including failed dependencies).
    pub failed: u64,
    /// Calls cut off by an instance crash.
    pub reset: u64,
    /// Calls withdrawn by their caller before a worker took them.
    pub withdrawn: u64,
    /// Calls refused by load shedding.
    pub shed: u64,
    /// Calls refused because no instance was in rotation.
    pub no_instance: u64,
    /// Calls cut off by a graceful shutdown's deadline.
    pub cut: u64,
    /// Instances restarted by their liveness check.
    pub restarts: u64,
    /// Instances killed by a scheduled chaos kill.
    pub kills: u64,
    /// Instances taken out of rotation by readiness checks.
    pub rotation_removals: u64,
    /// Instances put back into rotation by readiness checks.
    pub rotation_additions: u64,
    /// Calls failed by the chaos monkey.
    pub chaos_failures: u64,
    /// Calls delayed by the chaos monkey.
    pub chaos_delays: u64,
    /// Dependency calls skipped because a feature flag was off.
    pub calls_skipped: u64,
}

/// A feature flag switched on or off.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagRecord {
    /// When, in ms.
    pub at_ms: f64,
    /// `service/feature`.
    pub flag: String,
    /// The new setting.
    pub enabled: bool,
}

/// Per-client totals.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    /// Requests issued.
    pub issued: u64,
    /// Outcomes of finished requests.
    pub outcomes: OutcomeCounts,
    /// Latency of finished requests.
    pub latency: LatencyHistogram,
}

/// Collects measurements during a run, in virtual-time order.
pub struct Recorder {
    window: SimDuration,
    window_index: u64,
    /// Where the current window ends (exclusive), in microseconds: a
    /// comparison per record instead of a division.
    window_end_us: u64,
    current: WindowRow,
    window_latency: LatencyHistogram,
    rows: Vec<WindowRow>,
    /// The end (exclusive, in microseconds) of the last window whose queue
    /// depth was sampled (0: none yet).
    queue_sampled_until_us: u64,
    /// Whole-run outcome totals.
    pub totals: OutcomeCounts,
    /// Requests issued.
    pub issued: u64,
    /// Attempts sent to any service (client and dependency calls).
    pub attempts: u64,
    /// Attempts sent by clients.
    pub client_attempts: u64,
    /// Whole-run latency of finished requests.
    pub latency: LatencyHistogram,
    /// Per client, by client index.
    pub clients: Vec<ClientRecord>,
    /// Per service, by service index.
    pub services: Vec<ServiceCounters>,
    /// Breaker transitions, at most `TRANSITIONS_KEPT_MAX`.
    pub transitions: Vec<TransitionRecord>,
    /// Transitions beyond the cap.
    pub transitions_dropped: u64,
    /// Feature flag changes, at most `TRANSITIONS_KEPT_MAX`.
    pub flag_transitions: Vec<FlagRecord>,
}

impl Recorder {
    /// A recorder with `window`-wide rows for `clients` clients and `services` services.
    pub fn new(window: SimDuration, clients: usize, services: usize) -> Self {
        debug_assert!(window.0 > 0);
        Recorder {
            window,
            window_index: 0,
            window_end_us: window.0,
            current: empty_row(SimTime::ZERO),
            window_latency: LatencyHistogram::new_coarse(),
            rows: Vec::new(),
            queue_sampled_until_us: 0,
            totals: OutcomeCounts::default(),
            issued: 0,
            attempts: 0,
            client_attempts: 0,
            latency: LatencyHistogram::new(),
            clients: (0..clients)
                .map(|_| ClientRecord {
                    issued: 0,
                    outcomes: OutcomeCounts::default(),
                    latency: LatencyHistogram::new_coarse(),
                })
                .collect(),
            services: vec![ServiceCounters::default(); services],
            transitions: Vec::new(),
            transitions_dropped: 0,
            flag_transitions: Vec::new(),
        }
    }

    /// Closes every window that ends at or before `now`.
    fn advance(&mut self, now: SimTime) {
        if now.0 < self.window_end_us {
            return;
        }
        let index = now.0 / self.window.0;
        debug_assert!(index >= self.window_index, "recorder fed out of time order");
        while self.window_index < index {
            self.close_window();
        }
    }

    fn close_window(&mut self) {
        self.current.latency_us =
            (!self.window_latency.is_empty()).then(|| self.window_latency.percentiles());
        self.window_latency.reset();
        self.window_index += 1;
        self.window_end_us = (self.window_index + 1).saturating_mul(self.window.0);
        let next = empty_row(SimTime(self.window_index * self.window.0));
        self.rows.push(std::mem::replace(&mut self.current, next));
    }

    /// Whether the window holding `now` still needs its queue-depth sample
    /// (`queue_depth`): true at the first event of each window.
    pub fn queue_sample_due(&self, now: SimTime) -> bool {
        // Time only moves forward, so a later window is one past the end of
        // the last sampled one.
        now.0 >= self.queue_sampled_until_us
    }

    /// The services' queues held `depth` calls at `now`, the window's first event.
    pub fn queue_depth(&mut self, now: SimTime, depth: u64) {
        self.advance(now);
        debug_assert!(self.queue_sample_due(now));
        self.current.queue_depth = depth;
        self.queue_sampled_until_us = self.window_end_us;
    }

    /// A client issued a request.
    pub fn request_issued(&mut self, now: SimTime, client: usize) {
        self.advance(now);
        self.issued += 1;
        self.current.issued += 1;
        self.clients[client].issued += 1;
    }

    /// An attempt left a caller for a service; `from_client` when the caller
    /// is a client rather than a service calling a dependency.
    pub fn attempt_sent(&mut self, now: SimTime, from_client: bool) {
        self.advance(now);
        self.attempts += 1;
        if from_client {
            self.client_attempts += 1;
            self.current.attempts += 1;
        }
    }

    /// A request finished with `outcome` after `latency`.
    pub fn request_finished(
        &mut self,
        now: SimTime,
        client: usize,
        outcome: Outcome,
        latency: SimDuration,
    ) {
        self.advance(now);
        debug_assert!(outcome != Outcome::Unfinished);
        self.totals.add(outcome);
        self.current.outcomes.add(outcome);
        self.clients[client].outcomes.add(outcome);
        self.latency.record(latency);
        self.window_latency.record(latency);
        self.clients[client].latency.record(latency);
    }

    /// A request was still open when the run ended.
    pub fn request_unfinished(&mut self, client: usize) {
        self.totals.add(Outcome::Unfinished);
        self.clients[client].outcomes.add(Outcome::Unfinished);
    }

    /// A breaker in `stack` changed state.
    pub fn breaker_transition(
        &mut self,
        now: SimTime,
        stack: &str,
        from: BreakerStateName,
        to: BreakerStateName,
    ) {
        if self.transitions.len() < TRANSITIONS_KEPT_MAX {
            self.transitions.push(TransitionRecord {
                at_ms: now.as_ms_f64(),
                stack: stack.to_string(),
                from,
                to,
            });
        } else {
            self.transitions_dropped += 1;
        }
    }

    /// A feature flag changed.
    pub fn flag_transition(&mut self, now: SimTime, flag: &str, enabled: bool) {
        if self.flag_transitions.len() < TRANSITIONS_KEPT_MAX {
            self.flag_transitions.push(FlagRecord {
                at_ms: now.as_ms_f64(),
                flag: flag.to_string(),
                enabled,
            });
        }
    }

    /// Closes the last window (the one containing `end`) and returns the rows.
    pub fn finish(&mut self, end: SimTime) -> Vec<WindowRow> {
        self.advance(end);
        self.close_window();
        std::mem::take(&mut self.rows)
    }
}

fn empty_row(start: SimTime) -> WindowRow {
    WindowRow {
        start,
        issued: 0,
        outcomes: OutcomeCounts::default(),
        attempts: 0,
        latency_us: None,
        queue_depth: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_split_by_time_and_count_outcomes() {
        let mut recorder = Recorder::new(SimDuration::from_ms(1_000), 1, 1);
        recorder.request_issued(SimTime::from_ms(10), 0);
        recorder.attempt_sent(SimTime::from_ms(10), true);
        recorder.request_finished(
            SimTime::from_ms(20),
            0,
            Outcome::Success,
            SimDuration::from_ms(10),
        );
        recorder.request_issued(SimTime::from_ms(2_500), 0);
        recorder.request_finished(
            SimTime::from_ms(2_600),
            0,
            Outcome::Timeout,
            SimDuration::from_ms(100),
        );
        assert!(recorder.queue_sample_due(SimTime::from_ms(2_650)));
        recorder.queue_depth(SimTime::from_ms(2_650), 7);
        assert!(!recorder.queue_sample_due(SimTime::from_ms(2_660)));
        let rows = recorder.finish(SimTime::from_ms(2_700));
        assert_eq!(rows[2].queue_depth, 7);
        assert_eq!(rows[0].queue_depth, 0);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].availability(), Some(1.0));
        assert_eq!(rows[1].availability(), None);
        assert_eq!(rows[2].availability(), Some(0.0));
        assert_eq!(rows[2].start, SimTime::from_ms(2_000));
        assert_eq!(recorder.totals.total(), 2);
        let p50 = rows[0].latency_us.unwrap()[0];
        assert!(
            (10_000..=10_100).contains(&p50),
            "p50 {p50} should be 10 ms within 1%"
        );
    }
}
