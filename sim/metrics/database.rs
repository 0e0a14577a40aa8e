//! The `databases` section of `summary.json`: per cluster, the write
//! ledger's totals, RTO and RPO, split brain, and one entry per failover.
//! Present only when the scenario has databases. Field names are stable:
//! `sim explore` and the tests assert on them (reference section 4).

use crate::model::{DatabaseReport, RunOutput};
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;

/// Writes by final state; `issued = acknowledged + divergent + failed + pending`
/// and `acknowledged = surviving + lost`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WriteSummary {
    /// Writes that reached a node able to take or refuse them.
    pub issued: u64,
    /// Acknowledged by the primary of the current epoch.
    pub acknowledged: u64,
    /// Acknowledged and still in the history at the end.
    pub surviving: u64,
    /// Acknowledged, then discarded by a promotion (RPO).
    pub lost: u64,
    /// Acknowledged by a primary whose epoch was over (split brain).
    pub divergent: u64,
    /// Refused (not primary, stale epoch, disk full) or never acknowledged.
    pub failed: u64,
    /// Still waiting for replica acknowledgements at the end.
    pub pending: u64,
}

/// Reads served and the stale ones.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReadSummary {
    /// Reads served.
    pub total: u64,
    /// Reads that missed an acknowledged write.
    pub stale: u64,
}

/// One failover, times in ms of virtual time.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailoverSummary {
    /// When the primary failed or was cut off (the decision, for a false failover).
    pub failure_ms: f64,
    /// Failure to the detector's decision.
    pub detection_ms: f64,
    /// Decision to the new primary taking writes (replay).
    pub promotion_ms: f64,
    /// Promotion to every caller's proxy pointing at it; `null` if never.
    pub routing_ms: Option<f64>,
    /// Failure to routed (to promoted if routing never completed).
    pub rto_ms: f64,
    /// The old primary's name.
    pub from: String,
    /// The new primary's name.
    pub to: String,
    /// The new primary is in another region.
    pub cross_region: bool,
    /// Acknowledged writes lost (RPO in writes).
    pub lost_writes: u64,
    /// The lost LSN range of the old history, `[first, last]`.
    pub lost_lsns: Option<[u64; 2]>,
    /// The new primary's receive lag at the failure (RPO in time), ms.
    pub rpo_lag_ms: f64,
    /// The old primary was up and reachable: the failover was not needed.
    pub false_failover: bool,
    /// Divergent writes in the windows from this failure to the next.
    pub divergent_writes: u64,
    /// Seconds with two writable primaries in the same windows.
    pub split_brain_seconds: f64,
    /// Mean call latency in the 60 s after routing minus the 60 s before
    /// the failure, ms; `null` without calls in either.
    pub latency_penalty_ms: Option<f64>,
}

/// One cluster's summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DatabaseSummary {
    /// Writes by state.
    pub writes: WriteSummary,
    /// Reads.
    pub reads: ReadSummary,
    /// Seconds with two or more writable primaries.
    pub split_brain_seconds: f64,
    /// Failovers, all of them.
    pub failovers_total: u64,
    /// Failovers of a healthy primary.
    pub false_failovers: u64,
    /// Semi-sync fallbacks to async.
    pub semi_sync_fallbacks: u64,
    /// Promotions withheld by `stonith` (the old primary could not be fenced).
    pub promotions_withheld: u64,
    /// Decisions that found no candidate (anti-flap block, lag, scope, replay).
    pub promotions_refused: u64,
    /// The chapter's `PROMOTE` sent to the node already primary.
    pub redundant_promotions: u64,
    /// The largest RPO of any failover, in writes.
    pub rpo_writes_max: u64,
    /// The largest RPO of any failover, in seconds of lag.
    pub rpo_seconds_max: f64,
    /// The longest RTO of any failover, in seconds.
    pub rto_seconds_max: f64,
    /// Each failover, in time order.
    pub failovers: Vec<FailoverSummary>,
    /// Node crashes drawn during the run beyond the first
    /// `DRAWN_FAULTS_KEPT_MAX` of the cluster, which are listed in the
    /// summary's `faults`: counted, not listed. Written only when some were.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub drawn_faults_not_kept: u64,
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// The summaries of every cluster of `output`, by name.
pub fn database_summaries(
    scenario: &Scenario,
    output: &RunOutput,
) -> BTreeMap<String, DatabaseSummary> {
    output
        .databases
        .iter()
        .zip(&scenario.databases)
        .map(|(report, config)| (report.name.clone(), summarise(scenario, config, report)))
        .collect()
}

