//! The one report writer: every command that writes an output folder (`run`
//! today; `sweep`, `compare` and `explore` next) hands its rendered files to
//! [`write_report`], which replaces the folder all-or-nothing.
//!
//! # What it guarantees
//!
//! - At every instant the folder's path names either the whole previous
//!   report (or nothing, if there was none) or the whole new one, never a mix:
//!   the new report is written into a private temporary folder beside the
//!   target and switched into place in one atomic step. A kill at any moment
//!   leaves one complete report there; a failure of any step leaves the
//!   previous report as it was.
//! - The folder holds exactly the new report's files: files of an earlier
//!   report that this one does not write (charts after `--no-charts`) are
//!   gone with it.
//! - Nothing is left behind on failure: the temporary folder is removed, and
//!   so are the parent folders this call created (when they are still empty).
//!   A killed writer can leave its temporary folder (`.<name>.XXXXXX.sim-tmp`
//!   beside the target, holding a complete report); the next write into the
//!   same target removes it.
//! - Two writers into one parent folder never interleave: each holds an
//!   exclusive advisory lock on the parent while it writes, so a second
//!   writer into the same `--out` waits for the first and then replaces its
//!   report. Waiting rather than failing: the lock is held only while the
//!   already rendered files are written (milliseconds, not the run), both
//!   runs succeed, and the last to finish wins, as with any overwrite.
//! - Symbolic links are never followed below the parent: the temporary folder
//!   is created with an unpredictable name, mode 0700, by `mkdir` (which fails
//!   rather than follow a planted link), its files with `O_EXCL`. A target
//!   that is itself a symbolic link is refused, as is a file; an existing
//!   folder is replaced only when it is empty or holds nothing but files a
//!   report writes (so `--out ~` cannot delete a home folder).
//!
//! # How the switch is made
//!
//! On Linux, `renameat2(RENAME_EXCHANGE)` swaps the new folder with an
//! existing one in one step, after which the old one (now at the temporary
//! name) is deleted; when there is no folder yet, `renameat2(RENAME_NOREPLACE)`
//! moves the new one in. On other systems, and on Linux file systems without
//! `renameat2` support (`EINVAL`), the old folder is first renamed aside and
//! the new one renamed into place: a reader between the two renames finds no
//! folder (never a mix), and a kill between them leaves the old report at
//! `.<name>.XXXXXX.sim-old`, removed by the next write. The lock is `flock`
//! on the parent folder on Unix; elsewhere no lock is taken.
//!
//! A reader that opens the files one by one while a writer switches may still
//! read `summary.json` of one report and `timeseries.csv` of the next, as with
//! any replacement; `summary.json` holds the seed and the scenario's SHA-256
//! to tell them apart.

use super::RenderedFile;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// What `--out` may be, said after every refusal.
const ALLOWED: &str = "--out must be a new path, an empty folder or an earlier report folder";

/// Suffix of the temporary folder a report is written into.
const TEMPORARY_SUFFIX: &str = ".sim-tmp";

/// Suffix of the folder an old report is moved aside to (fallback switch).
const OLD_SUFFIX: &str = ".sim-old";

/// Length of the random part of temporary names.
const RANDOM_LENGTH: usize = 6;

/// The folder made to measure the umask.
const PROBE: &str = ".mode-probe";

/// Attempts at creating and locking the parent before giving up: a writer
/// that fails removes the parent folders it created, and one waiting for the
/// lock then creates them again.
const ATTEMPTS_MAX: u32 = 100;

