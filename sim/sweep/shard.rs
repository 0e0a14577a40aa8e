//! Shards: a deterministic share of a sweep's runs for one machine of a
//! cluster job. Run `j` (points x seeds, in (point, seed) order) belongs to
//! shard `j mod n`, so shards are balanced and any shard can be rerun alone.
//!
//! The shard comes from `--shard i/n` or from the array index that the
//! scheduler sets: `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`) with
//! `SLURM_ARRAY_TASK_COUNT` (Slurm job arrays), `JOB_COMPLETION_INDEX`
//! (Kubernetes Indexed Jobs) or `AWS_BATCH_JOB_ARRAY_INDEX` (AWS Batch array
//! jobs), the last two with the count from `--shard-count`. Indices are
//! 0-based.

/// One shard: `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u64,
    /// How many shards, >= 1.
    pub count: u64,
}

impl Shard {
    /// `i/n`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// Whether run number `job` belongs to this shard.
    pub fn owns(&self, job: u64) -> bool {
        job % self.count == self.index
    }

    /// The folder name of this shard's partial result.
    pub fn folder(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

fn checked(index: u64, count: u64, source: &str) -> Result<Shard, String> {
    if count == 0 {
        return Err(format!("{source}: the shard count must be >= 1 (got 0)"));
    }
    if index >= count {
        return Err(format!(
            "{source}: shard index {index} is out of range: must be in [0, {}] for {count} shards",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Parses `--shard i/n`.
pub fn parse(text: &str) -> Result<Shard, String> {
    let source = format!("--shard {text}");
    let (index, count) = text
        .split_once('/')
        .and_then(|(index, count)| Some((index.trim().parse().ok()?, count.trim().parse().ok()?)))
        .ok_or_else(|| format!("{source}: expected INDEX/COUNT, e.g. 0/4"))?;
    checked(index, count, &source)
}

/// The shard given by the environment (read through `env`), if any, and the
/// variable it came from; `count` is `--shard-count`.
pub fn from_env(
    env: impl Fn(&str) -> Option<String>,
    count: Option<u64>,
) -> Result<Option<(Shard, &'static str)>, String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        match env(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={text}: not a whole number")),
        }
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let total = match number("SLURM_ARRAY_TASK_COUNT")? {
            Some(total) => total,
            None => count.ok_or(
                "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT; pass --shard-count",
            )?,
        };
        let index = id
            .checked_sub(min)
            .ok_or("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?;
        return checked(index, total, "SLURM_ARRAY_TASK_ID")
            .map(|shard| Some((shard, "SLURM_ARRAY_TASK_ID")));
    }
    for name in ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
        if let Some(index) = number(name)? {
            let total = count.ok_or_else(|| {
                format!("{name} is set: pass the number of shards with --shard-count")
            })?;
            return checked(index, total, name).map(|shard| Some((shard, name)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    // Each scheduler's variables give the same 0-based shard.
    #[test]
    fn shards_come_from_each_scheduler() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ];
        assert_eq!(
            from_env(env(&slurm), None).unwrap(),
            Some((Shard { index: 2, count: 4 }, "SLURM_ARRAY_TASK_ID"))
        );
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(
            from_env(env(&k8s), Some(4)).unwrap().unwrap().0,
            Shard { index: 2, count: 4 }
        );
        assert!(from_env(env(&k8s), None)
            .unwrap_err()
            .contains("--shard-count"));
        let aws = [("AWS_BATCH_JOB_ARRAY_INDEX", "5")];
        assert!(from_env(env(&aws), Some(4))
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(from_env(env(&[]), Some(4)).unwrap(), None);
    }

    // Every run belongs to exactly one shard.
    #[test]
    fn shards_partition_the_runs() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for job in 0..100 {
            assert_eq!(shards.iter().filter(|shard| shard.owns(job)).count(), 1);
        }
        assert_eq!(parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        assert_eq!(
            parse("3/3").unwrap_err(),
            "--shard 3/3: shard index 3 is out of range: must be in [0, 2] for 3 shards"
        );
        assert!(parse("x").is_err());
    }
}
