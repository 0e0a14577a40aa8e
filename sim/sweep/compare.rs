//! `sim compare A.json B.json [C.json ...]`: designs run on the same seeds,
//! so that arrivals and service times are common random numbers (every
//! component draws from its own named stream, so only the policy under test
//! changes what happens), and each metric is judged on the paired
//! differences `B(seed) - A(seed)`.
//!
//! The first file is the baseline. For each metric and each other design:
//! the mean paired difference with a 95% interval (Student t on the paired
//! differences; for latency quantiles, whose per-seed values are skewed, a
//! seeded percentile bootstrap of the mean difference), a verdict (which is
//! better, or no significant difference at this N), and when there is no
//! verdict yet the number of seeds that would likely give one.

use super::metrics::{self, column_order, higher_is_better, Metrics};
use super::output::{csv_field, mean_cdf, short, stat};
use super::stats::{bootstrap_mean, seeds_needed, t_interval, Interval};
use super::SweepError;
use crate::metrics::summary::Summary;
use crate::report::html::{self, Block};
use crate::report::sweep_chart::{self, BandChart, BandPoint, BandSeries};
use crate::report::{RenderedFile, ReportError};
use crate::scenario::Scenario;
use rayon::prelude::*;
use std::fmt::Write;
use std::path::PathBuf;

/// The seed of the bootstrap's random streams (one stream per metric and design).
pub const BOOTSTRAP_SEED: u64 = 0x5eed;

/// One design under comparison.
pub struct Variant {
    /// Its name (the file stem).
    pub name: String,
    /// The file as given.
    pub file: String,
    /// The checked scenario.
    pub scenario: Scenario,
    /// The file's text, for the report.
    pub text: String,
}

/// What one run of one design left.
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// Headline metrics.
    pub metrics: Metrics,
    /// Latency at `metrics::CDF_QUANTILES`.
    pub cdf_ms: Vec<f64>,
    /// Requests issued per window (the arrivals).
    pub issued: Vec<u64>,
    /// Availability per window.
    pub availability: Vec<Option<f64>>,
    /// Latency p99 per window, ms.
    pub p99_ms: Vec<Option<f64>>,
    /// Window width, s.
    pub window_s: f64,
}

/// One metric of one design against the baseline.
pub struct Verdict {
    /// The metric.
    pub metric: String,
    /// The design's index (>= 1).
    pub variant: usize,
    /// Baseline mean.
    pub baseline_mean: Option<f64>,
    /// Design mean.
    pub variant_mean: Option<f64>,
    /// The paired difference (design minus baseline).
    pub difference: Option<Interval>,
    /// `t` or `bootstrap`.
    pub method: &'static str,
    /// The verdict in words.
    pub verdict: String,
    /// Seeds likely needed to separate them, when not yet separated.
    pub seeds_needed: Option<u64>,
}

