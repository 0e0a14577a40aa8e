//! `sim sweep`, `sim compare` and `sim merge`: flags, the thread pool, and
//! writing their folders with the shared report writer.

use crate::error::Error;
use crate::metrics::summary::Summary;
use crate::report::html::{self, Block};
use crate::report::{self, RenderedFile};
use crate::sweep::{self, compare, output, shard, SweepError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Flags of `sim sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// A scenario file, or a sweep file (see docs/sweeps.md).
    pub file: PathBuf,
    /// A swept field: `PATH=V1,V2,...` or `PATH=FROM..TO/STEPS`; repeatable.
    #[arg(long = "set", value_name = "PATH=VALUES")]
    pub sets: Vec<String>,
    /// Seeds per point (seeds 1..=N) [default: the sweep file's, or 10].
    #[arg(long)]
    pub seeds: Option<u64>,
    /// How axes combine: grid, zip, random or latin_hypercube [default: grid].
    #[arg(long)]
    pub mode: Option<String>,
    /// Points to draw for random and latin_hypercube.
    #[arg(long)]
    pub points: Option<usize>,
    /// Seed of the random or Latin-hypercube sampling [default: 1].
    #[arg(long)]
    pub sample_seed: Option<u64>,
    /// Output folder [default: reports/<scenario>/sweep-<id>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Run only shard I of N (0-based), writing a partial result to
    /// <out>/shard-I-of-N [default: from SLURM_ARRAY_TASK_ID,
    /// JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX when set].
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// The number of shards, for JOB_COMPLETION_INDEX and AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long)]
    pub shard_count: Option<u64>,
    /// Skip the PNG charts and index.html.
    #[arg(long)]
    pub no_charts: bool,
}

/// Flags of `sim compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The designs: the first is the baseline.
    #[arg(num_args = 2.., required = true)]
    pub files: Vec<PathBuf>,
    /// Seeds (1..=N), the same for every design.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seeds: u64,
    /// Output folder [default: reports/compare-<baseline>-vs-<...>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Skip the PNG charts and index.html.
    #[arg(long)]
    pub no_charts: bool,
}

/// Flags of `sim merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Folders holding shards' partial results.
    #[arg(num_args = 1.., required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output folder [default: reports/<scenario>/sweep-<id>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the PNG charts and index.html.
    #[arg(long)]
    pub no_charts: bool,
}

/// Runs `work` on a pool of `threads` threads, or on rayon's global pool.
fn with_threads<T: Send>(
    threads: Option<u32>,
    work: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    match threads {
        None => Ok(work()),
        Some(threads) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads as usize)
                .build()
                .map_err(|error| {
                    SweepError::Input(format!(
                        "--threads {threads}: cannot start the threads: {error}"
                    ))
                })?;
            Ok(pool.install(work))
        }
    }
}

fn print_written(lead: &str, written: &[PathBuf]) -> Result<(), Error> {
    let mut text = format!("{lead}\n");
    for path in written {
        text.push_str(&format!("  wrote {}\n", path.display()));
    }
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(Error::Stdout)
}

