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
    /// A CSV cell is not what it should be (a number). A long cell is shown cut short.
    #[error("{}: line {line}, column {column}: '{}' {expected}", path.display(), shown(cell))]
    CsvCell {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// One-based column number.
        column: usize,
        /// The offending text.
        cell: String,
        /// What is wrong with it ("is not a number").
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
    /// An output path unmix will not write.
    #[error("{}: {refusal}", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// Why not.
        refusal: OutputRefusal,
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

/// Why an output path is refused ([`crate::OutputPath::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutputRefusal {
    /// A regular file is there, and replacing it was not allowed.
    #[error("already exists; pass --force to overwrite")]
    Exists,
    /// A directory is there.
    #[error("is a directory")]
    Directory,
    /// A symbolic link to nothing: links are followed, never replaced.
    #[error("is a symbolic link to nothing; unmix follows links, never replaces them")]
    DanglingLink,
    /// A block device, a socket, or anything else that is not a file, a FIFO or a
    /// character device.
    #[error("is not a regular file, a FIFO or a character device; unmix writes none of the others")]
    NotWritable,
    /// A stream was asked for what only a file can do (seek back, hold an image).
    #[error("is a stream (a FIFO, a character device or standard output); this output must be a file")]
    NotAFile,
}

/// A cell as a message shows it: whole if short, else its first characters.
fn shown(cell: &str) -> String {
    const MOST: usize = 40;
    match cell.char_indices().nth(MOST) {
        Some((cut, _)) => format!("{}…", &cell[..cut]),
        None => cell.to_string(),
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}
