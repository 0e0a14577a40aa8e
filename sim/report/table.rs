//! The summary table printed on stdout after a run.

use crate::metrics::summary::{LatencySummary, Summary};
use std::fmt::Write;

fn percent(value: f64) -> String {
    format!("{:.3}%", value * 100.0)
}

/// A duration in hours as the chapter writes it: days, hours or minutes.
pub fn downtime(hours: f64) -> String {
    if hours >= 48.0 {
        format!("{:.2} days", hours / 24.0)
    } else if hours >= 1.0 {
        format!("{hours:.2} hours")
    } else {
        format!("{:.2} minutes", hours * 60.0)
    }
}

fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   p99.9 {:.1} ms   max {:.1} ms",
        latency.p50, latency.p90, latency.p99, latency.p999, latency.max
    )
}

/// The table: run identity, outcomes, availability, latency, retries,
/// breakers, per-client lines.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let requests = &summary.requests;
    let share = |count: u64| {
        if requests.issued == 0 {
            0.0
        } else {
            count as f64 * 100.0 / requests.issued as f64
        }
    };
    let _ = writeln!(out, "{} (seed {})", summary.scenario, summary.seed);
    let _ = writeln!(out, "  {}", summary.description);
    let _ = writeln!(
        out,
        "  simulated {:.1} s of load (+ drain to {:.1} s), {} events",
        summary.duration_ms / 1_000.0,
        summary.end_ms / 1_000.0,
        summary.events
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  outcome             requests    share");
    for (name, count) in [
        ("success", requests.success),
        ("fallback", requests.fallback),
        ("error", requests.error),
        ("timeout", requests.timeout),
        ("rejected (breaker)", requests.rejected_breaker),
        ("rejected (queue)", requests.rejected_queue),
        ("unfinished", requests.unfinished),
    ] {
        let _ = writeln!(out, "  {name:<18} {count:>9}  {:>6.2}%", share(count));
    }
    let _ = writeln!(out, "  {:<18} {:>9}", "issued", requests.issued);
    let _ = writeln!(out);
    let nines = match summary.nines {
        Some(nines) => format!("{nines:.2} nines"),
        None => "no failures".to_string(),
    };
    let _ = writeln!(
        out,
        "  availability        {} ({nines}; {} downtime per year at this rate)",
        percent(summary.availability),
        downtime(summary.downtime_hours_per_year)
    );
    let _ = writeln!(
        out,
        "  served (incl. fallback) {}",
        percent(summary.availability_served)
    );
    let _ = writeln!(
        out,
        "  latency             {}",
        latency_line(&summary.latency_ms)
    );
    let _ = writeln!(
        out,
        "  retry amplification {:.3} attempts per request ({} client attempts)",
        summary.retry_amplification, summary.client_attempts
    );
    let opened = summary
        .breaker_transitions
        .iter()
        .filter(|transition| transition.to == crate::policy::breaker::BreakerStateName::Open)
        .count();
    if !summary.breaker_transitions.is_empty() {
        let _ = writeln!(
            out,
            "  breakers            {} transitions, opened {} times",
            summary.breaker_transitions.len() as u64 + summary.breaker_transitions_dropped,
            opened
        );
    }
    if summary.clients.len() > 1 {
        let _ = writeln!(out);
        for (name, client) in &summary.clients {
            let _ = writeln!(
                out,
                "  client {name}: {} requests, availability {}, p99 {:.1} ms",
                client.requests.issued,
                percent(client.availability),
                client.latency_ms.p99
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downtime_reads_like_the_chapter() {
        assert_eq!(downtime(87.6), "3.65 days");
        assert_eq!(downtime(8.76), "8.76 hours");
        assert_eq!(downtime(0.876), "52.56 minutes");
    }
}
