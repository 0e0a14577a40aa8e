//! Sweeps and comparisons: many runs of `model::run(&Scenario, seed)` and
//! statistics over them. This layer sits above the model and never inside
//! it: it owns the only parallelism (rayon) and the only progress output
//! (indicatif, on stderr when it is a terminal). A run's result never
//! depends on the thread that ran it, and results are sorted by
//! (point, seed) before anything is written.
//!
//! * `spec`: what is swept (axes, mode, seeds), from a sweep file or `--set`;
//! * `grid`: points from axes, values into the scenario's JSON by path;
//! * `metrics`: a run's headline metrics, taken generically from its summary;
//! * `stats`: means, t-intervals, the bootstrap, the seeds needed;
//! * `journal`: the append-only, fsynced record that makes sweeps resumable;
//! * `shard`: a share of the runs for one machine of a cluster;
//! * `output`: the rendered files (runs.csv, points.csv, charts, index.html);
//! * `compare`: paired comparison of designs on common random numbers.

pub mod compare;
pub mod grid;
pub mod journal;
pub mod metrics;
pub mod output;
pub mod shard;
pub mod spec;
pub mod stats;

use crate::metrics::summary::Summary;
use crate::model::RunError;
use crate::report::ReportError;
use crate::scenario::{Scenario, ScenarioError};
use journal::{Header, Record};
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shard::Shard;
use spec::{Mode, Spec};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a sweep, comparison or merge could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Bad input, already phrased as `FILE: path: what is allowed`.
    #[error("{0}")]
    Input(String),
    /// A scenario (or a point's scenario) is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// One run hit a limit.
    #[error("{file}: point {point} ({values}), seed {seed}: {source}")]
    Run {
        /// The scenario file.
        file: String,
        /// The point's index.
        point: usize,
        /// `path=value` of each axis.
        values: String,
        /// The seed.
        seed: u64,
        /// What stopped it.
        #[source]
        source: RunError,
    },
    /// The output could not be rendered or written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// A sweep ready to run: its identity and one checked scenario per point.
pub struct Plan {
    /// The sweep's identity and points (written as the journal's header).
    pub header: Header,
    /// The scenario of each point.
    pub scenarios: Vec<Scenario>,
    /// The scenario file, for messages.
    pub file: String,
    /// The scenario file's text, for the HTML report.
    pub scenario_text: String,
}

/// What `sim sweep` was given.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// A scenario file, or a sweep file (a JSON object with `axes`).
    pub file: PathBuf,
    /// `--set PATH=VALUES` flags, added as axes after the file's.
    pub sets: Vec<String>,
    /// `--seeds`, overriding the file's.
    pub seeds: Option<u64>,
    /// `--mode`, overriding the file's: grid, zip, random or latin_hypercube.
    pub mode: Option<String>,
    /// `--points`, for random and latin_hypercube.
    pub points: Option<usize>,
    /// `--sample-seed`.
    pub sample_seed: Option<u64>,
}

