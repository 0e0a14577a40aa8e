//! The whole-run summary written to `summary.json` and printed as a table.
//! Every map is a `BTreeMap`, so key order (and so the bytes) never depend on
//! hashing.

use super::histogram::LatencyHistogram;
use super::verdict::{metastability, FaultWindow, Metastability};
use super::{FlagRecord, Outcome, OutcomeCounts, ServiceCounters, TransitionRecord, WindowRow};
use crate::engine::SimTime;
use crate::model::RunOutput;
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;

/// Hours in a (365-day) year, as in the chapter's availability table.
pub const HOURS_PER_YEAR: f64 = 365.0 * 24.0;

/// The program version recorded in every summary.
pub const VERSION: &str = concat!("sim ", env!("CARGO_PKG_VERSION"));

/// Everything `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The program that wrote it.
    pub version: String,
    /// The scenario's file stem.
    pub scenario: String,
    /// What the scenario demonstrates.
    pub description: String,
    /// SHA-256 of the scenario file.
    pub scenario_sha256: String,
    /// The seed.
    pub seed: u64,
    /// Load duration, ms.
    pub duration_ms: f64,
    /// Window width, ms.
    pub window_ms: f64,
    /// Time of the last event, ms.
    pub end_ms: f64,
    /// Events processed.
    pub events: u64,
    /// Outcome totals.
    pub requests: OutcomeSummary,
    /// Success over issued.
    pub availability: f64,
    /// Success plus fallback over issued.
    pub availability_served: f64,
    /// `-log10(1 - availability)`; `null` when nothing failed.
    pub nines: Option<f64>,
    /// The availability's equivalent downtime per year, in hours.
    pub downtime_hours_per_year: f64,
    /// Latency of finished requests, all outcomes.
    pub latency_ms: LatencySummary,
    /// Attempts sent to services (client and dependency calls, retries included).
    pub attempts: u64,
    /// Attempts sent by clients (first tries and retries).
    pub client_attempts: u64,
    /// Client attempts per client request (1 means no retries).
    pub retry_amplification: f64,
    /// Per client.
    pub clients: BTreeMap<String, ClientSummary>,
    /// Per service.
    pub services: BTreeMap<String, ServiceSummary>,
    /// Per policy stack: each layer's counters.
    pub policies: BTreeMap<String, Vec<LayerSummary>>,
    /// Breaker state changes, in time order.
    pub breaker_transitions: Vec<TransitionRecord>,
    /// Transitions beyond the kept maximum.
    pub breaker_transitions_dropped: u64,
    /// Feature flags switched on or off, in time order.
    pub flag_transitions: Vec<FlagRecord>,
    /// The faults, as shaded on the charts.
    pub faults: Vec<FaultSummary>,
    /// Per database cluster: writes by state, RTO, RPO, split brain and
    /// failovers (`metrics::database`); absent without databases.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, super::database::DatabaseSummary>,
    /// Per region, failovers and routers; only with a `topology`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<crate::model::regions::RegionsSummary>,
}

/// Counts per outcome; they add up to `issued`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OutcomeSummary {
    /// Requests issued.
    pub issued: u64,
    /// Answered by the service.
    pub success: u64,
    /// Answered by a fallback.
    pub fallback: u64,
    /// Failed with an error.
    pub error: u64,
    /// Timed out.
    pub timeout: u64,
    /// Rejected by a breaker.
    pub rejected_breaker: u64,
    /// Rejected by a full queue.
    pub rejected_queue: u64,
    /// Rejected by a client-side concurrency limit.
    pub rejected_bulkhead: u64,
    /// Still open when the run ended.
    pub unfinished: u64,
}

impl OutcomeSummary {
    fn new(issued: u64, counts: &OutcomeCounts) -> Self {
        OutcomeSummary {
            issued,
            success: counts.get(Outcome::Success),
            fallback: counts.get(Outcome::Fallback),
            error: counts.get(Outcome::Error),
            timeout: counts.get(Outcome::Timeout),
            rejected_breaker: counts.get(Outcome::RejectedBreaker),
            rejected_queue: counts.get(Outcome::RejectedQueue),
            rejected_bulkhead: counts.get(Outcome::RejectedBulkhead),
            unfinished: counts.get(Outcome::Unfinished),
        }
    }