/// Reads and checks every design.
pub fn load(files: &[PathBuf]) -> Result<Vec<Variant>, SweepError> {
    if files.len() < 2 {
        return Err(SweepError::Input(
            "compare: give at least two scenario files".into(),
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let scenario = Scenario::load(path)?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut name = scenario.name.clone();
        if variants.iter().any(|variant| variant.name == name) {
            name = file.clone();
        }
        variants.push(Variant {
            name,
            file,
            scenario,
            text,
        });
    }
    Ok(variants)
}

/// Runs every design on every seed (rayon), results as `[design][seed]`.
pub fn run_all(
    variants: &[Variant],
    seeds: &[u64],
    progress: bool,
) -> Result<Vec<Vec<RunResult>>, SweepError> {
    let jobs: Vec<(usize, u64)> = (0..variants.len())
        .flat_map(|variant| seeds.iter().map(move |seed| (variant, *seed)))
        .collect();
    let bar = super::progress_bar(jobs.len() as u64, progress);
    // An indexed parallel collect keeps job order, whichever thread ran what.
    let results: Vec<RunResult> = jobs
        .par_iter()
        .map(|(variant, seed)| {
            let result = run_one(&variants[*variant], *seed);
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            result
        })
        .collect::<Result<_, _>>()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut grouped: Vec<Vec<RunResult>> = (0..variants.len()).map(|_| Vec::new()).collect();
    for (result, (variant, _)) in results.into_iter().zip(&jobs) {
        grouped[*variant].push(result);
    }
    Ok(grouped)
}

/// One run of one design.
pub fn run_one(variant: &Variant, seed: u64) -> Result<RunResult, SweepError> {
    let output = crate::model::run(&variant.scenario, seed).map_err(|source| {
        SweepError::Input(format!(
            "{}: {source}\nreproduce: sim run {} --seed {seed}",
            variant.file, variant.file
        ))
    })?;
    let summary = Summary::new(&variant.scenario, seed, &output);
    Ok(RunResult {
        seed,
        metrics: metrics::of_summary(&summary),
        cdf_ms: metrics::cdf_ms(&output),
        issued: output.rows.iter().map(|row| row.issued).collect(),
        availability: output.rows.iter().map(|row| row.availability()).collect(),
        p99_ms: output
            .rows
            .iter()
            .map(|row| row.latency_us.map(|latency| latency[2] as f64 / 1_000.0))
            .collect(),
        window_s: variant.scenario.window.as_ms_f64() / 1_000.0,
    })
}

/// Judges every metric of every design against the baseline (design 0).
pub fn analyse(variants: &[Variant], runs: &[Vec<RunResult>]) -> Vec<Verdict> {
    let names = column_order(runs.iter().flatten().flat_map(|run| run.metrics.keys()));
    let mean_of = |variant: usize, metric: &str| {
        let values: Vec<f64> = runs[variant]
            .iter()
            .filter_map(|run| run.metrics.get(metric).copied().flatten())
            .collect();
        t_interval(&values).map(|interval| interval.mean)
    };
    let mut verdicts = Vec::new();
    for metric in &names {
        for variant in 1..variants.len() {
            let differences: Vec<f64> = runs[0]
                .iter()
                .zip(&runs[variant])
                .filter_map(|(base, other)| {
                    debug_assert_eq!(base.seed, other.seed);
                    Some(
                        other.metrics.get(metric).copied().flatten()?
                            - base.metrics.get(metric).copied().flatten()?,
                    )
                })
                .collect();
            let quantile = metric.starts_with("latency_ms.");
            let difference = if quantile {
                bootstrap_mean(
                    &differences,
                    BOOTSTRAP_SEED,
                    &format!("bootstrap/{metric}/{variant}"),
                )
            } else {
                t_interval(&differences)
            };
            let (verdict, needed) = judge(
                metric,
                &variants[0].name,
                &variants[variant].name,
                difference,
            );
            verdicts.push(Verdict {
                metric: metric.clone(),
                variant,
                baseline_mean: mean_of(0, metric),
                variant_mean: mean_of(variant, metric),
                difference,
                method: if quantile { "bootstrap" } else { "t" },
                verdict,
                seeds_needed: needed,
            });
        }
    }
    verdicts
}

/// The verdict on one paired difference, and the seeds needed when it is
/// not yet significant.
fn judge(
    metric: &str,
    baseline: &str,
    variant: &str,
    difference: Option<Interval>,
) -> (String, Option<u64>) {
    let Some(difference) = difference else {
        return ("no data".into(), None);
    };
    let (Some(low), Some(high)) = (difference.low, difference.high) else {
        return (
            format!("no verdict at N={} (need at least 2 seeds)", difference.n),
            None,
        );
    };
    if difference.mean == 0.0 && difference.sd == 0.0 {
        return ("identical on every seed".into(), None);
    }
    if low > 0.0 || high < 0.0 {
        let higher = low > 0.0;
        let text = match higher_is_better(metric) {
            Some(better_high) if better_high == higher => format!("{variant} better"),
            Some(_) => format!("{baseline} better"),
            None if higher => format!("higher with {variant}"),
            None => format!("lower with {variant}"),
        };
        return (text, None);
    }
    let needed = seeds_needed(difference.mean, difference.sd);
    let text = match needed {
        Some(needed) => format!(
            "no significant difference at N={} (about N={needed} needed)",
            difference.n
        ),
        None => format!("no significant difference at N={}", difference.n),
    };
    (text, needed)
}

/// `compare.csv`.
pub fn compare_csv(variants: &[Variant], verdicts: &[Verdict]) -> String {
    let mut text = String::from("metric,baseline,variant,baseline_mean,variant_mean,difference_mean,difference_ci_low,difference_ci_high,interval,seeds,verdict,seeds_needed\n");
    for verdict in verdicts {
        let difference = verdict.difference;
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&verdict.metric),
            csv_field(&variants[0].name),
            csv_field(&variants[verdict.variant].name),
            stat(verdict.baseline_mean),
            stat(verdict.variant_mean),
            stat(difference.map(|d| d.mean)),
            stat(difference.and_then(|d| d.low)),
            stat(difference.and_then(|d| d.high)),
            verdict.method,
            difference.map_or(0, |d| d.n),
            csv_field(&verdict.verdict),
            verdict
                .seeds_needed
                .map_or(String::new(), |n| n.to_string())
        );
    }
    text
}