/// Why a report folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file system operation failed; `path` is what it was applied to.
    #[error("{}: cannot write report: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The target is a file (or a device, a FIFO, ...), not a folder.
    #[error("{}: is a file, not a folder; {ALLOWED}", path.display())]
    NotAFolder {
        /// The target.
        path: PathBuf,
    },
    /// A parent of the target is a file, so the target cannot be created.
    #[error("{}: is a file, not a folder, so {} cannot be created in it", parent.display(), path.display())]
    ParentNotAFolder {
        /// The parent that is a file.
        parent: PathBuf,
        /// The target.
        path: PathBuf,
    },
    /// The target is a symbolic link (dangling or not).
    #[error("{}: is a symbolic link (to {}); {ALLOWED}, not a link", path.display(), link.display())]
    Symlink {
        /// The target.
        path: PathBuf,
        /// Where the link points.
        link: PathBuf,
    },
    /// The target is a folder holding something no report writes.
    #[error("{}: holds `{name}`, which is not part of a report, and replacing the folder would delete it; {ALLOWED}", path.display())]
    Foreign {
        /// The target.
        path: PathBuf,
        /// The first foreign entry, in name order.
        name: String,
    },
    /// The target has no final folder name (`.`, `..`, `/`).
    #[error("{}: does not end in a folder name; {ALLOWED}", path.display())]
    NoName {
        /// The target as given.
        path: PathBuf,
    },
    /// The new report is in place but the old one could not be deleted.
    #[error("{}: the new report is in place, but the previous one could not be removed from {}: {source}", path.display(), old.display())]
    OldLeft {
        /// The target, holding the new report.
        path: PathBuf,
        /// Where the old report was left.
        old: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks, without writing anything, that `dir` could receive a report:
/// it is a new path, an empty folder, or a folder holding only files named in
/// `replaceable`, and no parent is a file. Commands call it before a long run
/// so that a bad `--out` is refused at once; [`write_report`] checks again.
pub fn check_target(dir: &Path, replaceable: &[&str]) -> Result<(), OutputError> {
    let (parent, name) = split(dir)?;
    let target = parent.join(name);
    if let Some(ancestor) = existing_ancestor(&parent) {
        if !ancestor.is_dir() {
            return Err(OutputError::ParentNotAFolder {
                parent: ancestor,
                path: dir.to_path_buf(),
            });
        }
    }
    inspect(&target, replaceable).map(|_| ())
}

/// Writes `files` as the folder `dir`, replacing an earlier report there
/// all-or-nothing (see the module documentation for the guarantees).
/// `replaceable` names the files an earlier report in `dir` may hold besides
/// `files`' names: an existing folder holding anything else is refused.
/// Returns the paths of the files written, in the order given.
pub fn write_report(
    dir: &Path,
    files: &[RenderedFile],
    replaceable: &[&str],
) -> Result<Vec<PathBuf>, OutputError> {
    write_hooked(dir, files, replaceable, &mut |_| Ok(()))
}

/// A step of [`write_report`], in order; the test hook is called before each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the missing parent folders.
    CreateParents,
    /// Lock the parent folder.
    Lock,
    /// Create the private temporary folder.
    CreateTemporary,
    /// Write and sync file number `n`.
    WriteFile(usize),
    /// Sync the temporary folder and give it its final permissions.
    SyncTemporary,
    /// Switch the temporary folder into place.
    Switch,
    /// Delete the previous report.
    RemoveOld,
    /// Sync the parent folder.
    SyncParent,
}

/// What the test hook makes of a step.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Fault {
    /// The step fails with this error; the writer cleans up.
    Fail(io::Error),
    /// The process dies before the step: nothing more happens, no clean-up.
    #[cfg(test)]
    Kill,
}

/// A test hook: called before each step.
pub(crate) type Hook<'a> = dyn FnMut(Step) -> Result<(), Fault> + 'a;

/// What is at the target before the switch.
enum Existing {
    Nothing,
    Report,
}

/// What to undo if the write stops before the switch. Its fields drop in
/// order, so the lock is released only after the clean-up.
struct Attempt {
    parent: PathBuf,
    created: Vec<PathBuf>,
    temporary: Option<tempfile::TempDir>,
    killed: bool,
    done: bool,
    lock: Option<Locked>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.killed {
            // A dead process cleans nothing up.
            if let Some(temporary) = self.temporary.take() {
                let _ = temporary.keep();
            }
            return;
        }
        drop(self.temporary.take());
        if self.created.is_empty() {
            return;
        }
        // Remove the created folders under the parent's lock, so that a
        // writer holding it never sees its parent vanish; one waiting for it
        // notices the removal and creates the folders again.
        if self.lock.is_none() {
            self.lock = lock(&self.parent).ok().flatten();
        }
        for dir in self.created.iter().rev() {
            // Only empty folders go.
            let _ = fs::remove_dir(dir);
        }
    }
}

