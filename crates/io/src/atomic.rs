//! Whole-or-nothing file writes: write to a temporary file beside the target, flush, then
//! rename over it. A crash or error midway leaves the old file (or none), never half of one.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::io_error;
use crate::{Error, Result};

/// Writes `path` through `write`, atomically.
///
/// The closure receives a buffered writer on a temporary file in the same directory (so
/// the final rename never crosses file systems). On error the temporary file is deleted.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut std::fs::File>) -> Result<()>,
{
    let mut tmp = temp_beside(path)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush().map_err(io_error(path))?;
    }
    tmp.as_file().sync_all().map_err(io_error(path))?;
    tmp.persist(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// A readable temporary file in `path`'s directory (so the final rename never crosses
/// file systems), deleted if dropped before it is persisted.
pub(crate) fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    temp_file_beside(path).map_err(io_error(path))
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