/// `runs.csv` of a comparison: one row per design x seed.
pub fn runs_csv(variants: &[Variant], runs: &[Vec<RunResult>]) -> String {
    let names = column_order(runs.iter().flatten().flat_map(|run| run.metrics.keys()));
    let mut text = String::from("variant,seed");
    for name in &names {
        let _ = write!(text, ",{}", csv_field(name));
    }
    text.push('\n');
    for (variant, results) in variants.iter().zip(runs) {
        for run in results {
            let _ = write!(text, "{},{}", csv_field(&variant.name), run.seed);
            metrics::push_cells(&mut text, &run.metrics, &names);
            text.push('\n');
        }
    }
    text
}

/// The headline verdicts as a text table, for stdout.
pub fn table(variants: &[Variant], verdicts: &[Verdict]) -> String {
    let mut lines = vec![[
        "metric".to_string(),
        "design".to_string(),
        format!("{} (baseline)", variants[0].name),
        "design mean".to_string(),
        "difference [95% CI]".to_string(),
        "verdict".to_string(),
    ]];
    for verdict in verdicts
        .iter()
        .filter(|v| metrics::HEADLINE.contains(&v.metric.as_str()))
    {
        let difference = verdict
            .difference
            .map_or(String::new(), |d| match (d.low, d.high) {
                (Some(low), Some(high)) => {
                    format!("{} [{}, {}]", short(d.mean), short(low), short(high))
                }
                _ => short(d.mean),
            });
        lines.push([
            verdict.metric.clone(),
            variants[verdict.variant].name.clone(),
            verdict.baseline_mean.map_or(String::new(), short),
            verdict.variant_mean.map_or(String::new(), short),
            difference,
            verdict.verdict.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// A per-window series of every design: mean over seeds with a 95% band.
fn over_time(
    variants: &[Variant],
    runs: &[Vec<RunResult>],
    value: impl Fn(&RunResult, usize) -> Option<f64>,
    scale: f64,
    upper: f64,
) -> Vec<BandSeries> {
    variants
        .iter()
        .zip(runs)
        .map(|(variant, results)| {
            let windows = results
                .iter()
                .map(|run| run.availability.len())
                .max()
                .unwrap_or(0);
            let window_s = results.first().map_or(1.0, |run| run.window_s);
            let points = (0..windows)
                .filter_map(|window| {
                    let values: Vec<f64> = results
                        .iter()
                        .filter_map(|run| value(run, window))
                        .collect();
                    let interval = t_interval(&values)?;
                    // A band never leaves the metric's range (availability
                    // in [0, 100] %, latency >= 0).
                    let (low, high) = (
                        interval.low.unwrap_or(interval.mean),
                        interval.high.unwrap_or(interval.mean),
                    );
                    Some(BandPoint {
                        x: window as f64 * window_s,
                        mean: interval.mean * scale,
                        low: (low * scale).max(0.0),
                        high: (high * scale).min(upper),
                    })
                })
                .collect();
            BandSeries {
                label: variant.name.clone(),
                points,
            }
        })
        .collect()
}

/// Every file of a comparison; charts and index.html only when `charts`.
pub fn render(
    variants: &[Variant],
    runs: &[Vec<RunResult>],
    verdicts: &[Verdict],
    charts: bool,
) -> Result<Vec<RenderedFile>, SweepError> {
    let mut files = vec![
        RenderedFile {
            name: "compare.csv",
            bytes: compare_csv(variants, verdicts).into_bytes(),
        },
        RenderedFile {
            name: "runs.csv",
            bytes: runs_csv(variants, runs).into_bytes(),
        },
    ];
    if !charts {
        return Ok(files);
    }
    let seeds = runs.first().map_or(0, Vec::len);
    let draw = |title: String,
                x_label: &str,
                y_label: &str,
                series: &[BandSeries],
                log_x: bool,
                log_y: bool| {
        let chart = BandChart {
            title: &title,
            x_label,
            y_label,
            series,
            log_x,
            log_y,
            x_categories: None,
            markers: false,
        };
        sweep_chart::band_png(&chart).map_err(|error| SweepError::Report(ReportError::from(error)))
    };
    let availability = over_time(
        variants,
        runs,
        |run, window| run.availability.get(window).copied().flatten(),
        100.0,
        100.0,
    );
    let p99 = over_time(
        variants,
        runs,
        |run, window| run.p99_ms.get(window).copied().flatten(),
        1.0,
        f64::INFINITY,
    );
    let cdfs: Vec<BandSeries> = variants
        .iter()
        .zip(runs)
        .map(|(variant, results)| {
            let records: Vec<super::journal::Record> = results
                .iter()
                .map(|run| super::journal::Record {
                    point: 0,
                    seed: run.seed,
                    metrics: Metrics::new(),
                    cdf_ms: run.cdf_ms.clone(),
                })
                .collect();
            let references: Vec<&super::journal::Record> = records.iter().collect();
            BandSeries {
                label: variant.name.clone(),
                points: mean_cdf(&references),
            }
        })
        .collect();
    let images = vec![
        (
            "availability_over_time.png",
            "availability over time, mean of seeds with a 95% band",
            draw(
                format!("Availability over time (mean of {seeds} seeds, 95% band)"),
                "time (s)",
                "availability (%)",
                &availability,
                false,
                false,
            )?,
        ),
        (
            "latency_p99_over_time.png",
            "latency p99 over time, mean of seeds with a 95% band",
            draw(
                format!("Latency p99 over time (mean of {seeds} seeds, 95% band)"),
                "time (s)",
                "latency p99 (ms, log scale)",
                &p99,
                false,
                true,
            )?,
        ),
        (
            "latency_cdf.png",
            "latency CDFs, overlaid",
            draw(
                "Latency CDF (mean over seeds of each quantile)".to_string(),
                "latency (ms, log scale)",
                "requests finished within (%)",
                &cdfs,
                true,
                false,
            )?,
        ),
    ];
    let html = index_html(variants, verdicts, &images, seeds);
    for (name, _, png) in images {
        files.push(RenderedFile { name, bytes: png });
    }
    files.push(RenderedFile {
        name: "index.html",
        bytes: html.into_bytes(),
    });
    Ok(files)
}

fn index_html(
    variants: &[Variant],
    verdicts: &[Verdict],
    images: &[(&str, &str, Vec<u8>)],
    seeds: usize,
) -> String {
    let names: Vec<&str> = variants
        .iter()
        .map(|variant| variant.name.as_str())
        .collect();
    let title = format!("Comparison: {}", names.join(" vs "));
    let intro = format!(
        "{} designs on the same {seeds} seeds (common random numbers); baseline {}. Differences are design minus baseline, paired by seed, with a 95% t-interval (a seeded bootstrap for latency quantiles).",
        variants.len(),
        names[0]
    );
    let header = [
        "metric",
        "design",
        "baseline mean",
        "design mean",
        "difference",
        "95% CI",
        "interval",
        "verdict",
    ]
    .map(String::from)
    .to_vec();
    let row = |verdict: &Verdict| {
        let difference = verdict.difference;
        vec![
            verdict.metric.clone(),
            variants[verdict.variant].name.clone(),
            verdict.baseline_mean.map_or(String::new(), short),
            verdict.variant_mean.map_or(String::new(), short),
            difference.map_or(String::new(), |d| short(d.mean)),
            difference.map_or(String::new(), |d| match (d.low, d.high) {
                (Some(low), Some(high)) => format!("[{}, {}]", short(low), short(high)),
                _ => String::new(),
            }),
            verdict.method.to_string(),
            verdict.verdict.clone(),
        ]
    };
    let headline: Vec<Vec<String>> = verdicts
        .iter()
        .filter(|v| metrics::HEADLINE.contains(&v.metric.as_str()))
        .map(row)
        .collect();
    let all: Vec<Vec<String>> = verdicts.iter().map(row).collect();
    let mut blocks = vec![
        Block::Paragraph(&intro),
        Block::Heading("Verdicts"),
        Block::Table {
            header: header.clone(),
            rows: headline,
        },
        Block::Heading("Charts"),
    ];
    for (_, alt, png) in images {
        blocks.push(Block::Image { alt, png });
    }
    blocks.push(Block::Heading("Every metric"));
    blocks.push(Block::Table { header, rows: all });
    for variant in variants {
        blocks.push(Block::Heading(&variant.file));
        blocks.push(Block::Paragraph(&variant.scenario.description));
        blocks.push(Block::Pre(&variant.text));
    }
    html::page(&title, &blocks)
}
