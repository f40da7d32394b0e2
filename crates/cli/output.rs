//! The output directory: results are written into a hidden staging directory inside it and
//! moved into place only when everything succeeded, so a failed run leaves no partial
//! results (the staging directory is removed when dropped, and so is the output directory
//! if the run created it).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A staging area whose files become the output directory's on [`Staging::commit`].
pub struct Staging {
    dir: PathBuf,
    /// `None` once committed.
    staging: Option<tempfile::TempDir>,
    files: Vec<String>,
    /// Files of `files` already in the output directory itself (published, or written in
    /// place): kept whatever happens to the rest of the run.
    in_dir: Vec<String>,
    /// Whether `dir` did not exist before: an uncommitted run removes it again.
    created_dir: bool,
}

impl Staging {
    /// Prepares `dir` (created if missing). Refuses when any of `names` already exists
    /// there, unless `force`.
    pub fn new(dir: &Path, names: &[&str], force: bool) -> Result<Self> {
        Self::refuse_existing(dir, names, force)?;
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the output directory", dir.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".unmix-staging-")
            .tempdir_in(dir)
            .with_context(|| format!("{}: cannot write to the output directory", dir.display()));
        let staging = match staging {
            Ok(staging) => staging,
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(e);
            }
        };
        Ok(Self { dir: dir.to_path_buf(), staging: Some(staging), files: Vec::new(), in_dir: Vec::new(), created_dir })
    }

    /// What [`new`](Self::new) refuses, checked without touching the disk: before a wait
    /// (a stream's training segment) that should not end in a refusal.
    pub fn refuse_existing(dir: &Path, names: &[&str], force: bool) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            bail!("{}: is a file, not a directory; the output (-o) must be a directory", dir.display());
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

    /// Moves every staged file into the output directory.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
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
/// or the whole new one, never half written.
pub fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let cannot = || format!("{}: cannot write", path.display());
    let tmp = unmix_io::temp_file_beside_keeping_extension(path).with_context(cannot)?.into_temp_path();
    write(&tmp)?;
    tmp.persist(path).map_err(|e| e.error).with_context(cannot)?;
    Ok(())
}

/// Refuses, before any work, output files that already exist (unless `force`) and one
/// path given to two options; `outputs` pairs each option with its path, if given.
pub fn refuse_to_overwrite(outputs: &[(&str, Option<&Path>)], force: bool) -> Result<()> {
    let mut seen: Vec<&Path> = Vec::new();
    for (option, path) in outputs {
        let Some(path) = *path else { continue };
        if seen.contains(&path) {
            bail!("{}: given to two options (the second is {option})", path.display());
        }
        seen.push(path);
        if path.exists() && !force {
            bail!("{}: already exists ({option}); pass --force to overwrite", path.display());
        }
    }
    Ok(())
}