    /// The outcomes' sum, which must equal `issued`.
    pub fn total(&self) -> u64 {
        self.success
            + self.fallback
            + self.error
            + self.timeout
            + self.rejected_breaker
            + self.rejected_queue
            + self.rejected_bulkhead
            + self.unfinished
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencySummary {
    fn new(histogram: &LatencyHistogram) -> Self {
        let [p50, p90, p99, p999] = histogram.percentiles().map(micros_to_ms);
        LatencySummary {
            p50,
            p90,
            p99,
            p999,
            max: micros_to_ms(histogram.max_us()),
            mean: round3(histogram.mean_us() / 1_000.0),
        }
    }
}

/// One client's results.
#[derive(Clone, Debug, Serialize)]
pub struct ClientSummary {
    /// Outcome totals.
    pub requests: OutcomeSummary,
    /// Success over issued.
    pub availability: f64,
    /// Latency percentiles.
    pub latency_ms: LatencySummary,
}

/// One service's counters and queueing.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceSummary {
    /// The raw counters.
    #[serde(flatten)]
    pub counters: ServiceCounters,
    /// Fraction of started calls that waited in a queue.
    pub wait_probability: f64,
    /// Mean queue wait of started calls, ms.
    pub wait_ms_mean: f64,
}

impl ServiceSummary {
    fn new(counters: &ServiceCounters) -> Self {
        let started = counters.started.max(1) as f64;
        ServiceSummary {
            counters: *counters,
            wait_probability: counters.waited as f64 / started,
            wait_ms_mean: counters.wait_total_us as f64 / 1_000.0 / started,
        }
    }
}

/// One policy layer's counters.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    /// The policy kind.
    pub kind: String,
    /// Its counters.
    pub counters: BTreeMap<String, u64>,
}

/// A fault window and how long the system took to recover from it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultSummary {
    /// A short label.
    pub label: String,
    /// Start, ms.
    pub start_ms: f64,
    /// End, ms.
    pub end_ms: f64,
    /// Availability of the requests finished before the fault began (1 if none).
    pub availability_before: f64,
    /// Time from the fault's end until availability is back (see
    /// `recovery_ms`); `null` if it never came back before the run ended.
    pub recovery_ms: Option<f64>,
    /// Recovered or not, and whether the load stayed up (`verdict.rs`).
    #[serde(flatten)]
    pub metastability: Metastability,
    /// When another fault began before this one had recovered and ended
    /// after it: that fault's index in `faults`, whose verdict and recovery
    /// stand for both (this one's verdict is then `superseded`). See
    /// `supersede`.
    pub superseded_by: Option<usize>,
}

/// Marks each fault that a later one supersedes: another fault that ends
/// later and starts before the first has recovered (or while it is on),
/// since the first one's recovery then measures the second fault's damage
/// too. Its verdict becomes `superseded`, pointing at the first such fault
/// (in `faults` order); its `recovery_ms` stays as measured.
pub fn supersede(faults: &mut [FaultSummary]) {
    let later: Vec<Option<usize>> = faults
        .iter()
        .enumerate()
        .map(|(index, fault)| {
            let recovered_at = fault
                .recovery_ms
                .map_or(f64::INFINITY, |recovery| fault.end_ms + recovery);
            faults.iter().enumerate().position(|(other, later)| {
                other != index && later.end_ms > fault.end_ms && later.start_ms < recovered_at
            })
        })
        .collect();
    for (fault, later) in faults.iter_mut().zip(later) {
        fault.superseded_by = later;
        if later.is_some() {
            fault.metastability.verdict = crate::metrics::verdict::Verdict::Superseded;
            fault.metastability.still_failing_ms = None;
        }
    }
}

/// Windows in a row that must be healthy for the system to count as recovered.
pub const RECOVERY_WINDOWS: usize = 5;
/// How far below its pre-fault availability a window may be and still count
/// as healthy.
pub const RECOVERY_TOLERANCE: f64 = 0.01;