impl Attempt {
    fn step(&mut self, hook: &mut Hook<'_>, step: Step, path: &Path) -> Result<(), OutputError> {
        match hook(step) {
            Ok(()) => Ok(()),
            Err(Fault::Fail(source)) => Err(OutputError::Io {
                path: path.to_path_buf(),
                source,
            }),
            #[cfg(test)]
            Err(Fault::Kill) => {
                self.killed = true;
                Err(OutputError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::other("killed by the test hook"),
                })
            }
        }
    }
}

/// [`write_report`] with a hook called before each step (tests inject
/// failures and kills through it).
pub(crate) fn write_hooked(
    dir: &Path,
    files: &[RenderedFile],
    replaceable: &[&str],
    hook: &mut Hook<'_>,
) -> Result<Vec<PathBuf>, OutputError> {
    for file in files {
        debug_assert!(is_plain_name(file.name), "bad file name {:?}", file.name);
    }
    let (parent, name) = split(dir)?;
    let target = parent.join(&name);
    let mut attempt = Attempt {
        parent: parent.clone(),
        created: Vec::new(),
        temporary: None,
        killed: false,
        done: false,
        lock: None,
    };
    let mut tries = 0;
    while attempt.lock.is_none() {
        tries += 1;
        attempt.step(hook, Step::CreateParents, &parent)?;
        match create_parents(&parent, dir, &mut attempt.created) {
            Err(OutputError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound && tries < ATTEMPTS_MAX =>
            {
                continue
            }
            result => result?,
        }
        attempt.step(hook, Step::Lock, &parent)?;
        match lock(&parent) {
            Ok(Some(locked)) => attempt.lock = Some(locked),
            Ok(None) if tries < ATTEMPTS_MAX => {}
            Ok(None) => {
                return Err(OutputError::Io {
                    path: parent,
                    source: io::Error::other("the folder keeps being removed by other writers"),
                })
            }
            Err(source) if source.kind() == io::ErrorKind::NotFound && tries < ATTEMPTS_MAX => {}
            Err(source) => return Err(io_error(&parent)(source)),
        }
    }
    remove_stale(&parent, &name, replaceable, files);
    let existing = inspect_with(&target, replaceable, files)?;

    attempt.step(hook, Step::CreateTemporary, &parent)?;
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(TEMPORARY_SUFFIX)
        .rand_bytes(RANDOM_LENGTH);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o700));
    }
    let temporary = builder.tempdir_in(&parent).map_err(io_error(&parent))?;
    let staging = temporary.path().to_path_buf();
    attempt.temporary = Some(temporary);
    for (index, file) in files.iter().enumerate() {
        let path = staging.join(file.name);
        attempt.step(hook, Step::WriteFile(index), &path)?;
        write_file(&path, &file.bytes).map_err(io_error(&path))?;
    }
    attempt.step(hook, Step::SyncTemporary, &staging)?;
    finish_folder(&staging).map_err(io_error(&staging))?;

    attempt.step(hook, Step::Switch, &target)?;
    let locked = attempt.lock.as_ref().expect("locked above");
    let old = switch(locked, &parent, &staging, &name, &existing).map_err(io_error(&target))?;
    let locked = attempt.lock.take().expect("locked above");
    // The temporary folder is gone or holds the old report now: no longer ours
    // to remove on failure.
    if let Some(temporary) = attempt.temporary.take() {
        let _ = temporary.keep();
    }
    attempt.done = true;
    if let Some(old) = old {
        attempt.step(hook, Step::RemoveOld, &old)?;
        remove_report(&old).map_err(|source| OutputError::OldLeft {
            path: dir.to_path_buf(),
            old: old.clone(),
            source,
        })?;
    }
    attempt.step(hook, Step::SyncParent, &parent)?;
    locked.sync().map_err(io_error(&parent))?;
    Ok(files.iter().map(|file| dir.join(file.name)).collect())
}