/// `sim sweep`.
pub fn sweep(args: &SweepArgs) -> Result<(), Error> {
    let request = sweep::Request {
        file: args.file.clone(),
        sets: args.sets.clone(),
        seeds: args.seeds,
        mode: args.mode.clone(),
        points: args.points,
        sample_seed: args.sample_seed,
    };
    // Everything is checked before anything is written.
    let plan = sweep::plan(&request)?;
    let shard = match &args.shard {
        Some(text) => Some(shard::parse(text).map_err(SweepError::Input)?),
        None => {
            let found = shard::from_env(|name| std::env::var(name).ok(), args.shard_count)
                .map_err(SweepError::Input)?;
            if let Some((shard, variable)) = found {
                eprintln!("sim: running shard {} (from {variable})", shard.label());
            }
            found.map(|(shard, _)| shard)
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| sweep::default_out(&plan.header));
    let dir = match shard {
        Some(shard) => out.join(shard.folder()),
        None => out.clone(),
    };
    let (header, records) =
        with_threads(args.threads, || sweep::execute(&plan, shard, &dir, true))??;
    let runs = header.points.len() * header.seeds.len();
    if let Some(shard) = shard {
        let files = [RenderedFile {
            name: sweep::journal::FILE_NAME,
            bytes: sweep::journal::render(&header, &records).into_bytes(),
        }];
        let written = report::write_all(&dir, &files)?;
        let lead = format!(
            "sweep {}: shard {} holds {} of {runs} runs; merge every shard with: sim merge {}/shard-*-of-{} --out DIR",
            &header.id[..8],
            shard.label(),
            records.len(),
            out.display(),
            shard.count
        );
        return print_written(&lead, &written);
    }
    let files = output::render(&header, &records, !args.no_charts)?;
    let written = report::write_all(&dir, &files)?;
    let lead = format!(
        "sweep {}: {} points x {} seeds = {runs} runs of {}",
        &header.id[..8],
        header.points.len(),
        header.seeds.len(),
        header.scenario
    );
    print_written(&lead, &written)
}

/// `sim merge`.
pub fn merge(args: &MergeArgs) -> Result<(), Error> {
    let (header, records) = sweep::merge(&args.dirs)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| sweep::default_out(&header));
    let files = output::render(&header, &records, !args.no_charts)?;
    let written = report::write_all(&out, &files)?;
    let lead = format!(
        "sweep {}: merged {} partial results, {} runs of {}",
        &header.id[..8],
        args.dirs.len(),
        records.len(),
        header.scenario
    );
    print_written(&lead, &written)
}

/// `sim compare`.
pub fn compare(args: &CompareArgs) -> Result<(), Error> {
    let variants = compare::load(&args.files)?;
    let seeds: Vec<u64> = (1..=args.seeds).collect();
    let runs = with_threads(args.threads, || compare::run_all(&variants, &seeds, true))??;
    let verdicts = compare::analyse(&variants, &runs);
    let files = compare::render(&variants, &runs, &verdicts, !args.no_charts)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let names: Vec<&str> = variants
            .iter()
            .map(|variant| variant.scenario.name.as_str())
            .collect();
        Path::new("reports").join(format!("compare-{}", names.join("-vs-")))
    });
    let written = report::write_all(&out, &files)?;
    let lead = format!(
        "{} seeds per design; differences are paired by seed\n{}",
        args.seeds,
        compare::table(&variants, &verdicts)
    );
    print_written(&lead, &written)
}

/// `index.html` of one run: the summary table, the charts already rendered
/// in `files`, the summary and the scenario.
pub fn run_index(
    summary: &Summary,
    scenario_text: &str,
    files: &[RenderedFile],
) -> Result<RenderedFile, Error> {
    let title = format!("{}, seed {}", summary.scenario, summary.seed);
    let table = report::table::render(summary);
    let summary_json = report::summary_json(summary)?;
    let mut blocks = vec![
        Block::Paragraph(&summary.description),
        Block::Heading("Summary"),
        Block::Pre(&table),
    ];
    let charts: Vec<&RenderedFile> = files
        .iter()
        .filter(|file| file.name.ends_with(".png"))
        .collect();
    if !charts.is_empty() {
        blocks.push(Block::Heading("Charts"));
    }
    for file in &charts {
        blocks.push(Block::Image {
            alt: file.name,
            png: &file.bytes,
        });
    }
    blocks.push(Block::Heading("summary.json"));
    blocks.push(Block::Pre(&summary_json));
    blocks.push(Block::Heading("Scenario"));
    blocks.push(Block::Pre(scenario_text));
    Ok(RenderedFile {
        name: "index.html",
        bytes: html::page(&title, &blocks).into_bytes(),
    })
}
