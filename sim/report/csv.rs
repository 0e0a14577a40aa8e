//! `timeseries.csv`: one row per window, fixed column order, plain decimal
//! numbers, so two runs with the same seed give the same bytes.

use crate::engine::clock::MICROS_PER_MS;
use crate::metrics::{Outcome, WindowRow};
use std::fmt::Write;

/// The header line, without the newline.
pub const HEADER: &str = "window_start_ms,issued,finished,success,fallback,error,timeout,rejected_breaker,rejected_queue,rejected_bulkhead,attempts,availability,latency_ms_p50,latency_ms_p90,latency_ms_p99,latency_ms_p999";

/// The whole CSV text.
pub fn timeseries(rows: &[WindowRow]) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 96);
    out.push_str(HEADER);
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "{},{},{}",
            row.start.as_micros() / MICROS_PER_MS,
            row.issued,
            row.finished()
        );
        // Every outcome but `unfinished`, which never falls in a window.
        for outcome in &Outcome::ALL[..7] {
            let _ = write!(out, ",{}", row.outcomes.get(*outcome));
        }
        let _ = write!(out, ",{}", row.attempts);
        match row.availability() {
            Some(availability) => {
                let _ = write!(out, ",{availability:.6}");
            }
            None => out.push(','),
        }
        match row.latency_us {
            Some(latency) => {
                for micros in latency {
                    let _ = write!(out, ",{:.3}", micros as f64 / MICROS_PER_MS as f64);
                }
            }
            None => out.push_str(",,,,"),
        }
        out.push('\n');
    }
    out
}

/// `timeseries` with two columns per region appended to each line, in
/// topology order: `routed_<region>` (client attempts sent there) and
/// `ok_<region>` (successful answers sent from there). Only for a scenario
/// with a `topology`; without one the file is exactly `timeseries`.
pub fn timeseries_with_regions(
    rows: &[WindowRow],
    regions: &crate::model::regions::RegionReport,
) -> String {
    let base = timeseries(rows);
    let mut out = String::with_capacity(base.len() + rows.len() * regions.names.len() * 12);
    for (index, line) in base.lines().enumerate() {
        out.push_str(line);
        if index == 0 {
            for prefix in ["routed", "ok"] {
                for name in &regions.names {
                    let _ = write!(out, ",{prefix}_{name}");
                }
            }
        } else {
            let window = index - 1;
            for column in [&regions.routed, &regions.ok] {
                for region in 0..regions.names.len() {
                    let value = column.get(window).map_or(0, |row| row[region]);
                    let _ = write!(out, ",{value}");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SimTime;
    use crate::metrics::OutcomeCounts;

    #[test]
    fn empty_windows_leave_availability_and_latency_blank() {
        let mut outcomes = OutcomeCounts::default();
        outcomes.add(Outcome::Success);
        outcomes.add(Outcome::Timeout);
        let rows = vec![
            WindowRow {
                start: SimTime::ZERO,
                issued: 2,
                outcomes,
                attempts: 3,
                latency_us: Some([1_000, 2_000, 3_000, 4_500]),
                queue_depth: 0,
            },
            WindowRow {
                start: SimTime::from_ms(1_000),
                issued: 0,
                outcomes: OutcomeCounts::default(),
                attempts: 0,
                latency_us: None,
                queue_depth: 0,
            },
        ];
        let text = timeseries(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "0,2,2,1,0,0,1,0,0,0,3,0.500000,1.000,2.000,3.000,4.500"
        );
        assert_eq!(lines[2], "1000,0,0,0,0,0,0,0,0,0,0,,,,,");
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
    }
}
