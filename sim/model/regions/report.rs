//! What the regions adapter reports: the series it keeps during a run (busy
//! worker time per region and window, routed and successful attempts per
//! region and window, finished requests per client and window) and closing
//! the books at the end (`Regions::report`): each failover's DNS tail,
//! recovery (`recovery_of` over the clients the failover hit, or the run's
//! availability before it) and capacity verdict, into the `RegionReport` the
//! report reads and the `RegionsSummary` written in `summary.json`.

use crate::engine::{SimDuration, SimTime};
use crate::metrics::summary::{recovery_ms, RECOVERY_TOLERANCE, RECOVERY_WINDOWS};
use crate::metrics::{Outcome, WindowRow};
use serde::Serialize;
use std::collections::BTreeMap;

use super::routing::RouterState;
use super::{DrawnWindow, FailoverRecord, RegionCounters, Regions};

/// The capacity verdict after a failover.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityVerdict {
    /// `holds` or `saturated`.
    pub verdict: &'static str,
    /// The surviving region with the highest mean utilisation.
    pub region: String,
    /// Its measured utilisation, busy worker time over `instances × workers
    /// × window` of the routed service, averaged over the whole windows from
    /// the routing change to the fault's end; the verdict is `holds` below
    /// `SATURATION_BUSY`.
    pub utilisation_mean: f64,
    /// Its highest measured utilisation in one window over the same span.
    pub utilisation_peak: f64,
    /// Its offered utilisation over the same windows, `routed attempts per
    /// second × mean service time / (instances × workers)`: above 1 it asks
    /// for more than the region has, which the measured figure cannot show.
    pub offered_utilisation_mean: f64,
    /// Its highest offered utilisation in one window.
    pub offered_utilisation_peak: f64,
}

/// The measured utilisation at and above which surviving regions count as
/// saturated: busy workers cannot exceed 1, so a region asked for more than
/// it has sits just below it (the gaps are the instants a queue is empty).
pub const SATURATION_BUSY: f64 = 0.95;

/// The most failure-process down windows kept per run (`drawn_faults`, for
/// `summary.json`'s `faults` and the chart's shading); later ones are
/// counted only (`drawn_faults_not_kept`).
pub const FAULT_WINDOWS_KEPT_MAX: usize = 200;

/// The clients (the first ones, in scenario order) whose requests are
/// counted per window for the recovery of a failover; a failover that hits
/// a later client measures recovery over all requests.
pub const CLIENT_SERIES_MAX: usize = 64;

/// What the regions adapter measured, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionReport {
    /// Region names, in topology order.
    pub names: Vec<String>,
    /// Per region, in topology order.
    pub counters: Vec<RegionCounters>,
    /// Per window (as the run's rows): client attempts routed to each region.
    pub routed: Vec<Vec<u64>>,
    /// Per window: successful answers sent from each region.
    pub ok: Vec<Vec<u64>>,
    /// Every failover, in the order the faults began (the first
    /// `FAILOVERS_KEPT_MAX`).
    pub failovers: Vec<FailoverRecord>,
    /// Failovers beyond the first `FAILOVERS_KEPT_MAX`: counted, not kept.
    pub failovers_not_kept: u64,
    /// Per router (by name): its counters.
    pub routers: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// The down windows the `failures` processes drew, in the order they
    /// began (the first `FAULT_WINDOWS_KEPT_MAX`; one that began while a
    /// scheduled outage already had its place down is not among them).
    pub drawn_faults: Vec<DrawnWindow>,
    /// Drawn down windows beyond the first `FAULT_WINDOWS_KEPT_MAX`:
    /// counted only.
    pub drawn_faults_not_kept: u64,
}

/// The `regions` section of `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionsSummary {
    /// Per region, by name.
    pub regions: BTreeMap<String, RegionCounters>,
    /// Every failover, in the order the faults began (the first
    /// `FAILOVERS_KEPT_MAX`).
    pub failovers: Vec<FailoverRecord>,
    /// Failovers that began beyond the first `FAILOVERS_KEPT_MAX`: counted,
    /// not kept. Written only when some were dropped.
    #[serde(skip_serializing_if = "crate::metrics::is_zero")]
    pub failovers_not_kept: u64,
    /// Per router, by name: its counters.
    pub routers: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Down windows the `failures` processes drew beyond the first
    /// `FAULT_WINDOWS_KEPT_MAX`, which are listed in the summary's `faults`:
    /// counted, not listed. Written only when some were.
    #[serde(skip_serializing_if = "crate::metrics::is_zero")]
    pub drawn_faults_not_kept: u64,
}

