//! Every file unmix writes goes through here, so that every output follows one set of
//! rules, decided once from what stands at the path:
//!
//! - nothing: a new file, written to a temporary file beside it and renamed into place
//!   when complete (after an fsync): a crash or an error midway leaves nothing, never half
//!   a file;
//! - a regular file: replaced the same way, whole — the caller decides whether it may be
//!   ([`OutputPath::check`]'s `force`);
//! - a symbolic link: followed, and what it points at is written by these rules; the link
//!   itself is never replaced (a link to nothing is refused);
//! - a FIFO or a character device (a pipe into another program, `/dev/null`), and `-`
//!   for standard output: written through as the bytes come, never renamed over;
//! - anything else (a directory, a block device, a socket): refused.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{OutputRefusal, io_error};
use crate::{Error, Result};

/// What stands at an output path, and so how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Nothing yet: a new regular file.
    New,
    /// A regular file, replaced whole.
    File,
    /// A FIFO or a character device: written through.
    Stream,
    /// `-`: this process's standard output, written through.
    Stdout,
}

/// An output path, checked: where the bytes go and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPath {
    /// As the user gave it (for messages).
    given: PathBuf,
    /// Where the bytes go: `given`, or what its symbolic links lead to.
    target: PathBuf,
    kind: OutputKind,
}

/// The name of standard output in paths and messages.
const STDOUT_PATH: &str = "-";

impl OutputPath {
    /// Checks `path` as an output. An existing regular file (or a link to one) is refused
    /// unless `force`; a FIFO or character device is written through either way, since
    /// writing to it clobbers nothing; a directory, a block device, a socket or a link to
    /// nothing is refused.
    pub fn check(path: &Path, force: bool) -> Result<Self> {
        let refuse = |refusal| Err(Error::Output { path: path.to_path_buf(), refusal });
        if path == Path::new(STDOUT_PATH) {
            return Ok(Self { given: path.to_path_buf(), target: path.to_path_buf(), kind: OutputKind::Stdout });
        }
        let target = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(path) {
                Ok(target) => target,
                Err(_) => return refuse(OutputRefusal::DanglingLink),
            },
            _ => path.to_path_buf(),
        };
        let kind = match std::fs::metadata(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => OutputKind::New,
            Err(e) => return Err(Error::Io { path: path.to_path_buf(), source: e }),
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_file() {
                    if !force {
                        return refuse(OutputRefusal::Exists);
                    }
                    OutputKind::File
                } else if kind.is_dir() {
                    return refuse(OutputRefusal::Directory);
                } else if is_stream(&kind) {
                    OutputKind::Stream
                } else {
                    return refuse(OutputRefusal::NotWritable);
                }
            }
        };
        Ok(Self { given: path.to_path_buf(), target, kind })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// What stands there.
    pub fn kind(&self) -> OutputKind {
        self.kind
    }

    /// Whether the output is written through as the bytes come (a FIFO, a character
    /// device, standard output): it cannot be sought back into, renamed into place or
    /// taken back.
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, OutputKind::Stream | OutputKind::Stdout)
    }

    /// Whether it is standard output (messages then go to standard error).
    pub fn is_stdout(&self) -> bool {
        self.kind == OutputKind::Stdout
    }
}

#[cfg(unix)]
fn is_stream(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_fifo() || kind.is_char_device()
}

#[cfg(not(unix))]
fn is_stream(_: &std::fs::FileType) -> bool {
    false
}

/// Where an [`OutputFile`]'s bytes go until it is committed.
enum Destination {
    /// A temporary file beside the target, renamed over it on commit.
    Staged { file: BufWriter<std::fs::File>, tmp: tempfile::TempPath },
    /// The target itself: a log that grows in place, a FIFO, a character device.
    Through(BufWriter<std::fs::File>),
    /// Standard output.
    Stdout(BufWriter<std::io::Stdout>),
}

/// One output being written, by the rules of this module: staged and renamed into place,
/// or written through. Dropped before [`commit`](Self::commit), a staged output leaves
/// nothing behind.
pub struct OutputFile {
    out: OutputPath,
    destination: Destination,
}

/// Bytes buffered before they reach the file.
const BUFFER_BYTES: usize = 1 << 20;

