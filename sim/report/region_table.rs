//! The regions part of the stdout table (only for a scenario with a
//! `topology`): one line per region (attempts routed there, answered, lost
//! to outages and partitions), one per failover with its phases (detection,
//! routing change, DNS tail, recovery) and the capacity verdict, and the
//! routers' counters.

use crate::model::regions::{FailoverRecord, RegionsSummary};
use std::fmt::Write;

fn seconds(value_ms: Option<f64>) -> String {
    value_ms.map_or("-".to_string(), |ms| format!("{:.1} s", ms / 1_000.0))
}

/// The lines, each starting with two spaces, after an empty line.
pub fn render(regions: &RegionsSummary) -> String {
    let mut out = String::from("\n");
    for (name, counters) in &regions.regions {
        let dropped = counters.requests_partitioned
            + counters.requests_lost
            + counters.replies_partitioned
            + counters.replies_lost;
        let _ = writeln!(
            out,
            "  region {name:<15} routed {:>8}  arrived {:>8}  ok {:>8}  refused by outage {}  lost in outage {}  dropped by network {}",
            counters.routed,
            counters.arrivals,
            counters.succeeded,
            counters.refused_outage,
            counters.lost_in_outage,
            dropped
        );
    }
    for record in &regions.failovers {
        let _ = writeln!(out, "  {}", failover_line(record));
    }
    for (name, counters) in &regions.routers {
        if counters.is_empty() {
            continue;
        }
        let text: Vec<String> = counters
            .iter()
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        let _ = writeln!(out, "  router {name}: {}", text.join(", "));
    }
    out
}

/// One failover: what failed when, then each phase from the fault.
pub fn failover_line(record: &FailoverRecord) -> String {
    let mut line = format!(
        "failover {} ({} at {:.1} s): detected {}, routing changed {}",
        record.region,
        record.fault,
        record.fault_ms / 1_000.0,
        seconds(record.detection_ms),
        seconds(record.routing_change_ms),
    );
    if record.clients_never_moved.is_some() {
        let _ = write!(line, ", DNS tail {}", seconds(record.dns_tail_ms));
        if let Some(share) = record.clients_never_moved.filter(|&share| share > 0.0) {
            let _ = write!(line, " ({:.1}% of clients never moved)", share * 100.0);
        }
    }
    let _ = write!(line, ", recovered {}", seconds(record.recovery_ms));
    if let Some(capacity) = &record.capacity {
        let _ = write!(
            line,
            "; capacity {} (utilisation {:.2} in {}, peak {:.2}; offered {:.2})",
            capacity.verdict,
            capacity.utilisation_mean,
            capacity.region,
            capacity.utilisation_peak,
            capacity.offered_utilisation_mean
        );
    }
    line
}
