//! The topology's faults as fault windows for `summary.json`'s `faults`
//! (after the database faults): the scheduled `topology.faults` entries
//! (region and zone outages, partitions, degradations, checker partitions)
//! and the down windows the `failures` processes drew during the run
//! (`RegionReport::drawn_faults`), together, by start and then in the
//! order the scenario lists them. Each gets its recovery and verdict as
//! every other fault does (`metrics::summary`). The same windows, with
//! the same labels and their kind, are what `regions.png` shades
//! (`windows`, read by `report::region_chart`): one labeller for both.
//! A database node that a region or zone window took down is not listed
//! again (`lists_place_failure`, read by `metrics::database`).

use crate::engine::SimTime;
use crate::model::distribution::Distribution;
use crate::model::regions::RegionReport;
use crate::model::RunOutput;
use crate::scenario::{OutageMode, Scenario};
use crate::topology::failure::FailureTarget;
use crate::topology::faults::TopologyFault;
use crate::topology::{Place, Topology};

/// The label of scheduled topology fault `fault`, in the style of the
/// other faults' labels (`<kind> <where>`, the kind as the scenario spells
/// it): `region_outage (fail-fast) us-east-1`, `zone_outage (hang)
/// us-east-1/a`, `partition us-east-1 <-> eu-west-1` (two-way) or
/// `partition eu-west-1 -> us-east-1` (one-way), `degradation us-west-2 ->
/// us-east-1 (loss 0.3)` (with `added latency` when it adds any),
/// `checker_partition route53 -> us-east-1`; `None` for a `failures`
/// process, whose drawn windows are labelled by `drawn_label`.
pub fn label(topology: &Topology, fault: &TopologyFault) -> Option<String> {
    let name = |place: Place| topology.place_name(place);
    let between = |from: Place, to: Place, two_way: bool| {
        let arrow = if two_way { "<->" } else { "->" };
        format!("{} {arrow} {}", name(from), name(to))
    };
    Some(match fault {
        TopologyFault::Outage { scope, mode, .. } => {
            let kind = if scope.zone.is_some() {
                "zone_outage"
            } else {
                "region_outage"
            };
            let mode = match mode {
                OutageMode::FailFast => "fail-fast",
                OutageMode::Hang => "hang",
            };
            format!("{kind} ({mode}) {}", name(*scope))
        }
        TopologyFault::Partition(p) => format!("partition {}", between(p.from, p.to, p.two_way)),
        TopologyFault::Degradation(d) => {
            let mut effects = Vec::new();
            if d.added != (Distribution::Constant { value_ms: 0.0 }) {
                effects.push("added latency".to_string());
            }
            if d.loss > 0.0 {
                effects.push(format!("loss {}", d.loss));
            }
            let effects = if effects.is_empty() {
                String::new()
            } else {
                format!(" ({})", effects.join(", "))
            };
            format!("degradation {}{effects}", between(d.from, d.to, d.two_way))
        }
        TopologyFault::CheckerCut(cut) => format!(
            "checker_partition {} -> {}",
            topology.routers[cut.router].name,
            name(Place::region(cut.region))
        ),
        TopologyFault::Failures { .. } => return None,
    })
}

/// The label of a down window drawn by `failures` process `fault`, as the
/// database's drawn ones (`failure <where>`): `failure us-east-1`, `failure
/// us-east-1/a`, `failure api[3]` (an instance, as a `crash` is labelled).
pub fn drawn_label(scenario: &Scenario, topology: &Topology, fault: &TopologyFault) -> String {
    match fault {
        TopologyFault::Failures {
            target: FailureTarget::Instance(service, index),
            ..
        } => format!("failure {}[{index}]", scenario.services[*service].name),
        TopologyFault::Failures {
            target: FailureTarget::Place(place),
            ..
        } => format!("failure {}", topology.place_name(*place)),
        _ => unreachable!("a drawn window comes from a failures process"),
    }
}

/// What a topology fault window is, for the regions chart's shading and
/// legend (one entry per kind): the scheduled kinds as the scenario spells
/// them, and a `failures` process's drawn windows by what went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowKind {
    /// A scheduled `region_outage`.
    RegionOutage,
    /// A scheduled `zone_outage`.
    ZoneOutage,
    /// A region's down window drawn by a `failures` process.
    RegionFailure,
    /// A zone's down window drawn by a `failures` process.
    ZoneFailure,
    /// One instance's down window drawn by a `failures` process.
    InstanceFailure,
    /// A scheduled `partition`.
    Partition,
    /// A scheduled `degradation`.
    Degradation,
    /// A scheduled `checker_partition`.
    CheckerPartition,
}

impl WindowKind {
    /// Every kind, in legend order.
    pub const ALL: [WindowKind; 8] = [
        WindowKind::RegionOutage,
        WindowKind::ZoneOutage,
        WindowKind::RegionFailure,
        WindowKind::ZoneFailure,
        WindowKind::InstanceFailure,
        WindowKind::Partition,
        WindowKind::Degradation,
        WindowKind::CheckerPartition,
    ];