/// Reads the sweep (and its scenario), draws the points and checks every
/// point's scenario exactly as a scenario file is checked. Nothing is
/// written.
pub fn plan(request: &Request) -> Result<Plan, SweepError> {
    let shown = request.file.display().to_string();
    let bytes = std::fs::read(&request.file).map_err(|source| ScenarioError::Read {
        file: shown.clone(),
        source,
    })?;
    let top: Value = crate::scenario::parse_json(&shown, &bytes)?;
    let is_sweep_file = top.get("axes").is_some();
    let (scenario_path, mut spec) = if is_sweep_file {
        let raw: spec::RawSweep = crate::scenario::parse_json(&shown, &bytes)?;
        let axes = spec::axes_of(&shown, &raw.axes).map_err(SweepError::Input)?;
        let mode = match raw.mode {
            spec::RawMode::Grid => Mode::Grid,
            spec::RawMode::Zip => Mode::Zip,
            spec::RawMode::Random => Mode::Random {
                points: raw.points.unwrap_or(0),
                seed: raw.sample_seed,
            },
            spec::RawMode::LatinHypercube => Mode::LatinHypercube {
                points: raw.points.unwrap_or(0),
                seed: raw.sample_seed,
            },
        };
        let base = request.file.parent().unwrap_or(Path::new(""));
        let spec = Spec {
            axes,
            mode,
            seeds: raw.seeds,
            seed_first: raw.seed_first,
        };
        (base.join(&raw.scenario), spec)
    } else {
        let spec = Spec {
            axes: Vec::new(),
            mode: Mode::Grid,
            seeds: 10,
            seed_first: 1,
        };
        (request.file.clone(), spec)
    };
    for flag in &request.sets {
        spec.axes
            .push(spec::parse_set(flag).map_err(SweepError::Input)?);
    }
    if let Some(seeds) = request.seeds {
        spec.seeds = seeds;
    }
    if let Some(mode) = &request.mode {
        let (points, seed) = match spec.mode {
            Mode::Random { points, seed } | Mode::LatinHypercube { points, seed } => (points, seed),
            _ => (0, 1),
        };
        spec.mode = match mode.as_str() {
            "grid" => Mode::Grid,
            "zip" => Mode::Zip,
            "random" => Mode::Random { points, seed },
            "latin_hypercube" | "lhs" => Mode::LatinHypercube { points, seed },
            other => {
                return Err(SweepError::Input(format!(
                    "--mode {other}: must be grid, zip, random or latin_hypercube"
                )))
            }
        };
    }
    if let Mode::Random { points, seed } | Mode::LatinHypercube { points, seed } = &mut spec.mode {
        *points = request.points.unwrap_or(*points);
        *seed = request.sample_seed.unwrap_or(*seed);
    }
    if spec.seeds == 0 || spec.seeds > spec::SEEDS_MAX {
        return Err(SweepError::Input(format!(
            "{shown}: seeds: must be in [1, {}] (got {})",
            spec::SEEDS_MAX,
            spec.seeds
        )));
    }
    let seeds: Vec<u64> = (0..spec.seeds)
        .map(|offset| spec.seed_first.checked_add(offset))
        .collect::<Option<_>>()
        .ok_or_else(|| SweepError::Input(format!("{shown}: seed_first: too large")))?;
    let points = grid::points(&spec.axes, spec.mode)
        .map_err(|message| SweepError::Input(format!("{shown}: {message}")))?;

    let file = scenario_path.display().to_string();
    let scenario_bytes = std::fs::read(&scenario_path).map_err(|source| ScenarioError::Read {
        file: file.clone(),
        source,
    })?;
    let base: Value = crate::scenario::parse_json(&file, &scenario_bytes)?;
    // The unswept scenario must be valid on its own.
    let name = scenario_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".to_string());
    let original = Scenario::from_bytes(&file, &name, &scenario_bytes)?;
    let mut scenarios = Vec::with_capacity(points.len());
    for point in &points {
        scenarios.push(point_scenario(&file, &name, &base, &spec.axes, point)?);
    }
    let mode = match spec.mode {
        Mode::Grid => "grid",
        Mode::Zip => "zip",
        Mode::Random { .. } => "random",
        Mode::LatinHypercube { .. } => "latin_hypercube",
    };
    let mut header = Header {
        sim_sweep: journal::FORMAT,
        id: String::new(),
        scenario: name,
        description: original.description.clone(),
        scenario_sha256: original.hash.clone(),
        mode: mode.to_string(),
        axes: spec.axes.iter().map(|axis| axis.path.clone()).collect(),
        points,
        seeds,
        shard: None,
    };
    header.id = crate::scenario::hex(&Sha256::digest(header.to_line().as_bytes()));
    Ok(Plan {
        header,
        scenarios,
        file,
        scenario_text: String::from_utf8_lossy(&scenario_bytes).into_owned(),
    })
}