impl RegionReport {
    /// The `regions` section of `summary.json`.
    pub fn summary(&self) -> RegionsSummary {
        RegionsSummary {
            regions: self
                .names
                .iter()
                .cloned()
                .zip(self.counters.iter().copied())
                .collect(),
            failovers: self.failovers.clone(),
            failovers_not_kept: self.failovers_not_kept,
            routers: self.routers.clone(),
            drawn_faults_not_kept: self.drawn_faults_not_kept,
        }
    }
}

impl<'a> Regions<'a> {
    /// `delta` workers of instance `instance` of `service` became busy
    /// (positive) or free (negative) at `now`.
    pub fn workers_changed(&mut self, now: SimTime, service: usize, instance: usize, delta: i64) {
        let region = self.instance_places[service][instance].region;
        let key = service * self.topology.regions.len() + region;
        self.integrate_busy(now, key);
        let busy = &mut self.busy[key].0;
        debug_assert!(i64::from(*busy) + delta >= 0);
        *busy = (i64::from(*busy) + delta).max(0) as u32;
    }

    /// Adds the busy worker time of `key` up to `now`, split by window.
    fn integrate_busy(&mut self, now: SimTime, key: usize) {
        let (count, since) = self.busy[key];
        self.busy[key].1 = now;
        if count == 0 || now <= since {
            return;
        }
        let regions = self.topology.regions.len();
        let (service, region) = (key / regions, key % regions);
        self.busy_total_us[region] += u64::from(count) * now.saturating_since(since).0;
        if Some(service) != self.verdict_service {
            return;
        }
        let mut at = since;
        while at < now {
            let index = (at.0 / self.window.0) as usize;
            let window_end = SimTime((index as u64 + 1) * self.window.0).min(now);
            let slot = index * regions + region;
            if self.busy_windows.len() <= slot {
                self.busy_windows.resize((index + 1) * regions, 0);
            }
            self.busy_windows[slot] += u64::from(count) * window_end.saturating_since(at).0;
            at = window_end;
        }
    }

    /// A request of client `client` finished at `now`, successfully or not
    /// (for the recovery of the clients a failover hit).
    pub fn request_finished(&mut self, now: SimTime, client: usize, success: bool) {
        let clients = self.clients.len().min(CLIENT_SERIES_MAX);
        if client >= clients {
            return;
        }
        let index = (now.0 / self.window.0) as usize;
        let at = (index * clients + client) * 2;
        if self.client_windows.len() <= at + 1 {
            self.client_windows.resize((index + 1) * clients * 2, 0);
        }
        self.client_windows[at] += u64::from(success);
        self.client_windows[at + 1] += 1;
    }

    pub(super) fn count_window(&mut self, now: SimTime, region: usize, column: usize) {
        let regions = self.topology.regions.len();
        let index = (now.0 / self.window.0) as usize;
        let at = (index * 2 + column) * regions + region;
        if self.windows.len() <= at {
            self.windows.resize((index + 1) * 2 * regions, 0);
        }
        self.windows[at] += 1;
    }
}

