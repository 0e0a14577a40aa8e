//! Charts (placeholder until the plotters module lands).

/// One window in chart units.
#[derive(Clone, Debug)]
pub struct ChartRow {
    /// Start, s.
    pub start_s: f64,
    /// Availability.
    pub availability: Option<f64>,
    /// Issued per second.
    pub issued_rps: f64,
    /// Successes per second.
    pub success_rps: f64,
    /// Attempts per second.
    pub attempts_rps: f64,
    /// Percentiles.
    pub latency_ms: Option<[f64; 4]>,
}

/// Chart input.
pub struct ChartInput<'a> {
    /// Title.
    pub title: &'a str,
    /// Window.
    pub window_s: f64,
    /// Rows.
    pub rows: &'a [ChartRow],
    /// Faults.
    pub faults: &'a [(String, f64, f64)],
    /// Breakers.
    pub breaker_open: &'a [(f64, f64)],
    /// Load end.
    pub load_end_s: f64,
}

/// Chart errors.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Draw.
    #[error("cannot draw chart: {0}")]
    Draw(String),
}

/// Availability chart.
pub fn availability_png(_input: &ChartInput) -> Result<Vec<u8>, ChartError> {
    Err(ChartError::Draw("not yet".into()))
}

/// Latency chart.
pub fn latency_png(_input: &ChartInput) -> Result<Vec<u8>, ChartError> {
    Err(ChartError::Draw("not yet".into()))
}