    /// The kind's name in the chart's legend: the scheduled ones as the
    /// scenario spells them, the drawn ones `failure (<what>)`.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::RegionOutage => "region_outage",
            WindowKind::ZoneOutage => "zone_outage",
            WindowKind::RegionFailure => "failure (region)",
            WindowKind::ZoneFailure => "failure (zone)",
            WindowKind::InstanceFailure => "failure (instance)",
            WindowKind::Partition => "partition",
            WindowKind::Degradation => "degradation",
            WindowKind::CheckerPartition => "checker_partition",
        }
    }

    /// The kind of scheduled or `failures` fault `fault`.
    pub fn of(fault: &TopologyFault) -> WindowKind {
        match fault {
            TopologyFault::Outage { scope, .. } if scope.zone.is_some() => WindowKind::ZoneOutage,
            TopologyFault::Outage { .. } => WindowKind::RegionOutage,
            TopologyFault::Partition(_) => WindowKind::Partition,
            TopologyFault::Degradation(_) => WindowKind::Degradation,
            TopologyFault::CheckerCut(_) => WindowKind::CheckerPartition,
            TopologyFault::Failures {
                target: FailureTarget::Instance(..),
                ..
            } => WindowKind::InstanceFailure,
            TopologyFault::Failures {
                target: FailureTarget::Place(place),
                ..
            } if place.zone.is_some() => WindowKind::ZoneFailure,
            TopologyFault::Failures { .. } => WindowKind::RegionFailure,
        }
    }
}

/// One topology fault window of a run: what `summary.json` lists and
/// `regions.png` shades.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyWindow {
    /// What kind of fault it is.
    pub kind: WindowKind,
    /// Its label (`label`, `drawn_label`), the same in the summary and on
    /// the chart.
    pub label: String,
    /// When it began.
    pub start: SimTime,
    /// When it ended; `None` for a drawn window still down when the run
    /// ended.
    pub end: Option<SimTime>,
}

/// The topology fault windows of a run of `scenario` whose regions adapter
/// reported `report`: each scheduled one over its window, and each down
/// window a `failures` process drew (the first `FAULT_WINDOWS_KEPT_MAX` of
/// the run; the regions entry's `drawn_faults_not_kept` counts the rest)
/// from the unit going down to its coming back. A drawn window that began
/// while a scheduled outage already had its place down is not among them:
/// the scheduled one is. Sorted by start, then in the order the scenario
/// lists the faults (a process's windows in time order).
pub fn windows(scenario: &Scenario, report: Option<&RegionReport>) -> Vec<TopologyWindow> {
    let Some(topology) = scenario.topology.as_ref() else {
        return Vec::new();
    };
    let mut windows: Vec<(usize, TopologyWindow)> = Vec::new();
    for (index, fault) in topology.faults.iter().enumerate() {
        if let (Some(window), Some(text)) = (fault.window(), label(topology, fault)) {
            windows.push((
                index,
                TopologyWindow {
                    kind: WindowKind::of(fault),
                    label: text,
                    start: window.start,
                    end: Some(window.end),
                },
            ));
        }
    }
    for drawn in report.map_or(&[][..], |report| &report.drawn_faults) {
        let fault = &topology.faults[drawn.fault];
        windows.push((
            drawn.fault,
            TopologyWindow {
                kind: WindowKind::of(fault),
                label: drawn_label(scenario, topology, fault),
                start: drawn.start,
                end: drawn.end,
            },
        ));
    }
    // Stable: a process's windows keep their (time) order.
    windows.sort_by_key(|(index, window)| (window.start, *index));
    windows.into_iter().map(|(_, window)| window).collect()
}

/// The topology faults of a run of `scenario` as fault windows (label,
/// start, end) for `summary.json`'s `faults`: `windows`, a drawn window
/// still down when the run ended ending where it starts (as a database
/// crash that stays down).
pub fn fault_windows(scenario: &Scenario, output: &RunOutput) -> Vec<(String, SimTime, SimTime)> {
    windows(scenario, output.regions.as_ref())
        .into_iter()
        .map(|window| {
            (
                window.label,
                window.start,
                window.end.unwrap_or(window.start),
            )
        })
        .collect()
}