impl<'a> Regions<'a> {
    /// Closes the books at `end`: per-window columns aligned with `rows`,
    /// and each failover's DNS tail, recovery and capacity verdict.
    pub fn report(mut self, rows: &[WindowRow], end: SimTime) -> RegionReport {
        let regions = self.topology.regions.len();
        for key in 0..self.busy.len() {
            self.integrate_busy(end, key);
        }
        for (counters, busy_us) in self.counters.iter_mut().zip(&self.busy_total_us) {
            counters.busy_worker_ms = busy_us / 1_000;
        }
        let column = |windows: &[u64], offset: usize| -> Vec<Vec<u64>> {
            (0..rows.len())
                .map(|index| {
                    let at = (index * 2 + offset) * regions;
                    (0..regions)
                        .map(|region| windows.get(at + region).copied().unwrap_or(0))
                        .collect()
                })
                .collect()
        };
        let routed = column(&self.windows, 0);
        let ok = column(&self.windows, 1);
        let window_ms = self.window.as_ms_f64();
        let service = self.verdict_service;
        let mut failovers = std::mem::take(&mut self.failovers);
        for record in &mut failovers {
            let fault_end = record
                .fault_end_ms
                .map_or(end, |ms| SimTime::ZERO + SimDuration::from_ms_f64(ms));
            if let Some(tail) = record.tail {
                let routed_at = record.started
                    + SimDuration::from_ms_f64(record.routing_change_ms.unwrap_or(0.0));
                record.dns_tail_ms = tail
                    .ended
                    .map(|ended| ended.max(routed_at).saturating_since(routed_at).as_ms_f64());
                record.clients_never_moved = Some(if tail.initial == 0 {
                    0.0
                } else {
                    round3(f64::from(tail.remaining) / f64::from(tail.initial))
                });
            }
            let series_kept = self.clients.len().min(CLIENT_SERIES_MAX);
            if record.clients.is_empty() || record.clients.iter().any(|&c| c >= series_kept) {
                let baseline = availability_before(rows, record.started);
                record.recovery_ms = recovery_ms(rows, record.started, baseline);
                record.recovery_clients = names(&self.client_names, 0..self.clients.len());
            } else {
                // Only the requests of the clients that were on the region.
                let series: Vec<(u64, u64)> = (0..rows.len())
                    .map(|index| {
                        record
                            .clients
                            .iter()
                            .fold((0, 0), |(ok, finished), &client| {
                                let at = (index * series_kept + client) * 2;
                                (
                                    ok + self.client_windows.get(at).copied().unwrap_or(0),
                                    finished
                                        + self.client_windows.get(at + 1).copied().unwrap_or(0),
                                )
                            })
                    })
                    .collect();
                record.recovery_ms = recovery_of(rows, &series, record.started);
                record.recovery_clients = names(&self.client_names, record.clients.iter().copied());
            }
            if let (Some(change), Some(service)) = (record.routing_change_ms, service) {
                let from = record.started + SimDuration::from_ms_f64(change);
                let workers = f64::from(self.workers[service]);
                let mean_s = self.mean_service_ms[service] / 1_000.0;
                // Per surviving region: (sum of busy ρ, windows, peak busy
                // ρ, sum of offered ρ, peak offered ρ).
                let mut load = vec![(0.0, 0u32, 0.0f64, 0.0, 0.0f64); regions];
                for (index, row) in rows.iter().enumerate() {
                    let window_end = row.start + self.window;
                    // Whole windows after the routing change and before the fault's end.
                    if row.start < from || window_end > fault_end {
                        continue;
                    }
                    for region in (0..regions).filter(|&r| r != record.region_id) {
                        let instances = self.members[service][region].len() as f64;
                        if instances == 0.0 {
                            continue;
                        }
                        let rate = routed[index][region] as f64 / (window_ms / 1_000.0);
                        let offered = rate * mean_s / (instances * workers);
                        let busy_us = self
                            .busy_windows
                            .get(index * regions + region)
                            .copied()
                            .unwrap_or(0);
                        let busy = busy_us as f64 / (self.window.0 as f64 * instances * workers);
                        let entry = &mut load[region];
                        entry.0 += busy;
                        entry.1 += 1;
                        entry.2 = entry.2.max(busy);
                        entry.3 += offered;
                        entry.4 = entry.4.max(offered);
                    }
                }
                let busiest = (0..regions)
                    .filter(|&region| load[region].1 > 0)
                    .map(|region| (region, load[region].0 / f64::from(load[region].1)))
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
                record.capacity = busiest.map(|(region, mean)| CapacityVerdict {
                    verdict: if mean < SATURATION_BUSY {
                        "holds"
                    } else {
                        "saturated"
                    },
                    region: self.topology.regions[region].name.clone(),
                    utilisation_mean: round3(mean),
                    utilisation_peak: round3(load[region].2),
                    offered_utilisation_mean: round3(load[region].3 / f64::from(load[region].1)),
                    offered_utilisation_peak: round3(load[region].4),
                });
            }
        }
        let routers = self
            .topology
            .routers
            .iter()
            .zip(&self.routers)
            .map(|(spec, state)| {
                let counters: BTreeMap<&'static str, u64> = match state {
                    RouterState::Dns(dns) => {
                        let c = dns.counters();
                        [
                            ("probes", c.probes),
                            ("health_changes", c.health_changes),
                            ("answers", c.answers),
                        ]
                        .into()
                    }
                    RouterState::Anycast(anycast) => [("shifts", anycast.shifts())].into(),
                    RouterState::Priority(_) | RouterState::ActiveActive(_) => BTreeMap::new(),
                    RouterState::ActivePassive(chapter) => {
                        let c = chapter.counters();
                        [
                            ("requests", c.requests),
                            ("to_secondary", c.to_secondary),
                            ("flips", c.flips),
                        ]
                        .into()
                    }
                };
                (spec.name.clone(), counters)
            })
            .collect();
        RegionReport {
            names: self
                .topology
                .regions
                .iter()
                .map(|region| region.name.clone())
                .collect(),
            counters: self.counters,
            routed,
            ok,
            failovers_not_kept: self.failovers_total - failovers.len() as u64,
            failovers,
            routers,
            drawn_faults: self.drawn,
            drawn_faults_not_kept: self.drawn_not_kept,
        }
    }
}

