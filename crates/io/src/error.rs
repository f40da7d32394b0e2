//! Errors of file input and output; each names the file.

use std::path::PathBuf;

/// What went wrong reading or writing a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a WAV file hound can read, or is truncated.
    #[error("{}: not a readable WAV file ({detail})", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        detail: String,
    },
    /// A CSV cell is not what it should be (a number).
    #[error("{}: line {line}, column {column}: '{cell}' is not {expected}", path.display())]
    CsvCell {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// One-based column number.
        column: usize,
        /// The offending text.
        cell: String,
        /// What the cell should hold.
        expected: &'static str,
    },
    /// A CSV row has a different number of cells than the first.
    #[error("{}: line {line} has {got} columns, expected {expected}", path.display())]
    CsvWidth {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// Columns found.
        got: usize,
        /// Columns expected.
        expected: usize,
    },
    /// The CSV could not be parsed at all.
    #[error("{}: {detail}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        detail: String,
    },
    /// The channels or columns asked for are not in the file.
    #[error("{}: {detail}", path.display())]
    Selection {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
    /// A value is NaN or infinite.
    #[error("{}: frame {frame} (counted from 0), channel {} (counted from 1) is not a finite number", path.display(), channel + 1)]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Zero-based frame.
        frame: usize,
        /// Zero-based channel.
        channel: usize,
    },
    /// The file holds no frames.
    #[error("{}: holds no samples", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The data do not form a valid recording.
    #[error("{}: {source}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Why.
        source: unmix_core::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}