fn summarise(
    scenario: &Scenario,
    config: &crate::database::ClusterConfig,
    report: &DatabaseReport,
) -> DatabaseSummary {
    let totals = &report.summary.totals;
    let window_us = scenario.window.as_micros().max(1);
    let window_of = |ms: f64| ((ms * 1_000.0) as u64 / window_us) as usize;
    let failovers = report
        .failovers
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let first = window_of(record.failure_at.as_ms_f64());
            let last = report
                .failovers
                .get(index + 1)
                .map_or(usize::MAX, |next| window_of(next.failure_at.as_ms_f64()));
            let span = report
                .windows
                .iter()
                .enumerate()
                .filter(|(window, _)| *window >= first && *window < last);
            let (divergent, split_micros) =
                span.fold((0, 0), |(divergent, micros), (_, counts)| {
                    (
                        divergent + counts.divergent,
                        micros + counts.split_brain_micros,
                    )
                });
            let mean = |from_us: u64, to_us: u64| -> Option<f64> {
                let (sum, count) = report
                    .latency_windows
                    .iter()
                    .enumerate()
                    .filter(|(window, _)| {
                        let start = *window as u64 * window_us;
                        start >= from_us && start < to_us
                    })
                    .fold((0u64, 0u64), |(sum, count), (_, &(s, c))| {
                        (sum + s, count + c)
                    });
                (count > 0).then(|| sum as f64 / count as f64 / 1_000.0)
            };
            let failure_us = record.failure_at.as_micros();
            let before = mean(failure_us.saturating_sub(60_000_000), failure_us);
            let after = record
                .routed_at
                .and_then(|at| mean(at.as_micros(), at.as_micros() + 60_000_000));
            let from = &config.nodes[record.from_node];
            let to = &config.nodes[record.to_node];
            FailoverSummary {
                failure_ms: record.failure_at.as_ms_f64(),
                detection_ms: record.detection().as_ms_f64(),
                promotion_ms: record.promotion().as_ms_f64(),
                routing_ms: record.routing().map(|routing| routing.as_ms_f64()),
                rto_ms: record.rto().as_ms_f64(),
                from: from.name.clone(),
                to: to.name.clone(),
                cross_region: from.place.region != to.place.region,
                lost_writes: record.lost_writes,
                lost_lsns: record.lost_lsns.map(|(first, last)| [first, last]),
                rpo_lag_ms: record.lag_at_failure.as_ms_f64(),
                false_failover: record.false_failover,
                divergent_writes: divergent,
                split_brain_seconds: round3(split_micros as f64 / 1e6),
                latency_penalty_ms: match (before, after) {
                    (Some(before), Some(after)) => Some(round3(after - before)),
                    _ => None,
                },
            }
        })
        .collect();
    DatabaseSummary {
        writes: WriteSummary {
            issued: totals.issued,
            acknowledged: totals.acknowledged,
            surviving: report.summary.surviving,
            lost: totals.lost,
            divergent: totals.divergent,
            failed: totals.failed,
            pending: report.summary.pending,
        },
        reads: ReadSummary {
            total: totals.reads,
            stale: totals.stale_reads,
        },
        split_brain_seconds: round3(report.summary.split_brain_seconds),
        failovers_total: report.summary.failovers,
        false_failovers: report.summary.false_failovers,
        semi_sync_fallbacks: report.semi_sync_fallbacks,
        promotions_withheld: report.promotions_withheld,
        promotions_refused: report.promotions_refused,
        redundant_promotions: report.redundant_promotions,
        rpo_writes_max: report.summary.rpo_writes_max,
        rpo_seconds_max: round3(report.summary.rpo_seconds_max),
        rto_seconds_max: round3(report.summary.rto_seconds_max),
        failovers,
        drawn_faults_not_kept: report.drawn_faults_not_kept,
    }
}

