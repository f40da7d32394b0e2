//! Where commands write. A command's output directory: results are written into a hidden
//! staging directory inside it and moved into place only when everything succeeded, so a
//! failed run leaves no partial results (the staging directory is removed when dropped, and
//! so is the output directory if the run created it); and the single output files of the
//! other commands, checked before any work by `unmix_io::OutputPath`'s rules.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use unmix_io::{OutputPath, OutputRefusal};

/// A staging area whose files become the output directory's on [`Staging::commit`].
pub struct Staging {
    dir: PathBuf,
    /// `None` once committed.
    staging: Option<tempfile::TempDir>,
    /// Every name this command writes into the directory (its results as a whole).
    owned: Vec<String>,
    files: Vec<String>,
    /// Files of `files` already in the output directory itself (published, or written in
    /// place): kept whatever happens to the rest of the run.
    in_dir: Vec<String>,
    /// Whether `dir` did not exist before: an uncommitted run removes it again.
    created_dir: bool,
}

/// The file in a staging directory that names the process that made it.
const OWNER_FILE: &str = ".owner";

/// The process that made a staging directory: its id, the boot it ran in and its pid
/// namespace, so that an id from before a reboot, from another machine or from another
/// container sharing the directory is never taken for a process this one can see. Linux
/// only: elsewhere nothing is swept.
#[derive(Debug, PartialEq, Eq)]
struct Owner {
    /// The boot and the pid namespace, as one word.
    scope: String,
    pid: u32,
}

impl Owner {
    fn this_process() -> Option<Self> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let scope = format!("{}/{}", boot.trim(), namespace.display()).replace(char::is_whitespace, "");
        Some(Self { scope, pid: std::process::id() })
    }

    /// Whether the owner is a process this one could see that no longer runs.
    fn is_gone(&self) -> bool {
        Self::this_process().is_some_and(|me| me.scope == self.scope && self.pid != me.pid)
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.scope, self.pid)
    }
}

impl std::str::FromStr for Owner {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (scope, pid) = s.trim().split_once(' ').ok_or(())?;
        Ok(Self { scope: scope.to_string(), pid: pid.parse().map_err(|_| ())? })
    }
}

/// Removes the staging directories in `dir` whose owner was killed before it could remove
/// them (SIGKILL, a crash, the power): they are named by their owner file, so nothing
/// another running process (or another machine) is writing is touched.
fn remove_abandoned_staging(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(".unmix-staging-")
            && std::fs::read_to_string(entry.path().join(OWNER_FILE))
                .ok()
                .and_then(|s| s.parse::<Owner>().ok())
                .is_some_and(|owner| owner.is_gone());
        if abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Staging {
    /// Prepares `dir` (created if missing). Refuses when any of `names` already exists
    /// there, unless `force`.
    pub fn new(dir: &Path, names: &[&str], force: bool) -> Result<Self> {
        Self::refuse_existing(dir, names, force)?;
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the output directory", dir.display()))?;
        if created_dir {
            unmix_io::register_created_dir(dir);
        }
        let staging = tempfile::Builder::new()
            .prefix(".unmix-staging-")
            .tempdir_in(dir)
            .with_context(|| format!("{}: cannot write to the output directory", dir.display()));
        let staging = match staging {
            Ok(staging) => {
                // Removed by a process that has to exit at once; a process killed outright
                // leaves it to the next run here, which sees its owner gone.
                unmix_io::register_staged(staging.path());
                remove_abandoned_staging(dir);
                if let Some(owner) = Owner::this_process() {
                    let _ = std::fs::write(staging.path().join(OWNER_FILE), owner.to_string());
                }
                staging
            }
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(e);
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            staging: Some(staging),
            owned: names.iter().map(|n| n.to_string()).collect(),
            files: Vec::new(),
            in_dir: Vec::new(),
            created_dir,
        })
    }

    /// What [`new`](Self::new) refuses, checked without touching the disk: before a wait
    /// (a stream's training segment) that should not end in a refusal.
    pub fn refuse_existing(dir: &Path, names: &[&str], force: bool) -> Result<()> {
        if dir == Path::new("-") {
            bail!("-: the output (-o) is a directory of results, not the standard output");
        }
        if dir.exists() && !dir.is_dir() {
            bail!("{}: is a file, not a directory; the output (-o) must be a directory", dir.display());
        }
        // Results are moved in by renaming: whatever stands at a result's name is replaced,
        // so only a regular file may (a link would be replaced, not followed; a FIFO or a
        // device would be swapped for a file).
        for name in names {
            let path = dir.join(name);
            if let Ok(meta) = std::fs::symlink_metadata(&path)
                && !meta.file_type().is_file()
            {
                bail!(
                    "{}: is not a regular file (a link, a FIFO, a device or a directory); unmix replaces only its \
                     own result files in an output directory",
                    path.display()
                );
            }
        }
        if !force {
            let existing: Vec<&str> = names.iter().copied().filter(|n| dir.join(n).exists()).collect();
            if !existing.is_empty() {
                bail!("{}: already holds results ({}); pass --force to overwrite", dir.display(), existing.join(", "));
            }
        }
        Ok(())
    }

    fn staging_dir(&self) -> &Path {
        self.staging.as_ref().map_or(self.dir.as_path(), |s| s.path())
    }

    /// Path in the staging area of output file `name`; remembered for [`commit`](Self::commit).
    pub fn path(&mut self, name: &str) -> PathBuf {
        if !self.files.iter().any(|f| f == name) {
            self.files.push(name.to_string());
        }
        self.staging_dir().join(name)
    }

    /// Moves staged file `name`, complete, into the output directory now rather than at
    /// [`commit`](Self::commit): a stream's model, usable while the stream it was trained
    /// on is still being separated, and kept if that stream fails later.
    pub fn publish(&mut self, name: &str) -> Result<PathBuf> {
        let (from, to) = (self.path(name), self.dir.join(name));
        std::fs::rename(&from, &to).with_context(|| format!("{}: cannot move result into place", to.display()))?;
        self.in_dir.push(name.to_string());
        Ok(to)
    }

    /// Output file `name` in the output directory itself, for a log written in place that
    /// others read while it grows (each row complete once written); listed by
    /// [`commit`](Self::commit) and kept if the run fails later.
    pub fn in_place(&mut self, name: &str) -> PathBuf {
        self.path(name);
        self.in_dir.push(name.to_string());
        self.dir.join(name)
    }

    /// Moves every staged file into the output directory, and removes the results of an
    /// earlier run that this one did not write (a CSV run's `sources.csv` under a WAV run's
    /// results, say): the directory then holds this run's results as a whole.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let produced: Vec<&String> = self
            .files
            .iter()
            .filter(|name| self.in_dir.contains(name) || self.staging_dir().join(name).exists())
            .collect();
        for name in self.owned.iter().filter(|name| !produced.contains(name)) {
            let stale = self.dir.join(name);
            if std::fs::symlink_metadata(&stale).is_ok_and(|m| m.file_type().is_file()) {
                std::fs::remove_file(&stale)
                    .with_context(|| format!("{}: cannot remove an earlier run's result", stale.display()))?;
            }
        }
        let mut out = Vec::new();
        for name in &self.files {
            let to = self.dir.join(name);
            if self.in_dir.contains(name) {
                out.extend(to.exists().then_some(to));
                continue;
            }
            let from = self.staging_dir().join(name);
            if !from.exists() {
                continue;
            }
            std::fs::rename(&from, &to).with_context(|| format!("{}: cannot move result into place", to.display()))?;
            out.push(to);
        }
        self.staging = None; // removed; the directory now holds results
        self.created_dir = false;
        Ok(out)
    }
}