/// The time from `end` until the first of `RECOVERY_WINDOWS` consecutive
/// windows whose availability is within `RECOVERY_TOLERANCE` of `baseline`
/// (a window with no finished request is not healthy). Zero when the system
/// was already healthy in the window where the fault ended.
pub fn recovery_ms(rows: &[WindowRow], end: SimTime, baseline: f64) -> Option<f64> {
    let first = rows
        .iter()
        .position(|row| row.start >= end)
        .map_or(rows.len(), |index| index.saturating_sub(1));
    let healthy = |row: &WindowRow| {
        row.availability()
            .is_some_and(|value| value >= baseline - RECOVERY_TOLERANCE)
    };
    let mut run_start = None;
    let mut run_length = 0;
    for (index, row) in rows.iter().enumerate().skip(first) {
        if healthy(row) {
            run_start.get_or_insert(index);
            run_length += 1;
            if run_length == RECOVERY_WINDOWS {
                break;
            }
        } else {
            run_start = None;
            run_length = 0;
        }
    }
    let index = run_start.filter(|_| run_length == RECOVERY_WINDOWS)?;
    Some(rows[index].start.saturating_since(end).as_ms_f64())
}

/// Availability of the windows that start before `start`; 1 when none finished.
fn availability_before(rows: &[WindowRow], start: SimTime) -> f64 {
    let (success, finished) =
        rows.iter()
            .take_while(|row| row.start < start)
            .fold((0, 0), |(success, finished), row| {
                (
                    success + row.outcomes.get(Outcome::Success),
                    finished + row.finished(),
                )
            });
    ratio(success, finished)
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Nines of an availability: 0.999 has 3. `None` for 1.0.
pub fn nines(availability: f64) -> Option<f64> {
    // `+ 0.0` turns the -0.0 of zero availability into 0.0.
    (availability < 1.0).then(|| round3(-(1.0 - availability).log10()) + 0.0)
}

impl Summary {
    /// Builds the summary of `output`, a run of `scenario` with `seed`.
    pub fn new(scenario: &Scenario, seed: u64, output: &RunOutput) -> Summary {
        let recorder = &output.recorder;
        let requests = OutcomeSummary::new(recorder.issued, &recorder.totals);
        debug_assert_eq!(requests.total(), requests.issued);
        let availability = ratio(requests.success, requests.issued);
        let clients = scenario
            .clients
            .iter()
            .zip(&recorder.clients)
            .map(|(client, record)| {
                let requests = OutcomeSummary::new(record.issued, &record.outcomes);
                let summary = ClientSummary {
                    availability: ratio(requests.success, requests.issued),
                    requests,
                    latency_ms: LatencySummary::new(&record.latency),
                };
                (client.name.clone(), summary)
            })
            .collect();
        let services = scenario
            .services
            .iter()
            .zip(&recorder.services)
            .map(|(service, counters)| (service.name.clone(), ServiceSummary::new(counters)))
            .collect();
        let policies = output
            .policies
            .iter()
            .map(|stack| {
                let layers = stack
                    .layers
                    .iter()
                    .map(|(kind, counters)| LayerSummary {
                        kind: kind.to_string(),
                        counters: counters
                            .iter()
                            .map(|(name, value)| (name.to_string(), *value))
                            .collect(),
                    })
                    .collect();
                (stack.name.clone(), layers)
            })
            .collect();
        // Service faults, then database faults, scheduled, then drawn
        // during the run (`metrics::database`), then topology faults,
        // scheduled and drawn, by start (`metrics::topology`).
        let all_faults: Vec<(String, (SimTime, SimTime))> = scenario
            .faults
            .iter()
            .map(|fault| (fault.label(&scenario.services), fault.window()))
            .chain(
                super::database::fault_windows(scenario)
                    .into_iter()
                    .chain(super::database::drawn_fault_windows(scenario, output))
                    .chain(super::topology::fault_windows(scenario, output))
                    .map(|(label, start, end)| (label, (start, end))),
            )
            .collect();
        let windows: Vec<(SimTime, SimTime)> =
            all_faults.iter().map(|(_, window)| *window).collect();
        let end_of_load = SimTime::ZERO + scenario.duration;
        let mut faults: Vec<FaultSummary> = all_faults
            .into_iter()
            .enumerate()
            .map(|(index, (label, (start, end)))| {
                let baseline = availability_before(&output.rows, start);
                let recovery = recovery_ms(&output.rows, end, baseline);
                let window = FaultWindow::among(&windows, index, end_of_load);
                FaultSummary {
                    label,
                    start_ms: start.as_ms_f64(),
                    end_ms: end.as_ms_f64(),
                    availability_before: baseline,
                    recovery_ms: recovery,
                    metastability: metastability(
                        &output.rows,
                        scenario.window.as_ms_f64(),
                        window,
                        recovery,
                        output.end,
                    ),
                    superseded_by: None,
                }
            })
            .collect();
        supersede(&mut faults);
        Summary {
            version: VERSION.to_string(),
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            scenario_sha256: scenario.hash.clone(),
            seed,
            duration_ms: scenario.duration.as_ms_f64(),
            window_ms: scenario.window.as_ms_f64(),
            end_ms: output.end.as_ms_f64(),
            events: output.events,
            availability,
            availability_served: ratio(requests.success + requests.fallback, requests.issued),
            nines: nines(availability),
            downtime_hours_per_year: round3((1.0 - availability) * HOURS_PER_YEAR),
            latency_ms: LatencySummary::new(&recorder.latency),
            attempts: recorder.attempts,
            client_attempts: recorder.client_attempts,
            retry_amplification: round3(ratio(recorder.client_attempts, requests.issued)),
            requests,
            clients,
            services,
            policies,
            breaker_transitions: recorder.transitions.clone(),
            breaker_transitions_dropped: recorder.transitions_dropped,
            flag_transitions: recorder.flag_transitions.clone(),
            faults,
            databases: super::database::database_summaries(scenario, output),
            regions: output.regions.as_ref().map(|report| report.summary()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_ms: u64, success: u64, error: u64) -> WindowRow {
        let mut outcomes = OutcomeCounts::default();
        (0..success).for_each(|_| outcomes.add(Outcome::Success));
        (0..error).for_each(|_| outcomes.add(Outcome::Error));
        WindowRow {
            start: SimTime::from_ms(start_ms),
            issued: success + error,
            outcomes,
            attempts: success + error,
            latency_us: None,
            queue_depth: 0,
        }
    }

    #[test]
    fn recovery_is_the_start_of_the_first_healthy_run_after_the_fault() {
        let mut rows: Vec<WindowRow> = (0..20).map(|index| row(index * 1_000, 100, 0)).collect();
        for (index, window) in rows.iter_mut().enumerate().take(12).skip(5) {
            *window = row(index as u64 * 1_000, 10, 90);
        }
        // A lone healthy window at 12 s does not count: 13 s is bad again.
        rows[13] = row(13_000, 50, 50);
        let end = SimTime::from_ms(9_500);
        assert_eq!(availability_before(&rows, SimTime::from_ms(5_000)), 1.0);
        assert_eq!(recovery_ms(&rows, end, 1.0), Some(4_500.0));
        // Never healthy for five windows in a row: no recovery.
        assert_eq!(recovery_ms(&rows[..17], end, 1.0), None);
        // Healthy in the very window where the fault ended: zero.
        assert_eq!(recovery_ms(&rows, SimTime::from_ms(15_500), 1.0), Some(0.0));
    }

    #[test]
    fn nines_and_downtime_match_the_chapter_table() {
        assert_eq!(nines(0.999), Some(3.0));
        assert_eq!(nines(1.0), None);
        assert_eq!(nines(0.0).map(f64::to_bits), Some(0.0f64.to_bits()));
        let hours = (1.0 - 0.999) * HOURS_PER_YEAR;
        assert!((hours - 8.76).abs() < 1e-9);
        let minutes = (1.0 - 0.9999) * HOURS_PER_YEAR * 60.0;
        assert!((minutes - 52.56).abs() < 1e-6);
    }
}