/// The database node crashes drawn during the run (`DatabaseReport::
/// drawn_faults`: the cluster's `primary_failures`, and a region or zone
/// `failures` process's down windows over its nodes) as fault windows, after
/// the scheduled ones (`fault_windows`), cluster by cluster, each in the
/// order they began: labelled as the scheduled ones, `<kind> <database>/
/// <node>` (`primary_failure orders/pg-a`, `failure orders/pg-b`), from the
/// crash to the repair (or the down window's end); one still down when the
/// run ended ends where it starts, as a scheduled crash that stays down.
/// At most `DRAWN_FAULTS_KEPT_MAX` per cluster; the rest are counted in its
/// `drawn_faults_not_kept`.
///
/// Each real-world event is listed once, under its cause: a node's
/// `failure` window is left out when the region or zone window that took
/// it down is listed among the topology faults
/// (`topology::lists_place_failure`: a `failures` window over a place
/// containing the node, beginning when the node went down), as a scheduled
/// outage is listed once as the place and never per node. It is listed
/// only when its cause is not (beyond the topology's cap on drawn windows).
pub fn drawn_fault_windows(
    scenario: &Scenario,
    output: &RunOutput,
) -> Vec<(String, crate::engine::SimTime, crate::engine::SimTime)> {
    output
        .databases
        .iter()
        .zip(&scenario.databases)
        .flat_map(|(report, cluster)| {
            let caused_by_a_listed_place = move |fault: &&crate::model::DrawnFault| {
                fault.by_place_failure()
                    && super::topology::lists_place_failure(
                        scenario,
                        output,
                        cluster.nodes[fault.node].site,
                        fault.start,
                    )
            };
            report
                .drawn_faults
                .iter()
                .filter(move |fault| !caused_by_a_listed_place(fault))
                .map(move |fault| {
                    let node = &cluster.nodes[fault.node].name;
                    (
                        format!("{} {}/{node}", fault.kind, cluster.name),
                        fault.start,
                        fault.end.unwrap_or(fault.start),
                    )
                })
        })
        .collect()
}

/// The database faults of `scenario` as fault windows for the metastability
/// verdict (`summary.json` `faults`, after the service faults): a label such
/// as `database_crash orders/pg-a`, the start, and the end (the restart, the
/// window's end; a crash that stays down ends where it starts: the trigger
/// is the crash, and what the verdict asks is whether failover brought the
/// system back after it).
pub fn fault_windows(
    scenario: &Scenario,
) -> Vec<(String, crate::engine::SimTime, crate::engine::SimTime)> {
    use crate::database::DatabaseFault;
    scenario
        .databases
        .iter()
        .flat_map(|cluster| {
            cluster.faults.iter().map(move |fault| {
                let kind = match fault {
                    DatabaseFault::Crash { .. } => "database_crash",
                    DatabaseFault::ReplicationPause { .. } => "replication_pause",
                    DatabaseFault::SlowReplica { .. } => "slow_replica",
                    DatabaseFault::DiskFull { .. } => "disk_full",
                };
                let node = &cluster.nodes[fault.node()].name;
                let (start, end) = fault.window();
                (
                    format!("{kind} {}/{node}", cluster.name),
                    start,
                    end.unwrap_or(start),
                )
            })
        })
        .collect()
}