impl Drop for Staging {
    /// An uncommitted run leaves the output directory as it found it.
    fn drop(&mut self) {
        drop(self.staging.take());
        if self.created_dir {
            // Only if empty: whatever else is there is not ours to remove.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Has `write` make the file at `path` through a temporary file beside it with the same
/// extension (plot encoders go by it), renamed into place: the file is either the old one
/// or the whole new one, never half written. The path follows `unmix_io::OutputPath`'s
/// rules; a stream is refused, since an image encoder writes a file.
/// `value` as pretty JSON at `path`, whole or not at all (`unmix_io::write_atomically`).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    unmix_io::write_atomically(path, |out| {
        std::io::Write::write_all(out, text.as_bytes())
            .map_err(|source| unmix_io::Error::Io { path: path.to_path_buf(), source })
    })?;
    Ok(())
}

pub fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let out = OutputPath::check(path, true)?;
    if out.is_stream() {
        return Err(unmix_io::Error::Output { path: path.to_path_buf(), refusal: OutputRefusal::NotAFile }.into());
    }
    let cannot = || format!("{}: cannot write", path.display());
    let tmp = unmix_io::temp_file_beside_keeping_extension(path).with_context(cannot)?.into_temp_path();
    write(&tmp)?;
    tmp.persist(path).map_err(|e| e.error).with_context(cannot)?;
    Ok(())
}

/// Checks, before any work, every output file a command will write: one path given to
/// two options is refused, and each path by `unmix_io::OutputPath`'s rules — an existing
/// file only with `force`, a FIFO or character device (or `-`, standard output) written
/// through, a link followed, anything else refused. `outputs` pairs each option with its
/// path, if given; the checked paths come back in the same order.
pub fn check_outputs(outputs: &[(&str, Option<&Path>)], force: bool) -> Result<Vec<Option<OutputPath>>> {
    let mut seen: Vec<&Path> = Vec::new();
    let mut checked = Vec::with_capacity(outputs.len());
    for (option, path) in outputs {
        let Some(path) = *path else {
            checked.push(None);
            continue;
        };
        if seen.contains(&path) {
            bail!("{}: given to two options (the second is {option})", path.display());
        }
        seen.push(path);
        match OutputPath::check(path, force) {
            Ok(out) => checked.push(Some(out)),
            Err(unmix_io::Error::Output { refusal: OutputRefusal::Exists, .. }) => {
                bail!("{}: already exists ({option}); pass --force to overwrite", path.display())
            }
            Err(unmix_io::Error::Output { refusal, .. }) => bail!("{}: {refusal} ({option})", path.display()),
            Err(e) => return Err(anyhow::Error::new(e).context(option.to_string())),
        }
    }
    Ok(checked)
}

/// Checks a plot's path before any work: a PNG (the encoder goes by the extension) and a
/// file, not a stream.
pub fn check_plot(option: &str, path: &Path) -> Result<()> {
    let png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        bail!("{}: a plot is a PNG; name it with .png ({option})", path.display());
    }
    if OutputPath::check(path, true).is_ok_and(|out| out.is_stream()) {
        bail!("{}: {} ({option})", path.display(), OutputRefusal::NotAFile);
    }
    Ok(())
}