impl OutputFile {
    /// Starts writing `out`: a file is staged beside its target, a stream is opened.
    pub fn create(out: &OutputPath) -> Result<Self> {
        let destination = match out.kind {
            OutputKind::New | OutputKind::File => {
                let (file, tmp) = temp_file_beside(&out.target).map_err(io_error(&out.given))?.into_parts();
                Destination::Staged { file: BufWriter::with_capacity(BUFFER_BYTES, file), tmp }
            }
            OutputKind::Stream => Destination::Through(BufWriter::with_capacity(BUFFER_BYTES, open_stream(out)?)),
            OutputKind::Stdout => Destination::Stdout(BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout())),
        };
        Ok(Self { out: out.clone(), destination })
    }

    /// Starts writing `out` in place, for a log that others read while it grows: a file is
    /// created (or emptied) at its target at once rather than staged, and what is written
    /// stays there even if the writer never commits.
    pub fn log(out: &OutputPath) -> Result<Self> {
        let destination = match out.kind {
            OutputKind::New | OutputKind::File => {
                let file = std::fs::File::create(&out.target).map_err(io_error(&out.given))?;
                Destination::Through(BufWriter::with_capacity(BUFFER_BYTES, file))
            }
            OutputKind::Stream => Destination::Through(BufWriter::with_capacity(BUFFER_BYTES, open_stream(out)?)),
            OutputKind::Stdout => Destination::Stdout(BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout())),
        };
        Ok(Self { out: out.clone(), destination })
    }

    /// The output's path, as given.
    pub fn path(&self) -> &Path {
        self.out.path()
    }

    /// Whether the bytes can be sought back into (a staged file): a WAV's sizes are then
    /// written at the end, a stream's header says "to the end of the stream" instead.
    pub fn is_seekable(&self) -> bool {
        matches!(self.destination, Destination::Staged { .. })
    }

    /// Writes `bytes` at `offset` of a staged file, after what was written so far; the
    /// writing position stays at the end. Refused for a stream.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let Destination::Staged { file, .. } = &mut self.destination else {
            return Err(Error::Output { path: self.out.given.clone(), refusal: OutputRefusal::NotAFile });
        };
        let io = io_error(&self.out.given);
        (|| {
            file.flush()?;
            let file = file.get_mut();
            let end = file.seek(SeekFrom::End(0))?;
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(bytes)?;
            file.seek(SeekFrom::Start(end))?;
            Ok(())
        })()
        .map_err(io)
    }

    /// Completes the output: everything flushed; a staged file synced to disk and renamed
    /// over its target, so that it appears whole or not at all.
    pub fn commit(self) -> Result<()> {
        let given = self.out.given;
        match self.destination {
            Destination::Staged { file, tmp } => {
                let file = file.into_inner().map_err(|e| Error::Io { path: given.clone(), source: e.into_error() })?;
                file.sync_all().map_err(io_error(&given))?;
                drop(file);
                tmp.persist(&self.out.target).map_err(|e| Error::Io { path: given.clone(), source: e.error })?;
            }
            Destination::Through(mut file) => file.flush().map_err(io_error(&given))?,
            Destination::Stdout(mut out) => out.flush().map_err(io_error(&given))?,
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match &mut self.destination {
            Destination::Staged { file, .. } | Destination::Through(file) => file.write(bytes),
            Destination::Stdout(out) => out.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.destination {
            Destination::Staged { file, .. } | Destination::Through(file) => file.flush(),
            Destination::Stdout(out) => out.flush(),
        }
    }
}

/// Opens an existing FIFO or character device for writing, without truncating or
/// creating anything.
fn open_stream(out: &OutputPath) -> Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).open(&out.target).map_err(io_error(&out.given))
}

/// Writes `path` through `write`, by the rules of this module (replacing a file there:
/// whether it may was the caller's decision), whole or not at all.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut OutputFile) -> Result<()>,
{
    let mut file = OutputFile::create(&OutputPath::check(path, true)?)?;
    write(&mut file)?;
    file.flush().map_err(io_error(path))?;
    file.commit()
}

/// A temporary file (`.unmix-*.part`, mode 0644) in the directory `path` will be written
/// to, to be persisted over `path` once it is complete and deleted if dropped before.
///
/// Its errors are about `path`'s directory and do not name the temporary file: users
/// never asked for that name (tempfile's own errors end in "at path …/.unmix-x1Y2.part").
pub fn temp_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    temp_with_suffix(path, ".part")
}

/// As [`temp_file_beside`], the name ending in `path`'s own extension
/// (`.unmix-*.part.png`), for writers that choose their format by it (plot encoders).
pub fn temp_file_beside_keeping_extension(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    match path.extension() {
        Some(ext) => temp_with_suffix(path, &format!(".part.{}", ext.to_string_lossy())),
        None => temp_file_beside(path),
    }
}

