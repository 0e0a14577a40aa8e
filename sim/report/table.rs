//! The summary table printed on stdout after a run.

use crate::metrics::summary::{FaultSummary, LatencySummary, Summary};
use crate::metrics::verdict::Load;
use crate::scenario::error::escape_control;
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

/// One fault's metastability verdict: recovered or not, and the load after
/// the fault against the load before it.
fn verdict_line(fault: &FaultSummary, faults: &[FaultSummary]) -> String {
    let verdict = &fault.metastability;
    let mut line = match verdict.still_failing_ms {
        Some(ms) => format!(
            "not_recovered (still failing {:.1} s after the fault ended)",
            ms / 1_000.0
        ),
        None => match fault.superseded_by {
            Some(later) => format!(
                "superseded by {} at {:.1} s (its verdict stands for both)",
                faults
                    .get(later)
                    .map_or("a later fault", |later| later.label.as_str()),
                faults
                    .get(later)
                    .map_or(0.0, |later| later.start_ms / 1_000.0)
            ),
            None => verdict.verdict.name().to_string(),
        },
    };
    let load = |load: &Option<Load>| match load {
        Some(load) => format!(
            "{:.2} attempts/request, queue {:.1} ({:.1} at the end)",
            load.attempts_per_request, load.queue_depth_mean, load.queue_depth_last
        ),
        None => "-".to_string(),
    };
    let _ = write!(
        line,
        "; sustained load {}: after {} / before {}",
        if verdict.sustained_load { "yes" } else { "no" },
        load(&verdict.load_after),
        load(&verdict.load_before)
    );
    line
}

/// Splits `text` into lines of at most `width` characters at spaces (a
/// longer word gets a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
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
    // The scenario's name (its file's) and description are user text:
    // control characters are escaped so they cannot drive the terminal.
    let _ = writeln!(
        out,
        "{} (seed {})",
        escape_control(&summary.scenario),
        summary.seed
    );
    for line in wrap(&summary.description, 76) {
        let _ = writeln!(out, "  {}", escape_control(&line));
    }
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
        ("rejected (bulkhead)", requests.rejected_bulkhead),
        ("unfinished", requests.unfinished),
    ] {
        let _ = writeln!(out, "  {name:<19} {count:>8}  {:>6.2}%", share(count));
    }
    let _ = writeln!(out, "  {:<19} {:>8}", "issued", requests.issued);
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
        "  served              {} (success or fallback)",
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
    for fault in &summary.faults {
        let recovery = match fault.recovery_ms {
            Some(ms) => format!("{:.1} s after it ended", ms / 1_000.0),
            None => "not before the run ended".to_string(),
        };
        let _ = writeln!(
            out,
            "  recovery            {} ({:.1} s to {:.1} s): {recovery}",
            fault.label,
            fault.start_ms / 1_000.0,
            fault.end_ms / 1_000.0
        );
        let _ = writeln!(
            out,
            "  verdict             {}",
            verdict_line(fault, &summary.faults)
        );
    }
    out.push_str(&super::database::table_lines(&summary.databases));
    for (name, service) in &summary.services {
        let notable: Vec<String> = [
            (
                service.counters.rejected_queue_full,
                "rejected (queue full)",
            ),
            (service.counters.refused, "refused (down)"),
            (service.counters.held, "held by a hang"),
            (service.counters.shed, "shed"),
            (
                service.counters.no_instance,
                "refused (no instance in rotation)",
            ),
            (service.counters.cut, "cut by shutdown"),
            (service.counters.reset, "reset by crash"),
            (service.counters.withdrawn, "withdrawn by callers"),
            (
                service.counters.calls_skipped,
                "dependency calls skipped (feature off)",
            ),
            (service.counters.chaos_failures, "chaos failures"),
            (service.counters.chaos_delays, "chaos delays"),
            (service.counters.kills, "instances killed"),
            (service.counters.restarts, "liveness restarts"),
            (service.counters.rotation_removals, "removals from rotation"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        let _ = writeln!(
            out,
            "  service {name:<11} queue wait {:.1} ms mean ({:.1}% waited){}{}",
            service.wait_ms_mean,
            service.wait_probability * 100.0,
            if notable.is_empty() { "" } else { "; " },
            notable.join(", ")
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
    if let Some(regions) = &summary.regions {
        out.push_str(&super::region_table::render(regions));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_within_the_width() {
        assert_eq!(wrap("aa bb cc dd", 5), vec!["aa bb", "cc dd"]);
        assert_eq!(
            wrap("averyverylongword x", 5),
            vec!["averyverylongword", "x"]
        );
        assert!(wrap("", 5).is_empty());
    }

    #[test]
    fn downtime_reads_like_the_chapter() {
        assert_eq!(downtime(87.6), "3.65 days");
        assert_eq!(downtime(8.76), "8.76 hours");
        assert_eq!(downtime(0.876), "52.56 minutes");
    }
}
