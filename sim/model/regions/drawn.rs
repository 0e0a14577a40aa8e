//! The down windows the topology's `failures` processes draw during a run
//! (a region, a zone or one instance going down and coming back), kept for
//! `summary.json`'s `faults` and `regions.png` (`metrics::topology::windows`), as
//! the database adapter keeps its drawn crashes (`model::DrawnFault`). At
//! most `FAULT_WINDOWS_KEPT_MAX` are kept per run; the rest are counted.

use crate::engine::SimTime;

use super::report::FAULT_WINDOWS_KEPT_MAX;
use super::Regions;

/// One down window a topology `failures` process drew during the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnWindow {
    /// The `failures` entry's index in `Topology::faults`.
    pub fault: usize,
    /// When the unit went down.
    pub start: SimTime,
    /// When it came back; `None` if it was still down when the run ended.
    pub end: Option<SimTime>,
}

impl<'a> Regions<'a> {
    /// The unit of failure process `fault` went down at `now`: kept while
    /// fewer than `FAULT_WINDOWS_KEPT_MAX` are, else counted.
    pub(super) fn window_drawn(&mut self, now: SimTime, fault: usize) {
        if self.drawn.len() < FAULT_WINDOWS_KEPT_MAX {
            self.drawn.push(DrawnWindow {
                fault,
                start: now,
                end: None,
            });
        } else {
            self.drawn_not_kept += 1;
        }
    }

    /// The unit of failure process `fault` came back at `now` (its open
    /// window ends, if it was kept).
    pub(super) fn window_repaired(&mut self, now: SimTime, fault: usize) {
        if let Some(window) = self
            .drawn
            .iter_mut()
            .rev()
            .find(|window| window.fault == fault && window.end.is_none())
        {
            window.end = Some(now);
        }
    }
}