/// `dir` as its parent (`.` when it has none) and its final name.
fn split(dir: &Path) -> Result<(PathBuf, String), OutputError> {
    let no_name = || OutputError::NoName {
        path: dir.to_path_buf(),
    };
    match dir.components().next_back() {
        Some(Component::Normal(_)) => {}
        _ => return Err(no_name()),
    }
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(no_name)?
        .to_string();
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// The nearest ancestor of `path` (itself included) that exists.
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|ancestor| !ancestor.as_os_str().is_empty() && fs::symlink_metadata(ancestor).is_ok())
        .map(Path::to_path_buf)
}

/// Creates the missing folders of `parent`, top down, recording each one
/// this call created. Parents may be symbolic links to folders.
fn create_parents(
    parent: &Path,
    dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), OutputError> {
    let mut missing = Vec::new();
    for ancestor in parent.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        match fs::metadata(ancestor) {
            Ok(metadata) if metadata.is_dir() => break,
            Ok(_) => {
                return Err(OutputError::ParentNotAFolder {
                    parent: ancestor.to_path_buf(),
                    path: dir.to_path_buf(),
                })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                missing.push(ancestor.to_path_buf())
            }
            Err(source) => return Err(io_error(ancestor)(source)),
        }
    }
    for folder in missing.into_iter().rev() {
        match fs::create_dir(&folder) {
            Ok(()) => created.push(folder),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && folder.is_dir() => {}
            Err(source) => return Err(io_error(&folder)(source)),
        }
    }
    Ok(())
}

/// The lock on the parent folder, released when dropped. On Unix it is an
/// open handle of the folder, also used to sync it and to rename in it.
struct Locked {
    #[cfg(unix)]
    folder: File,
}

impl Locked {
    /// Makes the renames in the folder durable.
    fn sync(&self) -> io::Result<()> {
        #[cfg(unix)]
        self.folder.sync_all()?;
        Ok(())
    }
}

/// Opens `parent` and takes an exclusive lock on it, waiting for another
/// writer to finish. `None` when the folder was removed (or replaced) while
/// waiting: the caller creates it again.
#[cfg(unix)]
fn lock(parent: &Path) -> io::Result<Option<Locked>> {
    use std::os::unix::fs::MetadataExt;
    let folder = File::open(parent)?;
    folder.lock()?;
    let held = folder.metadata()?;
    match fs::metadata(parent) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
            Ok(Some(Locked { folder }))
        }
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Folders cannot be opened and locked like files on other systems: no lock
/// is taken there (documented above).
#[cfg(not(unix))]
fn lock(parent: &Path) -> io::Result<Option<Locked>> {
    if parent.is_dir() {
        Ok(Some(Locked {}))
    } else {
        Err(io::ErrorKind::NotFound.into())
    }
}

/// What is at `target`, refusing what may not be replaced.
fn inspect(target: &Path, replaceable: &[&str]) -> Result<Existing, OutputError> {
    inspect_with(target, replaceable, &[])
}

fn inspect_with(
    target: &Path,
    replaceable: &[&str],
    files: &[RenderedFile],
) -> Result<Existing, OutputError> {
    let metadata = match fs::symlink_metadata(target) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(source) => return Err(io_error(target)(source)),
    };
    if metadata.file_type().is_symlink() {
        return Err(OutputError::Symlink {
            path: target.to_path_buf(),
            link: fs::read_link(target).unwrap_or_default(),
        });
    }
    if !metadata.is_dir() {
        return Err(OutputError::NotAFolder {
            path: target.to_path_buf(),
        });
    }
    let mut foreign: Option<String> = None;
    for entry in fs::read_dir(target).map_err(io_error(target))? {
        let entry = entry.map_err(io_error(target))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map_err(io_error(target))?.is_dir();
        // A folder is foreign, but for the probe of a writer killed while
        // measuring the umask.
        let allowed = if is_dir {
            name == PROBE
        } else {
            is_report_file(&name, replaceable, files)
        };
        if !allowed {
            foreign = Some(match foreign {
                Some(first) if first <= name => first,
                _ => name,
            });
        }
    }
    match foreign {
        Some(name) => Err(OutputError::Foreign {
            path: target.to_path_buf(),
            name,
        }),
        None => Ok(Existing::Report),
    }
}