/// The scenario of one point: the values set by path, then checked as a file
/// would be. Parser positions (`at line 1 column 80`) refer to generated
/// text, so they are left out.
fn point_scenario(
    file: &str,
    name: &str,
    base: &Value,
    axes: &[spec::Axis],
    point: &[Value],
) -> Result<Scenario, SweepError> {
    let mut value = base.clone();
    for (axis, item) in axes.iter().zip(point) {
        grid::set_path(&mut value, &axis.path, item.clone())
            .map_err(|message| SweepError::Input(format!("{file}: {message}")))?;
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    Scenario::from_bytes(file, name, &bytes).map_err(|error| match error {
        ScenarioError::Parse {
            file,
            path,
            message,
        } => {
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            // The unswept scenario is valid, so the error comes from a swept
            // value; serde reports tagged enums (policies) at the enclosing
            // object, so name the swept field itself.
            let reported = path.trim_end_matches(": ");
            let path = axes
                .iter()
                .find(|axis| {
                    axis.path.starts_with(reported)
                        && axis.path[reported.len()..].starts_with(['.', '['])
                })
                .map_or(path.clone(), |axis| format!("{}: ", axis.path));
            SweepError::Scenario(ScenarioError::Parse {
                file,
                path,
                message,
            })
        }
        other => SweepError::Scenario(other),
    })
}

/// `path=value` of each axis at `point`, for messages.
pub fn describe_point(header: &Header, point: usize) -> String {
    header
        .axes
        .iter()
        .zip(&header.points[point])
        .map(|(path, value)| format!("{path}={}", output::cell(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one point x seed and turns it into a journal record.
pub fn run_one(plan: &Plan, point: usize, seed: u64) -> Result<Record, SweepError> {
    let scenario = &plan.scenarios[point];
    let output = crate::model::run(scenario, seed).map_err(|source| SweepError::Run {
        file: plan.file.clone(),
        point,
        values: describe_point(&plan.header, point),
        seed,
        source,
    })?;
    let summary = Summary::new(scenario, seed, &output);
    Ok(Record {
        point,
        seed,
        metrics: metrics::of_summary(&summary),
        cdf_ms: metrics::cdf_ms(&output),
    })
}

/// Runs every run of `plan` that belongs to `shard` and is not yet in the
/// journal in `dir`, on the current rayon pool, appending each to the
/// journal as it finishes. Returns the shard's records sorted by
/// (point, seed).
pub fn execute(
    plan: &Plan,
    shard: Option<Shard>,
    dir: &Path,
    progress: bool,
) -> Result<(Header, Vec<Record>), SweepError> {
    let mut header = plan.header.clone();
    header.shard = shard.map(|shard| shard.label());
    let (writer, done) = journal::Writer::open(dir, &header).map_err(SweepError::Input)?;
    let seeds = &header.seeds;
    let finished: std::collections::BTreeSet<(usize, u64)> = done
        .iter()
        .map(|record| (record.point, record.seed))
        .collect();
    let pending: Vec<(usize, u64)> = (0..header.points.len())
        .flat_map(|point| seeds.iter().map(move |seed| (point, *seed)))
        .enumerate()
        .filter(|(job, _)| shard.is_none_or(|shard| shard.owns(*job as u64)))
        .map(|(_, run)| run)
        .filter(|run| !finished.contains(run))
        .collect();
    let bar = progress_bar(pending.len() as u64, progress);
    // Lines are fsynced on a thread of their own: no worker waits for the disk.
    let background = journal::BackgroundSync::start(writer.syncer().map_err(SweepError::Input)?);
    let writer = Mutex::new(writer);
    pending.par_iter().try_for_each(|(point, seed)| {
        let record = run_one(plan, *point, *seed)?;
        let mut writer = writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.append(&record).map_err(SweepError::Input)?;
        drop(writer);
        background.appended().map_err(SweepError::Input)?;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        Ok::<(), SweepError>(())
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    background.finish().map_err(SweepError::Input)?;
    drop(writer);
    // The records come back from the journal, so a sweep that ran straight
    // through and one that resumed render from the same parsed values.
    let read = journal::read(&dir.join(journal::FILE_NAME)).map_err(SweepError::Input)?;
    let mut records = read.records;
    records.sort_by_key(|record| (record.point, record.seed));
    Ok((header, records))
}

/// A progress bar on stderr (points done, rate, ETA), or none when stderr is
/// not a terminal.
pub fn progress_bar(length: u64, wanted: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !wanted || !std::io::stderr().is_terminal() || length == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(length);
    let style =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// The default output folder: `reports/<scenario>/sweep-<first 8 of id>`.
pub fn default_out(header: &Header) -> PathBuf {
    Path::new("reports")
        .join(&header.scenario)
        .join(format!("sweep-{}", &header.id[..8]))
}

/// Reads the partial results in `dirs` (each holding a shard's journal),
/// checks they are shares of one sweep and together complete, and returns
/// the sweep's header and all records sorted by (point, seed).
pub fn merge(dirs: &[PathBuf]) -> Result<(Header, Vec<Record>), SweepError> {
    let mut first: Option<(String, Header)> = None;
    let mut records: std::collections::BTreeMap<(usize, u64), Record> = Default::default();
    for dir in dirs {
        let path = dir.join(journal::FILE_NAME);
        let read = journal::read(&path).map_err(SweepError::Input)?;
        match &first {
            None => first = Some((path.display().to_string(), read.header.clone())),
            Some((first_path, header)) => {
                if header.id != read.header.id {
                    let mismatch = if header.scenario != read.header.scenario {
                        format!("scenario {} vs {}", read.header.scenario, header.scenario)
                    } else if header.scenario_sha256 != read.header.scenario_sha256 {
                        "the scenario file's content differs".to_string()
                    } else if header.axes != read.header.axes {
                        format!(
                            "axes {} vs {}",
                            read.header.axes.join(" "),
                            header.axes.join(" ")
                        )
                    } else if header.points != read.header.points {
                        "the points differ".to_string()
                    } else if header.seeds != read.header.seeds {
                        format!(
                            "{} seeds vs {}",
                            read.header.seeds.len(),
                            header.seeds.len()
                        )
                    } else {
                        "the sweep definitions differ".to_string()
                    };
                    return Err(SweepError::Input(format!(
                        "{}: a partial result of a different sweep than {first_path} ({mismatch}); merge only shards of one sweep",
                        path.display()
                    )));
                }
            }
        }
        for record in read.records {
            let key = (record.point, record.seed);
            if let Some(existing) = records.get(&key) {
                if *existing != record {
                    return Err(SweepError::Input(format!(
                        "{}: point {} seed {} differs from the same run in another partial result",
                        path.display(),
                        key.0,
                        key.1
                    )));
                }
            }
            records.insert(key, record);
        }
    }
    let Some((_, mut header)) = first else {
        return Err(SweepError::Input("merge: give at least one folder".into()));
    };
    header.shard = None;
    let total = header.points.len() * header.seeds.len();
    if records.len() != total {
        let missing = (0..header.points.len())
            .flat_map(|point| header.seeds.iter().map(move |seed| (point, *seed)))
            .find(|key| !records.contains_key(key))
            .unwrap_or((0, 0));
        return Err(SweepError::Input(format!(
            "merge: {} of {total} runs are missing (first: point {} seed {}); merge every shard's folder",
            total - records.len(),
            missing.0,
            missing.1
        )));
    }
    Ok((header, records.into_values().collect()))
}