/// Whether a down window that a region or zone `failures` process drew
/// over a place containing `site`, and that `fault_windows` lists, began at
/// `start`: the topology fault that took a database node at `site` down at
/// `start`, listed in its own right (`metrics::database::
/// drawn_fault_windows` does not repeat the node's window).
pub fn lists_place_failure(
    scenario: &Scenario,
    output: &RunOutput,
    site: Place,
    start: SimTime,
) -> bool {
    let (Some(topology), Some(report)) = (scenario.topology.as_ref(), output.regions.as_ref())
    else {
        return false;
    };
    report.drawn_faults.iter().any(|drawn| {
        drawn.start == start
            && matches!(
                topology.faults[drawn.fault],
                TopologyFault::Failures {
                    target: FailureTarget::Place(place),
                    ..
                } if place.contains(site)
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(faults: &str) -> Scenario {
        let text = format!(
            r#"{{"description": "d", "duration_ms": 100000, "window_ms": 1000,
            "services": [{{"name": "api", "instances": 2, "workers": 4,
                "service_time_ms": {{"kind": "constant", "value_ms": 1}}}}],
            "clients": [{{"name": "c", "target": "api",
                "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}}],
            "topology": {{"regions": [{{"name": "us-east-1", "zones": ["a", "b"]}}, {{"name": "eu-west-1"}}],
                "latency": {{"preset": "aws-2026-11"}},
                "placements": [{{"service": "api", "place": "us-east-1", "instances": 1}},
                    {{"service": "api", "place": "eu-west-1", "instances": 1}}],
                "routers": [{{"kind": "dns", "name": "route53", "endpoints": ["us-east-1", "eu-west-1"]}}],
                "clients": [{{"client": "c", "origin": "us-east-1", "router": "route53"}}],
                "faults": {faults}}}}}"#
        );
        Scenario::from_bytes("t.json", "t", text.as_bytes()).expect("a valid scenario")
    }

    // Each scheduled kind is labelled `<kind> <where>`, with the outage's
    // mode as a service outage has it, the partition's direction as an
    // arrow, and what a degradation does.
    #[test]
    fn scheduled_faults_are_labelled_by_kind_and_place() {
        let checked = scenario(
            r#"[{"kind": "region_outage", "region": "us-east-1", "start_ms": 1000, "end_ms": 2000},
                {"kind": "zone_outage", "zone": "us-east-1/b", "mode": "hang", "start_ms": 1000, "end_ms": 2000},
                {"kind": "partition", "from": "us-east-1", "to": "eu-west-1", "start_ms": 1000, "end_ms": 2000},
                {"kind": "partition", "from": "eu-west-1", "to": "us-east-1", "direction": "one_way", "start_ms": 1000, "end_ms": 2000},
                {"kind": "degradation", "from": "eu-west-1", "to": "us-east-1", "direction": "one_way", "loss": 0.3, "start_ms": 1000, "end_ms": 2000},
                {"kind": "degradation", "from": "eu-west-1", "to": "us-east-1",
                 "added_latency_ms": {"kind": "constant", "value_ms": 50}, "loss": 0.1, "start_ms": 1000, "end_ms": 2000},
                {"kind": "checker_partition", "router": "route53", "region": "us-east-1", "start_ms": 1000, "end_ms": 2000},
                {"kind": "failures", "place": "eu-west-1", "mttf_ms": 1000, "mttr_ms": 1000}]"#,
        );
        let topology = checked.topology.as_ref().unwrap();
        let labels: Vec<Option<String>> = topology
            .faults
            .iter()
            .map(|fault| label(topology, fault))
            .collect();
        let expected = [
            Some("region_outage (fail-fast) us-east-1"),
            Some("zone_outage (hang) us-east-1/b"),
            Some("partition us-east-1 <-> eu-west-1"),
            Some("partition eu-west-1 -> us-east-1"),
            Some("degradation eu-west-1 -> us-east-1 (loss 0.3)"),
            Some("degradation eu-west-1 <-> us-east-1 (added latency, loss 0.1)"),
            Some("checker_partition route53 -> us-east-1"),
            None,
        ];
        assert_eq!(labels, expected.map(|text| text.map(String::from)).to_vec());
        assert_eq!(
            drawn_label(&checked, topology, &topology.faults[7]),
            "failure eu-west-1"
        );
        let kinds: Vec<WindowKind> = topology.faults.iter().map(WindowKind::of).collect();
        assert_eq!(
            kinds,
            [
                WindowKind::RegionOutage,
                WindowKind::ZoneOutage,
                WindowKind::Partition,
                WindowKind::Partition,
                WindowKind::Degradation,
                WindowKind::Degradation,
                WindowKind::CheckerPartition,
                WindowKind::RegionFailure,
            ]
        );
    }

    // The chart's windows are the summary's: the scheduled ones with their
    // labels and kinds, by start, without a report (no drawn windows).
    #[test]
    fn windows_carry_the_summary_labels_and_their_kinds() {
        let checked = scenario(
            r#"[{"kind": "partition", "from": "us-east-1", "to": "eu-west-1", "start_ms": 5000, "end_ms": 6000},
                {"kind": "zone_outage", "zone": "us-east-1/a", "start_ms": 1000, "end_ms": 2000},
                {"kind": "failures", "service": "api", "instance": 1, "mttf_ms": 1000, "mttr_ms": 1000}]"#,
        );
        let listed = windows(&checked, None);
        let got: Vec<(WindowKind, &str, u64, Option<u64>)> = listed
            .iter()
            .map(|window| {
                (
                    window.kind,
                    window.label.as_str(),
                    window.start.0 / 1_000,
                    window.end.map(|end| end.0 / 1_000),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    WindowKind::ZoneOutage,
                    "zone_outage (fail-fast) us-east-1/a",
                    1_000,
                    Some(2_000)
                ),
                (
                    WindowKind::Partition,
                    "partition us-east-1 <-> eu-west-1",
                    5_000,
                    Some(6_000)
                ),
            ]
        );
        let topology = checked.topology.as_ref().unwrap();
        assert_eq!(
            WindowKind::of(&topology.faults[2]),
            WindowKind::InstanceFailure
        );
    }
}