/// A file a report writes, or the `.NAME.partial` temporary an earlier
/// version of this writer left beside one.
fn is_report_file(name: &str, replaceable: &[&str], files: &[RenderedFile]) -> bool {
    let known = |candidate: &str| {
        replaceable.contains(&candidate) || files.iter().any(|file| file.name == candidate)
    };
    known(name)
        || name
            .strip_prefix('.')
            .and_then(|rest| rest.strip_suffix(".partial"))
            .is_some_and(known)
}

/// Removes the temporary folders that killed writers into `parent/name` left
/// behind. Called under the lock, so no live writer owns them.
fn remove_stale(parent: &Path, name: &str, replaceable: &[&str], files: &[RenderedFile]) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        let random = candidate.strip_prefix(&prefix).and_then(|rest| {
            rest.strip_suffix(TEMPORARY_SUFFIX)
                .or_else(|| rest.strip_suffix(OLD_SUFFIX))
        });
        let is_ours = random.is_some_and(|random| {
            random.len() == RANDOM_LENGTH && random.bytes().all(|byte| byte.is_ascii_alphanumeric())
        });
        let is_folder = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_ours && is_folder && inspect_with(&entry.path(), replaceable, files).is_ok() {
            let _ = remove_report(&entry.path());
        }
    }
}

/// Creates `path` (never following or replacing anything there), writes
/// `bytes` and syncs them.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Gives the private folder the permissions a plain `mkdir` would (0777
/// minus the umask, measured with a probe folder, since reading the umask
/// would change it), and syncs it. Other systems have neither.
fn finish_folder(staging: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let probe = staging.join(PROBE);
        fs::create_dir(&probe)?;
        let permissions = fs::metadata(&probe)?.permissions();
        fs::remove_dir(&probe)?;
        fs::set_permissions(staging, permissions)?;
        File::open(staging)?.sync_all()?;
    }
    let _ = staging;
    Ok(())
}

/// Puts `staging` at `parent/name` and returns where the old report now is
/// (to be removed), if there was one.
fn switch(
    locked: &Locked,
    parent: &Path,
    staging: &Path,
    name: &str,
    existing: &Existing,
) -> io::Result<Option<PathBuf>> {
    let staging_name = staging
        .file_name()
        .expect("a temporary folder has a name")
        .to_owned();
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags};
        let flags = match existing {
            Existing::Nothing => RenameFlags::NOREPLACE,
            Existing::Report => RenameFlags::EXCHANGE,
        };
        let folder = &locked.folder;
        match renameat_with(folder, &staging_name, folder, name, flags) {
            Ok(()) => {
                return Ok(match existing {
                    Existing::Nothing => None,
                    Existing::Report => Some(staging.to_path_buf()),
                })
            }
            // The file system does not support renameat2: fall back.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    let _ = (locked, &staging_name);
    let target = parent.join(name);
    match existing {
        Existing::Nothing => {
            fs::rename(staging, &target)?;
            Ok(None)
        }
        Existing::Report => {
            let random = staging
                .file_name()
                .and_then(|staging_name| staging_name.to_str())
                .and_then(|staging_name| staging_name.strip_suffix(TEMPORARY_SUFFIX))
                .expect("the temporary folder's name ends in its suffix")
                .to_string();
            let old = parent.join(format!("{random}{OLD_SUFFIX}"));
            fs::rename(&target, &old)?;
            if let Err(error) = fs::rename(staging, &target) {
                let _ = fs::rename(&old, &target);
                return Err(error);
            }
            Ok(Some(old))
        }
    }
}

