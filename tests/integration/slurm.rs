//! A sharded sweep on a real one-node Slurm cluster: munged, slurmctld and
//! slurmd started on localhost from a private folder (own munge key and
//! socket, a minimal slurm.conf with proctrack/linuxproc, task/none, no
//! cgroups, no accounting), the sweep submitted as `sbatch --array`, each task
//! finding its shard from SLURM_ARRAY_TASK_ID, the shards merged, and the
//! bytes compared with a sweep on this machine. The daemons are stopped by
//! their pids. Skips, saying why, when Slurm is absent and cannot be
//! installed (not root, or no apt-get); .ci/install-system-deps installs it.

use crate::support::{ensure_system, root, temp_dir, Sim};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Slurm and munge are installed, or installed now; `Err` says why not.
fn slurm_installed() -> Result<(), String> {
    let present = || {
        [
            "/usr/sbin/slurmctld",
            "/usr/sbin/slurmd",
            "/usr/bin/sbatch",
            "/usr/sbin/munged",
        ]
        .iter()
        .all(|path| Path::new(path).exists())
    };
    ensure_system("slurm", "Slurm", present)
}

/// The daemons this test started; stopped by pid when dropped, even on panic.
struct Daemons(Vec<(&'static str, Child)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        // Stop in reverse order: slurmd, slurmctld, then munged.
        for (name, child) in self.0.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            if child.wait().is_err() {
                eprintln!("could not reap {name}");
            }
        }
    }
}

fn start(daemons: &mut Daemons, name: &'static str, command: &mut Command, log: PathBuf) {
    let log = std::fs::File::create(log).expect("daemon log");
    let child = command
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
    daemons.0.push((name, child));
}

fn hostname() -> String {
    let output = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

// Three array tasks each run the shard Slurm gives them; merged, they are the
// bytes of the same sweep run locally.
#[test]
fn slurm_array_shards_merge_into_the_local_sweep() {
    if let Err(reason) = slurm_installed() {
        eprintln!("skipping slurm_array_shards_merge_into_the_local_sweep: {reason}");
        return;
    }
    let dir = temp_dir("slurm");
    let munge = dir.join("munge");
    for folder in [&munge, &dir.join("state"), &dir.join("spool")] {
        std::fs::create_dir_all(folder).unwrap();
    }
    // munged wants its key and folders private.
    let key: Vec<u8> = (0..1024u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(munge.join("munge.key"), key).unwrap();
    Command::new("chmod")
        .args(["700", munge.to_str().unwrap()])
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["600", munge.join("munge.key").to_str().unwrap()])
        .status()
        .unwrap();
    let socket = munge.join("munge.sock");
    let host = hostname();
    let d = dir.display();
    let conf = format!(
        "ClusterName=simtest\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
         SlurmctldPort=16817\nSlurmdPort=16818\nAuthType=auth/munge\nCredType=cred/munge\n\
         AuthInfo=socket={}\nStateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
         SchedulerType=sched/builtin\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
         MpiDefault=none\nReturnToService=2\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
         PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
        socket.display()
    );
    let conf_path = dir.join("slurm.conf");
    std::fs::write(&conf_path, conf).unwrap();

    let mut daemons = Daemons(Vec::new());
    start(
        &mut daemons,
        "munged",
        Command::new("/usr/sbin/munged")
            .args(["--foreground", "--force"])
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", munge.join("munge.key").display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!(
                "--seed-file={}",
                munge.join("munged.seed").display()
            ))
            .arg(format!("--log-file={}", munge.join("munged.log").display())),
        dir.join("munged.out"),
    );
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        socket.exists(),
        "munged did not start: see {}",
        dir.join("munged.out").display()
    );
    start(
        &mut daemons,
        "slurmctld",
        Command::new("/usr/sbin/slurmctld")
            .args(["-D", "-i"])
            .env("SLURM_CONF", &conf_path),
        dir.join("slurmctld.out"),
    );
    start(
        &mut daemons,
        "slurmd",
        Command::new("/usr/sbin/slurmd")
            .arg("-D")
            .env("SLURM_CONF", &conf_path),
        dir.join("slurmd.out"),
    );
    let mut idle = false;
    for _ in 0..120 {
        let output = Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", &conf_path)
            .output();
        if output.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "idle") {
            idle = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        idle,
        "the node never became idle: see {}/slurmctld.log and slurmd.log",
        dir.display()
    );

    let out = dir.join("out");
    let sweep = root().join("tests/fixtures/sweep/sweep.json");
    let job = dir.join("job.sh");
    std::fs::write(
        &job,
        format!(
            "#!/bin/bash\nexec {} sweep {} --no-charts --threads 1 --out {}\n",
            env!("CARGO_BIN_EXE_sim"),
            sweep.display(),
            out.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["755", job.to_str().unwrap()])
        .status()
        .unwrap();
    let submitted = Command::new("timeout")
        .args(["600", "sbatch", "--wait", "--array=0-2", "--time=10"])
        .arg(format!("--output={}/task-%a.out", dir.display()))
        .arg(&job)
        .env("SLURM_CONF", &conf_path)
        .output()
        .expect("sbatch runs");
    assert!(
        submitted.status.success(),
        "sbatch failed: {}{}",
        String::from_utf8_lossy(&submitted.stdout),
        String::from_utf8_lossy(&submitted.stderr)
    );
    drop(daemons);
    for index in 0..3 {
        let log = std::fs::read_to_string(dir.join(format!("task-{index}.out"))).unwrap();
        assert!(
            log.starts_with(&format!(
                "sim: running shard {index}/3 (from SLURM_ARRAY_TASK_ID)\n"
            )),
            "{log}"
        );
    }

    let merged = dir.join("merged");
    let shards: Vec<String> = (0..3)
        .map(|index| {
            out.join(format!("shard-{index}-of-3"))
                .display()
                .to_string()
        })
        .collect();
    Sim::new()
        .args(["merge", "--no-charts", "--out", merged.to_str().unwrap()])
        .args(&shards)
        .run();
    let local = temp_dir("slurm-local");
    Sim::new()
        .args([
            "sweep",
            "tests/fixtures/sweep/sweep.json",
            "--no-charts",
            "--out",
            local.to_str().unwrap(),
        ])
        .run();
    for name in ["journal.jsonl", "runs.csv", "points.csv"] {
        assert!(
            std::fs::read(merged.join(name)).unwrap() == std::fs::read(local.join(name)).unwrap(),
            "{name} differs"
        );
    }
}