/// The names of `clients`, in order.
fn names(all: &[String], clients: impl Iterator<Item = usize>) -> Vec<String> {
    clients.map(|client| all[client].clone()).collect()
}

/// `recovery_ms` over one series of `(successful, finished)` per window
/// (aligned with `rows`): from `start`, until `RECOVERY_WINDOWS` windows in a
/// row are within `RECOVERY_TOLERANCE` of the availability before `start`.
fn recovery_of(rows: &[WindowRow], series: &[(u64, u64)], start: SimTime) -> Option<f64> {
    let (ok, finished) = rows
        .iter()
        .zip(series)
        .take_while(|(row, _)| row.start + SimDuration(1) <= start)
        .fold((0, 0), |(ok, finished), (_, &(o, f))| {
            (ok + o, finished + f)
        });
    let baseline = if finished == 0 {
        1.0
    } else {
        ok as f64 / finished as f64
    };
    let first = rows
        .iter()
        .position(|row| row.start >= start)
        .map_or(rows.len(), |index| index.saturating_sub(1));
    let mut run = 0;
    for (index, &(ok, finished)) in series.iter().enumerate().skip(first) {
        let healthy = finished > 0 && ok as f64 / finished as f64 >= baseline - RECOVERY_TOLERANCE;
        run = if healthy { run + 1 } else { 0 };
        if run == RECOVERY_WINDOWS {
            let began = index + 1 - RECOVERY_WINDOWS;
            return Some(rows[began].start.saturating_since(start).as_ms_f64());
        }
    }
    None
}

/// Availability of the windows that start before `start`; 1 when none finished.
fn availability_before(rows: &[WindowRow], start: SimTime) -> f64 {
    let (success, finished) = rows
        .iter()
        .take_while(|row| row.start + SimDuration(1) <= start)
        .fold((0u64, 0u64), |(success, finished), row| {
            (
                success + row.outcomes.get(Outcome::Success),
                finished + row.finished(),
            )
        });
    if finished == 0 {
        1.0
    } else {
        success as f64 / finished as f64
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::OutcomeCounts;

    fn rows(count: usize) -> Vec<WindowRow> {
        (0..count)
            .map(|index| WindowRow {
                start: SimTime::from_ms(index as u64 * 1_000),
                issued: 0,
                outcomes: OutcomeCounts::default(),
                attempts: 0,
                latency_us: None,
                queue_depth: 0,
            })
            .collect()
    }

    // Recovery over one client series: the baseline is the series' own
    // availability before the fault, and it takes five healthy windows in a
    // row, the first of which is where recovery is.
    #[test]
    fn recovery_of_a_series_waits_for_five_healthy_windows() {
        let rows = rows(20);
        let mut series = vec![(10, 10); 20];
        // The fault at 5 s: windows 5 to 8 fail, 9 is healthy, 10 fails
        // again, 11 on are healthy.
        for window in [5, 6, 7, 8, 10] {
            series[window] = (2, 10);
        }
        let recovery = recovery_of(&rows, &series, SimTime::from_ms(5_000));
        assert_eq!(recovery, Some(6_000.0));
        // A baseline of 90% tolerates 89.5% windows.
        let mut lower = vec![(9, 10); 20];
        lower[5] = (0, 10);
        lower[6] = (895, 1_000);
        assert_eq!(
            recovery_of(&rows, &lower, SimTime::from_ms(5_000)),
            Some(1_000.0)
        );
        // Windows without finished requests are not healthy.
        let empty = vec![(0, 0); 20];
        assert_eq!(recovery_of(&rows, &empty, SimTime::from_ms(5_000)), None);
    }
}