/// Removes a report folder: its files, then the folder; fails (leaving what
/// remains) if it holds a folder.
fn remove_report(folder: &Path) -> io::Result<()> {
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            // The probe of a writer killed at that instant.
            fs::remove_dir(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    fs::remove_dir(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const NAMES: [&str; 3] = ["summary.json", "timeseries.csv", "latency.png"];

    /// A report whose every file says which one it is.
    fn report(tag: &str) -> Vec<RenderedFile> {
        NAMES
            .iter()
            .map(|name| RenderedFile {
                name,
                bytes: format!("{tag} {name}\n").into_bytes(),
            })
            .collect()
    }

    /// The folder's files and contents; `None` when it does not exist.
    fn contents(dir: &Path) -> Option<BTreeMap<String, String>> {
        let entries = fs::read_dir(dir).ok()?;
        Some(
            entries
                .map(|entry| {
                    let entry = entry.unwrap();
                    (
                        entry.file_name().into_string().unwrap(),
                        fs::read_to_string(entry.path()).unwrap(),
                    )
                })
                .collect(),
        )
    }

    fn expected(tag: &str) -> BTreeMap<String, String> {
        NAMES
            .iter()
            .map(|name| (name.to_string(), format!("{tag} {name}\n")))
            .collect()
    }

    /// Names in `parent` other than `keep`.
    fn leftovers(parent: &Path, keep: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(parent)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| !keep.contains(&name.as_str()))
            .collect();
        names.sort();
        names
    }

    fn all_steps() -> Vec<Step> {
        let mut steps = vec![Step::CreateParents, Step::Lock, Step::CreateTemporary];
        steps.extend((0..NAMES.len()).map(Step::WriteFile));
        steps.extend([
            Step::SyncTemporary,
            Step::Switch,
            Step::RemoveOld,
            Step::SyncParent,
        ]);
        steps
    }

    // A fresh target gets exactly the report's files, and a second write
    // replaces them all, dropping a file the new report no longer has.
    #[test]
    fn writes_then_replaces_the_whole_folder() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/report");
        let written = write_report(&dir, &report("one"), &[]).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(written[0], dir.join("summary.json"));
        assert_eq!(contents(&dir), Some(expected("one")));
        let fewer = &report("two")[..2];
        write_report(&dir, fewer, &NAMES).unwrap();
        let mut two = expected("two");
        two.remove("latency.png");
        assert_eq!(contents(&dir), Some(two));
        assert_eq!(
            leftovers(&root.path().join("a/b"), &["report"]),
            Vec::<String>::new()
        );
    }

    // The report folder gets the permissions of a plain mkdir, not 0700.
    #[cfg(unix)]
    #[test]
    fn report_folder_has_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain");
        fs::create_dir(&plain).unwrap();
        let dir = root.path().join("report");
        write_report(&dir, &report("one"), &[]).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode(),
            fs::metadata(&plain).unwrap().permissions().mode()
        );
    }

    // A kill before any step leaves exactly the old complete report or the new
    // complete one at the target, and the next write cleans up what the killed
    // one left behind.
    #[test]
    fn kill_at_every_step_leaves_one_complete_report() {
        for step in all_steps() {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("out");
            write_report(&dir, &report("old"), &[]).unwrap();
            let mut seen = None;
            let result = write_hooked(&dir, &report("new"), &[], &mut |at| {
                if at == step {
                    seen = contents(&dir);
                    Err(Fault::Kill)
                } else {
                    Ok(())
                }
            });
            assert!(result.is_err(), "{step:?}");
            let after = contents(&dir);
            assert_eq!(after, seen, "{step:?}: the kill changed the folder");
            let switched = matches!(step, Step::RemoveOld | Step::SyncParent);
            let tag = if switched { "new" } else { "old" };
            assert_eq!(after, Some(expected(tag)), "{step:?}");
            write_report(&dir, &report("next"), &[]).unwrap();
            assert_eq!(contents(&dir), Some(expected("next")), "{step:?}");
            assert_eq!(
                leftovers(root.path(), &["out"]),
                Vec::<String>::new(),
                "{step:?}"
            );
        }
    }

    // A kill of the first write into a new folder leaves nothing or the whole
    // new report, never a partial one.
    #[test]
    fn kill_of_a_first_write_leaves_nothing_or_everything() {
        for step in all_steps() {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("out");
            let _ = write_hooked(&dir, &report("new"), &[], &mut |at| {
                if at == step {
                    Err(Fault::Kill)
                } else {
                    Ok(())
                }
            });
            let after = contents(&dir);
            assert!(
                after.is_none() || after == Some(expected("new")),
                "{step:?}: {after:?}"
            );
        }
    }

    // A step failing (a rename, a write, a sync) leaves the old report as it
    // was and no temporary folder; a failure after the switch leaves the whole
    // new report.
    #[test]
    fn failure_at_every_step_leaves_the_old_report_and_no_leftovers() {
        for step in all_steps() {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("out");
            write_report(&dir, &report("old"), &[]).unwrap();
            let result = write_hooked(&dir, &report("new"), &[], &mut |at| {
                if at == step {
                    Err(Fault::Fail(io::Error::other("injected")))
                } else {
                    Ok(())
                }
            });
            let error = result.expect_err("the injected failure is reported");
            assert!(error.to_string().contains("injected"), "{step:?}: {error}");
            let switched = matches!(step, Step::RemoveOld | Step::SyncParent);
            let tag = if switched { "new" } else { "old" };
            assert_eq!(contents(&dir), Some(expected(tag)), "{step:?}");
            let left = leftovers(root.path(), &["out"]);
            if step == Step::RemoveOld {
                // The old report stays at the temporary name, as the error says.
                assert_eq!(left.len(), 1, "{left:?}");
                assert!(error.to_string().contains(&left[0]), "{error}");
            } else {
                assert_eq!(left, Vec::<String>::new(), "{step:?}");
            }
        }
    }

    // A switch that really fails (something took the target's name after it
    // was inspected) leaves that in place and removes the temporary folder.
    #[test]
    fn a_real_switch_failure_leaves_no_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        let result = write_hooked(&dir, &report("new"), &[], &mut |at| {
            if at == Step::Switch {
                fs::create_dir(&dir).unwrap();
                fs::write(dir.join("notes.txt"), "mine\n").unwrap();
            }
            Ok(())
        });
        let error = result.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot write report: ", dir.display())),
            "{error}"
        );
        assert_eq!(contents(&dir).unwrap()["notes.txt"], "mine\n");
        assert_eq!(leftovers(root.path(), &["out"]), Vec::<String>::new());
    }

    // A failed write removes the parent folders it created, and only those.
    #[test]
    fn failure_removes_the_parents_it_created() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("kept")).unwrap();
        let dir = root.path().join("kept/new/deeper/out");
        for step in [
            Step::Lock,
            Step::CreateTemporary,
            Step::WriteFile(1),
            Step::Switch,
        ] {
            let result = write_hooked(&dir, &report("new"), &[], &mut |at| {
                if at == step {
                    Err(Fault::Fail(io::Error::other("injected")))
                } else {
                    Ok(())
                }
            });
            assert!(result.is_err());
            assert!(root.path().join("kept").is_dir(), "{step:?}");
            assert_eq!(
                leftovers(&root.path().join("kept"), &[]),
                Vec::<String>::new(),
                "{step:?}"
            );
        }
    }

    // Threads writing different reports into one folder, some failing midway:
    // after every round the folder holds one writer's complete report.
    #[test]
    fn concurrent_writers_leave_one_complete_report() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("new/out");
        let tags = ["a", "b", "c", "d"];
        for round in 0..60 {
            std::thread::scope(|scope| {
                for (index, tag) in tags.iter().enumerate() {
                    let dir = &dir;
                    scope.spawn(move || {
                        let steps = all_steps();
                        let fail_at = steps[(round + index) % steps.len()];
                        let fails = (round + index) % 3 == 0;
                        let _ = write_hooked(dir, &report(tag), &NAMES, &mut |at| {
                            if fails && at == fail_at && at != Step::RemoveOld {
                                Err(Fault::Fail(io::Error::other("injected")))
                            } else {
                                Ok(())
                            }
                        });
                    });
                }
            });
            let after = contents(&dir);
            if let Some(after) = after {
                assert!(
                    tags.iter().any(|tag| after == expected(tag)),
                    "round {round}: {after:?}"
                );
            }
            let parent = root.path().join("new");
            if parent.exists() {
                assert_eq!(
                    leftovers(&parent, &["out"]),
                    Vec::<String>::new(),
                    "round {round}"
                );
            }
        }
    }

    // Symbolic links planted at the old writer's temporary names, at the
    // target and at a parent are never written through.
    #[cfg(unix)]
    #[test]
    fn planted_symlinks_are_never_followed() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let dir = root.path().join("out");
        write_report(&dir, &report("old"), &[]).unwrap();
        for name in NAMES {
            symlink(&victim, dir.join(format!(".{name}.partial"))).unwrap();
        }
        write_report(&dir, &report("new"), &[]).unwrap();
        assert_eq!(contents(&dir), Some(expected("new")));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");

        // At the target itself, pointing to a folder or nowhere: refused.
        let elsewhere = root.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = root.path().join("link");
        symlink(&elsewhere, &link).unwrap();
        let error = write_report(&link, &report("new"), &[]).unwrap_err();
        assert!(matches!(error, OutputError::Symlink { .. }), "{error}");
        assert_eq!(leftovers(&elsewhere, &[]), Vec::<String>::new());
        let dangling = root.path().join("dangling");
        symlink(root.path().join("nowhere"), &dangling).unwrap();
        let error = write_report(&dangling, &report("new"), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: is a symbolic link (to {}); {ALLOWED}, not a link",
                dangling.display(),
                root.path().join("nowhere").display()
            )
        );
        assert!(!root.path().join("nowhere").exists());
        // A trailing slash does not make the link count as its folder.
        let slashed = PathBuf::from(format!("{}/", link.display()));
        assert!(write_report(&slashed, &report("new"), &[]).is_err());
        assert!(link.is_symlink());

        // At a name the temporary folder might take: a new random name is used.
        symlink(&victim, root.path().join(".out.AAAAAA.sim-tmp")).unwrap();
        write_report(&dir, &report("third"), &[]).unwrap();
        assert_eq!(contents(&dir), Some(expected("third")));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    // A folder holding anything a report does not write is never replaced.
    #[test]
    fn a_folder_with_other_files_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("home");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "mine\n").unwrap();
        fs::write(dir.join("summary.json"), "{}\n").unwrap();
        let error = write_report(&dir, &report("new"), &NAMES).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: holds `notes.txt`, which is not part of a report, and replacing the folder would delete it; {ALLOWED}",
                dir.display()
            )
        );
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine\n");
        assert_eq!(leftovers(root.path(), &["home"]), Vec::<String>::new());
        assert!(check_target(&dir, &NAMES).is_err());
        // An empty folder is fine.
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        write_report(&empty, &report("new"), &[]).unwrap();
        assert_eq!(contents(&empty), Some(expected("new")));
    }

    // A file at the target, or at a parent, is refused with what is allowed.
    #[test]
    fn a_file_at_the_target_or_a_parent_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        fs::write(&file, "x").unwrap();
        let error = write_report(&file, &report("new"), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: is a file, not a folder; {ALLOWED}", file.display())
        );
        let below = file.join("out");
        let error = write_report(&below, &report("new"), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: is a file, not a folder, so {} cannot be created in it",
                file.display(),
                below.display()
            )
        );
        assert!(check_target(&below, &[]).is_err());
        assert!(check_target(&file, &[]).is_err());
        assert!(check_target(&root.path().join("new/out"), &[]).is_ok());
        assert!(matches!(
            write_report(Path::new(".."), &report("new"), &[]),
            Err(OutputError::NoName { .. })
        ));
        assert_eq!(leftovers(root.path(), &["file"]), Vec::<String>::new());
    }

    // A parent the writer may not write into is reported with its path, and
    // the parents created for the report are removed again.
    #[cfg(unix)]
    #[test]
    fn an_unwritable_parent_is_reported_and_nothing_is_left() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let locked = root.path().join("locked");
        fs::create_dir(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
        let dir = locked.join("out");
        let result = write_report(&dir, &report("new"), &[]);
        // Root ignores permissions; then the write must simply succeed.
        let is_root = fs::create_dir(locked.join("probe")).is_ok();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        if is_root {
            assert_eq!(contents(&dir), Some(expected("new")));
        } else {
            let error = result.unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{}: cannot write report: ", locked.display())),
                "{error}"
            );
            assert!(!dir.exists());
        }
        // /sys refuses new folders even to root.
        if cfg!(target_os = "linux") && Path::new("/sys/kernel").is_dir() {
            let dir = Path::new("/sys/sim-report-test/out");
            let error = write_report(dir, &report("new"), &[]).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("/sys/sim-report-test: cannot write report: "),
                "{error}"
            );
            assert!(!Path::new("/sys/sim-report-test").exists());
        }
    }
}