/// What this process made on its way to its outputs: temporary files and directories
/// (staged outputs, renamed into place once complete or removed when dropped), and the
/// output directories it created. A path that no longer exists is forgotten at the next
/// registration.
static STAGED: Mutex<Vec<Staged>> = Mutex::new(Vec::new());

enum Staged {
    /// Removed with all it holds.
    Temporary(PathBuf),
    /// Removed only if empty.
    CreatedDir(PathBuf),
}

fn staged() -> MutexGuard<'static, Vec<Staged>> {
    // A panic elsewhere while the list was held leaves it whole.
    STAGED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn register(entry: Staged) {
    let mut staged = staged();
    staged.retain(|s| match s {
        Staged::Temporary(p) | Staged::CreatedDir(p) => p.exists(),
    });
    staged.push(entry);
}

/// Records `path`, a temporary file or directory this process made, for
/// [`remove_staged`]. Every temporary file of this module is recorded on creation.
pub fn register_staged(path: &Path) {
    register(Staged::Temporary(path.to_path_buf()));
}

/// Records `dir`, an output directory this process created, for [`remove_staged`],
/// which removes it if it is empty by then.
pub fn register_created_dir(dir: &Path) {
    register(Staged::CreatedDir(dir.to_path_buf()));
}

/// Removes what this process staged that is still there (neither renamed into place nor
/// removed yet), then the output directories it created if that left them empty: for a
/// process about to exit at once, so that it leaves nothing behind. Best effort.
pub fn remove_staged() {
    let mut staged = staged();
    for entry in staged.iter() {
        if let Staged::Temporary(path) = entry {
            let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
        }
    }
    for entry in staged.drain(..).rev() {
        if let Staged::CreatedDir(dir) = entry {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn temp_with_suffix(path: &Path, suffix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new().prefix(".unmix-").suffix(suffix).tempfile_in(dir).map_err(|e| {
        // tempfile wraps the OS error in one whose message ends in " at path …"; keep the
        // OS's message.
        let message = e.to_string();
        match message.rfind(" at path ") {
            Some(at) => std::io::Error::new(e.kind(), &message[..at]),
            None => e,
        }
    })?;
    make_readable(tmp.as_file())?;
    register_staged(tmp.path());
    Ok(tmp)
}

/// Temporary files are created private (0600); results are ordinary files (0644 less the
/// umask is what `File::create` would give, and 0644 is its usual outcome).
fn make_readable(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, force: bool, text: &str) -> Result<()> {
        let mut file = OutputFile::create(&OutputPath::check(path, force)?)?;
        file.write_all(text.as_bytes()).map_err(io_error(path))?;
        file.commit()
    }

    #[test]
    fn a_new_file_appears_whole_on_commit_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut file = OutputFile::create(&OutputPath::check(&path, false).unwrap()).unwrap();
        file.write_all(b"half").unwrap();
        assert!(!path.exists(), "visible before commit");
        drop(file);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the temporary file is gone");
        write(&path, false, "whole").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole");
    }

    #[test]
    fn an_existing_file_is_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "old").unwrap();
        let e = write(&path, false, "new").unwrap_err().to_string();
        assert!(e.contains("already exists; pass --force to overwrite"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        write(&path, true, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputPath::check(dir.path(), true).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_followed_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target.txt"), dir.path().join("link.txt"));
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write(&link, false, "new").unwrap_err().to_string().contains("already exists"));
        write(&link, true, "new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A link to nothing is refused, and left as it is.
        std::fs::remove_file(&target).unwrap();
        let e = write(&link, true, "x").unwrap_err().to_string();
        assert!(e.contains("symbolic link to nothing"), "{e}");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink() && !target.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_character_device_is_written_through() {
        use std::os::unix::fs::FileTypeExt;
        let out = OutputPath::check(Path::new("/dev/null"), false).unwrap();
        assert_eq!(out.kind(), OutputKind::Stream);
        let mut file = OutputFile::create(&out).unwrap();
        file.write_all(b"gone").unwrap();
        assert!(!file.is_seekable());
        file.commit().unwrap();
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null was replaced");
    }

    /// A FIFO (a pipe into another program) gets the bytes as they are written, whether or
    /// not `--force` was given, and stays a FIFO.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_through() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write(&fifo, false, "through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn dash_is_standard_output() {
        let out = OutputPath::check(Path::new("-"), false).unwrap();
        assert!(out.is_stdout() && out.is_stream());
    }
}
